/** Messages between the host's main thread and a capsule's worker thread. */
import type { HostedMemory } from './hosted-memory.ts';

export interface WorkerCapabilityPlan {
  name: string;
  /** The capability module's URL, imported by the worker. */
  module: string;
  settings: unknown;
  dataDir: string;
}

export interface WorkerInit {
  capsule: string;
  glueUrl: string;
  modules: Record<string, WebAssembly.Module>;
  capabilities: WorkerCapabilityPlan[];
  jspi: boolean;
  responseBodyBytes: number;
  /** Lines a second the instance may write to its capsule's log, after a burst of four times that (`RuntimeLimits.logLinesPerSecond`). */
  logLinesPerSecond?: number;
  /** The memories the host creates for core modules that import theirs (wasm-memory.ts), by module name. */
  hostedMemories?: Record<string, HostedMemory>;
  /** Where V8 keeps compiled code of the modules a worker loads, shared by all workers. */
  compileCacheDir?: string;
  /**
   * Two BigInt64 cells shared with the main thread: the thread's CPU time (us) when the current
   * request started, and that request's `id` (written after the time). The main thread's CPU
   * limit reads them: requests wait on the worker's side behind the one it runs.
   */
  cpuStart?: SharedArrayBuffer;
  /** The request body channel of this worker (body-channel.ts). */
  bodyChannel?: SharedArrayBuffer;
  /** The cell the guest's synchronous sleeps wait on, which the main thread reads and wakes (`SleepWatch` in wasi/io.ts). */
  sleepCell?: SharedArrayBuffer;
  /**
   * Int32s the main thread writes about the responses it sends: `RESPONSE_GONE`, the number
   * (`RequestMessage.id`, as an Int32) of the last request whose client left before its response
   * ended (the response's stream then reports closed to the guest); `RESPONSE_ACCEPTED_ID` and
   * `RESPONSE_ACCEPTED_KIB`, a request's number and how much of its response (KiB) has left for
   * the client's socket, for the worker's window (`RESPONSE_WINDOW_BYTES` in capsule-worker.ts).
   */
  responseSignals?: SharedArrayBuffer;
}

/** A worker's workerData: the capsule it serves, or nothing yet (a spare; `init` comes in a message). */
export interface WorkerBoot {
  init?: WorkerInit;
  /** A spare's: modules to load while it waits (the capability modules the host's installed capsules use). */
  preload?: string[];
  /**
   * A spare's: jco's glue of the component the runtime expects the next instance for, loaded after
   * `preload`; that instance then finds it loaded (see `Runtime.replenishSpare`).
   */
  preloadGlue?: string;
  /** A spare's: the memories `preloadGlue`'s component imports from the host, made with their data pages written. */
  preloadMemories?: Record<string, HostedMemory>;
  compileCacheDir?: string;
}

export interface RequestMessage {
  type: 'request';
  id: number;
  requestId: string;
  domain: string;
  method: string;
  path: string;
  scheme: 'http' | 'https';
  authority: string;
  /** Node's rawHeaders: name, value, name, value ... */
  headers: string[];
  outboundRequests: number;
  /** The body streams through the worker's body channel; without one the body is empty. */
  body: boolean;
}

export interface LogLine {
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'critical';
  message: string;
  source: string;
  requestId?: string;
  /** Set on a quota refusal: the capability whose quota it was. */
  quota?: string;
  /**
   * A line for the host's log, not the capsule's: a capability's backend failing, whose addresses
   * and server messages are the operator's business, not the capsule owner's. `fields` go with it.
   */
  operator?: true;
  fields?: Record<string, unknown>;
}

export interface RequestDone {
  cpuMicros: number;
  memoryBytes: number;
  /** Set when the instance trapped or threw: it must not serve again. */
  trap?: string;
}

export interface ResponseBatch {
  type: 'batch';
  id: number;
  head?: { status: number; headers: string[] };
  /** The guest answered with an error-code instead of a response. */
  failed?: string;
  chunks?: Uint8Array[];
  end?: boolean;
  limit?: 'response-body';
  logs?: LogLine[];
  done?: RequestDone;
}

/**
 * Requests go one at a time or, when the main thread took several in one turn, together.
 * `reclaim` asks whether the request running waits on a backend and, if it does, for the
 * requests waiting behind it back, unstarted (the answer is `reclaimed`): they should not wait
 * with it.
 */
/** See `WorkerInit.responseSignals`. */
export const RESPONSE_GONE = 0;
export const RESPONSE_ACCEPTED_ID = 1;
export const RESPONSE_ACCEPTED_KIB = 2;
export const RESPONSE_SIGNALS_BYTES = 12;

export type ToWorker = PackedRequests | { type: 'shutdown' } | { type: 'reclaim' };

/** What a waiting spare is sent: the capsule it is to serve, or what to load meanwhile instead of `WorkerBoot`'s lists. */
export type ToSpare =
  | { type: 'init'; init: WorkerInit }
  | { type: 'preload'; round: number; modules: string[]; glue?: string; memories?: Record<string, HostedMemory> };

/** RequestMessages as they cross to a worker: their fields in one flat array, REQUEST_FIELDS each (see PackedBatches). */
export interface PackedRequests {
  type: 'requests';
  fields: unknown[];
}

const REQUEST_FIELDS = 10;

export function packRequests(requests: RequestMessage[]): PackedRequests {
  const fields: unknown[] = [];
  for (const request of requests) {
    fields.push(
      request.id,
      request.requestId,
      request.domain,
      request.method,
      request.path,
      request.scheme,
      request.authority,
      request.headers,
      request.outboundRequests,
      request.body,
    );
  }
  return { type: 'requests', fields };
}

export function unpackRequests({ fields }: PackedRequests): RequestMessage[] {
  const requests: RequestMessage[] = [];
  for (let at = 0; at < fields.length; at += REQUEST_FIELDS) {
    requests.push({
      type: 'request',
      id: fields[at] as number,
      requestId: fields[at + 1] as string,
      domain: fields[at + 2] as string,
      method: fields[at + 3] as string,
      path: fields[at + 4] as string,
      scheme: fields[at + 5] as RequestMessage['scheme'],
      authority: fields[at + 6] as string,
      headers: fields[at + 7] as string[],
      outboundRequests: fields[at + 8] as number,
      body: fields[at + 9] as boolean,
    });
  }
  return requests;
}

export type FromWorker =
  /** Batches of several requests (or of one request's parts), in order. */
  | PackedBatches
  /**
   * `gluePreloaded`: the thread had loaded this capsule's glue while it waited as a spare.
   * `glueRehearsed`: and rehearsed its set-up (capsule-worker.ts, `rehearse`).
   * `memoryPretouched`: a memory the host creates for it had its data pages written while the thread waited.
   */
  | { type: 'ready'; memoryBytes: number; gluePreloaded?: boolean; glueRehearsed?: boolean; memoryPretouched?: boolean }
  /** `message` for the capsule's status and log; `detail`, when there is more, for the host's log alone. */
  | { type: 'failed'; message: string; detail?: string }
  /** A spare has loaded what it was given to load while it waits (`round`: which `preload` message, 0 for its boot lists). */
  | { type: 'preloaded'; round: number }
  /** The worker made room in a full request body ring (body-channel.ts). */
  | { type: 'consumed' }
  /**
   * The answer to `reclaim`: whether the request running waits on a backend (its event loop waited
   * for I/O while watched), and, if it does, the requests that waited behind it, never started, by
   * `RequestMessage.id`.
   */
  | { type: 'reclaimed'; ids: number[]; waits: boolean }
  | { type: 'closed' };

/**
 * ResponseBatches as they cross between threads: their fields in one flat array, RECORD per
 * batch, and the small body chunks of all of them copied into one buffer. Structured clone pays
 * per object and per ArrayBuffer: measured with 32 responses per message, 3.0 us a response as
 * objects with a chunk each, 0.5 packed.
 */
export interface PackedBatches {
  type: 'packed';
  records: unknown[];
  /** Per chunk, in order: its length in `bytes`, or -(k + 1) for `large[k]`. */
  lengths: number[];
  bytes: Uint8Array;
  /** Chunks big enough to move rather than copy (transferred). */
  large: ArrayBuffer[];
}

const RECORD = 10;
/** Chunks from this size travel as their own buffer, moved (a transfer list costs more than cloning a few hundred bytes). */
const MOVE_AT = 16 * 1024;

export function packBatches(batches: ResponseBatch[]): { message: PackedBatches; transfer: ArrayBuffer[] } {
  const records: unknown[] = [];
  const lengths: number[] = [];
  const large: ArrayBuffer[] = [];
  const small: Uint8Array[] = [];
  let smallBytes = 0;
  for (const batch of batches) {
    const chunks = batch.chunks ?? [];
    records.push(
      batch.id,
      batch.head?.status,
      batch.head?.headers,
      batch.failed,
      chunks.length,
      (batch.end ? 1 : 0) | (batch.limit ? 2 : 0),
      batch.logs,
      batch.done?.cpuMicros,
      batch.done?.memoryBytes,
      batch.done?.trap,
    );
    for (const chunk of chunks) {
      const buffer = chunk.buffer;
      // jco and the lowerings copy each write out of the guest's memory into a buffer of its own, so moving it is safe.
      if (
        buffer instanceof ArrayBuffer &&
        chunk.byteLength >= MOVE_AT &&
        chunk.byteOffset === 0 &&
        chunk.byteLength === buffer.byteLength &&
        !large.includes(buffer)
      ) {
        large.push(buffer);
        lengths.push(-large.length);
      } else {
        small.push(chunk);
        smallBytes += chunk.byteLength;
        lengths.push(chunk.byteLength);
      }
    }
  }
  const bytes = new Uint8Array(smallBytes);
  let offset = 0;
  for (const chunk of small) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { message: { type: 'packed', records, lengths, bytes, large }, transfer: large };
}

export function unpackBatches(packed: PackedBatches): ResponseBatch[] {
  const { records, lengths, bytes, large } = packed;
  const batches: ResponseBatch[] = [];
  let chunkIndex = 0;
  let offset = 0;
  for (let at = 0; at < records.length; at += RECORD) {
    const batch: ResponseBatch = { type: 'batch', id: records[at] as number };
    const status = records[at + 1] as number | undefined;
    if (status !== undefined) batch.head = { status, headers: records[at + 2] as string[] };
    const failed = records[at + 3] as string | undefined;
    if (failed !== undefined) batch.failed = failed;
    const count = records[at + 4] as number;
    if (count > 0) {
      const chunks: Uint8Array[] = [];
      for (let index = 0; index < count; index++) {
        const length = lengths[chunkIndex++] as number;
        if (length < 0) chunks.push(new Uint8Array(large[-length - 1] as ArrayBuffer));
        else {
          chunks.push(bytes.subarray(offset, offset + length));
          offset += length;
        }
      }
      batch.chunks = chunks;
    }
    const flags = records[at + 5] as number;
    if (flags & 1) batch.end = true;
    if (flags & 2) batch.limit = 'response-body';
    const logs = records[at + 6] as LogLine[] | undefined;
    if (logs) batch.logs = logs;
    const cpuMicros = records[at + 7] as number | undefined;
    if (cpuMicros !== undefined) {
      batch.done = { cpuMicros, memoryBytes: records[at + 8] as number };
      const trap = records[at + 9] as string | undefined;
      if (trap !== undefined) batch.done.trap = trap;
    }
    batches.push(batch);
  }
  return batches;
}
