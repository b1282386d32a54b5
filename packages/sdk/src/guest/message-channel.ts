// StarlingMonkey has no MessageChannel. Libraries create one as they load to run work as a task
// after the current one (React's server renderer does, in its browser build; so does the
// scheduler package), and fail to load without it. Workers and browsers have it. This one
// delivers each message as a task (a zero-delay timer) to the other port, in order, once that
// port has started (setting onmessage starts it, as the standard says), with the data cloned.
// Ports cannot be transferred, and no other global is a port. Imported for this effect by
// globals.ts.

import { requestTimers } from './timers.ts';

type Listener = (event: MessageEvent) => void;

/**
 * A message's task is no request's timer (timers.ts): cleared with a request that ended first, it
 * was lost, and React's scheduler, which waits for its message before it posts another, stalled.
 */
const task = (run: () => void) => requestTimers.untrackedSetTimeout(run, 0);

/** The event a port's listeners get: the engine has no MessageEvent, so an Event carrying `data`. */
function messageEvent(data: unknown): MessageEvent {
  const event = new Event('message');
  Object.defineProperty(event, 'data', { value: data, enumerable: true });
  return event as MessageEvent;
}

class Port {
  other: Port | undefined;
  #listeners = new Set<Listener>();
  #handler: Listener | null = null;
  #started = false;
  #closed = false;
  #waiting: unknown[] = [];

  get onmessage(): Listener | null {
    return this.#handler;
  }

  set onmessage(handler: Listener | null) {
    this.#handler = handler;
    this.start();
  }

  addEventListener(type: string, listener: Listener): void {
    if (type === 'message') this.#listeners.add(listener);
  }

  removeEventListener(type: string, listener: Listener): void {
    if (type === 'message') this.#listeners.delete(listener);
  }

  postMessage(message: unknown): void {
    const target = this.other;
    if (this.#closed || !target) return;
    const data = structuredClone(message);
    task(() => target.receive(data));
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const data of waiting) task(() => this.receive(data));
  }

  close(): void {
    this.#closed = true;
    this.#waiting = [];
    if (this.other) this.other.other = undefined;
    this.other = undefined;
  }

  receive(data: unknown): void {
    if (this.#closed) return;
    if (!this.#started) {
      this.#waiting.push(data);
      return;
    }
    const event = messageEvent(data);
    this.#handler?.call(this, event);
    for (const listener of this.#listeners) listener.call(this, event);
  }
}

if (typeof globalThis.MessageChannel === 'undefined') {
  class MessageChannel {
    readonly port1 = new Port();
    readonly port2 = new Port();
    constructor() {
      this.port1.other = this.port2;
      this.port2.other = this.port1;
    }
  }
  Object.defineProperty(globalThis, 'MessageChannel', { value: MessageChannel, writable: true, configurable: true });
}
