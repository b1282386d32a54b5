/**
 * A capsule's worker thread: one instance, serving one request at a time. The host's main
 * thread posts requests in; this thread posts response batches out. It may be terminated at
 * any moment (CPU or wall-clock limit), so it keeps nothing that must outlive it.
 */
import { flushCompileCache } from 'node:module';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import type { LogFn, Logger } from '@stratum/core';
import { BodyReader } from './body-channel.ts';
import type { Capability, ImportObjects, PrepareContext, PreparedCapability, RequestScope } from './capabilities/contract.ts';
import { HOST_MEMORY_IMPORT, type HostedMemory, OS_PAGE } from './hosted-memory.ts';
import { headerValueText } from './wasi/header-value.ts';
import { type ErrorCode, IncomingRequest, ResponseOutparam, type ResponseReceiver, setResponseBodyLimit } from './wasi/http-types.ts';
import { setBeforeBlocking, setSleepWatch } from './wasi/io.ts';
import {
  type FromWorker,
  type LogLine,
  packBatches,
  RESPONSE_ACCEPTED_ID,
  RESPONSE_ACCEPTED_KIB,
  RESPONSE_GONE,
  type RequestMessage,
  type ResponseBatch,
  type ToSpare,
  type ToWorker,
  unpackRequests,
  type WorkerBoot,
  type WorkerInit,
} from './worker-protocol.ts';

// jco's glue calls `_debugLog` on every lift and lower, which reads `process.env.JCO_DEBUG`; in
// Node.js `process.env` is an interceptor that costs far more than a property read (23% of a
// request in one profile). A capsule has no environment anyway: give this thread a frozen, empty
// plain object instead, so the check is an ordinary miss and nothing of the host's leaks.
Object.defineProperty(process, 'env', { value: Object.freeze(Object.create(null)), writable: false, configurable: false });

const port = parentPort;
if (!port) throw new Error('capsule-worker.ts runs only as a worker thread');

/**
 * A worker is started either for one capsule (its `WorkerInit` in workerData) or as the runtime's
 * spare, which waits for the capsule it will serve (a message), so that a new instance does not
 * wait for a thread, an isolate and module loading (see `Runtime.takeSpare`). A spare that has
 * waited this long loads the capability modules meanwhile.
 */
const PRELOAD_AFTER_MS = 500;

/**
 * A `reclaim` is answered after watching the running request this long: the requests behind it
 * are handed back only if it is still the one running and its event loop mostly waited for I/O, that
 * is, it waits on a backend. A Redis on the same machine answers in about 0.1 ms, a remote API in
 * tens or hundreds. Watching the clock only when asked costs the requests nothing (a wrapper on
 * every JSPI import that kept it cost a JS capsule on Redis 35% of its requests per second).
 */
const RECLAIM_WATCH_MS = 5;
/**
 * The share of the watch the thread's event loop spent outside its wait for I/O, below which the
 * request counts as waiting. Not the thread's CPU time: a thread that computes but waits for the
 * core (other threads have it) uses little CPU time too, which reads as waiting on a backend,
 * and each such answer lets the capsule start another thread on that core; the event loop counts
 * that time as busy. Measured alone (a thread computing in 0.5 ms slices and 8 threads spinning,
 * all on one core, 40 watches of 5 ms): CPU time called it waiting twice, the event loop never;
 * a thread waiting on a 100 ms timer was called waiting 39 and 40 times.
 */
const RECLAIM_IDLE_SHARE = 0.2;
/**
 * A synchronous guest's sleep at least this long hands the requests behind it back to the host
 * (see `SleepWatch`), as a `reclaim` does for a guest that suspends: it holds its thread for the
 * sleep, and they would wait with it.
 */
const SLEEP_HANDBACK_MS = RECLAIM_WATCH_MS;

/** jco's glue module: `instantiate` sets up a component's canonical ABI and instantiates its core modules. */
interface Glue {
  instantiate: (
    getCoreModule: (name: string) => WebAssembly.Module,
    imports: ImportObjects,
    instantiateCore: (module: WebAssembly.Module, imports?: WebAssembly.Imports) => WebAssembly.Instance,
  ) => Record<string, unknown> | Promise<Record<string, unknown>>;
}

/** The glue this thread loaded while it waited as a spare, if any. */
let preloadedGlue: string | undefined;

/** The glue whose set-up this thread rehearsed while it waited as a spare (`rehearse`). */
let rehearsedGlue: string | undefined;

/** Memories this thread made while it waited as a spare, for the component of `glue` (see `HostedMemory`). */
let pretouched: { glue: string; memories: Map<string, { plan: HostedMemory; memory: WebAssembly.Memory }> } | undefined;

/** Pages written between turns of the event loop (1 MiB): a capsule's `init` waits at most one slice. */
const PAGES_PER_SLICE = 256;

/**
 * Makes `plans`' memories and writes one byte of each page their data segments will fill, so that
 * the instance's instantiation finds them backed (on a small VM the first write to a page costs
 * 80-100 times a later one). Stops early, keeping what it made, once a capsule has come.
 */
async function pretouch(glue: string, plans: Record<string, HostedMemory>, stop: () => boolean): Promise<void> {
  const memories = new Map<string, { plan: HostedMemory; memory: WebAssembly.Memory }>();
  pretouched = { glue, memories };
  let written = 0;
  for (const [name, plan] of Object.entries(plans)) {
    const memory = new WebAssembly.Memory({ initial: plan.initial, maximum: plan.maximum });
    memories.set(name, { plan, memory });
    const bytes = new Uint8Array(memory.buffer);
    for (const [start, end] of plan.touch) {
      for (let at = start; at < end; at += OS_PAGE) {
        bytes[at] = 0;
        if (++written % PAGES_PER_SLICE === 0) {
          await new Promise(setImmediate);
          if (stop()) return;
        }
      }
    }
  }
}

const REHEARSAL_END = new Error('the rehearsal ends before the first core module');

/**
 * Runs `glue`'s set-up with stand-in imports up to its first core module, which it is refused,
 * so that V8 compiles the thousands of lines of jco's runtime and trampolines that run before
 * it: Node.js's code cache keeps only what compiled when a module loaded, so the functions
 * `instantiate` calls compiled in each new thread (0.4-0.6 ms of a tiny instance's 4-5 ms start,
 * about 1 ms of a JS capsule's 10 ms, on the EPYC VM in a slow spell). No core module is
 * instantiated, so no guest code runs, and nothing of a capsule is there yet. True when it got
 * as far as the first core module.
 */
async function rehearse(glue: Glue): Promise<boolean> {
  const standIn = () => {};
  const anyMember = new Proxy({}, { get: () => standIn });
  const anyInterface = new Proxy({}, { get: () => anyMember }) as ImportObjects;
  try {
    await glue.instantiate(
      () => ({}) as WebAssembly.Module,
      anyInterface,
      () => {
        throw REHEARSAL_END;
      },
    );
  } catch (error) {
    return error === REHEARSAL_END;
  }
  return false;
}

async function capsuleInit(): Promise<WorkerInit> {
  const boot = workerData as WorkerBoot;
  if (boot.init) return boot.init;
  let received: WorkerInit | undefined;
  let modules = boot.preload ?? [];
  let glue = boot.preloadGlue;
  let memories = boot.preloadMemories;
  let round = 0;
  let waited = false;
  let loading: Promise<void> | undefined;
  // One module at a time, and none once a capsule has come: while a dynamic import is under way
  // the port's messages wait, and a spare taken then (installs one after another) made its
  // capsule wait for every capability's backends.
  const load = async () => {
    const loadingRound = round;
    for (const url of modules) {
      if (received) return;
      await import(url).catch(() => {});
    }
    if (glue && !received) {
      const url = glue;
      const loaded = await import(url).then(
        (module: Glue) => {
          preloadedGlue = url;
          return module;
        },
        () => undefined,
      );
      if (loaded && !received && (await rehearse(loaded))) rehearsedGlue = url;
      // A memory it cannot make (limits the capsule's start refuses anyway) is made by nobody ahead.
      if (memories && !received && pretouched?.glue !== url) await pretouch(url, memories, () => received !== undefined).catch(() => {});
    }
    if (!received) port?.postMessage({ type: 'preloaded', round: loadingRound } satisfies FromWorker);
  };
  const loadAgain = () => {
    loading = (loading ?? Promise.resolve()).then(load);
  };
  const message = new Promise<WorkerInit>((resolve) => {
    const onMessage = (next: ToSpare) => {
      if (next.type === 'preload') {
        // What to load changed (a restarted host has restored its capsules): loaded already is
        // loaded, the rest follows if the spare has waited long enough.
        modules = next.modules;
        glue = next.glue;
        memories = next.memories;
        round = next.round;
        if (waited) loadAgain();
        return;
      }
      port?.off('message', onMessage);
      received = next.init;
      resolve(next.init);
    };
    port?.on('message', onMessage);
  });
  // Only once the spare has waited a while.
  setTimeout(() => {
    waited = true;
    loadAgain();
  }, PRELOAD_AFTER_MS).unref();
  return message;
}

const init = await capsuleInit();

/** Set when this instance's memory was one the thread made while it waited as a spare. */
let memoryPretouched = false;

setResponseBodyLimit(init.responseBodyBytes);
const cpuStart = init.cpuStart ? new BigInt64Array(init.cpuStart) : undefined;
const responseSignals = init.responseSignals ? new Int32Array(init.responseSignals) : undefined;
const bodyReader = init.bodyChannel
  ? new BodyReader(init.bodyChannel, () => port.postMessage({ type: 'consumed' } satisfies FromWorker))
  : undefined;

let current: (RequestScope & { id: number }) | undefined;
let batch: ResponseBatch | undefined;
let batchScheduled = false;
let logs: LogLine[] = [];

function pending(): ResponseBatch {
  if (!batch) {
    batch = { type: 'batch', id: current?.id ?? 0 };
    if (init.jspi && !batchScheduled) {
      // Under JSPI the request may suspend: send what is ready when the thread next idles.
      batchScheduled = true;
      queueMicrotask(() => flushBatch());
    }
  }
  return batch;
}

/** Batches on their way to the main thread, oldest first: several go in one message. */
let outbox: ResponseBatch[] = [];
let outboxScheduled = false;

/**
 * Hands what is ready to the main thread. `deferred` (a request's last batch) waits for the end
 * of this turn of the event loop, so that the answers to all the requests the main thread posted
 * together go back in one message: each message costs both threads a wake-up.
 */
function flushBatch(deferred = false): void {
  batchScheduled = false;
  const out = batch;
  batch = undefined;
  if (logs.length > 0) {
    if (out) out.logs = logs;
    else outbox.push({ type: 'batch', id: current?.id ?? 0, logs });
    logs = [];
  }
  if (out) outbox.push(out);
  if (!deferred) sendOutbox();
  else if (!outboxScheduled) {
    outboxScheduled = true;
    setImmediate(sendOutbox);
  }
}

function sendOutbox(): void {
  outboxScheduled = false;
  if (outbox.length === 0) return;
  const { message, transfer } = packBatches(outbox);
  outbox = [];
  port?.postMessage(message satisfies FromWorker, transfer);
}

setBeforeBlocking(() => flushBatch());

const FLUSH_AT = 64 * 1024;
/**
 * How far a response's body may go ahead of its client (bytes sent to the host and not yet on
 * their way to the client's socket): several of the 64 KiB batches, so that a client reading
 * steadily never waits on it.
 */
const RESPONSE_WINDOW_BYTES = 2 * 1024 * 1024;
/** A wait for the window looks again this often, whatever wakes it (a safety net: the host notifies). */
const WINDOW_RECHECK_MS = 1000;

/**
 * How much of its own log an instance may write: a burst, then a steady rate (lines and bytes,
 * whichever runs out first); past it lines are dropped and counted. Every line costs the main
 * thread its keeping and sending, and a capsule writing 200,000 lines in one request kept the
 * main thread so busy that the request's CPU limit was never checked (it ran 1.1 s against
 * 200 ms) while every other capsule's answers waited seconds.
 */
const LOG_LINES_PER_SECOND = init.logLinesPerSecond ?? 500;
const LOG_BURST_LINES = 4 * LOG_LINES_PER_SECOND;
/** Bytes, as many KiB as lines: a line may be 16 KiB, and most are well under one. */
const LOG_BYTES_PER_SECOND = 1024 * LOG_LINES_PER_SECOND;
const LOG_BURST_BYTES = 4 * LOG_BYTES_PER_SECOND;
let logLines = LOG_BURST_LINES;
let logBytes = LOG_BURST_BYTES;
let logRefilledAt = performance.now();
let logDropped = 0;

function logAllowed(bytes: number): boolean {
  const now = performance.now();
  const seconds = (now - logRefilledAt) / 1000;
  logRefilledAt = now;
  logLines = Math.min(LOG_BURST_LINES, logLines + seconds * LOG_LINES_PER_SECOND);
  logBytes = Math.min(LOG_BURST_BYTES, logBytes + seconds * LOG_BYTES_PER_SECOND);
  if (logLines < 1 || logBytes < bytes) return false;
  logLines -= 1;
  logBytes -= bytes;
  return true;
}

/** Says how many lines were dropped since the last line kept, before the next kept line or at a request's end. */
function noteDropped(): void {
  if (logDropped === 0) return;
  const count = logDropped;
  logDropped = 0;
  logs.push({
    level: 'warn',
    message: `${count} log ${count === 1 ? 'line was' : 'lines were'} dropped here: the capsule wrote more than the host keeps (${LOG_BURST_LINES} lines at once, then ${LOG_LINES_PER_SECOND} a second, [limits] log_lines in host.toml)`,
    source: 'host',
    ...(current ? { requestId: current.requestId } : {}),
  });
}

function log(level: LogLine['level'], message: string, source = 'host'): void {
  // The host's own lines about the instance are few, and say what the capsule's do not.
  if (source !== 'host' && !logAllowed(message.length)) {
    logDropped++;
    return;
  }
  noteDropped();
  logs.push({ level, message, source, ...(current ? { requestId: current.requestId } : {}) });
  if (logs.length >= 256) flushBatch();
}

/** Collects one response into batches for the main thread. */
class Exchange implements ResponseReceiver {
  readonly #id: number;
  #sent = 0;
  #buffered = 0;
  headSet = false;
  ended = false;
  cutOff = false;

  constructor(id: number) {
    this.#id = id;
  }

  /**
   * Waits, before more of the body goes, while the client is more than `RESPONSE_WINDOW_BYTES`
   * behind (`Capsule.accepted` in runtime.ts): what is pending goes out first, then the thread
   * waits for the host to say the client took some, or that it left. The request's own limits
   * still apply (ending the instance ends the wait).
   */
  #waitForWindow(): void {
    if (!responseSignals) return;
    const id = this.#id | 0;
    const behind = () =>
      this.#sent -
      (Atomics.load(responseSignals, RESPONSE_ACCEPTED_ID) === id ? Atomics.load(responseSignals, RESPONSE_ACCEPTED_KIB) * 1024 : 0);
    if (behind() <= RESPONSE_WINDOW_BYTES) return;
    flushBatch();
    for (;;) {
      // Read before the check: a change after it then ends the wait at once.
      const seen = Atomics.load(responseSignals, RESPONSE_ACCEPTED_KIB);
      if (behind() <= RESPONSE_WINDOW_BYTES || this.gone()) return;
      Atomics.wait(responseSignals, RESPONSE_ACCEPTED_KIB, seen, WINDOW_RECHECK_MS);
    }
  }

  gone(): boolean {
    return responseSignals !== undefined && Atomics.load(responseSignals, RESPONSE_GONE) === (this.#id | 0);
  }

  head(status: number, headers: [string, Uint8Array][]): void {
    this.headSet = true;
    const flat: string[] = [];
    for (const [name, value] of headers) flat.push(name, headerValueText(value));
    pending().head = { status, headers: flat };
  }

  failed(error: ErrorCode): void {
    this.headSet = true;
    pending().failed = error.tag;
  }

  capacity(): number {
    return this.gone() ? 0 : Math.max(0, init.responseBodyBytes - this.#sent);
  }

  chunk(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#waitForWindow();
    this.#sent += bytes.length;
    this.#buffered += bytes.length;
    const out = pending();
    if (out.chunks) out.chunks.push(bytes);
    else out.chunks = [bytes];
    if (this.#buffered >= FLUSH_AT) {
      this.#buffered = 0;
      flushBatch();
    }
  }

  flush(): void {}

  end(): void {
    // A response cut off at its limit must not end cleanly: the client would take it as whole.
    if (this.cutOff) return;
    this.ended = true;
    pending().end = true;
  }

  overLimit(): void {
    if (this.cutOff) return;
    this.cutOff = true;
    pending().limit = 'response-body';
  }
}

function wrapUnexpected(prepared: PreparedCapability, name: string): ImportObjects {
  const mapError = prepared.unexpectedError;
  if (!mapError) return prepared.imports;
  const wrapped: ImportObjects = {};
  for (const [iface, members] of Object.entries(prepared.imports)) {
    const out: Record<string, unknown> = {};
    for (const [member, value] of Object.entries(members)) {
      if (typeof value !== 'function' || /^[A-Z]/.test(member)) {
        out[member] = value;
        continue;
      }
      const fn = value as (...args: unknown[]) => unknown;
      const convert = (error: unknown): never => {
        if (error !== null && typeof error === 'object' && Object.hasOwn(error, 'payload')) throw error;
        log('error', `${name}: ${iface}#${member} failed: ${error instanceof Error ? error.message : String(error)}`);
        throw { payload: mapError(error, { interface: iface, function: member }) };
      };
      out[member] = (...args: unknown[]) => {
        try {
          const result = fn(...args);
          if (result instanceof Promise) return result.catch(convert);
          return result;
        } catch (error) {
          return convert(error);
        }
      };
    }
    wrapped[iface] = out;
  }
  return wrapped;
}

type Handle = (request: IncomingRequest, outparam: ResponseOutparam) => unknown;

const memories: WebAssembly.Memory[] = [];
const prepared: PreparedCapability[] = [];
const loaded: Capability[] = [];

async function start(): Promise<Handle> {
  const imports: ImportObjects = {};
  for (const plan of init.capabilities) {
    const module = (await import(plan.module)) as { default: Capability };
    const capability = module.default;
    loaded.push(capability);
    const context: PrepareContext<unknown> = {
      capsule: init.capsule,
      settings: plan.settings,
      dataDir: plan.dataDir,
      logger: operatorLogger(capability.name),
      currentRequest: () => current,
      log: (level, message, source) => log(level, message, source ?? capability.name),
      quotaExceeded: (message) => {
        logs.push({
          level: 'warn',
          message,
          source: capability.name,
          quota: capability.name,
          ...(current ? { requestId: current.requestId } : {}),
        });
      },
    };
    const ready = await capability.prepare(context);
    prepared.push(ready);
    for (const [name, members] of Object.entries(wrapUnexpected(ready, capability.name))) {
      if (imports[name]) throw new Error(`two capabilities serve ${name}`);
      imports[name] = members;
    }
  }
  const glue = (await import(init.glueUrl)) as Glue;
  const getCoreModule = (name: string) => {
    const module = init.modules[name];
    if (!module) throw new Error(`the glue asked for an unknown core module ${name}`);
    return module;
  };
  // Modules whose own memory the host creates: the spare's, if it made it for this component.
  const hosted = new Map<WebAssembly.Module, [string, HostedMemory]>();
  for (const [name, plan] of Object.entries(init.hostedMemories ?? {})) {
    const module = init.modules[name];
    if (module) hosted.set(module, [name, plan]);
  }
  const memoryFor = (name: string, plan: HostedMemory): WebAssembly.Memory => {
    const made = pretouched?.glue === init.glueUrl ? pretouched.memories.get(name) : undefined;
    if (made && made.plan.initial === plan.initial && made.plan.maximum === plan.maximum) {
      // Each made memory serves one instance.
      pretouched?.memories.delete(name);
      memoryPretouched = true;
      return made.memory;
    }
    return new WebAssembly.Memory({ initial: plan.initial, maximum: plan.maximum });
  };
  // Synchronous instantiation: the modules are compiled already, and it saves a turn per module.
  const instantiateCore = (module: WebAssembly.Module, moduleImports?: WebAssembly.Imports) => {
    const memory = hosted.get(module);
    const linked = memory
      ? { ...moduleImports, [HOST_MEMORY_IMPORT.module]: { [HOST_MEMORY_IMPORT.name]: memoryFor(...memory) } }
      : moduleImports;
    const instance = new WebAssembly.Instance(module, linked);
    for (const value of Object.values(instance.exports)) if (value instanceof WebAssembly.Memory) memories.push(value);
    return instance;
  };
  const exports = await glue.instantiate(getCoreModule, imports, instantiateCore);
  pretouched = undefined;
  const key = Object.keys(exports).find((name) => name.startsWith('wasi:http/incoming-handler@'));
  const handler = (key ? exports[key] : exports.incomingHandler) as { handle?: Handle } | undefined;
  if (typeof handler?.handle !== 'function') throw new Error('the component does not export wasi:http/incoming-handler#handle');
  return handler.handle;
}

function memoryBytes(): number {
  let total = 0;
  for (const memory of memories) total += memory.buffer.byteLength;
  return total;
}

function cpuMicros(): number {
  const usage = process.threadCpuUsage();
  return usage.user + usage.system;
}

const noop = () => {};

/**
 * The logger a capability gets: what its backends report (a connection lost, a server's error)
 * goes to the host's log with the capsule named, as operator lines, not to the capsule's log,
 * whose owner has no business with the host's addresses. Sent at once when no request is running,
 * with the next batch otherwise. Trace and debug lines stay here.
 */
function operatorLogger(source: string, bindings: Record<string, unknown> = {}): Logger {
  const at =
    (level: LogLine['level']): LogFn =>
    (first: Record<string, unknown> | string, message?: string) => {
      const [fields, text] = typeof first === 'string' ? [bindings, first] : [{ ...bindings, ...first }, message ?? ''];
      logs.push({ level, message: text, source, operator: true, fields, ...(current ? { requestId: current.requestId } : {}) });
      if (!current || logs.length >= 256) flushBatch();
    };
  return {
    trace: noop,
    debug: noop,
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('critical'),
    child: (more) => operatorLogger(source, { ...bindings, ...more }),
  };
}

/** Set when the instance trapped: it serves nothing more, and the host retires it. */
let broken = false;

/**
 * The thread's CPU clock as the last request ended, while the next waits in the queue: that one
 * starts from it. Reading the clock costs a system call (about 1.6 us on a VM, a tenth of a tiny
 * request), and the microseconds between two requests are the next one's overhead anyway.
 */
let cpuCarried: number | undefined;

async function serve(handle: Handle, message: RequestMessage): Promise<void> {
  // The host re-queues what was posted behind a request that trapped; nothing is answered here.
  if (broken) return;
  const cpuBefore = cpuCarried ?? cpuMicros();
  cpuCarried = undefined;
  const endings: (() => void)[] = [];
  current = {
    id: message.id,
    requestId: message.requestId,
    domain: message.domain,
    outboundRemaining: message.outboundRequests,
    atEnd: (work) => {
      endings.push(work);
    },
  };
  const exchange = new Exchange(message.id);
  if (cpuStart) {
    Atomics.store(cpuStart, 0, BigInt(cpuBefore));
    Atomics.store(cpuStart, 1, BigInt(message.id));
  }
  let trapped: string | undefined;
  try {
    const request = new IncomingRequest({
      method: message.method,
      pathWithQuery: message.path,
      scheme: message.scheme,
      authority: message.authority,
      headers: message.headers,
      body: message.body && bodyReader ? bodyReader : [],
    });
    const result = handle(request, new ResponseOutparam(exchange));
    if (result instanceof Promise) await result;
  } catch (error) {
    trapped = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    broken = true;
  }
  noteDropped();
  const out = pending();
  const cpuAfter = cpuMicros();
  cpuCarried = cpuAfter;
  out.done = {
    cpuMicros: cpuAfter - cpuBefore,
    memoryBytes: memoryBytes(),
    ...(trapped ? { trap: trapped } : {}),
  };
  flushBatch(true);
  current = undefined;
  for (const work of endings) work();
}

async function shutdown(): Promise<void> {
  for (const ready of prepared) await ready.close?.();
  for (const capability of loaded) await capability.shutdown?.();
  sendOutbox();
  port?.postMessage({ type: 'closed' } satisfies FromWorker);
}

start().then(
  (handle) => {
    // Requests run one at a time, in order; those not started yet can be handed back (`reclaim`).
    const waiting: (RequestMessage | { type: 'shutdown' })[] = [];
    let running = false;
    const run = async () => {
      running = true;
      for (let next = waiting.shift(); next; next = waiting.shift()) {
        if (next.type === 'shutdown') await shutdown();
        else await serve(handle, next);
      }
      // Idle from here: the next request reads the clock afresh.
      cpuCarried = undefined;
      running = false;
    };
    // Says whether, watched a moment, the request running waits; if so, hands back those not started yet.
    const reclaim = () => {
      const request = current?.id;
      const loopBefore = performance.eventLoopUtilization();
      setTimeout(() => {
        const idle = performance.eventLoopUtilization(loopBefore).utilization < RECLAIM_IDLE_SHARE;
        const waits = request !== undefined && current?.id === request && idle;
        const ids: number[] = [];
        for (let index = waiting.length - 1; waits && index >= 0; index--) {
          const one = waiting[index];
          if (one?.type !== 'request') continue;
          ids.unshift(one.id);
          waiting.splice(index, 1);
        }
        port.postMessage({ type: 'reclaimed', ids, waits } satisfies FromWorker);
      }, RECLAIM_WATCH_MS);
    };
    // The main thread posts the requests it took in one turn together (see `ToWorker`).
    // All of a message's requests are queued before the first runs: a guest that sleeps blocks
    // the thread inside `run`, and hands back only what is queued.
    const receive = (message: ToWorker) => {
      if (message.type === 'reclaim') return reclaim();
      if (message.type === 'requests') waiting.push(...unpackRequests(message));
      else waiting.push(message);
      if (!running) void run();
    };
    port.on('message', receive);
    // While the guest sleeps the event loop is blocked: the messages that came are read here,
    // and the requests not started go back, with word that this instance waits. Said once per
    // request when there is nothing to hand back: the host then lets the capsule have the
    // instances of one that waits (`asyncInstancesPerCapsule`).
    let saidAsleep: number | undefined;
    if (init.sleepCell) {
      setSleepWatch({
        cell: new Int32Array(init.sleepCell),
        minMs: SLEEP_HANDBACK_MS,
        asleep: () => {
          // Only a request's sleep: taking a message when no request runs would start one here.
          if (!running) return;
          for (let next = receiveMessageOnPort(port); next; next = receiveMessageOnPort(port)) receive(next.message as ToWorker);
          const ids: number[] = [];
          for (let index = waiting.length - 1; index >= 0; index--) {
            const one = waiting[index];
            if (one?.type !== 'request') continue;
            ids.unshift(one.id);
            waiting.splice(index, 1);
          }
          if (ids.length === 0 && saidAsleep === current?.id) return;
          saidAsleep = current?.id;
          port.postMessage({ type: 'reclaimed', ids, waits: true } satisfies FromWorker);
        },
      });
    }
    port.postMessage({
      type: 'ready',
      memoryBytes: memoryBytes(),
      gluePreloaded: preloadedGlue === init.glueUrl,
      glueRehearsed: rehearsedGlue === init.glueUrl,
      memoryPretouched,
    } satisfies FromWorker);
    // The code cache is written at exit, and capsule workers are terminated rather than
    // exiting: write it now, after the answer that matters, for the next instance.
    if (init.compileCacheDir) setImmediate(flushCompileCache);
  },
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    // A store that could not open (`BackendUnavailableError`): its status shows what a registrar
    // may read, and the host's log the backend's address and cause.
    const shown = (error as { shown?: unknown } | null)?.shown;
    port.postMessage(
      (typeof shown === 'string' ? { type: 'failed', message: shown, detail: message } : { type: 'failed', message }) satisfies FromWorker,
    );
  },
);
