/**
 * A request body streamed from the host's main thread into a capsule's worker while the guest
 * runs: a ring buffer in shared memory. The guest's reads are synchronous calls (or happen under
 * JSPI with the worker's own event loop suspended), so the worker waits on the ring with
 * `Atomics.wait` rather than for a message, or with `Atomics.waitAsync` when the guest may
 * suspend (it may fetch); the main thread writes what fits and, when the ring is full, pauses
 * the client's upload until the worker says it made room.
 */

import type { ByteSource, Pending } from './wasi/io.ts';
import { CLOSED, EMPTY, failed, readsSuspend } from './wasi/io.ts';

export const RING_BYTES = 256 * 1024;
/** Counters are 32-bit: a body streamed through one ring stays below this. */
export const MAX_STREAMED_BODY = 2 ** 31 - 1 - RING_BYTES;

const WRITTEN = 0;
const READ = 1;
const STATE = 2;
const MAIN_WAITING = 3;
/** Changes on every write, end and abort: what the reader waits on. */
const SEQUENCE = 4;
const HEADER_BYTES = 32;

const OPEN = 0;
const ENDED = 1;
const ABORTED = 2;

export function createBodyChannel(): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER_BYTES + RING_BYTES);
}

/** The main thread's end. */
export class BodyWriter {
  readonly #control: Int32Array;
  readonly #data: Uint8Array;

  constructor(channel: SharedArrayBuffer) {
    this.#control = new Int32Array(channel, 0, HEADER_BYTES / 4);
    this.#data = new Uint8Array(channel, HEADER_BYTES, RING_BYTES);
  }

  /** Before each request, while the worker is idle. */
  reset(): void {
    for (const index of [WRITTEN, READ, STATE, MAIN_WAITING]) Atomics.store(this.#control, index, 0);
  }

  /** Writes what fits and returns the rest (empty when all of it was written). */
  write(chunk: Uint8Array): Uint8Array {
    const control = this.#control;
    let offset = 0;
    while (offset < chunk.length) {
      const written = Atomics.load(control, WRITTEN);
      const space = RING_BYTES - (written - Atomics.load(control, READ));
      if (space === 0) {
        Atomics.store(control, MAIN_WAITING, 1);
        // The reader may have made room between the two loads and the flag: look once more.
        if (RING_BYTES - (written - Atomics.load(control, READ)) === 0) return chunk.subarray(offset);
        continue;
      }
      const at = written % RING_BYTES;
      const count = Math.min(space, chunk.length - offset, RING_BYTES - at);
      this.#data.set(chunk.subarray(offset, offset + count), at);
      Atomics.store(control, WRITTEN, written + count);
      offset += count;
      this.#signal();
    }
    return EMPTY;
  }

  end(): void {
    Atomics.store(this.#control, STATE, ENDED);
    this.#signal();
  }

  abort(): void {
    Atomics.store(this.#control, STATE, ABORTED);
    this.#signal();
  }

  #signal(): void {
    Atomics.add(this.#control, SEQUENCE, 1);
    Atomics.notify(this.#control, SEQUENCE);
  }
}

/** The worker's end: the source of the request's `input-stream`. */
export class BodyReader implements ByteSource {
  readonly #control: Int32Array;
  readonly #data: Uint8Array;
  readonly #madeRoom: () => void;

  constructor(channel: SharedArrayBuffer, madeRoom: () => void) {
    this.#control = new Int32Array(channel, 0, HEADER_BYTES / 4);
    this.#data = new Uint8Array(channel, HEADER_BYTES, RING_BYTES);
    this.#madeRoom = madeRoom;
  }

  read(max: number): Uint8Array {
    const control = this.#control;
    const read = Atomics.load(control, READ);
    const available = Atomics.load(control, WRITTEN) - read;
    if (available === 0) {
      const state = Atomics.load(control, STATE);
      if (state === ENDED) throw CLOSED;
      if (state === ABORTED) throw failed('the request body was not received whole');
      return EMPTY;
    }
    const at = read % RING_BYTES;
    const count = Math.min(max, available, RING_BYTES - at);
    if (count === 0) return EMPTY;
    const bytes = this.#data.slice(at, at + count);
    Atomics.store(control, READ, read + count);
    if (Atomics.exchange(control, MAIN_WAITING, 0) === 1) this.#madeRoom();
    return bytes;
  }

  ready(): boolean {
    const control = this.#control;
    return Atomics.load(control, WRITTEN) > Atomics.load(control, READ) || Atomics.load(control, STATE) !== OPEN;
  }

  /** For a guest that may suspend: its fetches go on while it waits for the body. */
  arrival(): Pending | undefined {
    if (!readsSuspend()) return undefined;
    const sequence = Atomics.load(this.#control, SEQUENCE);
    const done = () => this.ready();
    if (done()) return { promise: Promise.resolve(), done };
    const waiting = Atomics.waitAsync(this.#control, SEQUENCE, sequence);
    return { promise: waiting.async ? waiting.value : Promise.resolve(), done };
  }

  wait(timeoutMs?: number): void {
    // Read the sequence before looking: anything the writer does after this changes it.
    const sequence = Atomics.load(this.#control, SEQUENCE);
    if (this.ready()) return;
    Atomics.wait(this.#control, SEQUENCE, sequence, timeoutMs);
  }
}
