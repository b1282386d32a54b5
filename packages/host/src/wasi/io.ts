/**
 * wasi:io (error, poll, streams) for capsule workers, in-process. preview2-shim's Node.js
 * streams hand every call to a separate I/O thread and wait for it; a capsule's streams are
 * request and response bodies held in memory and log lines, so plain objects are faster, and the
 * http and cli interfaces must return these very classes (jco checks `instanceof` on them).
 *
 * Thrown plain objects become the WIT `result`'s error (jco lowers a thrown non-Error as
 * `err(value)`), so every failure here is a `stream-error`, never a trap.
 */
import { acceptHollow, HostResource } from '../capabilities/canonical-abi.ts';
import { lowerStreams } from './lowerings.ts';

/**
 * The cell a synchronous sleep waits on, shared with the host's main thread: [WAKE, ASLEEP].
 * The worker sets ASLEEP while its guest sleeps; the main thread, having posted it a message,
 * sets WAKE and notifies, and the sleep lets the worker look at the message (`SleepWatch`)
 * before it sleeps on.
 */
export const SLEEP_WAKE = 0;
export const SLEEP_ASLEEP = 1;

/**
 * What a worker does when its guest sleeps (a JS capsule's `setTimeout`): a sleep blocks the
 * thread for its length, and the requests posted behind the sleeping one would wait as long.
 * `asleep` runs before the sleep and each time the main thread wakes it, and hands those
 * requests back to the host.
 */
export interface SleepWatch {
  readonly cell: Int32Array;
  /** Shorter sleeps block without a word: handing requests back costs more than they wait. */
  readonly minMs: number;
  asleep(): void;
}

let sleepWatch: SleepWatch | undefined;
let sleepCell: Int32Array = new Int32Array(new SharedArrayBuffer(8));

export function setSleepWatch(watch: SleepWatch | undefined): void {
  sleepWatch = watch;
  if (watch) sleepCell = watch.cell;
}

/** Blocks this worker thread (never the host's main thread) for `ns` nanoseconds. */
function sleepNs(ns: bigint): void {
  if (ns <= 0n) return;
  const watch = sleepWatch;
  if (!watch || Number(ns) / 1e6 < watch.minMs) {
    Atomics.wait(sleepCell, SLEEP_ASLEEP, 0, Number(ns) / 1e6);
    return;
  }
  const until = monotonicNow() + ns;
  Atomics.store(sleepCell, SLEEP_ASLEEP, 1);
  try {
    for (;;) {
      // Cleared before looking: a message posted after the look sets it again, and the wait
      // below then returns at once rather than missing it.
      Atomics.store(sleepCell, SLEEP_WAKE, 0);
      watch.asleep();
      const left = until - monotonicNow();
      if (left <= 0n) return;
      Atomics.wait(sleepCell, SLEEP_WAKE, 0, Number(left) / 1e6);
    }
  } finally {
    Atomics.store(sleepCell, SLEEP_ASLEEP, 0);
  }
}

export function monotonicNow(): bigint {
  return process.hrtime.bigint();
}

export class IoError extends HostResource {
  readonly #message: string;

  constructor(message: string) {
    super();
    this.#message = message;
  }

  toDebugString(): string {
    return this.#message;
  }
}

/** Something a pollable can wait for besides time: a request body still arriving. */
export interface Waitable {
  ready(): boolean;
  /** Blocks until ready, or for at most `timeoutMs`. */
  wait(timeoutMs?: number): void;
}

/**
 * Something the host's own event loop brings about (an outbound response): a pollable on it can
 * only be waited for asynchronously, by `poll` and `block` as JSPI imports, which the wasi
 * capability makes them for a capsule that may make one.
 */
export interface Pending {
  readonly promise: Promise<unknown>;
  done(): boolean;
}

/** Ready at once, at a monotonic deadline (clock pollables), or when its waitable or pending work is. */
export class Pollable extends HostResource {
  readonly #deadline: bigint | undefined;
  readonly #waitable: Waitable | undefined;
  readonly #pending: Pending | undefined;

  constructor(deadline?: bigint, waitable?: Waitable, pending?: Pending) {
    super();
    this.#deadline = deadline;
    this.#waitable = waitable;
    this.#pending = pending;
  }

  get pending(): Pending | undefined {
    return this.#pending;
  }

  get deadline(): bigint | undefined {
    return this.#deadline;
  }

  get waitable(): Waitable | undefined {
    return this.#waitable;
  }

  ready(): boolean {
    if (this.#pending) return this.#pending.done();
    if (this.#waitable) return this.#waitable.ready();
    return this.#deadline === undefined || monotonicNow() >= this.#deadline;
  }

  block(): void | Promise<void> {
    if (this.ready()) return;
    beforeBlocking?.();
    if (this.#pending) return this.#pending.promise.then(() => undefined);
    if (this.#waitable) this.#waitable.wait();
    else if (this.#deadline !== undefined) sleepNs(this.#deadline - monotonicNow());
  }
}

let beforeBlocking: (() => void) | undefined;

/** Called before the guest blocks (a sleep), so that buffered output reaches the client first. */
export function setBeforeBlocking(hook: (() => void) | undefined): void {
  beforeBlocking = hook;
}

export function poll(pollables: Pollable[]): Uint32Array | Promise<Uint32Array> {
  if (pollables.length === 0) throw new IoError('poll: empty list');
  let ready = readyIndices(pollables);
  if (ready.length > 0) return Uint32Array.from(ready);
  if (pollables.some((pollable) => pollable.pending)) return pollAsync(pollables);
  let earliest: bigint | undefined;
  let waitable: Waitable | undefined;
  for (const pollable of pollables) {
    const deadline = pollable.deadline;
    if (deadline !== undefined && (earliest === undefined || deadline < earliest)) earliest = deadline;
    waitable ??= pollable.waitable;
  }
  beforeBlocking?.();
  if (waitable) waitable.wait(earliest === undefined ? undefined : Math.max(0, Number(earliest - monotonicNow()) / 1e6));
  else if (earliest !== undefined) sleepNs(earliest - monotonicNow());
  ready = readyIndices(pollables);
  return Uint32Array.from(ready);
}

/** How often a wait that has pending work checks the pollables that are waited for in other ways. */
const PENDING_RECHECK_MS = 5;

/**
 * `poll` with pending work in the list: the thread's event loop must run to bring it about, so
 * this waits on it (and the earliest deadline) without blocking. A waitable, which could only be
 * waited for by blocking, is checked every few milliseconds instead (a capsule's request body
 * has an `arrival` here, so none of those comes from a capsule that may fetch).
 */
async function pollAsync(pollables: Pollable[]): Promise<Uint32Array> {
  beforeBlocking?.();
  for (;;) {
    const ready = readyIndices(pollables);
    if (ready.length > 0) return Uint32Array.from(ready);
    const waits: Promise<unknown>[] = [];
    let delayMs: number | undefined;
    for (const pollable of pollables) {
      if (pollable.pending) waits.push(pollable.pending.promise);
      else if (pollable.waitable) delayMs = Math.min(delayMs ?? PENDING_RECHECK_MS, PENDING_RECHECK_MS);
      else if (pollable.deadline !== undefined) {
        const untilMs = Math.max(0, Number(pollable.deadline - monotonicNow()) / 1e6);
        delayMs = Math.min(delayMs ?? untilMs, untilMs);
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (delayMs !== undefined) waits.push(new Promise((resolve) => (timer = setTimeout(resolve, delayMs))));
    await Promise.race(waits);
    clearTimeout(timer);
  }
}

function readyIndices(pollables: Pollable[]): number[] {
  const ready: number[] = [];
  for (let index = 0; index < pollables.length; index++) if (pollables[index]?.ready()) ready.push(index);
  return ready;
}

export const CLOSED = Object.freeze({ tag: 'closed' as const });

export function failed(message: string): { tag: 'last-operation-failed'; val: IoError } {
  return { tag: 'last-operation-failed', val: new IoError(message) };
}

export const EMPTY = new Uint8Array(0);

/** Where an input stream's bytes come from. */
export interface ByteSource extends Waitable {
  /** Up to `max` bytes now; empty when none have arrived yet; throws a stream error at the end. */
  read(max: number): Uint8Array;
  /**
   * The next arrival (bytes, the end or a failure), waited for asynchronously: for bytes this
   * thread's own event loop brings (an outbound response's body), which no synchronous wait
   * could see arrive, and `wait` is then never called; or, when the guest may suspend
   * (`readsSuspend`), so that the thread's event loop runs on while it waits (a request body,
   * while the capsule's fetches are under way). Undefined: wait synchronously.
   */
  arrival?(): Pending | undefined;
  /** The guest dropped the stream: what is still to come is not wanted. */
  close?(): void;
}

/** Bytes already in memory: a response an outbound request got, or a test's body. */
export class ChunkSource implements ByteSource {
  #chunks: Uint8Array[];

  constructor(chunks: Uint8Array[]) {
    this.#chunks = chunks;
  }

  read(max: number): Uint8Array {
    const first = this.#chunks[0];
    if (first === undefined) throw CLOSED;
    if (max === 0) return EMPTY;
    if (first.length <= max) {
      this.#chunks.shift();
      return first;
    }
    this.#chunks[0] = first.subarray(max);
    return first.subarray(0, max);
  }

  ready(): boolean {
    return true;
  }

  wait(): void {}
}

export class InputStream extends HostResource {
  readonly #source: ByteSource;
  #closed = false;

  constructor(source: ByteSource | Uint8Array[] = []) {
    super();
    this.#source = Array.isArray(source) ? new ChunkSource(source) : source;
  }

  read(len: bigint): Uint8Array {
    if (this.#closed) throw CLOSED;
    try {
      return this.#source.read(Number(len > 0x7fffffffn ? 0x7fffffffn : len));
    } catch (error) {
      this.#closed = true;
      throw error;
    }
  }

  /** A promise (the import is then a JSPI one, see `setSuspendingReads`) when the bytes come from this thread's event loop. */
  blockingRead(len: bigint): Uint8Array | Promise<Uint8Array> {
    if (!this.#closed && len > 0n && !this.#source.ready()) {
      beforeBlocking?.();
      const arrival = this.#source.arrival?.();
      if (arrival) return arrival.promise.then(() => this.blockingRead(len));
      this.#source.wait();
    }
    return this.read(len);
  }

  skip(len: bigint): bigint {
    return BigInt(this.read(len).length);
  }

  blockingSkip(len: bigint): bigint | Promise<bigint> {
    const bytes = this.blockingRead(len);
    return bytes instanceof Uint8Array ? BigInt(bytes.length) : bytes.then((read) => BigInt(read.length));
  }

  subscribe(): Pollable {
    const arrival = this.#source.arrival?.();
    return arrival ? new Pollable(undefined, undefined, arrival) : new Pollable(undefined, this.#source);
  }

  override [Symbol.dispose](): void {
    super[Symbol.dispose]();
    if (this.#closed) return;
    this.#closed = true;
    this.#source.close?.();
  }
}

let suspendingReads = false;

/**
 * Whether `blocking-read` may suspend the guest (a JSPI import): set by the wasi capability,
 * before the instance is made, for a capsule that may fetch, whose outbound responses stream in
 * on this thread's event loop. One capsule runs in a thread, so one setting serves it.
 */
export function setSuspendingReads(on: boolean): void {
  suspendingReads = on;
}

export function readsSuspend(): boolean {
  return suspendingReads;
}

/** Where an output stream's bytes go: a response body or a log. */
export interface ByteSink {
  /** Bytes the sink takes now; 0 when it is closed or over its limit. */
  capacity(): number;
  /** Throws CLOSED (or a stream error) when the sink cannot take them. */
  write(bytes: Uint8Array): void;
  flush(): void;
  /** The guest dropped the stream. */
  close?(): void;
}

const WRITE_BUDGET = 1024 * 1024;

export class OutputStream extends HostResource {
  readonly #sink: ByteSink;
  #closed = false;

  constructor(sink: ByteSink) {
    super();
    this.#sink = sink;
  }

  checkWrite(): bigint {
    if (this.#closed) throw CLOSED;
    const capacity = this.#sink.capacity();
    if (capacity <= 0) throw CLOSED;
    return BigInt(Math.min(capacity, WRITE_BUDGET));
  }

  write(contents: Uint8Array): void {
    if (this.#closed) throw CLOSED;
    // jco's glue already copied the bytes out of the guest's memory: keep them as they are.
    this.#sink.write(contents);
  }

  blockingWriteAndFlush(contents: Uint8Array): void {
    this.write(contents);
    this.#sink.flush();
  }

  flush(): void {
    if (this.#closed) throw CLOSED;
    this.#sink.flush();
  }

  blockingFlush(): void {
    this.flush();
  }

  subscribe(): Pollable {
    return new Pollable();
  }

  writeZeroes(len: bigint): void {
    this.write(new Uint8Array(Number(len)));
  }

  blockingWriteZeroesAndFlush(len: bigint): void {
    this.writeZeroes(len);
    this.#sink.flush();
  }

  splice(source: InputStream, len: bigint): bigint {
    const bytes = source.read(len);
    this.write(bytes);
    return BigInt(bytes.length);
  }

  blockingSplice(source: InputStream, len: bigint): bigint | Promise<bigint> {
    const bytes = source.blockingRead(len);
    const write = (read: Uint8Array) => {
      this.write(read);
      return BigInt(read.length);
    };
    return bytes instanceof Uint8Array ? write(bytes) : bytes.then(write);
  }

  override [Symbol.dispose](): void {
    super[Symbol.dispose]();
    if (this.#closed) return;
    this.#closed = true;
    this.#sink.close?.();
  }
}

// Handles of these classes may be made by the lowerings, which jco's glue does not know.
acceptHollow(IoError);
acceptHollow(OutputStream);
lowerStreams({ IoError, InputStream, OutputStream });

export const ioError = { Error: IoError };
export const ioPoll = { Pollable, poll };
export const ioStreams = { InputStream, OutputStream };
