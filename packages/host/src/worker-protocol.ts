/** Messages between the host's main thread and a capsule's worker thread. */

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
}

/** A worker's workerData: the capsule it serves, or nothing yet (a spare; `init` comes in a message). */
export interface WorkerBoot {
  init?: WorkerInit;
  /** A spare's: modules to load while it waits (the capability modules). */
  preload?: string[];
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

/** Requests go one at a time or, when the main thread took several in one turn, together. */
export type ToWorker = RequestMessage | RequestMessage[] | { type: 'shutdown' };

export type FromWorker =
  | ResponseBatch
  /** Batches of several requests (or of one request's parts), in order. */
  | ResponseBatch[]
  | { type: 'ready'; memoryBytes: number }
  | { type: 'failed'; message: string }
  /** The worker made room in a full request body ring (body-channel.ts). */
  | { type: 'consumed' }
  | { type: 'closed' };
