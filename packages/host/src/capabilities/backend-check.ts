import { Worker } from 'node:worker_threads';
import { errorMessage, type Logger } from '@stratum/core';
import { type BackendPlace, describePlace, openForInstance } from './backend-failure.ts';
import { bucketBackendChecks } from './bucket/index.ts';
import { keyValueBackendChecks } from './keyvalue/index.ts';
import { sqlBackendChecks } from './sql/index.ts';

/**
 * Whether host.toml's backends answer, told when the host starts. The tables' format is checked
 * before anything starts (`checkCapabilityConfig`), but a Redis that was down, a wrong password or
 * a bucket that does not exist showed only when a capsule's instance failed to start on a request
 * (an operator's walkthrough: `"restored":3,"failed":0`, then 503s). So each backend that is not
 * embedded gets one cheap call that needs the host's credentials, and one log line per table.
 * The host starts and serves whatever they answer: other capsules use other backends, and a
 * backend may come up after the host.
 *
 * The calls run on a thread of their own (backend-check-worker.ts): the client libraries take 40
 * to 150 ms each to load, which the thread serving the first requests would otherwise spend, and
 * would then keep for good.
 */
export interface BackendCheck {
  /** The backend as a failed instance start names it; its table is `[<capability>.<label>]`. */
  place: BackendPlace;
  /** Loads the client library the probe uses: its time (up to 150 ms) is not the backend's. */
  load(): Promise<unknown>;
  /** One cheap call that needs the host's credentials; makes nothing, closes what it opened, and gives up when `signal` aborts. */
  probe(signal: AbortSignal): Promise<void>;
}

/** How long one backend has to answer: a few seconds, as a client's own connect timeout would be. */
export const BACKEND_CHECK_MS = 5000;

/** host.toml's backend sections, as `HostConfig['capabilities']` holds them. */
export interface BackendSections {
  keyvalue?: unknown;
  sql?: unknown;
  bucket?: unknown;
}

/** A table's outcome, as the checking thread reports it to the host's. */
export interface BackendCheckResult {
  level: 'info' | 'warn';
  table: string;
  type: string;
  ms: number;
  message: string;
}

/** Each table's check, from the capability that owns it; embedded backends have none. */
export function backendChecks(sections: BackendSections): BackendCheck[] {
  return [...keyValueBackendChecks(sections.keyvalue), ...sqlBackendChecks(sections.sql), ...bucketBackendChecks(sections.bucket)];
}

/** The backend tables of `next` that `running` does not have as they are: what a reload has to check. */
export function changedBackendTables(running: BackendSections, next: BackendSections): BackendSections {
  const changed: BackendSections = {};
  for (const capability of ['keyvalue', 'sql', 'bucket'] as const) {
    const before = (running[capability] ?? {}) as Record<string, unknown>;
    const tables = Object.entries((next[capability] ?? {}) as Record<string, unknown>).filter(
      ([label, table]) => JSON.stringify(before[label]) !== JSON.stringify(table),
    );
    if (tables.length > 0) changed[capability] = Object.fromEntries(tables);
  }
  return changed;
}

/** Runs every check at once, each given `timeoutMs`, and reports each table as it is done. */
export async function runBackendChecks(
  checks: readonly BackendCheck[],
  timeoutMs: number,
  report: (result: BackendCheckResult) => void,
): Promise<void> {
  // Every library first: one loading would otherwise count in the time of another's call.
  await Promise.allSettled(checks.map((check) => check.load()));
  await Promise.all(checks.map(async (check) => report(await checkOne(check, timeoutMs))));
}

async function checkOne({ place, load, probe }: BackendCheck, timeoutMs: number): Promise<BackendCheckResult> {
  const table = `${place.capability}.${place.label}`;
  const started = performance.now();
  const giveUp = new AbortController();
  const tooLate = new Error(`no answer within ${timeoutMs / 1000} s`);
  let timer: NodeJS.Timeout | undefined;
  // Raced rather than trusted to the probe: a client may take its time to settle once aborted.
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(tooLate);
      giveUp.abort(tooLate);
    }, timeoutMs);
  });
  try {
    // openForInstance words the failure as an instance start would, credentials masked.
    await openForInstance(place, async () => {
      await load();
      await Promise.race([probe(giveUp.signal), late]);
      // A probe that ends quietly when aborted has not answered.
      giveUp.signal.throwIfAborted();
    });
    const ms = Math.round(performance.now() - started);
    return { level: 'info', table, type: place.type, ms, message: `[${table}] ${describePlace(place)} answers (${ms} ms)` };
  } catch (error) {
    const ms = Math.round(performance.now() - started);
    const message = `[${table}] ${errorMessage(error).replace(/\.$/, '')}; capsules granted it fail to start until it answers`;
    return { level: 'warn', table, type: place.type, ms, message };
  } finally {
    clearTimeout(timer);
  }
}

/** Checks under way: `done` settles once each table is logged, or `stop` ended them. */
export interface BackendCheckRun {
  done: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Checks the backends of `sections` in the background, on a thread of its own, and logs one line
 * per table: info when it answers, warn with the cause when it does not. Starts no thread, and
 * loads no client library, when every table is embedded.
 *
 * @example
 * const checks = startBackendChecks(config.capabilities, { logger });
 * // ... at close:
 * await checks.stop();
 */
export function startBackendChecks(sections: BackendSections, options: { logger: Logger; timeoutMs?: number }): BackendCheckRun {
  let left = backendChecks(sections).length;
  if (left === 0) return { done: Promise.resolve(), stop: async () => {} };
  const { logger } = options;
  const worker = new Worker(new URL('./backend-check-worker.ts', import.meta.url), {
    workerData: {
      sections: { keyvalue: sections.keyvalue, sql: sections.sql, bucket: sections.bucket },
      timeoutMs: options.timeoutMs ?? BACKEND_CHECK_MS,
    },
  });
  // The checks never keep a host's process alive, nor its thread once every table is told.
  worker.unref();
  const done = new Promise<void>((resolve) => {
    worker.on('message', (result: BackendCheckResult) => {
      logger[result.level]({ table: result.table, backend: result.type, ms: result.ms }, result.message);
      if (--left === 0) void worker.terminate();
    });
    worker.on('error', (error) => logger.warn({ err: errorMessage(error) }, 'checking the backends in host.toml failed'));
    worker.on('exit', () => resolve());
  });
  return {
    done,
    async stop() {
      await worker.terminate();
      await done;
    },
  };
}
