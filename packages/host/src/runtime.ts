import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type BlockList, isIPv4 } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  errorMessage,
  type FrameMapper,
  formatBytes,
  frameMapper,
  type Logger,
  newRequestId,
  StratumError,
  silentLogger,
  sourceMapScript,
} from '@stratum/core';
import { type Manifest, type ResourceKey, routeMatches } from '@stratum/manifest';
import { addressRanges, peerInRanges } from './address-ranges.ts';
import { BodyWriter, createBodyChannel, MAX_STREAMED_BODY } from './body-channel.ts';
import {
  CAPABILITY_MODULES,
  type CapabilityModule,
  type LoadedCapability,
  loadCapabilities,
  servesInterface,
} from './capabilities/index.ts';
import { redact, secretValuesOf } from './capabilities/logging/redact.ts';
import { defaultMaxInstances } from './instance-limit.ts';
import { Loader, type LoaderStats, type ModuleLease, type TranspiledComponent } from './loader.ts';
import type {
  CapsuleLogEntry,
  CapsuleState,
  CapsuleStatus,
  HostRuntime,
  InstallRequest,
  LogLevel,
  LogSubscribeOptions,
  RequestRecord,
  StartOptions,
} from './runtime-types.ts';
import { SLEEP_ASLEEP, SLEEP_WAKE } from './wasi/io.ts';
import { hostedMemories } from './wasm-memory.ts';
import {
  type FromWorker,
  packRequests,
  RESPONSE_ACCEPTED_ID,
  RESPONSE_ACCEPTED_KIB,
  RESPONSE_GONE,
  RESPONSE_SIGNALS_BYTES,
  type RequestMessage,
  type ResponseBatch,
  type ToSpare,
  type ToWorker,
  unpackBatches,
  type WorkerBoot,
  type WorkerCapabilityPlan,
  type WorkerInit,
} from './worker-protocol.ts';

/**
 * Caps on every capsule. The keys are host.toml's `[limits]` (`HostLimits` in src/config), so
 * that config can be passed as is; a key left out leaves the manifest's resource class in force.
 */
export interface RuntimeLimits {
  memoryBytes?: number;
  cpuMsPerRequest?: number;
  timeoutMs?: number;
  concurrency?: number;
  /** Requests that may wait for a free instance, per capsule, before 503. Default 64. */
  queue?: number;
  /** Default 10 MiB. */
  requestBodyBytes?: number;
  /** Default 64 MiB. */
  responseBodyBytes?: number;
  /** Default 16. */
  outboundRequests?: number;
  /**
   * Lines a second one instance may write to its capsule's log (stdout, stderr, wasi:logging),
   * after a burst of four seconds' worth; past it lines are dropped and counted. Default 500.
   */
  logLinesPerSecond?: number;
  /**
   * How long a capsule's last instance may stay idle before it is retired too; the next request
   * starts one again (a cold start). An idle capsule then costs the host no thread and no isolate,
   * so a host can hold many more installed capsules than it could keep warm. Default 5 minutes;
   * 0 keeps the last instance for ever.
   */
  idleMs?: number;
}

export interface HostRuntimeOptions {
  /** Where the runtime keeps its transpile cache (`cache/`) and capsules' data (`capsules/<name>/`). */
  dataDir: string;
  limits?: RuntimeLimits;
  logger?: Logger;
  /** Each capability's section of the host config, by capability name, handed to its `configure`. */
  capabilityConfig?: Readonly<Record<string, unknown>>;
  /** The capabilities the host links; default: the registry in src/capabilities/index.ts. */
  capabilities?: readonly CapabilityModule[];
  /** Failures in a row (trap, CPU, timeout, crash) after which a capsule is backed off. Default 3. */
  backoffAfter?: number;
  /** The first back-off; it doubles with each further failure up to `backoffMaxMs`. Default 1 s. */
  backoffMs?: number;
  backoffMaxMs?: number;
  /**
   * The least CPU time each of a fresh instance's first 16 requests may use, whatever the
   * capsule's class: they also pay for the JIT warming up the glue and the guest. Default 500 ms.
   */
  warmupCpuMs?: number;
  /**
   * How long after one of a capsule's instances was ended for CPU its instances get no warm-up
   * budget (`warmupCpuMs`): the instance that replaced it would otherwise give a capsule that keeps
   * going over its limit the budget again, 16 requests at a time. Default 60 s.
   */
  warmupWithheldMs?: number;
  /**
   * Sets of compiled core modules kept after the last capsule using them went idle, the most
   * recent ones, so that a capsule waking soon does not compile again. Default 16.
   */
  keepIdleCompiled?: number;
  /**
   * Instances (worker threads) one capsule may run at once, each serving one request at a time;
   * a capsule's manifest concurrency caps it further. Default: the machine's available
   * parallelism, since more instances than cores add no throughput to synchronous capsules.
   */
  instancesPerCapsule?: number;
  /**
   * The same for a capsule bound with JSPI (an asynchronous backend: Redis, PostgreSQL, outbound
   * HTTP) while its requests wait on the backend. Such an instance spends a request waiting with
   * the thread idle, and it serves one request at a time (a suspended guest cannot be entered
   * again), so only more instances let it wait on several requests at once: with one per core, a
   * capsule whose backend answers in 200 ms served 5 requests a second per core. Instances beyond
   * one per core start only for requests handed back from behind one that waits (`reclaim`), so
   * a capsule on a fast backend keeps to one per core. Each instance is a thread (17-27 MiB warm,
   * bench/README.md); those beyond the first retire when idle (`idleInstanceMs`). Default 8.
   * A capsule whose requests sleep (a JS capsule's `setTimeout` blocks its thread) gets as many,
   * the worker handing back what was behind the sleeping request (`SleepWatch` in wasi/io.ts).
   * At most `maxInstances` less one, so that one capsule alone cannot hold them all.
   */
  asyncInstancesPerCapsule?: number;
  /**
   * Instances all capsules together may run at once (`[instances] max`): each is a thread with its
   * own engine, 12-27 MiB warm and more under load, and a host holds a thousand capsules, each
   * keeping its last instance for `limits.idleMs`. At the limit a new instance takes the place of
   * the one idle longest, of any capsule; with none idle, its requests wait in their capsule's
   * queue for one to end. Default: one per 32 MiB of the machine's memory, at least 16.
   */
  maxInstances?: number;
  /**
   * How many of a capsule's threads may be stuck in native code (`Capsule.threadStuck`) before
   * starting it is refused. Each holds a core until the process ends, and a registrar that served
   * its capsule again after each one took the host's cores one by one. Default 1: once one is
   * stuck, the capsule stays stopped until the host restarts. `stratum dev` allows any number.
   */
  stuckThreadsPerCapsule?: number;
  /** How long an instance beyond the first may stay idle before it is retired. Default 30 s. */
  idleInstanceMs?: number;
  /** Log lines kept per capsule for `subscribeLogs`'s backlog. Default 1000. */
  logBacklog?: number;
  /** Requests posted to an instance behind the one it runs (see `PIPELINE_DEPTH`). */
  pipeline?: PipelineOptions;
  /**
   * Keep one worker thread started and waiting, with the capability modules loaded, for the next
   * instance of any capsule. A new thread (isolate, Node.js bootstrap, module loading) was most of
   * a new instance's start-up: about 190 of 210 ms for tiny. Each spare serves one capsule only,
   * so nothing passes between capsules. Default true.
   */
  spareWorker?: boolean;
  /**
   * CIDR ranges of the TLS-terminating proxies in front of the ingress (`[ingress]
   * trusted_proxies`): a request from one of them has the scheme its `X-Forwarded-Proto` gives,
   * so a capsule behind HTTPS sees `https:` URLs, and its forwarding headers reach the capsule.
   * From anyone else they are dropped (`forwarding`).
   */
  trustedProxies?: readonly string[];
}

export interface RuntimeStats extends LoaderStats {
  workersStarted: number;
  /** Instances that started in the spare worker rather than a new one. */
  sparesUsed: number;
  /** The modules the waiting spare worker loads (none when there is no spare). */
  sparePreload: string[];
  /** The glue the waiting spare worker loads: a component's whose instances started the last two times in a row. */
  spareGlue?: string;
  /** The waiting spare has loaded its `sparePreload` and `spareGlue`. */
  sparePreloaded: boolean;
  /** Instances that found their glue loaded already in the spare they took. */
  spareGlueHits: number;
  /** Of those, instances whose glue's set-up the spare had rehearsed, so that V8 had compiled it (capsule-worker.ts, `rehearse`). */
  spareGlueRehearsals: number;
  /** Instances whose memory the spare they took had made, its data pages written (see `HostedMemory`). */
  spareMemoryHits: number;
  /** Instances replaced because their memory grew near the capsule's limit (see `recycleHeadroom`). */
  recycledInstances: number;
  /**
   * Instances ended that have not stopped after `STUCK_THREAD_MS`: their thread runs native code
   * that does not return (see `Capsule.threadStuck`). Each holds a core until the process ends,
   * and the process can end only by SIGKILL while one does.
   */
  stuckThreads: number;
  /** Instances running or starting now, of all capsules. */
  instances: number;
  /** The most there may be (`maxInstances`, `[instances] max`). */
  maxInstances: number;
  /** Idle instances ended to make room for another capsule's at `maxInstances`. */
  instancesEvicted: number;
  /** Times a capsule needed an instance at `maxInstances` with none idle to end, and its requests waited. */
  instanceWaits: number;
  /**
   * Sets of compiled core modules in memory, one per (component, memory cap): held by capsules
   * with instances, and kept after their capsules went idle (see `keepIdleCompiled`).
   */
  compiledModuleSets: { held: number; kept: number };
}

/** The runtime with what tests and benchmarks look at besides the `HostRuntime` seam. */
export interface StratumHostRuntime extends HostRuntime {
  stats(): RuntimeStats;
}

interface EffectiveLimits {
  memoryBytes: number;
  cpuMsPerRequest: number;
  timeoutMs: number;
  concurrency: number;
  queue: number;
  requestBodyBytes: number;
  responseBodyBytes: number;
  outboundRequests: number;
  logLinesPerSecond: number;
}

const MiB = 1024 * 1024;
/**
 * What StarlingMonkey writes to stderr before it aborts an event loop with nothing left to run:
 * the trap that follows says only "unreachable", this says why.
 */
const ENGINE_STALLED = /event loop error, but no exception is pending/;
/** What StarlingMonkey writes to stderr when an allocation fails, before it aborts: the trap says only "unreachable". */
const ENGINE_OUT_OF_MEMORY = /mozalloc_abort|^out of memory$/m;
/**
 * CPU time beyond a request's limit that is put down to V8's own work on the worker's thread
 * before the request is ended. Measured on tiny (0.01 ms of CPU a request) at 5,000 requests/s:
 * garbage collections of 5 to 10 ms every half second (jco's glue allocates on every call), and
 * requests that took 8, 16 and 31 ms of CPU while the JIT warmed up; with 15 ms, two of 80,000
 * requests were still ended at nano's 10 ms.
 */
const CPU_ALLOWANCE_MS = 50;
/** A capsule's limit hits of one kind are written to the logs at most once this often (`Capsule.limitHit`). */
const LIMIT_LOG_INTERVAL_MS = 10_000;
/** After a request is first seen over its CPU limit, when to look again before ending it. */
const CPU_RECHECK_MS = 5;
/**
 * How much longer than its wall-clock limit a new instance may take to start (a new thread,
 * module loading and instantiation on a busy host) before it is given up.
 */
const INSTANCE_START_ALLOWANCE_MS = 5_000;
/**
 * The next spare starts when a new instance has answered its first request, or this long after
 * it is ready if none comes: starting a thread takes the main thread about 0.7 ms and the new
 * thread's boot tens of ms of CPU, which the new instance's start and first answer should not wait
 * behind.
 */
const SPARE_AFTER_START_MS = 100;
/**
 * Unless the instance is answering its first request by then: the spare then waits for the answer,
 * up to this long after ready. A JS capsule's first request in a freshly started host runs
 * 80-150 ms (V8 compiling StarlingMonkey's functions as they are first called), and a thread's boot
 * beside it on a busy core delayed the answer by as much (bench/README.md). A first request that
 * waits on a backend longer than this must not leave the host without a spare.
 */
const SPARE_AFTER_BUSY_START_MS = 1_000;
/**
 * An instance whose linear memory has grown (by half of this since its first request) to within
 * this of the capsule's limit takes no new requests, and is replaced once it has answered those
 * it holds. A JS capsule's engine (StarlingMonkey) grows its memory under load and traps when the
 * limit refuses more rather than collecting (hello under a 24 MiB limit: a 500 every 2,500-2,900
 * requests, with jco's bindings as with Stratum's), so the request that met the limit failed.
 * An instance that starts big and stays there is left alone.
 */
function recycleHeadroom(memoryLimit: number): number {
  return Math.max(memoryLimit / 4, 4 * MiB);
}
/** A size in the largest unit that divides it (10 MiB, 512 KiB), or in bytes (1000 bytes). */
/**
 * The capsule log's line for an install: the installation's name when it is not the app's (a
 * `--name`), so that `host logs kd` does not read as another capsule's, then the app and version.
 */
function installedLine(name: string, manifest: Manifest, digest: string): string {
  const app = `${manifest.capsule.name}@${manifest.capsule.version}`;
  return `installed ${name === manifest.capsule.name ? app : `${name}: ${app}`} (${digest})`;
}

function sizeText(bytes: number): string {
  for (const [unit, name] of [
    [1024 * MiB, 'GiB'],
    [MiB, 'MiB'],
    [1024, 'KiB'],
  ] as const) {
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit} ${name}`;
  }
  return `${bytes} bytes`;
}
/** An instance ended that has not stopped after this is in native code that does not return (`Capsule.threadStuck`). */
const STUCK_THREAD_MS = 3000;
/** Requests of a fresh instance that get the warm-up CPU budget. */
const WARMUP_REQUESTS = 16;
/**
 * A JSPI capsule gets instances beyond one per core only while its requests have been seen
 * waiting on a backend (a reclaim answered) this recently.
 */
const WAITED_RECENTLY_MS = 1000;

/**
 * What the manifest asks for (the `[resources]` keys it gives) and the host's limits do not allow,
 * one line each, naming the manifest's key and the host's.
 */
function unmetResources(manifest: Manifest, host: RuntimeLimits): string[] {
  const asked = new Set(manifest.resources.requested ?? []);
  const { resources } = manifest;
  const unmet: string[] = [];
  const check = (key: ResourceKey, wanted: number, limit: number | undefined, shown: (value: number) => string, hostKey: string) => {
    if (asked.has(key) && limit !== undefined && wanted > limit) {
      unmet.push(`[resources] ${key} asks for ${shown(wanted)}; this host allows ${shown(limit)} ([limits] ${hostKey})`);
    }
  };
  // As a manifest writes them: 50 ms, 5 s.
  const duration = (ms: number) => (ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`);
  check('cpu', resources.cpuMsPerRequest, host.cpuMsPerRequest, (ms) => `${duration(ms)} of CPU per request`, 'cpu');
  check('memory', resources.memoryBytes, host.memoryBytes, formatBytes, 'memory');
  check('timeout', resources.timeoutMs, host.timeoutMs, duration, 'timeout');
  check('concurrency', resources.concurrency, host.concurrency, (count) => `${count} concurrent requests`, 'concurrency');
  return unmet;
}

function effectiveLimits(manifest: Manifest, host: RuntimeLimits): EffectiveLimits {
  const cap = (wanted: number, limit: number | undefined) => (limit === undefined ? wanted : Math.min(wanted, limit));
  return {
    memoryBytes: cap(manifest.resources.memoryBytes, host.memoryBytes),
    cpuMsPerRequest: cap(manifest.resources.cpuMsPerRequest, host.cpuMsPerRequest),
    timeoutMs: cap(manifest.resources.timeoutMs, host.timeoutMs),
    concurrency: Math.max(1, cap(manifest.resources.concurrency, host.concurrency)),
    queue: host.queue ?? 64,
    requestBodyBytes: host.requestBodyBytes ?? 10 * MiB,
    responseBodyBytes: host.responseBodyBytes ?? 64 * MiB,
    outboundRequests: host.outboundRequests ?? 16,
    logLinesPerSecond: host.logLinesPerSecond ?? 500,
  };
}

/**
 * Request headers by which a proxy tells its backend where a request came from: only a trusted
 * proxy's reach a capsule (`Runtime.forwarding`). Besides the standard and the X-Forwarded
 * family, the client-address headers that nginx setups (X-Real-IP) and CDNs (Cloudflare, Akamai,
 * Fastly) set, which capsule code ported from behind them reads as the client's address.
 */
const FORWARDING_HEADERS = new Set([
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-scheme',
  'x-real-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
]);

/** A peer's address as a client's: an IPv4 peer of a dual-stack listener (`::ffff:10.8.0.1`) as its IPv4 address. */
function clientAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  return address.length > 7 && address.slice(0, 7).toLowerCase() === '::ffff:' && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/**
 * A capsule's state as its clients are told it. The answers of the ingress name no installation:
 * the name is its registrar's choice and business, which anyone sending a Host header read.
 */
const PUBLIC_STATE: Record<CapsuleState, string> = {
  installed: 'not started',
  running: 'running',
  draining: 'out of service',
  stopped: 'out of service',
  failed: 'not running',
};

/** Answers a request the capsule never saw (or could not finish) with a short text. */
function answer(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  // Begun already: it can only be cut off, after what was written (a body at its size limit).
  if (res.headersSent) {
    cutShort(res);
    return;
  }
  const body = `${message}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/**
 * Ends a response without its clean end: what was written reaches the client (ending the socket
 * flushes it, where destroying it would drop it), then the connection closes, with no last chunk.
 * A response that has no socket yet (queued behind another on its connection) is dropped.
 */
function cutShort(res: ServerResponse): void {
  const socket = res.socket;
  if (socket && !socket.destroyed) socket.end();
  else res.destroy();
}

const EMPTY_BODY = new Uint8Array(0);

/** Whether a response to `method` with `status` carries a body (RFC 9110 section 6.4.1). */
function hasBody(method: string, status: number): boolean {
  return method !== 'HEAD' && status >= 200 && status !== 204 && status !== 304;
}

/** Response headers by which a backend directs the proxy in front of it (nginx, Apache, lighttpd). */
/** The response header naming a request's id (`Capsule.accept`), which a capsule cannot set. */
const REQUEST_ID_HEADER = 'stratum-request-id';

const PROXY_DIRECTIVES = new Set(['x-accel-redirect', 'x-sendfile', 'x-sendfile2', 'x-lighttpd-send-file']);

/** A capsule's response head as checked (`#checkedHead`). */
interface CheckedHead {
  status: number;
  headers: string[];
  /** The content-length it gave, when the response has a body. */
  declared: number | undefined;
  /** Whether it gave a content-length. */
  hasLength: boolean;
  /** Whether the response carries a body (not to HEAD; not 204 or 304). */
  withBody: boolean;
}

function withoutContentLength(headers: string[]): string[] {
  const kept: string[] = [];
  for (let index = 0; index < headers.length; index += 2) {
    if ((headers[index] as string).toLowerCase() !== 'content-length') kept.push(headers[index] as string, headers[index + 1] as string);
  }
  return kept;
}

interface ActiveRequest {
  id: number;
  requestId: string;
  domain: string;
  method: string;
  path: string;
  res: ServerResponse;
  started: number;
  bytesIn: number;
  bytesOut: number;
  ended: boolean;
  cutOff: boolean;
  /** The content-length the capsule gave a response it streams: the host holds it to it. */
  declaredLength?: number;
  /** The client closed the connection before the response ended. */
  clientGone?: boolean;
  /** Bytes of its body that have left for the client's socket (the worker's window, `Capsule.accepted`). */
  accepted: number;
  /** Stops streaming the request body into the instance. */
  stopBody?: () => void;
  /** The CPU time (ms) at which the request was first seen over its limit. */
  cpuOverAt?: number;
  /** The CPU time (ms) it had used when last looked at: what it is metered for if it is ended before it reports its own. */
  cpuUsedMs?: number;
  limit?: string;
  quotaHits?: Record<string, number>;
  /** When (Date.now()) the worker's CPU time for this request is next to be looked at. */
  cpuCheckAt: number;
  /** The CPU time this request may use (more while the instance warms up). */
  cpuLimit: number;
  /** One of a fresh instance's first requests, denied the warm-up budget after a CPU kill (`warmupWithheldMs`). */
  warmupWithheld?: boolean;
  /** What it was admitted as: a request that never started goes back to the queue with it. */
  pending: PendingRequest;
}

interface PendingRequest {
  message: Omit<RequestMessage, 'id' | 'body'>;
  res: ServerResponse;
  /** The request, when it has a body still to read. */
  req?: IncomingMessage;
  bytesIn: number;
  queuedAt: number;
  /**
   * Where it runs now. A request that goes back to the queue (its instance was ended, or it was
   * reclaimed) is dispatched again: the client's close is watched once, for wherever it runs.
   */
  dispatched?: { active: ActiveRequest; handle: CapsuleWorker };
}

/**
 * Requests one instance may hold at once: the one it runs and those posted behind it. The
 * instance serves them in order, so the next request is already on the worker's side when the
 * previous one ends; with one request per instance, every request waited for a post to the
 * worker, its wake-up and a post back (on a shared core, a context switch each way), and both
 * threads sat mostly idle under load (bench/README.md). Only requests without a body are posted
 * behind another: a body streams through the instance's one ring. 32: with the http and io
 * imports lowered, tiny on one core served 8% more at 32 than at 16 and no more at 64 (wrk -c32,
 * same run); a request is not posted behind one that has run 10 ms whatever the depth.
 */
const PIPELINE_DEPTH = 32;
/** Nothing is posted behind a request that has run longer than this (see `leastBusy`). */
const PIPELINE_HEAD_AGE_MS = 10;

export interface PipelineOptions {
  /** Requests one instance may hold: the one it runs and those waiting behind it. Default 16; 1 turns pipelining off. */
  depth?: number;
  /** Nothing is posted behind a request that has run longer than this. Default 10 ms. */
  headAgeMs?: number;
}

class CapsuleWorker {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  /** Set once the instance has answered `ready`: only then may requests be posted behind others. */
  started = false;
  /** Requests posted to the instance, oldest first: the first runs (or is about to), the rest wait their turn. */
  readonly inFlight: ActiveRequest[] = [];
  /** Requests to post at the end of this turn (see `Capsule.post`). */
  readonly outgoing: RequestMessage[] = [];
  /** See `WorkerInit.cpuStart`. */
  readonly cpuStart: BigInt64Array;
  /** See `WorkerInit.sleepCell`. */
  readonly sleepCell: Int32Array;
  /** See `WorkerInit.responseSignals`. */
  readonly responseSignals: Int32Array;
  served = 0;
  retired = false;
  /** Set once its memory has grown near the capsule's limit: it takes nothing new, and retires when empty. */
  recycling = false;
  /** Its linear memory after its first request, the base its growth is measured from. */
  firstMemoryBytes: number | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  /** When it last went idle: at the host's instance limit, the one idle longest makes room (`HostRuntime.takeInstance`). */
  idleSince = 0;
  /** The one timer that looks at the current request's limits (see `Capsule.watch`), and when it fires. */
  watchTimer: NodeJS.Timeout | undefined;
  watchDue = 0;
  /** Set while a `reclaim` is on its way (see `Capsule.reclaim`). */
  reclaiming = false;
  /** No reclaim before this (Date.now()): the last was refused. */
  reclaimAfter = 0;

  readonly body: BodyWriter;
  /** Set while a request body waits for room in the ring. */
  onConsumed: (() => void) | undefined;
  /** Called after a message that ended a request, until it unsets itself. */
  onDone: (() => void) | undefined;

  constructor(
    worker: Worker,
    ready: Promise<void>,
    channels: {
      cpuStart: SharedArrayBuffer;
      bodyChannel: SharedArrayBuffer;
      sleepCell: SharedArrayBuffer;
      responseSignals: SharedArrayBuffer;
    },
  ) {
    this.worker = worker;
    this.ready = ready;
    this.cpuStart = new BigInt64Array(channels.cpuStart);
    this.sleepCell = new Int32Array(channels.sleepCell);
    this.responseSignals = new Int32Array(channels.responseSignals);
    this.body = new BodyWriter(channels.bodyChannel);
  }

  /** Its guest sleeps (synchronously: the thread is blocked) and has handed back what was behind it. */
  get asleep(): boolean {
    return Atomics.load(this.sleepCell, SLEEP_ASLEEP) === 1;
  }

  /** The request the instance runs now, or will run next. */
  get head(): ActiveRequest | undefined {
    return this.inFlight[0];
  }
}

let nextRequestNumber = 1;

const workerEntry = new URL('./capsule-worker-entry.js', import.meta.url);

function newCapsuleWorker(boot: WorkerBoot, name: string): Worker {
  return new Worker(workerEntry, {
    workerData: boot,
    // The JS heap of the glue only: linear memory is capped in the modules themselves.
    resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 32 },
    env: {},
    stdout: true,
    stderr: true,
    name: `capsule:${name}`,
  });
}

/** What a spare loads and makes ahead for the component it expects: its glue, and the memories its modules import. */
type SpareGuess = Pick<WorkerInit, 'glueUrl' | 'hostedMemories'>;

/** One `subscribeLogs` subscription. */
interface LogFollower {
  listener: (entry: CapsuleLogEntry, id: string) => void;
  onEnd?: () => void;
}

/** A line of a capsule's log as its Capsule keeps it: with the `n` of its id, `<epoch>-<n>` (`Runtime.logId`). */
interface KeptLogLine {
  entry: CapsuleLogEntry;
  n: number;
}

/** The last log epoch a runtime of this process took (see `takeLogEpoch`). */
let lastLogEpoch = 0;

/**
 * The first part of a runtime's log ids: when it started, in ms since 1970, and later than any
 * other runtime's of this process, so that no two runtimes give the same id.
 */
function takeLogEpoch(): number {
  lastLogEpoch = Math.max(Date.now(), lastLogEpoch + 1);
  return lastLogEpoch;
}

/** A worker started before any capsule needs it (see `Runtime.takeSpare`). */
interface SpareWorker {
  worker: Worker;
  /** The modules it loads while it waits. */
  preload: string[];
  /** And the component the runtime guessed, if any: its glue loaded after them, its memories made. */
  guess: SpareGuess | undefined;
  /** It has loaded them. */
  preloaded: boolean;
  /** The last `preload` message sent to it (0: none, its boot lists): an answer to an earlier one does not count. */
  round: number;
  onMessage: (message: FromWorker) => void;
  /** Forgets the spare if it dies while it waits. */
  onExit: () => void;
}

class Capsule {
  readonly name: string;
  readonly domains: string[];
  readonly manifest: Manifest;
  readonly digest: string;
  readonly limits: EffectiveLimits;
  readonly transpiled: TranspiledComponent;
  /** What every instance's worker gets, but the compiled modules (see `modules`). */
  readonly init: Omit<WorkerInit, 'modules'>;
  state: CapsuleState = 'installed';
  readonly workers = new Set<CapsuleWorker>();
  readonly idle: CapsuleWorker[] = [];
  readonly queue: PendingRequest[] = [];
  /** Requests running in an instance now. */
  running = 0;
  /** Instances starting now (at most one, see `admit`). */
  spawning = 0;
  readonly limitHits: Record<string, number> = {};
  failures = 0;
  backedOffUntil = 0;
  /** Its ended instances' threads still in native code (`threadStuck`). */
  stuckThreads = 0;
  #lastError: string | undefined;
  /**
   * Domains answered 421 because their link no longer names this host, with why
   * (`HostRuntime.domainLink`), and the failure that said so last, cleared once all are linked.
   */
  readonly unlinked = new Map<string, string>();
  #linkError: string | undefined;
  /**
   * Its installation's secret config values: masked in every line of its log and in its last
   * error, whatever wrote them (stdout, stderr, a trap's message, wasi:logging).
   */
  readonly secrets: readonly string[];
  /** Whether an instance's memory is within a sixteenth (1 MiB at least) of its limit: grown as far as it could. */
  #nearMemoryCap(memoryBytes: number): boolean {
    return this.limits.memoryBytes - memoryBytes < Math.max(MiB, this.limits.memoryBytes / 16);
  }

  /** When a limit hit of each kind was last written to the logs, and how many since were not. */
  readonly #limitLogged = new Map<string, { at: number; unwritten: number }>();
  /** A dropped proxy directive is logged once per capsule, not on every response. */
  #proxyDirectiveLogged = false;
  readonly logs: KeptLogLine[] = [];
  /** Set once uninstalled: a line it writes after that (a worker's late output) reaches no one. */
  uninstalled = false;
  /** Who waits for its requests to be done (`whenIdle`): a drain, a replacement, a second drain. */
  readonly #idleWaiters: (() => void)[] = [];
  /**
   * Set once one of its instances said its guest sleeps (a synchronous capsule's `setTimeout`):
   * like a JSPI capsule, it may then have more instances than cores while requests wait.
   */
  sleeps = false;
  /** When (Date.now()) an instance last handed back requests from behind one waiting on a backend. */
  waitedAt = 0;
  /** When (Date.now()) an instance was last ended for going over its CPU limit. */
  cpuKilledAt = Number.NEGATIVE_INFINITY;
  readonly #runtime: Runtime;
  readonly #loader: Loader;
  /** Held while the capsule has or starts instances (see `modules`). */
  #lease: ModuleLease | undefined;
  /** The JavaScript source map its stack frames are mapped with: the script they name, and the map. */
  readonly #sourceMap: { script: string; read(): string | undefined } | undefined;
  /** Made from `#sourceMap` at the first line that names its script; null once that failed. */
  #frames: FrameMapper | null | undefined;

  constructor(
    runtime: Runtime,
    fields: {
      name: string;
      domains: string[];
      manifest: Manifest;
      digest: string;
      limits: EffectiveLimits;
      transpiled: TranspiledComponent;
      init: Omit<WorkerInit, 'modules'>;
      loader: Loader;
      /** A source map given with the install (`stratum dev`'s bundle), instead of the component's. */
      sourceMap?: string;
      secrets: readonly string[];
    },
  ) {
    this.#runtime = runtime;
    this.#loader = fields.loader;
    const given = fields.sourceMap;
    const givenScript = given === undefined ? undefined : sourceMapScript(given);
    const shipped = fields.transpiled.sourceMap;
    this.#sourceMap =
      given !== undefined && givenScript !== undefined
        ? { script: givenScript, read: () => given }
        : shipped
          ? // Read at the first stack trace, not at install: a host holds a thousand idle capsules.
            { script: shipped.file, read: () => readFileSync(shipped.path, 'utf8') }
          : undefined;
    this.name = fields.name;
    this.domains = fields.domains;
    this.manifest = fields.manifest;
    this.digest = fields.digest;
    this.limits = fields.limits;
    this.transpiled = fields.transpiled;
    this.init = fields.init;
    this.secrets = fields.secrets;
  }

  /** The last failure, as status shows it and the host logs it. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  set lastError(text: string | undefined) {
    this.#lastError = text === undefined ? undefined : redact(text, this.secrets);
  }

  status(): CapsuleStatus {
    const status: CapsuleStatus = {
      name: this.name,
      domains: [...this.domains],
      state: this.state,
      version: this.manifest.capsule.version,
      digest: this.digest,
      instances: this.workers.size,
      inFlight: this.active,
      limitHits: { ...this.limitHits },
    };
    if (this.backedOffUntil > Date.now()) status.backedOffUntil = new Date(this.backedOffUntil).toISOString();
    if (this.lastError !== undefined) status.lastError = this.lastError;
    if (this.unlinked.size > 0) status.unlinkedDomains = [...this.unlinked].map(([domain, problem]) => ({ domain, problem }));
    return status;
  }

  /** See `HostRuntime.domainLink`. */
  domainLink(domain: string, problem: string | undefined): void {
    if (problem === undefined) {
      if (!this.unlinked.delete(domain)) return;
      this.log('info', `${domain} is served again: its link names this host`);
      if (this.unlinked.size === 0 && this.lastError === this.#linkError) this.lastError = undefined;
      return;
    }
    this.unlinked.set(domain, problem);
    const message = `${domain} is answered 421 until its link names this host again: ${problem}`;
    this.log('error', message);
    this.lastError = message;
    this.#linkError = this.lastError;
  }

  log(level: LogLevel, message: string, source = 'host', requestId?: string): void {
    const entry: CapsuleLogEntry = {
      time: new Date().toISOString(),
      capsule: this.name,
      level,
      source,
      message: this.#mapped(redact(message, this.secrets), source),
    };
    if (requestId !== undefined) entry.requestId = requestId;
    const line = this.#runtime.nextLogLine(entry);
    this.logs.push(line);
    if (this.logs.length > this.#runtime.logBacklog) this.logs.splice(0, this.logs.length - this.#runtime.logBacklog);
    if (!this.uninstalled) this.#runtime.emitLog(entry, this.#runtime.logId(line.n));
  }

  /** The capsule's own output with its stack frames at its sources' lines (@stratum/core source-map.ts). */
  #mapped(message: string, source: string): string {
    const sourceMap = this.#sourceMap;
    if (source === 'host' || !sourceMap || !message.includes(sourceMap.script)) return message;
    if (this.#frames === undefined) {
      let text: string | undefined;
      try {
        text = sourceMap.read();
      } catch {
        // A transpile cache entry pruned under a running capsule: its frames stay as they are.
      }
      this.#frames = (text === undefined ? undefined : frameMapper(text)) ?? null;
    }
    return this.#frames ? this.#frames(message) : message;
  }

  limitHit(limit: string, request: { requestId: string; domain: string }, detail: string, refusal = false): void {
    this.limitHits[limit] = (this.limitHits[limit] ?? 0) + 1;
    // Every hit is counted. A refusal (answered without running the capsule: backed off, queue
    // full, body too large) is written for the first of a kind, then at most once a
    // LIMIT_LOG_INTERVAL_MS saying how many went unwritten: any client could otherwise write
    // the operator's log at the ingress's rate (a flood of a backed-off capsule wrote 115,793
    // lines, 25 MB, in 15 s). A request the capsule ran is written each time: it cost the
    // capsule's own limits to get there.
    const now = Date.now();
    const logged = this.#limitLogged.get(limit);
    if (refusal && logged && now - logged.at < LIMIT_LOG_INTERVAL_MS) {
      logged.unwritten++;
      return;
    }
    const unwritten = logged?.unwritten ?? 0;
    if (refusal) this.#limitLogged.set(limit, { at: now, unwritten: 0 });
    const more = unwritten > 0 ? ` (and ${unwritten} more ${limit} hits before it, not written one by one)` : '';
    this.#runtime.logger.warn(
      { capsule: this.name, domain: request.domain, requestId: request.requestId, limit, ...(unwritten > 0 ? { unwritten } : {}) },
      `limit hit: ${detail}${more}`,
    );
    this.log('warn', `limit hit (${limit}): ${detail}${more}`, 'host', request.requestId);
  }

  // ----- the pool -----

  /**
   * The compiled core modules, compiled (or shared with capsules of the same component) when an
   * instance is to start, not at install: a host restoring a thousand installed capsules then
   * compiles none, and an idle capsule, whose last instance has retired, holds no compiled code.
   */
  modules(): Promise<Record<string, WebAssembly.Module>> {
    if (!this.#lease) {
      const lease = this.#loader.acquire(this.transpiled, this.limits.memoryBytes);
      this.#lease = lease;
      lease.modules.catch(() => {
        if (this.#lease !== lease) return;
        lease.release();
        this.#lease = undefined;
      });
    }
    return this.#lease.modules;
  }

  /**
   * Compiles the core modules without holding them: they wait among the loader's kept sets for
   * this capsule's first instance, which takes them from there.
   */
  async precompile(): Promise<void> {
    if (this.#lease) return;
    const lease = this.#loader.acquire(this.transpiled, this.limits.memoryBytes);
    lease.release();
    await lease.modules;
  }

  /** Lets go of the compiled modules once no instance runs or starts. */
  releaseModules(): void {
    if (this.workers.size > 0 || this.spawning > 0) return;
    this.#lease?.release();
    this.#lease = undefined;
  }

  spawn(modules: Record<string, WebAssembly.Module>): CapsuleWorker {
    const channels = {
      cpuStart: new SharedArrayBuffer(16),
      bodyChannel: createBodyChannel(),
      sleepCell: new SharedArrayBuffer(8),
      responseSignals: new SharedArrayBuffer(RESPONSE_SIGNALS_BYTES),
    };
    const init: WorkerInit = { ...this.init, modules, ...channels };
    const worker = this.#runtime.takeSpare(init) ?? newCapsuleWorker({ init }, this.name);
    this.#runtime.instanceStarting(init);
    let markReady: () => void = () => {};
    let markFailed: (error: Error) => void = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      markFailed = reject;
    });
    ready.catch(() => {});
    const handle = new CapsuleWorker(worker, ready, channels);
    this.workers.add(handle);
    this.#runtime.workersStarted++;
    // An instance that never says ready (a guest whose initialisation never returns, a thread
    // that hangs) would hold `start` and every waiting request for ever.
    const startLimitMs = this.limits.timeoutMs + INSTANCE_START_ALLOWANCE_MS;
    const startTimer = setTimeout(() => {
      if (handle.started || handle.retired) return;
      this.lastError = `the instance did not start within ${startLimitMs} ms`;
      markFailed(new StratumError('INSTANCE_FAILED', `${this.name} could not be instantiated: ${this.lastError}`, { user: false }));
      this.retire(handle);
    }, startLimitMs);
    // The next spare starts once this instance no longer needs the CPU (SPARE_AFTER_START_MS,
    // SPARE_AFTER_BUSY_START_MS).
    let spareTimer: NodeJS.Timeout | undefined;
    const replenish = () => {
      handle.onDone = undefined;
      clearTimeout(spareTimer);
      this.#runtime.replenishSpare();
    };
    handle.onDone = replenish;
    ready.then(
      () => {
        clearTimeout(startTimer);
        if (!handle.onDone) return;
        spareTimer = setTimeout(() => {
          const answering = handle.inFlight.length > 0 && !handle.retired;
          if (answering) spareTimer = setTimeout(replenish, SPARE_AFTER_BUSY_START_MS - SPARE_AFTER_START_MS).unref();
          else replenish();
        }, SPARE_AFTER_START_MS).unref();
      },
      () => {
        clearTimeout(startTimer);
        replenish();
      },
    );
    const forward = (level: LogLevel) => (data: Buffer) => {
      for (const line of data.toString('utf8').split('\n')) if (line.trim()) this.log(level, line, 'host');
    };
    worker.stdout.on('data', forward('info'));
    worker.stderr.on('data', forward('error'));
    worker.on('message', (message: FromWorker) => {
      switch (message.type) {
        case 'packed': {
          let ended = false;
          for (const batch of unpackBatches(message)) {
            this.onBatch(handle, batch);
            if (batch.done) ended = true;
          }
          if (ended) handle.onDone?.();
          break;
        }
        case 'ready':
          if (message.gluePreloaded) this.#runtime.spareGlueHits++;
          if (message.glueRehearsed) this.#runtime.spareGlueRehearsals++;
          if (message.memoryPretouched) this.#runtime.spareMemoryHits++;
          // The base growth is measured from: its memory before any request, so that a first
          // request that fills it counts as growth (measured after it, growth read 0 for ever).
          handle.firstMemoryBytes = message.memoryBytes;
          handle.started = true;
          markReady();
          break;
        case 'failed':
          if (message.detail !== undefined)
            this.#runtime.logger.error({ capsule: this.name, err: message.detail }, 'an instance could not open a store');
          this.lastError = message.message;
          markFailed(new StratumError('INSTANCE_FAILED', `${this.name} could not be instantiated: ${message.message}`, { user: false }));
          this.retire(handle);
          break;
        case 'consumed':
          handle.onConsumed?.();
          break;
        case 'reclaimed':
          this.onReclaimed(handle, message.ids, message.waits);
          break;
        case 'closed':
          this.#runtime.ending(worker.terminate());
          break;
      }
    });
    worker.on('error', (error: Error & { code?: string }) => {
      const limit = error.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'memory' : 'crash';
      markFailed(error);
      this.onWorkerLost(handle, limit, error.message);
    });
    worker.on('exit', () => {
      markFailed(new Error('the instance exited before it was ready'));
      this.onWorkerLost(handle, 'crash', 'the instance exited');
    });
    return handle;
  }

  /**
   * Ends the instance. Requests posted behind the one it runs never started there: they go back
   * to the front of the queue, in order, for another instance. The one it runs is the caller's
   * to answer.
   */
  retire(handle: CapsuleWorker): void {
    if (handle.retired) return;
    handle.retired = true;
    clearTimeout(handle.idleTimer);
    clearTimeout(handle.watchTimer);
    this.workers.delete(handle);
    const index = this.idle.indexOf(handle);
    if (index !== -1) this.idle.splice(index, 1);
    this.#runtime.ending(
      handle.worker.terminate(),
      () => this.threadStuck(),
      () => {
        this.stuckThreads--;
      },
    );
    this.#runtime.instanceEnded();
    const waiting = handle.inFlight.splice(1);
    this.running -= waiting.length;
    this.queue.unshift(...waiting.map((active) => active.pending));
  }

  /** Answers the queued requests that have waited past their timeout: nothing will take them in time. */
  expireQueued(now: number): void {
    const expired: PendingRequest[] = [];
    const kept: PendingRequest[] = [];
    for (const pending of this.queue) (now - pending.queuedAt > this.limits.timeoutMs ? expired : kept).push(pending);
    if (expired.length === 0) return;
    this.queue.splice(0, this.queue.length, ...kept);
    for (const pending of expired) {
      this.limitHit('timeout', pending.message, `waited ${now - pending.queuedAt} ms for an instance at the host's instance limit`, true);
      answer(pending.res, 503, 'the app is busy', { 'retry-after': '1' });
    }
    if (this.active === 0) this.#wakeIdle();
  }

  /** Resolves once no request is in flight or queued. Each caller is told: a second drain while one waits must not take the first one's place. */
  whenIdle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #wakeIdle(): void {
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** Ends an idle instance to make room for another capsule's (`HostRuntime.takeInstance`). */
  evict(handle: CapsuleWorker): void {
    this.retire(handle);
    this.releaseModules();
    // Not which capsule took it: this log is its registrar's, and that one may be another's.
    this.log('debug', "an idle instance was ended to make room for another capsule's at the host's instance limit");
  }

  /**
   * One of its instances, ended, did not stop: its thread runs native code that does not return,
   * a capability's call into a library. The one such call a capsule controls is an SQL statement
   * on SQLite (a recursive query without an end, a join of joins), and node:sqlite can neither
   * interrupt one nor check its progress. The thread keeps a core until the host's process
   * ends, so the capsule is stopped rather than let it hold another: an operator serves it again.
   */
  threadStuck(): void {
    this.stuckThreads++;
    const message =
      'an instance ended for a limit did not stop: its thread is in native code that does not return (most likely an SQL statement that does not end, such as a recursive query without a stop) and keeps a core busy until the process ends (the host or stratum dev is restarted); the capsule was stopped so that it holds no more, and is served again when asked';
    this.lastError = message;
    this.#runtime.logger.error({ capsule: this.name }, message);
    this.log('error', message);
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    void this.stopWorkers();
  }

  /** The worker died under a request (crash, out of memory) or on its own. */
  onWorkerLost(handle: CapsuleWorker, limit: string, detail: string): void {
    if (handle.retired) return;
    const active = handle.head;
    this.retire(handle);
    if (active) {
      this.limitHit(limit, active, detail);
      active.limit = limit;
      this.finish(handle, active, { status: 500, message: 'the capsule failed' }, true);
    }
  }

  /** Ends the worker running `active` because it went over a limit. */
  kill(handle: CapsuleWorker, active: ActiveRequest, limit: 'cpu' | 'timeout', detail: string): void {
    if (handle.head !== active) return;
    if (limit === 'cpu') this.cpuKilledAt = Date.now();
    this.retire(handle);
    // The client's doing, not the capsule's: it left, or its request body was still coming in
    // when the time was up (not held back by the capsule: the upload is not paused for a full
    // ring). Counted as the capsule failing, a few closed tabs or slow uploads backed it off for
    // everyone.
    const upload = active.pending.req;
    const slowUpload = limit === 'timeout' && upload !== undefined && !upload.complete && !upload.isPaused();
    const clients = limit === 'timeout' && (active.clientGone === true || slowUpload);
    const why = active.clientGone
      ? ' (its client had left)'
      : slowUpload
        ? ` (its request body was still arriving: ${active.bytesIn} bytes so far)`
        : '';
    this.limitHit(limit, active, `${detail}${why}`);
    // The last failure, as status promises (spec/host-api.md section 4): an operator asking why
    // a capsule is backed off finds it here, not only in the log.
    if (!clients) this.lastError = `${active.method} ${active.path} was ended: ${detail}`;
    active.limit = limit;
    this.finish(
      handle,
      active,
      { status: 504, message: limit === 'cpu' ? 'the capsule used more CPU time than allowed' : 'the capsule took too long' },
      !clients,
    );
  }

  accept(req: IncomingMessage, res: ServerResponse, domain: string): void {
    const requestId = newRequestId();
    // Every answer names the id its log lines and request record carry (as cf-ray and fly-request-id do):
    // a client's 504 is otherwise not to be found in a busy log. Merged into whatever head goes out.
    res.setHeader(REQUEST_ID_HEADER, requestId);
    const path = req.url ?? '/';
    if (this.state !== 'running') {
      answer(res, 503, `the app is ${PUBLIC_STATE[this.state]}`, { 'retry-after': '5' });
      return;
    }
    const now = Date.now();
    if (this.backedOffUntil > now) {
      this.limitHit('backoff', { requestId, domain }, 'backed off after repeated failures', true);
      answer(res, 503, 'the app is backed off after repeated failures', {
        'retry-after': String(Math.ceil((this.backedOffUntil - now) / 1000)),
      });
      return;
    }
    const queryAt = path.indexOf('?');
    if (!routeMatches(this.manifest.http.routes, queryAt === -1 ? path : path.slice(0, queryAt))) {
      answer(res, 404, 'not found');
      return;
    }
    const limit = this.limits.requestBodyBytes;
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
      this.refuseBody(res, { requestId, domain }, limit, Number(declared));
      req.resume();
      return;
    }
    const forwarding = this.#runtime.forwarding(req);
    const message: Omit<RequestMessage, 'id' | 'body'> = {
      type: 'request',
      requestId,
      domain,
      method: req.method ?? 'GET',
      path,
      scheme: forwarding.scheme,
      authority: req.headers.host ?? domain,
      headers: forwarding.headers,
      outboundRequests: this.limits.outboundRequests,
    };
    const hasBody = declared !== undefined ? declared !== '0' : req.headers['transfer-encoding'] !== undefined;
    // The body is not read until an instance takes the request: it streams straight into the
    // instance (body-channel.ts), and a waiting upload holds no memory of the host's.
    this.admit({ message, res, bytesIn: 0, queuedAt: now, ...(hasBody ? { req } : {}) });
  }

  /**
   * Requests wait in one queue; idle instances take them in order. An instance is started only
   * while requests wait, one at a time, up to the capsule's instance limit: starting one costs
   * far more CPU than a request (hundreds of ms against about 1 ms), so a burst must not start
   * an instance per request on a machine with few cores.
   */
  admit(pending: PendingRequest): void {
    // Requests an idle or startable instance will take do not count against the queue.
    const startable = Math.max(0, this.maxInstances - this.running - this.idle.length);
    if (this.queue.length >= this.limits.queue + this.idle.length + startable) {
      this.limitHit('concurrency', pending.message, `${this.running} requests in flight and ${this.queue.length} waiting`, true);
      answer(pending.res, 503, 'the app is busy', { 'retry-after': '1' });
      return;
    }
    this.queue.push(pending);
    this.pump();
  }

  get maxInstances(): number {
    return this.transpiled.jspi || this.sleeps
      ? Math.max(1, Math.min(this.limits.concurrency, this.#runtime.asyncInstancesPerCapsule))
      : this.computeInstances;
  }

  /** Instances for a capsule that computes: more than one per core add nothing. */
  get computeInstances(): number {
    return Math.max(1, Math.min(this.limits.concurrency, this.#runtime.instancesPerCapsule));
  }

  /**
   * Asks a JSPI instance whose request has run longer than `headAgeMs` whether that request waits
   * on a backend, when requests wait behind it or in the queue: if it does, they would wait as
   * long, and the capsule may have more instances than cores (`maxInstances`). The worker decides
   * (it watches the request's thread for a moment, see RECLAIM_WATCH_MS in capsule-worker.ts) and
   * hands back those behind it it has not started (`onReclaimed`); they go to the front of the
   * queue, where an idle instance, or a new one, takes them.
   */
  reclaim(handle: CapsuleWorker): void {
    handle.reclaiming = true;
    // Requests still on their way go first, so that the answer covers them too.
    this.sendOutgoing(handle);
    handle.worker.postMessage({ type: 'reclaim' } satisfies ToWorker);
  }

  onReclaimed(handle: CapsuleWorker, ids: number[], waits: boolean): void {
    handle.reclaiming = false;
    // A retired instance's waiting requests went back to the queue already.
    if (handle.retired) return;
    const now = Date.now();
    // Asked again only after a while, if requests still wait then (see `pump`).
    handle.reclaimAfter = now + this.#runtime.pipeline.headAgeMs;
    if (!waits) {
      // The request it runs is computing, or its backend answers fast.
      this.armWatch(handle, this.reclaimDue(handle));
      return;
    }
    this.waitedAt = now;
    // Not asked: a synchronous guest that sleeps said so itself (`SleepWatch`).
    if (!this.transpiled.jspi) this.sleeps = true;
    const back: PendingRequest[] = [];
    for (const id of ids) {
      const index = handle.inFlight.findIndex((active, position) => position > 0 && active.id === id);
      if (index === -1) continue;
      const [active] = handle.inFlight.splice(index, 1);
      if (active) back.push(active.pending);
    }
    this.running -= back.length;
    this.queue.unshift(...back);
    this.pump();
  }

  /** In flight: running in an instance or waiting for one. */
  get active(): number {
    return this.running + this.queue.length;
  }

  pump(): void {
    // Set when a request went behind another: every instance is busy, so one more may start.
    let queuedBehind = false;
    while (this.queue.length > 0) {
      const pending = this.queue[0] as PendingRequest;
      let handle = this.idle.pop();
      if (!handle && !pending.req) {
        handle = this.leastBusy();
        queuedBehind ||= handle !== undefined;
      }
      if (!handle) break;
      this.queue.shift();
      // Its client left while it waited: nobody would read the answer.
      if (pending.res.destroyed) {
        if (handle.inFlight.length === 0) this.idle.push(handle);
        continue;
      }
      clearTimeout(handle.idleTimer);
      const waited = Date.now() - pending.queuedAt;
      if (waited > this.limits.timeoutMs) {
        this.limitHit('timeout', pending.message, `waited ${waited} ms for an instance`);
        answer(pending.res, 503, 'the app is busy');
        if (handle.inFlight.length === 0) this.idle.push(handle);
        continue;
      }
      this.dispatch(handle, pending);
    }
    // Requests posted behind young ones ask for instances up to one per core; beyond that (a JSPI
    // capsule), only requests nothing can take do: every instance runs one that is waiting on a
    // backend (see `reclaim`), or is full.
    const waiting = this.queue.length > 0 && (Date.now() - this.waitedAt < WAITED_RECENTLY_MS || this.anyAsleep());
    const wanted = waiting ? this.maxInstances : this.queue.length > 0 || queuedBehind ? this.computeInstances : 0;
    if (this.workers.size < wanted && this.spawning === 0 && this.state !== 'stopped') this.startWorker();
    // Requests left waiting: a JSPI instance's request may wait on a backend, which only asking
    // tells (`reclaimDue`); nothing else would look before that request ends.
    if (this.queue.length > 0 && this.transpiled.jspi) {
      for (const handle of this.workers) if (handle.started && !handle.retired) this.armWatch(handle, this.reclaimDue(handle));
    }
    if (this.active === 0) this.#wakeIdle();
  }

  anyAsleep(): boolean {
    for (const handle of this.workers) if (handle.asleep) return true;
    return false;
  }

  /**
   * A started instance with room behind its current request, the least loaded first. Not one
   * whose current request has run for a while: a request posted there waits for it whatever
   * happens elsewhere, while one left in the queue goes to the first instance free.
   */
  leastBusy(): CapsuleWorker | undefined {
    let best: CapsuleWorker | undefined;
    const now = Date.now();
    const { depth, headAgeMs } = this.#runtime.pipeline;
    for (const handle of this.workers) {
      if (!handle.started || handle.retired || handle.recycling || handle.inFlight.length >= depth || handle.asleep) continue;
      if (now - (handle.head?.started ?? now) > headAgeMs) continue;
      if (!best || handle.inFlight.length < best.inFlight.length) best = handle;
    }
    return best;
  }

  /** Starts an instance, if the host has room for it; once ready it serves the queue (or waits idle). */
  startWorker(): void {
    if (!this.#runtime.takeInstance(this, true)) return;
    this.spawning++;
    // Before the instance exists its room is given back here; after, `retire` does.
    let spawned = false;
    const failed = (error: unknown) => {
      this.spawning--;
      if (!spawned) this.#runtime.instanceEnded();
      this.lastError = errorMessage(error);
      this.#runtime.logger.error({ capsule: this.name, err: this.lastError }, 'instance failed to start');
      // Its registrar reads the capsule's log, not the host's: a request answered 503 for it
      // showed nowhere there why (status alone had it). Not an instance its stop ended as it started.
      if (this.state === 'running') this.log('error', this.lastError);
      // Counted with traps: a capsule whose instances never start would otherwise start (and
      // pay for) another on every request.
      this.failed();
      // Nothing else will start an instance for them: the waiting requests get their answer now.
      if (this.workers.size === 0) {
        for (const pending of this.queue.splice(0)) answer(pending.res, 503, 'the app could not start an instance');
      }
      this.pump();
    };
    this.modules().then((modules) => {
      if (this.state === 'stopped') {
        this.spawning--;
        this.#runtime.instanceEnded();
        this.releaseModules();
        return;
      }
      spawned = true;
      const handle = this.spawn(modules);
      handle.ready.then(() => {
        this.spawning--;
        if (handle.retired) return;
        if (this.state === 'stopped') {
          this.retire(handle);
          return;
        }
        this.park(handle);
        this.pump();
      }, failed);
    }, failed);
  }

  /** An idle instance waits for work; instances beyond the first retire after a while idle. */
  park(handle: CapsuleWorker): void {
    this.idle.push(handle);
    handle.idleSince = performance.now();
    this.#runtime.instanceParked();
    if (this.workers.size === 1 && this.#runtime.idleCapsuleMs > 0) {
      handle.idleTimer = setTimeout(() => {
        if (handle.inFlight.length === 0 && this.queue.length === 0) {
          this.retire(handle);
          this.releaseModules();
          this.log('debug', 'idle: its last instance was retired; the next request starts one');
        }
      }, this.#runtime.idleCapsuleMs);
      handle.idleTimer.unref();
    } else if (this.workers.size > 1) {
      handle.idleTimer = setTimeout(() => {
        if (this.workers.size > 1 && handle.inFlight.length === 0) this.retire(handle);
      }, this.#runtime.idleInstanceMs);
      handle.idleTimer.unref();
    }
  }

  dispatch(handle: CapsuleWorker, pending: PendingRequest): void {
    this.running++;
    const id = nextRequestNumber++;
    // A fresh instance's first requests also pay for compiling the glue's and the guest's hot
    // paths (measured: hello's first request took 56 ms of CPU, the next ones 1.5 to 3 ms, a
    // first POST on a new path 11 ms), which is the host's cost, not the capsule's: they get at
    // least the warm-up budget. Not for a while after a CPU kill, on any of the capsule's
    // instances: a capsule that keeps going over its limit would get the budget back with each
    // instance that replaces one ended for it (`warmupWithheldMs`).
    const fresh = handle.served < WARMUP_REQUESTS;
    const withheld =
      fresh && this.#runtime.warmupCpuMs > this.limits.cpuMsPerRequest && Date.now() - this.cpuKilledAt < this.#runtime.warmupWithheldMs;
    const warm = !fresh || withheld;
    handle.served++;
    const active: ActiveRequest = {
      id,
      requestId: pending.message.requestId,
      domain: pending.message.domain,
      method: pending.message.method,
      path: pending.message.path,
      res: pending.res,
      started: Date.now(),
      bytesIn: pending.bytesIn,
      bytesOut: 0,
      accepted: 0,
      ended: false,
      cutOff: false,
      cpuLimit: warm ? this.limits.cpuMsPerRequest : Math.max(this.limits.cpuMsPerRequest, this.#runtime.warmupCpuMs),
      cpuCheckAt: 0,
      pending,
      ...(withheld ? { warmupWithheld: true } : {}),
    };
    handle.inFlight.push(active);
    if (handle.inFlight.length === 1) this.watch(handle, active);
    else this.armWatch(handle, this.reclaimDue(handle));
    if (!pending.dispatched) {
      pending.res.on('close', () => {
        const where = pending.dispatched;
        if (!where) return;
        const { active, handle } = where;
        // A response the host cut off (and answered or closed itself) was not left by its client,
        // nor was one whose client had every byte its content-length said before the end came.
        const whole = active.declaredLength !== undefined && active.bytesOut === active.declaredLength;
        if (!active.ended && !active.cutOff && !whole && handle.inFlight.includes(active)) {
          active.cutOff = true;
          active.clientGone = true;
          // The guest's next write to the response finds it closed, and a stream it feeds is
          // cancelled: an event stream whose reader left ends, rather than hold its instance
          // until the timeout.
          Atomics.store(handle.responseSignals, RESPONSE_GONE, active.id);
          // A worker waiting for its window to open looks again, and finds the client gone.
          Atomics.notify(handle.responseSignals, RESPONSE_ACCEPTED_KIB);
        }
      });
    }
    pending.dispatched = { active, handle };
    const message: RequestMessage = { ...pending.message, id, body: pending.req !== undefined };
    if (pending.req) {
      handle.body.reset();
      this.streamBody(handle, active, pending.req);
    }
    this.post(handle, message);
  }

  /**
   * Requests taken in one turn of the event loop go to an instance in one message, at the end
   * of the turn: each message costs a wake-up of the worker, and on a busy host the ingress
   * parses many requests per turn.
   */
  post(handle: CapsuleWorker, message: RequestMessage): void {
    handle.outgoing.push(message);
    if (handle.outgoing.length > 1) return;
    setImmediate(() => this.sendOutgoing(handle));
  }

  sendOutgoing(handle: CapsuleWorker): void {
    if (handle.outgoing.length === 0) return;
    const messages = handle.outgoing.splice(0);
    if (handle.retired) return;
    handle.worker.postMessage(packRequests(messages) satisfies ToWorker);
    // A guest asleep would take them only when it wakes: the worker hands them back at once.
    if (handle.asleep) {
      Atomics.store(handle.sleepCell, SLEEP_WAKE, 1);
      Atomics.notify(handle.sleepCell, SLEEP_WAKE);
    }
  }

  /**
   * Starts the wall-clock and CPU limits of the request an instance runs. A request posted behind
   * another starts them when it comes first, so its limits count from about when it starts, not
   * while it waits. One timer per instance looks at whichever request is first when it fires
   * (`checkLimits`): a timer of its own per request cost about 3% of tiny's throughput.
   */
  watch(handle: CapsuleWorker, active: ActiveRequest): void {
    const now = Date.now();
    active.started = now;
    // CPU time never exceeds wall time: the first look is due once the limit has passed on the clock.
    active.cpuCheckAt = now + active.cpuLimit;
    this.armWatch(handle, Math.min(active.cpuCheckAt, now + this.limits.timeoutMs, this.reclaimDue(handle)));
  }

  /**
   * When a JSPI instance is to be asked whether its current request waits (`reclaim`): while
   * requests wait behind it, or in the queue with room for another instance. Requests that came
   * after its current request had run `headAgeMs` were not posted behind it (`leastBusy`), and
   * only an answer that it waits lets the capsule start instances beyond one per core.
   */
  reclaimDue(handle: CapsuleWorker): number {
    const head = handle.head;
    if (!this.transpiled.jspi || !head) return Number.POSITIVE_INFINITY;
    // One answer that a request waits lets instances start for a while (WAITED_RECENTLY_MS):
    // asking every busy instance all along would take the CPU the new instances need.
    const queued = this.queue.length > 0 && this.workers.size < this.maxInstances && Date.now() - this.waitedAt >= WAITED_RECENTLY_MS;
    if (handle.inFlight.length < 2 && !queued) return Number.POSITIVE_INFINITY;
    return Math.max(head.started + this.#runtime.pipeline.headAgeMs, handle.reclaimAfter);
  }

  /** Makes the instance's timer fire at `due` at the latest. */
  armWatch(handle: CapsuleWorker, due: number): void {
    if (!Number.isFinite(due) || (handle.watchTimer && handle.watchDue <= due)) return;
    clearTimeout(handle.watchTimer);
    handle.watchDue = due;
    handle.watchTimer = setTimeout(() => this.checkLimits(handle), Math.max(1, due - Date.now()));
    // It may outlive the last request (it is not cleared when one ends): it must not hold the process.
    handle.watchTimer.unref();
  }

  /** The current request's limits: the wall clock, then (once due) the worker's CPU time. */
  checkLimits(handle: CapsuleWorker): void {
    handle.watchTimer = undefined;
    const active = handle.head;
    if (!active || handle.retired) return;
    const now = Date.now();
    const timeoutMs = this.limits.timeoutMs;
    if (now - active.started >= timeoutMs) {
      this.kill(handle, active, 'timeout', `over the ${timeoutMs} ms wall-clock limit`);
      return;
    }
    if (!handle.reclaiming && now >= this.reclaimDue(handle)) this.reclaim(handle);
    // The next look is also due when a reclaim is: the timer may have been armed for an earlier
    // request (it outlives them), and a re-arm without it left a sleeping request's followers
    // waiting until its CPU check, a second later on a fresh instance.
    const reclaimAt = handle.reclaiming ? Number.POSITIVE_INFINITY : this.reclaimDue(handle);
    if (now < active.cpuCheckAt) {
      this.armWatch(handle, Math.min(active.cpuCheckAt, active.started + timeoutMs, reclaimAt));
      return;
    }
    // Until the answer comes, the wall clock is still watched.
    active.cpuCheckAt = Number.POSITIVE_INFINITY;
    this.armWatch(handle, Math.min(active.started + timeoutMs, reclaimAt));
    const limit = active.cpuLimit;
    handle.worker.cpuUsage().then(
      (usage) => {
        if (handle.head !== active) return;
        // The worker writes the start time first, then the request's number: a number that
        // matches comes with its own start time (or a later one, which only errs towards less).
        const running = Atomics.load(handle.cpuStart, 1) === BigInt(active.id);
        const started = Atomics.load(handle.cpuStart, 0);
        // Not started yet: the worker has not picked the request up (it is busy elsewhere).
        const usedMs = running ? (usage.user + usage.system - Number(started)) / 1000 : 0;
        active.cpuUsedMs = usedMs;
        // V8's own work on the thread (a garbage collection, a compilation) lands in a request
        // at random: a request is ended only past the allowance for it (see CPU_ALLOWANCE_MS).
        if (usedMs <= limit + CPU_ALLOWANCE_MS) {
          active.cpuCheckAt = Date.now() + Math.max(1, limit + CPU_ALLOWANCE_MS - usedMs);
        } else if (active.cpuOverAt !== undefined && usedMs > active.cpuOverAt) {
          this.kill(handle, active, 'cpu', `used ${Math.round(usedMs)} ms of CPU, ${this.cpuLimitApplied(limit, active.warmupWithheld)}`);
          return;
        } else {
          // Over once: still burning CPU a moment later means the request's own work, not a
          // pause of the engine's that the request would outlive by microseconds.
          active.cpuOverAt = usedMs;
          active.cpuCheckAt = Date.now() + CPU_RECHECK_MS;
        }
        this.armWatch(handle, active.cpuCheckAt);
      },
      () => {},
    );
  }

  /**
   * Which CPU limit ended a request, in words. A fresh instance's first requests run under the
   * warm-up budget, which may be ten times the manifest's limit: naming only the number would
   * read as a limit the capsule never asked for.
   */
  cpuLimitApplied(limitMs: number, warmupWithheld = false): string {
    const own = this.limits.cpuMsPerRequest;
    if (limitMs <= own && warmupWithheld) {
      const seconds = Math.round(this.#runtime.warmupWithheldMs / 1000);
      return `over the capsule's limit of ${own} ms per request (a fresh instance's warm-up allowance is not given for ${seconds} s after one was ended for CPU)`;
    }
    if (limitMs <= own) return `over the capsule's limit of ${own} ms per request`;
    return `over the ${limitMs} ms allowed to a fresh instance's first ${WARMUP_REQUESTS} requests (the capsule's own limit: ${own} ms per request)`;
  }

  /**
   * Answers 413 to a request body over `limit`, which the host sets for every capsule (host.toml's
   * `[limits] request_body`, 10 MiB when unset): the operator's line names that setting, the
   * client's says the host takes no more.
   */
  refuseBody(res: ServerResponse, request: { requestId: string; domain: string }, limit: number, declared?: number): void {
    const body = declared === undefined ? 'request body' : `request body of ${declared} bytes`;
    // Only a request_body above what one instance's ring can carry is not the setting itself.
    const setting =
      limit < this.limits.requestBodyBytes
        ? 'the most the host streams into an instance'
        : "the host's limit, host.toml [limits] request_body";
    // Refused at the door when it says its length; cut off in flight, it ran the capsule.
    this.limitHit('request-body', request, `${body} over ${sizeText(limit)}, ${setting}`, declared !== undefined);
    res.setHeader('connection', 'close');
    answer(res, 413, `the request body is larger than ${sizeText(limit)}, the most this host takes`);
  }

  /** Feeds the request body into the instance's ring as it arrives, pausing the upload while the ring is full. */
  streamBody(handle: CapsuleWorker, active: ActiveRequest, req: IncomingMessage): void {
    const writer = handle.body;
    const limit = Math.min(this.limits.requestBodyBytes, MAX_STREAMED_BODY);
    let rest: Uint8Array | undefined;
    let ended = false;
    let stopped = false;
    const onData = (chunk: Buffer) => {
      if (stopped) return;
      active.bytesIn += chunk.length;
      if (active.bytesIn > limit) {
        stop();
        writer.abort();
        active.limit = 'request-body';
        active.cutOff = true;
        this.refuseBody(active.res, active, limit);
        return;
      }
      const left = writer.write(chunk);
      if (left.length > 0) {
        rest = left;
        req.pause();
      }
    };
    const onEnd = () => {
      ended = true;
      if (!rest && !stopped) writer.end();
    };
    const onClose = () => {
      if (!ended && !stopped) writer.abort();
    };
    handle.onConsumed = () => {
      if (stopped || !rest) return;
      const left = writer.write(rest);
      if (left.length > 0) {
        rest = left;
        return;
      }
      rest = undefined;
      if (ended) writer.end();
      else req.resume();
    };
    const stop = () => {
      if (stopped) return;
      stopped = true;
      handle.onConsumed = undefined;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      // What the capsule did not read is discarded, so the connection can serve the next request.
      if (!req.complete) req.resume();
    };
    active.stopBody = stop;
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    req.resume();
  }

  onBatch(handle: CapsuleWorker, batch: ResponseBatch): void {
    const active = handle.head;
    if (batch.logs) {
      for (const line of batch.logs) {
        if (line.operator) {
          const fields = {
            ...line.fields,
            capsule: this.name,
            source: line.source,
            ...(line.requestId ? { requestId: line.requestId } : {}),
          };
          this.#runtime.logger[line.level === 'critical' ? 'fatal' : line.level](fields, redact(line.message, this.secrets));
          continue;
        }
        if (line.quota === undefined) {
          this.log(line.level, line.message, line.source, line.requestId);
          continue;
        }
        this.limitHit(`quota:${line.quota}`, { requestId: line.requestId ?? '', domain: active?.domain ?? '' }, line.message);
        if (active && active.requestId === line.requestId) {
          active.quotaHits ??= {};
          active.quotaHits[line.quota] = (active.quotaHits[line.quota] ?? 0) + 1;
        }
      }
    }
    if (!active || active.id !== batch.id) return;
    const res = active.res;
    // A response begun and cut short by a trap in one batch has reached no one yet: dropped, so
    // that the client gets the 500 below rather than a connection closed mid-response.
    const unsent = batch.done?.trap !== undefined && !batch.end && !res.headersSent;
    // The head as it may go out (undefined when it may not: answered as invalid).
    const head = batch.head && !active.cutOff && !unsent ? this.#checkedHead(active, batch.head) : undefined;
    if (unsent) {
      // Nothing to write.
    } else if (head && batch.end && !batch.limit && this.#endWhole(active, head, batch.chunks)) {
      // Answered in one write.
    } else if (!active.cutOff) {
      try {
        if (head) {
          if (head.declared !== undefined) active.declaredLength = head.declared;
          res.writeHead(head.status, head.headers);
        } else if (batch.failed !== undefined && !res.headersSent) answer(res, 502, `the capsule answered with an error (${batch.failed})`);
        const declared = active.declaredLength;
        if (batch.chunks) {
          for (const chunk of batch.chunks) {
            if (declared !== undefined && active.bytesOut + chunk.length > declared) {
              this.#lengthBroken(active, `its body is longer than the ${declared} bytes its content-length header says`);
              break;
            }
            active.bytesOut += chunk.length;
            res.write(chunk, () => this.accepted(handle, active, chunk.length));
          }
        }
        if (batch.end && !batch.limit && !active.cutOff) {
          if (declared !== undefined && active.bytesOut !== declared) {
            this.#lengthBroken(active, `its body ended after ${active.bytesOut} of the ${declared} bytes its content-length header says`);
          } else {
            active.ended = true;
            res.end();
          }
        }
      } catch (error) {
        this.#invalidResponse(active, error);
      }
      if (batch.limit) {
        active.cutOff = true;
        active.limit = batch.limit;
        this.limitHit(batch.limit, active, `response body over ${this.limits.responseBodyBytes} bytes`);
        answer(res, 502, 'the response body is too large');
      }
    }
    if (batch.done) {
      const done = batch.done;
      if (done.trap !== undefined) {
        // SpiderMonkey aborts when an allocation fails (it writes "out of memory" and calls
        // mozalloc_abort), which can be far below the cap when one large reallocation fails.
        const engineOutOfMemory = batch.logs?.some((line) => line.source === 'stderr' && ENGINE_OUT_OF_MEMORY.test(line.message)) ?? false;
        const nearCap = this.#nearMemoryCap(done.memoryBytes) || engineOutOfMemory;
        const limit = nearCap ? 'memory' : 'trap';
        const stalled = !nearCap && batch.logs?.some((line) => line.source === 'stderr' && ENGINE_STALLED.test(line.message));
        const detail = nearCap
          ? `out of memory (${done.memoryBytes} bytes): ${done.trap}`
          : stalled
            ? `trapped: ${done.trap}; the handler waited on a promise that nothing was left to settle (no timer, fetch or body read pending), so it could never answer`
            : `trapped: ${done.trap}`;
        this.limitHit(limit, active, detail);
        active.limit = limit;
        this.lastError = done.trap;
        this.retire(handle);
        this.finish(handle, active, { status: 500, message: 'the capsule failed' }, true, done);
        return;
      }
      if (!res.headersSent) {
        this.finish(handle, active, { status: 500, message: 'the capsule did not send a response' }, !active.clientGone, done);
        return;
      }
      // A JS capsule's engine answers 500 itself when its heap cannot grow (the SDK logs
      // "uncaught out of memory"): no trap, so the host saw only a 500. At the memory limit, it
      // is the limit's doing, for the operator's log, status and usage as a trap there is. Not a
      // failure towards a back-off: the capsule answered, and a grown instance is replaced.
      const failed = active.limit !== undefined;
      if (!failed && res.statusCode >= 500 && this.#nearMemoryCap(done.memoryBytes)) {
        const detail = `answered ${res.statusCode} with its memory at the limit (${formatBytes(done.memoryBytes)} of ${formatBytes(this.limits.memoryBytes)}): out of memory, most likely`;
        this.limitHit('memory', active, detail);
        active.limit = 'memory';
        this.lastError = `${active.method} ${active.path} ${detail}`;
      }
      this.finish(handle, active, undefined, failed, done);
    }
  }

  /**
   * The capsule's response head as the host sends it, or undefined when it is invalid (then
   * answered 502). The status must be a final one: wasi:http lets a guest set any from 100 to
   * 999, an informational one cannot end a response, a 101 would make a proxy in front of the
   * host tunnel the connection (past its checks and the forwarding headers it sets), and none
   * above 599 is defined (RFC 9110). Several content-length fields must agree. Headers that
   * direct a proxy in front of the host to serve something else (`X-Accel-Redirect` makes nginx
   * serve one of its internal locations) are dropped: a capsule answers for itself only.
   */
  #checkedHead(active: ActiveRequest, head: { status: number; headers: string[] }): CheckedHead | undefined {
    const { status } = head;
    if (status < 200 || status > 599) {
      this.#invalidResponse(active, new Error(`its status ${status} is not a final HTTP status (200 to 599)`));
      return undefined;
    }
    let headers = head.headers;
    let declared: number | undefined;
    for (let index = 0; index < headers.length; index += 2) {
      const name = (headers[index] as string).toLowerCase();
      if (name === 'content-length') {
        const value = (headers[index + 1] as string).trim();
        const length = /^\d{1,15}$/.test(value) ? Number(value) : Number.NaN;
        if (Number.isNaN(length) || (declared !== undefined && declared !== length)) {
          this.#invalidResponse(active, new Error('its content-length header is not one whole number of bytes'));
          return undefined;
        }
        declared = length;
      } else if (name === REQUEST_ID_HEADER) {
        // The host's, whatever the capsule says: a client quotes it to find the request in the logs.
        headers = headers.filter((_, at) => at !== index && at !== index + 1);
        index -= 2;
      } else if (PROXY_DIRECTIVES.has(name)) {
        headers = headers.filter((_, at) => at !== index && at !== index + 1);
        index -= 2;
        if (!this.#proxyDirectiveLogged) {
          this.#proxyDirectiveLogged = true;
          this.log('warn', `the ${name} header of a response was dropped: it directs a proxy, not a client`, 'host', active.requestId);
        }
      }
    }
    const withBody = hasBody(active.method, status);
    return { status, headers, declared: withBody ? declared : undefined, hasLength: declared !== undefined, withBody };
  }

  /**
   * A response that arrived whole (head, body and end in one batch, as most do) goes out with a
   * content-length in one write, instead of chunked in two. The length is the body's: one the
   * capsule gave is replaced, as Cloudflare's runtime does, because code that copies another
   * response's headers (`new Response(text, { headers: upstream.headers })`, and frameworks'
   * error paths) carries a stale one, and StarlingMonkey puts one in every Response's headers.
   * Not when the response has no body (HEAD, 204, 304). False when it did not apply.
   */
  #endWhole(active: ActiveRequest, head: CheckedHead, chunks: Uint8Array[] | undefined): boolean {
    if (!head.withBody) return false;
    const { status } = head;
    const headers = head.hasLength ? withoutContentLength(head.headers) : head.headers;
    const body = !chunks || chunks.length === 0 ? EMPTY_BODY : chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks);
    try {
      active.res.writeHead(status, [...headers, 'content-length', String(body.length)]);
    } catch (error) {
      this.#invalidResponse(active, error);
      return true;
    }
    active.bytesOut += body.length;
    active.ended = true;
    active.res.end(body);
    return true;
  }

  /**
   * A streamed body that broke the length its head declared. The head is out, so the connection
   * is closed: the client sees a response cut short rather than waiting for bytes that never
   * come, and bytes past the declared length never reach it, where a client or a proxy that
   * reuses the connection would read them as the next response (another capsule's, behind a
   * proxy that pools connections to the host).
   */
  #lengthBroken(active: ActiveRequest, problem: string): void {
    active.cutOff = true;
    this.log('error', `invalid response from the capsule: ${problem}; the connection was closed`, 'host', active.requestId);
    active.res.destroy();
  }

  /** Node.js refused the capsule's head (a bad header name or value): 502, and nothing more of it. */
  #invalidResponse(active: ActiveRequest, error: unknown): void {
    active.cutOff = true;
    this.log('error', `invalid response from the capsule: ${errorMessage(error)}`, 'host', active.requestId);
    answer(active.res, 502, 'the capsule sent an invalid response');
  }

  /**
   * Part of a response has left for the client's socket: the worker's window moves on. A worker
   * sends a response's body no further ahead of its client than `RESPONSE_WINDOW_BYTES`
   * (capsule-worker.ts), waiting (its guest's write blocks) until this says the client took some.
   * Unbounded, a client that stopped reading made the host keep the whole response in memory (up
   * to `responseBodyBytes`, 64 MiB, per connection: ten such clients took a host from 494 to
   * 892 MB) for as long as its connection stayed open.
   */
  accepted(handle: CapsuleWorker, active: ActiveRequest, bytes: number): void {
    active.accepted += bytes;
    const signals = handle.responseSignals;
    Atomics.store(signals, RESPONSE_ACCEPTED_KIB, Math.floor(active.accepted / 1024));
    Atomics.store(signals, RESPONSE_ACCEPTED_ID, active.id);
    Atomics.notify(signals, RESPONSE_ACCEPTED_KIB);
  }

  /** Ends `active` (answering it when given a fallback), records it, and frees its worker. */
  finish(
    handle: CapsuleWorker,
    active: ActiveRequest,
    fallback: { status: number; message: string } | undefined,
    failed: boolean,
    done?: { cpuMicros: number; memoryBytes: number },
  ): void {
    if (handle.head !== active) return;
    handle.inFlight.shift();
    const next = handle.head;
    if (next && !handle.retired) this.watch(handle, next);
    active.stopBody?.();
    const res = active.res;
    if (active.clientGone) res.destroy();
    else if (fallback) answer(res, fallback.status, fallback.message);
    // The request is over and its body never ended: the guest dropped it unfinished (its stream
    // failed), which wasi:http means as an incomplete body. Ended cleanly, the client would take
    // what came as the whole; the connection is closed after what was written, and the client
    // sees the response cut off there.
    else if (!res.writableEnded && !res.destroyed) cutShort(res);
    if (failed && active.limit !== 'response-body') this.failed();
    else this.failures = 0;
    const record: RequestRecord = {
      capsule: this.name,
      domain: active.domain,
      requestId: active.requestId,
      method: active.method,
      path: active.path,
      // 499, as nginx logs it: the client went away before the answer.
      status: active.clientGone ? 499 : res.statusCode,
      // A request ended by a limit reports nothing itself: metered for the CPU it was seen to use
      // (the limit's own figure, which every such request was billed before, is not what it used).
      cpuMs: done ? done.cpuMicros / 1000 : (active.cpuUsedMs ?? this.limits.cpuMsPerRequest),
      wallMs: Date.now() - active.started,
      queuedMs: Math.max(0, active.started - active.pending.queuedAt),
      memoryBytes: done?.memoryBytes ?? 0,
      bytesIn: active.bytesIn,
      bytesOut: active.bytesOut,
    };
    if (active.limit !== undefined) record.limit = active.limit;
    if (active.quotaHits) record.quotaHits = active.quotaHits;
    this.#runtime.emitRequest(record);
    if (done && !handle.retired && !handle.recycling) this.#recycleIfGrown(handle, done.memoryBytes);
    this.release(handle);
  }

  /** See `recycleHeadroom`. */
  #recycleIfGrown(handle: CapsuleWorker, memoryBytes: number): void {
    handle.firstMemoryBytes ??= memoryBytes;
    const headroom = recycleHeadroom(this.limits.memoryBytes);
    if (memoryBytes < this.limits.memoryBytes - headroom || memoryBytes - handle.firstMemoryBytes < headroom / 2) return;
    handle.recycling = true;
    this.#runtime.recycledInstances++;
    this.log(
      'info',
      `an instance's memory grew to ${(memoryBytes / MiB).toFixed(1)} MiB of its ${(this.limits.memoryBytes / MiB).toFixed(1)} MiB limit: it is replaced once it has answered the requests it holds`,
    );
    // Its replacement starts now, unless another instance can take the requests meanwhile.
    const others = [...this.workers].some((other) => other !== handle && !other.retired && !other.recycling);
    if (!others && this.spawning === 0 && this.state === 'running') this.startWorker();
  }

  failed(): void {
    this.failures++;
    const after = this.#runtime.backoffAfter;
    if (this.failures >= after) {
      const ms = Math.min(this.#runtime.backoffMs * 2 ** (this.failures - after), this.#runtime.backoffMaxMs);
      this.backedOffUntil = Date.now() + ms;
      this.#runtime.logger.warn({ capsule: this.name, failures: this.failures, ms }, 'capsule backed off after repeated failures');
      this.log('warn', `backed off for ${ms} ms after ${this.failures} failures in a row`);
    }
  }

  /** The worker is free (or gone): it takes the next waiting request, or waits idle. */
  release(handle: CapsuleWorker): void {
    this.running--;
    if (!handle.retired) {
      if (handle.inFlight.length === 0) {
        if (handle.recycling) this.retire(handle);
        else this.park(handle);
      }
    } else if (this.state === 'running' && this.workers.size === 0 && this.spawning === 0 && this.backedOffUntil <= Date.now()) {
      // Keep one instance ready, so that the request after a failure starts at once.
      this.startWorker();
    }
    this.pump();
  }

  async stopWorkers(): Promise<void> {
    for (const handle of [...this.workers]) {
      const active = handle.head;
      this.retire(handle);
      if (active) {
        active.limit = 'stopped';
        this.finish(handle, active, { status: 503, message: `${this.name} was stopped` }, false);
      }
    }
    // Last: retiring the instances put the requests waiting behind their current ones back here.
    for (const pending of this.queue.splice(0)) answer(pending.res, 503, 'the app is stopping');
    this.releaseModules();
  }
}

class Runtime implements StratumHostRuntime {
  readonly logger: Logger;
  readonly logBacklog: number;
  readonly backoffAfter: number;
  readonly backoffMs: number;
  readonly backoffMaxMs: number;
  readonly idleInstanceMs: number;
  readonly idleCapsuleMs: number;
  readonly pipeline: Required<PipelineOptions>;
  readonly warmupCpuMs: number;
  readonly warmupWithheldMs: number;
  readonly instancesPerCapsule: number;
  readonly asyncInstancesPerCapsule: number;
  readonly stuckThreadsPerCapsule: number;
  readonly maxInstances: number;
  /** Instances running or starting, of all capsules: each took its room with `takeInstance`. */
  #instances = 0;
  /** Capsules whose requests wait for room at `maxInstances`, in the order they asked. */
  readonly #waitingForRoom = new Set<Capsule>();
  #roomOffered = false;
  #roomTimer: NodeJS.Timeout | undefined;
  instancesEvicted = 0;
  instanceWaits = 0;
  #lastRoomWarning = 0;
  #evictedSinceReport = 0;
  #evictionReport: NodeJS.Timeout | undefined;
  readonly #trustedProxies: BlockList | undefined;
  workersStarted = 0;
  stuckThreads = 0;
  sparesUsed = 0;
  spareGlueHits = 0;
  spareGlueRehearsals = 0;
  spareMemoryHits = 0;
  recycledInstances = 0;
  /** The component whose instance started last, and how many times in a row (see `replenishSpare`). */
  #lastStart: SpareGuess | undefined;
  #glueStreak = 0;
  readonly #options: HostRuntimeOptions;
  readonly #loader: Loader;
  readonly #capabilities: LoadedCapability[];
  readonly #capsules = new Map<string, Capsule>();
  readonly #byDomain = new Map<string, Capsule>();
  readonly #requestListeners = new Set<(record: RequestRecord) => void>();
  /**
   * Who follows each installation's log, by its name rather than by its Capsule: a reinstall
   * replaces the Capsule, and a follower bound to the old one heard nothing more (`subscribeLogs`).
   */
  readonly #logFollowers = new Map<string, Set<LogFollower>>();
  /**
   * The first part of every log line's id (`<epoch>-<n>`, spec/host-api.md section 5.8): when
   * this runtime started. The second, `n`, counts the lines of all its capsules, so that it
   * increases along any one installation's log, through a reinstall's two versions too.
   */
  readonly logEpoch = takeLogEpoch();
  #logLines = 0;
  #spare: SpareWorker | undefined;
  /** Threads being ended: `close` waits for them (a thread writes V8's code cache as it ends). */
  readonly #ending = new Set<Promise<unknown>>();
  #closed = false;
  /** Installs under way: a transpile cache entry one of them has found is not in any capsule yet. */
  #installing = 0;

  constructor(options: HostRuntimeOptions, capabilities: LoadedCapability[]) {
    this.#options = options;
    this.logger = options.logger ?? silentLogger;
    this.logBacklog = options.logBacklog ?? 1000;
    this.backoffAfter = options.backoffAfter ?? 3;
    this.backoffMs = options.backoffMs ?? 1000;
    this.backoffMaxMs = options.backoffMaxMs ?? 60_000;
    this.idleInstanceMs = options.idleInstanceMs ?? 30_000;
    this.idleCapsuleMs = options.limits?.idleMs ?? 5 * 60_000;
    this.pipeline = { depth: options.pipeline?.depth ?? PIPELINE_DEPTH, headAgeMs: options.pipeline?.headAgeMs ?? PIPELINE_HEAD_AGE_MS };
    this.warmupCpuMs = options.warmupCpuMs ?? 500;
    this.warmupWithheldMs = options.warmupWithheldMs ?? 60_000;
    this.instancesPerCapsule = options.instancesPerCapsule ?? availableParallelism();
    this.stuckThreadsPerCapsule = options.stuckThreadsPerCapsule ?? 1;
    this.maxInstances = options.maxInstances ?? defaultMaxInstances();
    // One capsule alone cannot hold every instance: with [instances] max = 6, 20 sleeping
    // requests of one capsule made every other capsule's answer wait 11 s and then 503. Several
    // capsules whose requests wait still can; then requests wait for an instance to end.
    this.asyncInstancesPerCapsule = Math.min(options.asyncInstancesPerCapsule ?? 8, Math.max(1, this.maxInstances - 1));
    this.#trustedProxies = options.trustedProxies?.length ? addressRanges(options.trustedProxies) : undefined;
    this.#capabilities = capabilities;
    this.#loader = new Loader({
      cacheDir: join(options.dataDir, 'cache'),
      logger: this.logger,
      ...(options.keepIdleCompiled !== undefined ? { keepIdleCompiled: options.keepIdleCompiled } : {}),
    });
    this.replenishSpare();
  }

  /**
   * Room for a new instance of `capsule` under `maxInstances`, made if need be by ending the
   * instance idle longest among the other capsules'. Without room, a capsule that `waits` is
   * pumped again when an instance ends anywhere.
   */
  takeInstance(capsule: Capsule, waits: boolean): boolean {
    if (this.#instances >= this.maxInstances && !this.#evictIdle(capsule)) {
      if (waits && !this.#waitingForRoom.has(capsule)) {
        this.#waitingForRoom.add(capsule);
        this.instanceWaits++;
        this.#expireWhileWaiting();
        const now = Date.now();
        if (now - this.#lastRoomWarning > 60_000) {
          this.#lastRoomWarning = now;
          this.logger.warn(
            { capsule: capsule.name, instances: this.#instances },
            `the host runs its limit of ${this.maxInstances} instances ([instances] max) and none is idle: requests wait for one to end; raise [instances] max if the machine has memory for more`,
          );
        }
      }
      return false;
    }
    this.#waitingForRoom.delete(capsule);
    this.#instances++;
    return true;
  }

  /**
   * A request waiting for room is looked at only when an instance takes it; one whose capsule has
   * no instance would wait past its timeout, its client left hanging, for as long as every other
   * instance stays busy.
   */
  #expireWhileWaiting(): void {
    if (this.#roomTimer) return;
    this.#roomTimer = setInterval(() => {
      if (this.#waitingForRoom.size === 0) {
        clearInterval(this.#roomTimer);
        clearTimeout(this.#evictionReport);
        this.#roomTimer = undefined;
        return;
      }
      const now = Date.now();
      for (const capsule of this.#waitingForRoom) {
        capsule.expireQueued(now);
        // Stopped or uninstalled, or nothing left waiting: it needs no room.
        if (capsule.state === 'stopped' || capsule.queue.length === 0) this.#waitingForRoom.delete(capsule);
      }
    }, 1000);
    this.#roomTimer.unref();
  }

  /**
   * Says once a minute how many idle instances were ended for others: at the limit every such
   * start is a cold one, and a host that does it all the time serves far fewer requests.
   */
  #reportEvictions(): void {
    if (this.#evictionReport) return;
    this.#evictionReport = setTimeout(() => {
      this.#evictionReport = undefined;
      const ended = this.#evictedSinceReport;
      this.#evictedSinceReport = 0;
      this.logger.warn(
        { ended, instances: this.#instances },
        `at the limit of ${this.maxInstances} instances ([instances] max), ${ended} idle instances were ended in the last minute to start others cold; raise the limit if the machine has memory for more`,
      );
    }, 60_000);
    this.#evictionReport.unref();
  }

  /** An instance ended, or one that was to start did not: its room goes to a capsule waiting for it. */
  instanceEnded(): void {
    this.#instances--;
    this.#offerRoom();
  }

  /**
   * Room for the capsules waiting: an instance ended, or one went idle, which the next of them
   * ends to start its own (`takeInstance`).
   */
  #offerRoom(): void {
    if (this.#waitingForRoom.size === 0 || this.#roomOffered) return;
    // Not from inside the `retire` or `park` that called this: that capsule may be in the middle
    // of its own bookkeeping, and an eviction is followed at once by the evicting capsule's start.
    this.#roomOffered = true;
    queueMicrotask(() => {
      this.#roomOffered = false;
      for (const capsule of [...this.#waitingForRoom]) {
        if (capsule.state !== 'stopped') capsule.pump();
        // It took room (`takeInstance` let it go), or needs none any more.
        if (capsule.queue.length === 0 || capsule.state === 'stopped') this.#waitingForRoom.delete(capsule);
      }
    });
  }

  /** An instance went idle: at the instance limit, a capsule waiting for room may end it. */
  instanceParked(): void {
    this.#offerRoom();
  }

  /**
   * Ends the instance idle longest of a capsule other than `taker`'s, one of a capsule with others
   * first; false if none is idle.
   */
  #evictIdle(taker: Capsule): boolean {
    // A capsule's second instance first: ending its last one makes its next request a cold start.
    let oldest: { capsule: Capsule; handle: CapsuleWorker; spare: boolean } | undefined;
    for (const capsule of this.#capsules.values()) {
      if (capsule === taker) continue;
      const spare = capsule.workers.size > 1;
      for (const handle of capsule.idle) {
        if (handle.inFlight.length > 0) continue;
        const better = !oldest || (spare && !oldest.spare) || (spare === oldest.spare && handle.idleSince < oldest.handle.idleSince);
        if (better) oldest = { capsule, handle, spare };
      }
    }
    if (!oldest) return false;
    this.instancesEvicted++;
    this.#evictedSinceReport++;
    this.#reportEvictions();
    oldest.capsule.evict(oldest.handle);
    return true;
  }

  /** `onStuck` when the thread has not stopped after `STUCK_THREAD_MS`; `onUnstuck` if it stops after all. */
  ending(termination: Promise<unknown>, onStuck?: () => void, onUnstuck?: () => void): void {
    // A worker ends at its next JavaScript or Wasm instruction; one in native code (node:sqlite
    // running a statement: it offers no interrupt and no progress handler) ends only when that
    // returns, which may be never. It is counted, and its capsule told.
    let stuck = false;
    const watchdog = setTimeout(() => {
      stuck = true;
      this.stuckThreads++;
      onStuck?.();
    }, STUCK_THREAD_MS);
    watchdog.unref();
    const tracked = termination.catch(() => {});
    this.#ending.add(tracked);
    void tracked.then(() => {
      clearTimeout(watchdog);
      if (stuck) {
        this.stuckThreads--;
        onUnstuck?.();
      }
      this.#ending.delete(tracked);
    });
  }

  /** Starts a spare worker if there is none (and the runtime keeps one). */
  replenishSpare(): void {
    if (this.#spare || this.#closed || this.#options.spareWorker === false) return;
    // Only the capability modules some installed capsule uses: a module stays loaded in the
    // thread whichever capsule takes it (all of them cost a capability-less instance 2.2 MiB).
    const preload = this.#capabilityModulesInUse();
    // And jco's glue of a component whose instances started the last two times in a row (a
    // capsule scaling up, or many capsules of one app): its next instance, the likely next one,
    // then finds it loaded (about 25 ms of a JS capsule's new instance on a small VM). An
    // instance of another component that takes this spare carries it unused for its life (a JS
    // capsule's glue is about 6 MiB in a thread), which is why one start is not enough to guess.
    // With the glue, the memories that component's modules import from the host, made and their
    // data pages written while the spare waits (see `HostedMemory`).
    const guess = this.#glueStreak >= 2 ? this.#lastStart : undefined;
    const glue = guess?.glueUrl;
    const memories = guess?.hostedMemories;
    const worker = newCapsuleWorker(
      {
        preload,
        ...(glue ? { preloadGlue: glue } : {}),
        ...(memories ? { preloadMemories: memories } : {}),
        compileCacheDir: join(this.#options.dataDir, 'cache', 'v8'),
      },
      'spare',
    );
    const spare: SpareWorker = {
      worker,
      preload,
      guess,
      preloaded: false,
      round: 0,
      onMessage: (message) => {
        if (message.type === 'preloaded' && message.round === spare.round) spare.preloaded = true;
      },
      onExit: () => {
        if (this.#spare === spare) this.#spare = undefined;
      },
    };
    worker.once('exit', spare.onExit);
    worker.on('message', spare.onMessage);
    // A spare that fails to start is dropped; the instance that would have taken it starts its own.
    worker.once('error', (error) => {
      this.logger.warn({ err: errorMessage(error) }, 'spare capsule worker failed');
      spare.onExit();
    });
    // Nothing reads a waiting spare's output; it must not hold the streams up.
    worker.stdout.resume();
    worker.stderr.resume();
    this.#spare = spare;
  }

  #capabilityModulesInUse(): string[] {
    const modules = new Set<string>();
    for (const capsule of this.#capsules.values()) for (const plan of capsule.init.capabilities) modules.add(plan.module);
    return [...modules];
  }

  /**
   * Tells the waiting spare what to load now, if that changed: the capability modules installed
   * capsules use, and the glue and memories of `likeliest`.
   */
  #guideSpare(likeliest: SpareGuess | undefined): void {
    const spare = this.#spare;
    if (!spare) return;
    const modules = this.#capabilityModulesInUse();
    const glue = likeliest?.glueUrl;
    const memories = likeliest?.hostedMemories;
    if (
      glue === spare.guess?.glueUrl &&
      JSON.stringify(memories) === JSON.stringify(spare.guess?.hostedMemories) &&
      modules.length === spare.preload.length &&
      modules.every((url) => spare.preload.includes(url))
    )
      return;
    spare.preload = modules;
    spare.guess = likeliest;
    spare.preloaded = false;
    spare.round++;
    spare.worker.postMessage({
      type: 'preload',
      round: spare.round,
      modules,
      ...(glue ? { glue } : {}),
      ...(memories ? { memories } : {}),
    } satisfies ToSpare);
  }

  /** Counts the component an instance is starting for, to guess the next one (`replenishSpare`). */
  instanceStarting(init: SpareGuess): void {
    this.#glueStreak = init.glueUrl === this.#lastStart?.glueUrl ? this.#glueStreak + 1 : 1;
    this.#lastStart = init;
  }

  /**
   * The scheme the client used, and the headers the capsule gets. From a trusted proxy, the
   * scheme is the first value of its X-Forwarded-Proto (the proxy nearest the client writes it
   * first) and its forwarding headers pass. From anyone else, X-Forwarded-For, X-Forwarded-Proto,
   * X-Forwarded-Host and Forwarded are dropped: a capsule that finds them can trust them, as no
   * client can claim an address or HTTPS it did not use.
   */
  forwarding(req: IncomingMessage): { scheme: 'http' | 'https'; headers: string[] } {
    const tls = (req.socket as { encrypted?: boolean }).encrypted === true;
    const { headers } = req;
    // The address the connection came from, as every proxy appends it (nginx's
    // $proxy_add_x_forwarded_for): a capsule has no other way to learn its client's address
    // (Workers give CF-Connecting-IP, Spin spin-client-addr), and rate limits and logs need it.
    const peer = clientAddress(req.socket.remoteAddress);
    let claims = false;
    for (const name of FORWARDING_HEADERS) {
      if (headers[name] !== undefined) {
        claims = true;
        break;
      }
    }
    if (!claims) return { scheme: tls ? 'https' : 'http', headers: peer ? req.rawHeaders.concat('X-Forwarded-For', peer) : req.rawHeaders };
    if (this.#trustedProxies && peerInRanges(req.socket.remoteAddress, this.#trustedProxies)) {
      const proto = headers['x-forwarded-proto'];
      const first = (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim().toLowerCase();
      // A field of its own after the proxy's: Fetch joins them, "client, proxy".
      return {
        scheme: tls || first === 'https' ? 'https' : 'http',
        headers: peer ? req.rawHeaders.concat('X-Forwarded-For', peer) : req.rawHeaders,
      };
    }
    const kept: string[] = [];
    const raw = req.rawHeaders;
    for (let index = 0; index + 1 < raw.length; index += 2) {
      const name = raw[index] as string;
      if (!FORWARDING_HEADERS.has(name.toLowerCase())) kept.push(name, raw[index + 1] as string);
    }
    if (peer) kept.push('X-Forwarded-For', peer);
    return { scheme: tls ? 'https' : 'http', headers: kept };
  }

  /** Hands the spare worker to a capsule, or undefined when there is none. */
  takeSpare(init: WorkerInit): Worker | undefined {
    const spare = this.#spare;
    if (!spare) return undefined;
    this.#spare = undefined;
    this.sparesUsed++;
    spare.worker.off('exit', spare.onExit);
    spare.worker.off('message', spare.onMessage);
    spare.worker.removeAllListeners('error');
    spare.worker.postMessage({ type: 'init', init } satisfies ToSpare);
    return spare.worker;
  }

  stats(): RuntimeStats {
    return {
      ...this.#loader.stats,
      workersStarted: this.workersStarted,
      sparesUsed: this.sparesUsed,
      sparePreload: [...(this.#spare?.preload ?? [])],
      ...(this.#spare?.guess ? { spareGlue: this.#spare.guess.glueUrl } : {}),
      sparePreloaded: this.#spare?.preloaded ?? false,
      spareGlueHits: this.spareGlueHits,
      spareGlueRehearsals: this.spareGlueRehearsals,
      spareMemoryHits: this.spareMemoryHits,
      recycledInstances: this.recycledInstances,
      stuckThreads: this.stuckThreads,
      instances: this.#instances,
      maxInstances: this.maxInstances,
      instancesEvicted: this.instancesEvicted,
      instanceWaits: this.instanceWaits,
      compiledModuleSets: this.#loader.compiledSets,
    };
  }

  async install(request: InstallRequest): Promise<CapsuleStatus> {
    this.#installing++;
    try {
      return await this.#install(request);
    } finally {
      this.#installing--;
    }
  }

  async #install(request: InstallRequest): Promise<CapsuleStatus> {
    const manifest = request.manifest;
    const name = request.name ?? manifest.capsule.name;
    const domains = request.domains.map((domain) => domain.toLowerCase());
    for (const domain of domains) {
      const owner = this.#byDomain.get(domain);
      if (owner && owner.name !== name) {
        throw new StratumError('DOMAIN_TAKEN', `${domain} is already served by ${owner.name}`, {
          hint: `Uninstall ${owner.name} first, or pick another domain.`,
        });
      }
    }
    if (request.refuseUnmetResources) {
      const unmet = unmetResources(manifest, this.#options.limits ?? {});
      if (unmet.length > 0) {
        throw new StratumError('RESOURCES_UNAVAILABLE', `${name} asks for more than this host allows`, {
          details: unmet,
          hint: "Ask for less in stratum.toml's [resources], or install it on a host whose limits allow it.",
        });
      }
    }
    const component = await this.#loader.read(request);
    const world = await this.#loader.inspect(component);
    const handlerExport = world.exports.find((item) => item.startsWith('wasi:http/incoming-handler@'));
    if (!handlerExport) {
      throw new StratumError('NOT_AN_HTTP_CAPSULE', `${name} does not export wasi:http/incoming-handler`, {
        details: [`exports: ${world.exports.join(', ') || 'none'}`],
        hint: 'A capsule is an HTTP handler: export wasi:http/incoming-handler@0.2.x.',
      });
    }
    const byCapability = new Map<LoadedCapability, string[]>();
    const unknown: string[] = [];
    for (const item of world.imports) {
      const served = this.#capabilities.find(({ capability }) => servesInterface(capability, item));
      if (!served) unknown.push(item);
      else byCapability.set(served, [...(byCapability.get(served) ?? []), item]);
    }
    if (unknown.length > 0) {
      throw new StratumError(
        'CAPABILITY_UNKNOWN_IMPORT',
        `${name} imports ${unknown.length === 1 ? 'an interface' : 'interfaces'} this host does not provide`,
        {
          details: unknown.map((item) => `import ${item}: no capability of this host serves it`),
          hint: `This host serves: ${this.#capabilities.flatMap(({ capability }) => capability.interfaces).join(', ')}.`,
        },
      );
    }
    const plans: WorkerCapabilityPlan[] = [];
    const asyncImports: string[] = [];
    for (const [loaded, imports] of byCapability) {
      const dataDir = join(this.#options.dataDir, 'capsules', name, loaded.capability.name);
      const plan = await loaded.capability.configure({
        capsule: name,
        domains,
        manifest,
        imports,
        hostConfig: this.#options.capabilityConfig?.[loaded.capability.name],
        config: request.config ?? {},
        dataDir,
        logger: this.logger.child({ capsule: name, capability: loaded.capability.name }),
      });
      plans.push({ name: loaded.capability.name, module: loaded.entry.module, settings: structuredClone(plan.settings), dataDir });
      if (plan.asyncImports) asyncImports.push(...plan.asyncImports);
    }
    const transpiled = await this.#loader.transpile(component, asyncImports, [`${handlerExport}#handle`]);
    const limits = effectiveLimits(manifest, this.#options.limits ?? {});
    const capsule = new Capsule(this, {
      loader: this.#loader,
      name,
      domains,
      manifest,
      digest: component.digest,
      limits,
      transpiled,
      ...(request.sourceMap !== undefined ? { sourceMap: request.sourceMap } : {}),
      secrets: secretValuesOf(manifest.capabilities.config, request.config ?? {}),
      init: {
        capsule: name,
        glueUrl: transpiled.glueUrl,
        capabilities: plans,
        jspi: transpiled.jspi,
        responseBodyBytes: limits.responseBodyBytes,
        logLinesPerSecond: limits.logLinesPerSecond,
        hostedMemories: hostedMemories(transpiled.memoryCaps, limits.memoryBytes),
        compileCacheDir: join(this.#options.dataDir, 'cache', 'v8'),
      },
    });
    const previous = this.#capsules.get(name);
    if (previous?.state === 'running') {
      // Replacing a running capsule drops no request: the new version starts while the old one
      // serves, then takes the domains, and the old one finishes what it holds. If the new one
      // cannot start, the old one keeps serving.
      this.#capsules.set(name, capsule);
      capsule.log('info', installedLine(name, manifest, component.digest));
      try {
        await this.start(name);
      } catch (error) {
        this.#capsules.set(name, previous);
        throw error;
      }
      for (const domain of previous.domains) if (this.#byDomain.get(domain) === previous) this.#byDomain.delete(domain);
      for (const domain of domains) this.#byDomain.set(domain, capsule);
      this.logger.info({ capsule: name, domains, digest: component.digest, jspi: transpiled.jspi }, 'capsule replaced');
      previous.state = 'draining';
      await previous.whenIdle();
      await previous.stopWorkers();
      previous.state = 'stopped';
      await this.#dropCacheOf(previous, 1);
      return capsule.status();
    }
    if (previous) {
      await this.#remove(previous);
      await this.#dropCacheOf(previous, 1);
    }
    this.#capsules.set(name, capsule);
    for (const domain of domains) this.#byDomain.set(domain, capsule);
    this.logger.info({ capsule: name, domains, digest: component.digest, jspi: transpiled.jspi }, 'capsule installed');
    capsule.log('info', installedLine(name, manifest, component.digest));
    if (previous?.state === 'draining') return this.start(name);
    return capsule.status();
  }

  async prepare(names: readonly string[]): Promise<void> {
    // A restarted host's spare started before its capsules came back, with nothing to load: it
    // now loads what they use, and the likeliest one's glue (carried unused, about 6 MiB for a
    // JS capsule's, by one instance if another capsule comes first).
    const likeliest = names.map((name) => this.#capsules.get(name)).find((capsule) => capsule !== undefined);
    this.#guideSpare(likeliest?.init);
    // One at a time: compiling is CPU a restarted host also needs for the requests it serves.
    for (const name of names.slice(0, this.#loader.keepIdleCompiled)) {
      const capsule = this.#capsules.get(name);
      if (this.#closed) return;
      if (!capsule) continue;
      try {
        await capsule.precompile();
      } catch (error) {
        // The capsule's first instance compiles again and reports it.
        this.logger.debug({ capsule: name, err: errorMessage(error) }, 'precompiling failed');
      }
    }
  }

  async start(name: string, options: StartOptions = {}): Promise<CapsuleStatus> {
    const capsule = this.#get(name);
    if (capsule.state === 'running') return capsule.status();
    if (capsule.stuckThreads >= this.stuckThreadsPerCapsule) {
      throw new StratumError(
        'CAPSULE_STUCK',
        `${name} is not served again until the host restarts: ${capsule.stuckThreads === 1 ? 'a thread' : `${capsule.stuckThreads} threads`} of its ended instances ${capsule.stuckThreads === 1 ? 'is' : 'are'} stuck in native code, each holding a core`,
        {
          hint: 'Most likely an SQL statement that does not end (a recursive query without a stop). Fix it in the capsule; restarting the host frees the core and lets it be served.',
        },
      );
    }
    capsule.state = 'running';
    capsule.failures = 0;
    capsule.backedOffUntil = 0;
    // At the host's instance limit with none idle, it starts on demand: its first request waits
    // for room as any other capsule's does.
    if (capsule.workers.size === 0 && !options.onDemand && this.takeInstance(capsule, false)) {
      // Counted as starting while it compiles, so that a request meanwhile does not start another.
      capsule.spawning++;
      let modules: Record<string, WebAssembly.Module>;
      try {
        modules = await capsule.modules();
      } catch (error) {
        this.instanceEnded();
        capsule.state = 'failed';
        capsule.lastError = errorMessage(error);
        throw error;
      } finally {
        capsule.spawning--;
      }
      const handle = capsule.spawn(modules);
      try {
        await handle.ready;
      } catch (error) {
        capsule.state = 'failed';
        capsule.lastError = errorMessage(error);
        // The caller (the control API, dev) answers with the message; the operator reads this log.
        this.logger.error({ capsule: name, err: capsule.lastError }, 'instance failed to start');
        capsule.log('error', capsule.lastError);
        capsule.retire(handle);
        throw error;
      }
      if (!handle.retired && handle.inFlight.length === 0) {
        capsule.park(handle);
        // Requests that came while it started wait in the queue.
        capsule.pump();
      }
    }
    capsule.log('info', 'started');
    return capsule.status();
  }

  async drain(name: string): Promise<CapsuleStatus> {
    const capsule = this.#get(name);
    if (capsule.state === 'running') capsule.state = 'draining';
    await capsule.whenIdle();
    await capsule.stopWorkers();
    capsule.state = 'stopped';
    capsule.log('info', 'drained');
    return capsule.status();
  }

  async stop(name: string): Promise<CapsuleStatus> {
    const capsule = this.#get(name);
    capsule.state = 'stopped';
    await capsule.stopWorkers();
    capsule.log('info', 'stopped');
    return capsule.status();
  }

  async uninstall(name: string): Promise<void> {
    const capsule = this.#get(name);
    await this.#remove(capsule);
    // The followers' last line, then their streams end: there is nothing more to follow.
    capsule.log('info', 'uninstalled');
    capsule.uninstalled = true;
    const followers = this.#logFollowers.get(name);
    this.#logFollowers.delete(name);
    for (const follower of followers ?? []) follower.onEnd?.();
    await this.#dropCacheOf(capsule, 0);
  }

  /**
   * Trims the transpile cache to what installed capsules use and the few others used last (a host
   * does at start, before it serves; see `Loader.pruneCache`). Returns how many entries went.
   */
  async pruneCache(): Promise<number> {
    return this.#installing > 0 ? 0 : this.#trimCache();
  }

  /**
   * After `gone` was uninstalled or replaced, when no capsule uses its component any more and no
   * other install (`ownInstalls` counts the caller's) may have just found its cache entry.
   */
  async #dropCacheOf(gone: Capsule, ownInstalls: number): Promise<void> {
    if (this.#installing > ownInstalls) return;
    if ([...this.#capsules.values()].some((capsule) => capsule.transpiled.key === gone.transpiled.key || capsule.digest === gone.digest))
      return;
    const removed = await this.#trimCache();
    if (removed > 0) this.logger.debug({ capsule: gone.name, removed }, 'removed transpile cache entries no capsule uses');
  }

  #trimCache(): Promise<number> {
    const capsules = [...this.#capsules.values()];
    return this.#loader.pruneCache({
      keys: new Set(capsules.map((capsule) => capsule.transpiled.key)),
      digests: new Set(capsules.map((capsule) => capsule.digest)),
    });
  }

  status(): CapsuleStatus[] {
    return [...this.#capsules.values()].map((capsule) => capsule.status());
  }

  handleRequest(request: IncomingMessage, response: ServerResponse): void {
    if (!toOriginForm(request, response)) return;
    const host = request.headers.host;
    const domain = host === undefined ? '' : hostName(host);
    const capsule = this.#byDomain.get(domain);
    if (!capsule || this.#closed) {
      answer(response, 404, `no capsule is installed for ${domain || 'this host'}`);
      request.resume();
      return;
    }
    capsule.accept(request, response, domain);
  }

  onRequest(listener: (record: RequestRecord) => void): () => void {
    this.#requestListeners.add(listener);
    return () => this.#requestListeners.delete(listener);
  }

  emitRequest(record: RequestRecord): void {
    for (const listener of this.#requestListeners) listener(record);
  }

  /**
   * Follows the installation named, not its current Capsule: a reinstall's new version logs to
   * the same followers (its backlog is not sent again), and an uninstall ends them (`onEnd`).
   */
  subscribeLogs(name: string, listener: (entry: CapsuleLogEntry, id: string) => void, options: LogSubscribeOptions = {}): () => void {
    const capsule = this.#get(name);
    // After a line of this runtime's: only the lines after it. Of another's (a host process
    // before this one, whose lines this one does not have) or none: all it keeps.
    const after = options.after === undefined ? undefined : this.#logNumber(options.after);
    const kept = after === undefined ? capsule.logs : capsule.logs.filter((line) => line.n > after);
    const backlog = options.backlog ?? kept.length;
    for (const line of backlog > 0 ? kept.slice(-backlog) : []) listener(line.entry, this.logId(line.n));
    const follower: LogFollower = { listener, ...(options.onEnd ? { onEnd: options.onEnd } : {}) };
    let followers = this.#logFollowers.get(name);
    if (!followers) {
      followers = new Set();
      this.#logFollowers.set(name, followers);
    }
    followers.add(follower);
    const own = followers;
    return () => {
      own.delete(follower);
      if (own.size === 0 && this.#logFollowers.get(name) === own) this.#logFollowers.delete(name);
    };
  }

  /** A line of a capsule's log, to those following its installation. */
  emitLog(entry: CapsuleLogEntry, id: string): void {
    const followers = this.#logFollowers.get(entry.capsule);
    if (followers) for (const follower of [...followers]) follower.listener(entry, id);
  }

  /** A new line of a capsule's log, numbered for its id. */
  nextLogLine(entry: CapsuleLogEntry): KeptLogLine {
    return { entry, n: ++this.#logLines };
  }

  /** The id of this runtime's log line `n`. */
  logId(n: number): string {
    return `${this.logEpoch}-${n}`;
  }

  /** The `n` of a log id this runtime gave, or undefined for another's. */
  #logNumber(id: string): number | undefined {
    const match = /^(\d{1,16})-(\d{1,16})$/.exec(id);
    return match && Number(match[1]) === this.logEpoch ? Number(match[2]) : undefined;
  }

  /**
   * A domain of installation `name` is answered 421 because its link no longer names this host
   * (`problem`, found by the host's recheck, spec/discovery.md section 5.3), or is served again
   * (none). Its registrar reads neither the host's log nor DNS from here: the capsule's log says
   * so, and its status lists the domains held back (`unlinkedDomains`), with the failure in
   * `lastError` until every one is served again.
   */
  domainLink(name: string, domain: string, problem?: string): void {
    this.#capsules.get(name)?.domainLink(domain, problem);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#roomTimer);
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare) await spare.worker.terminate();
    for (const capsule of this.#capsules.values()) {
      capsule.state = 'stopped';
      await capsule.stopWorkers();
    }
    await this.#loader.close();
    // Not for ever: a thread stuck in native code never ends (`stats().stuckThreads` says so).
    let waited: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.#ending), new Promise((resolve) => (waited = setTimeout(resolve, STUCK_THREAD_MS)))]);
    clearTimeout(waited);
  }

  async #remove(capsule: Capsule): Promise<void> {
    capsule.state = 'stopped';
    await capsule.stopWorkers();
    this.#capsules.delete(capsule.name);
    for (const domain of capsule.domains) if (this.#byDomain.get(domain) === capsule) this.#byDomain.delete(domain);
  }

  #get(name: string): Capsule {
    const capsule = this.#capsules.get(name);
    if (!capsule) {
      throw new StratumError('CAPSULE_NOT_FOUND', `no capsule named ${name} is installed`, {
        hint: `Installed: ${[...this.#capsules.keys()].join(', ') || 'none'}.`,
      });
    }
    return capsule;
  }
}

/**
 * Makes a request's target a path, as capsules and routing expect; false when it answered 400.
 * A target in absolute form (`GET http://example.com/x`, RFC 9112 section 3.2.2) names the host
 * itself, and the Host header must then be ignored: routed by Host, it reached one capsule with
 * a URL naming another (`http://a.testhttp//b.test/x`). Its authority becomes the Host header and
 * its path the target. The asterisk form (`OPTIONS *`) and anything else no capsule can serve
 * get 400. Idempotent, so that each layer that reads the Host header may call it first.
 */
export function toOriginForm(request: IncomingMessage, response: ServerResponse): boolean {
  const target = request.url ?? '/';
  // Node.js keeps the first of two Host fields, and a capsule reading the raw headers saw both
  // joined: each layer could take another host. RFC 9112 section 3.2 answers it with 400.
  const raw = request.rawHeaders;
  let hostFields = 0;
  for (let index = 0; index < raw.length; index += 2) {
    const name = raw[index] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') hostFields++;
  }
  if (hostFields > 1) {
    request.resume();
    answer(response, 400, 'more than one Host header');
    return false;
  }
  if (target.charCodeAt(0) === 0x2f) return true;
  const scheme = /^https?:\/\//i.exec(target);
  let authority = '';
  if (scheme) {
    const rest = target.slice(scheme[0].length);
    const end = rest.search(/[/?]/);
    authority = end === -1 ? rest : rest.slice(0, end);
    const path = end === -1 ? '/' : rest.slice(end);
    if (authority !== '' && !authority.includes('@') && URL.canParse(`http://${authority}/`)) {
      request.headers.host = authority;
      // The capsule reads the raw headers: its Host is the target's authority too (RFC 9112 section 3.2.2).
      const at = raw.findIndex((name, index) => index % 2 === 0 && name.toLowerCase() === 'host');
      if (at === -1) raw.push('Host', authority);
      else raw[at + 1] = authority;
      request.url = path.startsWith('/') ? path : `/${path}`;
      return true;
    }
  }
  request.resume();
  answer(response, 400, 'the request target must be a path, or an absolute http URL');
  return false;
}

/** `Example.COM:8080` -> `example.com`; `[::1]:80` -> `::1`. */
export function hostName(host: string): string {
  const lower = host.trim().toLowerCase();
  if (lower.startsWith('[')) {
    const end = lower.indexOf(']');
    return end === -1 ? lower : lower.slice(1, end);
  }
  const colon = lower.indexOf(':');
  const name = colon === -1 ? lower : lower.slice(0, colon);
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/**
 * Creates the runtime: the loader with its transpile cache under `dataDir/cache`, the
 * capabilities of the registry, and no capsules yet.
 *
 * @example
 * const runtime = await createHostRuntime({ dataDir: '/var/lib/stratum', limits: { memoryBytes: 256 * 1024 * 1024 } });
 * await runtime.install({ manifest, baseDir, domains: ['example.com'] });
 * await runtime.start('hello');
 * http.createServer((req, res) => runtime.handleRequest(req, res)).listen(8080);
 */
export async function createHostRuntime(options: HostRuntimeOptions): Promise<StratumHostRuntime> {
  const capabilities = await loadCapabilities(options.capabilities ?? CAPABILITY_MODULES);
  return new Runtime(options, capabilities);
}
