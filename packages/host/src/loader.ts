import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  JS_SOURCE_MAP_SECTION,
  type Logger,
  readCustomSection,
  SOURCE_MAP_MAX_BYTES,
  StratumError,
  silentLogger,
  sourceMapScript,
} from '@stratum/core';
import { eagerInstantiate } from './glue.ts';
import type { InstallRequest } from './runtime-types.ts';
import type { ComponentWorld, TranspileWorkerJob, TranspileWorkerReply } from './transpile-worker.ts';
import { applyMemoryCaps, MAX_COMPONENT_TABLE_ELEMENTS, MAX_TABLE_ELEMENTS, type MemoryCapSlot, prepareMemoryCaps } from './wasm-memory.ts';

/**
 * The loader: component bytes in (a local path or bytes handed over), digest verified before
 * anything else, then jco's transpile in a worker thread, cached on disk by digest so that a
 * restarted host never transpiles again, then core modules compiled once (memory capped) and
 * shared by every worker that runs them.
 */

/** Part of the cache key: another jco makes other glue. Its exports hide package.json, so go via its entry. */
const JCO_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.resolve('@bytecodealliance/jco')), 'utf8')) as { version: string }
).version;

export interface LoadedComponent {
  digest: string;
  /** The bytes, checked against the digest; a stored component reads them only when called. */
  bytes(): Promise<Uint8Array>;
}

export interface TranspiledComponent {
  /** The cache key: digest, jco version and async mode. */
  key: string;
  glueUrl: string;
  /** Core module file names, as the glue asks for them. */
  coreModules: string[];
  /** Each core module's memory maximums, capped in place at compile time (`prepareMemoryCaps`). */
  memoryCaps: Record<string, MemoryCapSlot[]>;
  jspi: boolean;
  dir: string;
  /**
   * The component's JavaScript source map (`JS_SOURCE_MAP_SECTION`), kept beside the core modules
   * in the cache: the script its frames name, and the file. Read only when a log line names it.
   */
  sourceMap?: { file: string; path: string };
}

/**
 * Compiled sets kept after their last holder lets go: for JS capsules (about 4.6 MiB each) 16 is
 * about 74 MiB, against 4.6 GiB for a thousand installed, idle JS capsules holding theirs.
 */
const KEEP_IDLE_COMPILED = 16;

interface CompiledSet {
  modules: Promise<Record<string, WebAssembly.Module>>;
  holders: number;
}

/** A hold on compiled core modules (see `Loader.acquire`); `release` may be called more than once. */
export interface ModuleLease {
  modules: Promise<Record<string, WebAssembly.Module>>;
  release(): void;
}

export interface LoaderStats {
  transpiles: number;
  inspections: number;
  cacheHits: number;
  /** Transpile worker threads started: one at a time, ended after a while idle. */
  transpileWorkersStarted: number;
  /** Sets of core modules compiled (see `Loader.acquire`). */
  compiles: number;
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function digestMismatch(digest: string, expected: string): StratumError {
  return new StratumError('DIGEST_MISMATCH', `the component's digest is ${digest}, not ${expected} as the manifest says`, {
    hint: 'The component was changed or corrupted after the manifest was written; rebuild or pull it again.',
  });
}

function checkComponent(bytes: Uint8Array): void {
  if (bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d || bytes[6] !== 0x01 || bytes[4] !== 0x0d) {
    throw new StratumError('NOT_A_COMPONENT', 'the capsule is not a WebAssembly component (a core module or another file was given)', {
      hint: 'Capsules are components (WASI 0.2); build with `stratum build` or `wasm-tools component new`.',
    });
  }
}

/**
 * jco's hybrid import bindings: an import whose host function carries `Symbol.for('cabiLower')`
 * (capabilities/canonical-abi.ts) is called straight from WebAssembly, without the task
 * bookkeeping jco's glue does on every call (about 6 us of a 28 us keyvalue get); the others get
 * jco's ordinary bindings. Part of the cache key: the glue differs.
 */
const IMPORT_BINDINGS = 'hybrid';

/**
 * Part of the cache key: the core modules on disk are stored prepared for capping (`memoryCaps` in
 * meta.json), with their own memory imported from the host where it can be (`hostMemory`), and
 * their tables capped (`MAX_TABLE_ELEMENTS`).
 */
const CORE_MODULE_FORMAT = 'memory-cap-slots, hosted memory, table caps';

/** The component's JavaScript source map, in its transpile cache entry. */
const SOURCE_MAP_FILE = 'source-map.json';
/** jco's glue module, named after the `name: 'capsule'` the transpile worker gives jco. */
const GLUE_FILE = 'capsule.js';
/**
 * The glue as stored. `.mjs`, because a cache directory inside a project whose package.json says
 * `"type": "commonjs"` (as `npm init -y` writes) would make Node.js load a `.js` file as CommonJS,
 * and jco's ES module then fails with "Unexpected token 'export'". Part of the cache key.
 */
const GLUE_STORED_FILE = 'capsule.mjs';
/** Transpile cache entries no installed capsule uses that `pruneCache` keeps, the most recently used. */
const KEEP_UNUSED_TRANSPILED = 8;

export class Loader {
  readonly stats: LoaderStats = { transpiles: 0, inspections: 0, cacheHits: 0, transpileWorkersStarted: 0, compiles: 0 };
  readonly #cacheDir: string;
  readonly #logger: Logger;
  #worker: Worker | undefined;
  #workerIdle: NodeJS.Timeout | undefined;
  #nextJob = 1;
  readonly #jobs = new Map<number, { resolve: (reply: TranspileWorkerReply) => void; reject: (error: Error) => void }>();
  readonly #compiled = new Map<string, CompiledSet>();
  /** Compiled sets no capsule holds, the most recently let go last (see `acquire`). */
  readonly #kept = new Map<string, CompiledSet>();
  readonly #keepIdleCompiled: number;
  readonly #inFlight = new Map<string, Promise<unknown>>();
  #swept = false;

  readonly #transpileIdleMs: number;

  /**
   * `transpileIdleMs`: how long the transpile worker may wait for another job before it is ended
   * (default 10 s). `keepIdleCompiled`: compiled sets kept after their last holder lets go
   * (default 16).
   */
  constructor(options: { cacheDir: string; logger?: Logger; transpileIdleMs?: number; keepIdleCompiled?: number }) {
    this.#cacheDir = options.cacheDir;
    this.#keepIdleCompiled = options.keepIdleCompiled ?? KEEP_IDLE_COMPILED;
    this.#transpileIdleMs = options.transpileIdleMs ?? 10_000;
    this.#logger = options.logger ?? silentLogger;
  }

  /** Reads the component and checks it against the manifest's digest before anything else. */
  async read(request: InstallRequest): Promise<LoadedComponent> {
    const source = request.manifest.source;
    const expected = source.digest;
    const stored = request.storedComponent;
    if (stored) {
      // The digest the caller's store checked when it stored the bytes: the caches are keyed by it,
      // and the bytes are needed (and hashed again) only when a cache misses.
      if (expected !== undefined && expected !== stored.digest) throw digestMismatch(stored.digest, expected);
      let loading: Promise<Uint8Array> | undefined;
      const bytes = () => {
        loading ??= stored.read().then((read) => {
          const digest = sha256Digest(read);
          if (digest !== stored.digest) {
            throw new StratumError(
              'DIGEST_MISMATCH',
              `the stored component ${stored.digest} was changed on disk: its digest is ${digest}`,
              {
                hint: 'Install the capsule again, from its registry or with its bytes.',
              },
            );
          }
          checkComponent(read);
          return read;
        });
        return loading;
      };
      return { digest: stored.digest, bytes };
    }
    let bytes: Uint8Array;
    if (request.component) bytes = request.component;
    else if (source.kind === 'wasm') {
      const path = resolve(request.baseDir ?? process.cwd(), source.wasm);
      try {
        bytes = await readFile(path);
      } catch (error) {
        throw new StratumError('COMPONENT_NOT_FOUND', `cannot read the component ${path}`, {
          details: [(error as Error).message],
          hint: 'Build the capsule first (`stratum build`), or pass the component bytes with the install request.',
          cause: error,
        });
      }
    } else {
      throw new StratumError(
        'COMPONENT_NOT_GIVEN',
        `the component ${source.registry} must be pulled from its registry and passed with the install request`,
        {
          hint: 'Pull it first (`stratum pull <oci-ref>@<digest>`) and install it with its bytes, or install through a host that pulls (`stratum host start`).',
        },
      );
    }
    const digest = sha256Digest(bytes);
    if (expected !== undefined && expected !== digest) throw digestMismatch(digest, expected);
    checkComponent(bytes);
    const read = bytes;
    return { digest, bytes: () => Promise.resolve(read) };
  }

  /** The component's imports and exports (cached by digest). */
  async inspect(component: LoadedComponent): Promise<ComponentWorld> {
    const file = join(this.#cacheDir, 'inspect', `${hexOf(component.digest)}.json`);
    const cached = await readJson<ComponentWorld>(file);
    if (cached) return cached;
    return this.#once(`inspect:${component.digest}`, async () => {
      this.stats.inspections++;
      const reply = await this.#run({ id: 0, op: 'inspect', bytes: await component.bytes() });
      if (!('world' in reply)) throw new Error('unexpected reply from the transpile worker');
      await writeAtomic(file, JSON.stringify(reply.world));
      return reply.world;
    });
  }

  /** Transpiles (or finds in the cache) the component with the async imports given. */
  async transpile(
    component: LoadedComponent,
    asyncImports: readonly string[],
    asyncExports: readonly string[],
  ): Promise<TranspiledComponent> {
    const sortedImports = [...new Set(asyncImports)].sort();
    const jspi = sortedImports.length > 0;
    const keyInput = JSON.stringify({
      digest: component.digest,
      jco: JCO_VERSION,
      asyncImports: sortedImports,
      asyncExports: jspi ? [...asyncExports].sort() : [],
      importBindings: IMPORT_BINDINGS,
      coreModules: CORE_MODULE_FORMAT,
      glue: GLUE_STORED_FILE,
      // Entries made before the source map was kept beside the modules lack it.
      sections: [JS_SOURCE_MAP_SECTION],
    });
    const key = `${hexOf(component.digest).slice(0, 32)}-${createHash('sha256').update(keyInput).digest('hex').slice(0, 16)}`;
    const dir = join(this.#cacheDir, 'transpiled', key);
    const metaFile = join(dir, 'meta.json');
    const meta = await readJson<{ coreModules: string[]; memoryCaps: Record<string, MemoryCapSlot[]>; sourceMapFile?: string }>(metaFile);
    const entry = (coreModules: string[], memoryCaps: Record<string, MemoryCapSlot[]>, sourceMapFile: string | undefined) => ({
      key,
      dir,
      glueUrl: pathToFileURL(join(dir, GLUE_STORED_FILE)).href,
      coreModules,
      memoryCaps,
      jspi,
      ...(sourceMapFile ? { sourceMap: { file: sourceMapFile, path: join(dir, SOURCE_MAP_FILE) } } : {}),
    });
    if (meta) {
      this.stats.cacheHits++;
      // When it was last used, for `pruneCache`.
      const now = new Date();
      utimes(metaFile, now, now).catch(() => {});
      return entry(meta.coreModules, meta.memoryCaps, meta.sourceMapFile);
    }
    return this.#once(`transpile:${key}`, async () => {
      this.stats.transpiles++;
      await this.#sweep();
      const started = performance.now();
      const bytes = await component.bytes();
      // Taken before the bytes go to the transpile worker. A map that names no script, or is
      // larger than any capsule's, is not kept.
      const mapBytes = readCustomSection(bytes, JS_SOURCE_MAP_SECTION);
      const mapText = mapBytes && mapBytes.length <= SOURCE_MAP_MAX_BYTES ? new TextDecoder().decode(mapBytes) : undefined;
      const sourceMapFile = mapText === undefined ? undefined : sourceMapScript(mapText);
      const reply = await this.#run({
        id: 0,
        op: 'transpile',
        bytes,
        asyncImports: sortedImports,
        asyncExports: [...asyncExports],
        importBindings: IMPORT_BINDINGS,
      });
      if (!('files' in reply)) throw new Error('unexpected reply from the transpile worker');
      const staging = `${dir}.${process.pid}.${Date.now()}.tmp`;
      await mkdir(staging, { recursive: true });
      const coreModules: string[] = [];
      const memoryCaps: Record<string, MemoryCapSlot[]> = {};
      let tableElements = 0;
      for (const [name, bytes] of Object.entries(reply.files)) {
        if (name.endsWith('.wasm')) {
          const prepared = prepareMemoryCaps(bytes, { hostMemory: true });
          tableElements += prepared.tableElements;
          if (tableElements > MAX_COMPONENT_TABLE_ELEMENTS) {
            await rm(staging, { recursive: true, force: true });
            throw new StratumError(
              'WASM_TABLE_OVER_LIMIT',
              `the component's tables may grow to more than ${MAX_COMPONENT_TABLE_ELEMENTS} elements together`,
              { hint: `Each table is capped at ${MAX_TABLE_ELEMENTS} elements; declare fewer tables, or give them smaller maximums.` },
            );
          }
          await writeFile(join(staging, name), prepared.bytes);
          coreModules.push(name);
          memoryCaps[name] = prepared.slots;
        } else if (name === GLUE_FILE) {
          // Not part of the cache key: glue written before this rewrite works the same, only slower to start.
          await writeFile(join(staging, GLUE_STORED_FILE), eagerInstantiate(Buffer.from(bytes).toString('utf8')));
        } else {
          await writeFile(join(staging, name), bytes);
        }
      }
      if (mapText !== undefined && sourceMapFile !== undefined) await writeFile(join(staging, SOURCE_MAP_FILE), mapText);
      await writeFile(join(staging, 'meta.json'), JSON.stringify({ coreModules, memoryCaps, sourceMapFile, key: JSON.parse(keyInput) }));
      await rm(dir, { recursive: true, force: true });
      await rename(staging, dir);
      this.#logger.info({ digest: component.digest, jspi, ms: Math.round(performance.now() - started) }, 'transpiled component');
      return entry(coreModules, memoryCaps, sourceMapFile);
    });
  }

  /**
   * The core modules compiled with every memory capped at `memoryBytes`, shared by every holder
   * of the same (component, cap): compiled code is the largest thing an installed capsule could
   * hold (a JS capsule's 12 MB module about 4.6 MiB, measured with 8 distinct components), so
   * capsules hold a lease only while they have instances. Once the last holder lets go, the set
   * is kept among the `keepIdleCompiled` most recently let go, so that a capsule that wakes soon
   * after going idle does not compile again (40-140 ms for a JS capsule on a small VM).
   */
  acquire(transpiled: TranspiledComponent, memoryBytes: number): ModuleLease {
    const cacheKey = `${transpiled.key}:${memoryBytes}`;
    let entry = this.#compiled.get(cacheKey);
    const kept = this.#kept.get(cacheKey);
    if (!entry && kept) {
      this.#kept.delete(cacheKey);
      this.#compiled.set(cacheKey, kept);
      entry = kept;
    }
    if (!entry) {
      this.stats.compiles++;
      const modules = (async () => {
        const compiled: Record<string, WebAssembly.Module> = {};
        for (const name of transpiled.coreModules) {
          // Capped in place: copying a 12 MB module cost 35-50 ms of page faults on a small VM.
          const bytes = await readFile(join(transpiled.dir, name));
          const slots = transpiled.memoryCaps[name];
          // Never compiled uncapped: a transpile cache without the slots is not ours to trust.
          if (!slots)
            throw new StratumError('TRANSPILE_FAILED', `the transpile cache in ${transpiled.dir} has no memory limits for ${name}`);
          applyMemoryCaps(bytes, slots, memoryBytes);
          compiled[name] = await WebAssembly.compile(bytes);
        }
        return compiled;
      })();
      const created: CompiledSet = { modules, holders: 0 };
      entry = created;
      // A failed compile is not kept: the next acquire tries again.
      modules.catch(() => {
        if (this.#compiled.get(cacheKey) === created) this.#compiled.delete(cacheKey);
        if (this.#kept.get(cacheKey) === created) this.#kept.delete(cacheKey);
      });
      this.#compiled.set(cacheKey, entry);
    }
    const held = entry;
    held.holders++;
    let released = false;
    return {
      modules: held.modules,
      release: () => {
        if (released) return;
        released = true;
        held.holders--;
        if (held.holders > 0 || this.#compiled.get(cacheKey) !== held) return;
        this.#compiled.delete(cacheKey);
        this.#kept.set(cacheKey, held);
        for (const oldest of this.#kept.keys()) {
          if (this.#kept.size <= this.#keepIdleCompiled) break;
          this.#kept.delete(oldest);
        }
      },
    };
  }

  /** How many compiled sets are kept after their last holder lets go. */
  get keepIdleCompiled(): number {
    return this.#keepIdleCompiled;
  }

  /** Compiled sets in memory: held by capsules with instances, and kept after they went idle. */
  get compiledSets(): { held: number; kept: number } {
    return { held: this.#compiled.size, kept: this.#kept.size };
  }

  async close(): Promise<void> {
    clearTimeout(this.#workerIdle);
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker) await worker.terminate();
  }

  /**
   * Trims the transpile cache to the entries installed capsules use (`inUse`: their transpile
   * keys and component digests) and the `keepUnused` others used most recently. A transpiled JS
   * capsule is about 13 MB on disk, so every version an app ever had, and every transpile format a
   * Stratum upgrade left behind, would otherwise stay; the few kept make a rollback, or an app
   * moved away and back, start without transpiling again. Returns how many entries went.
   */
  async pruneCache(
    inUse: { keys: ReadonlySet<string>; digests: ReadonlySet<string> },
    keepUnused = KEEP_UNUSED_TRANSPILED,
  ): Promise<number> {
    let removed = 0;
    const transpiled = join(this.#cacheDir, 'transpiled');
    const unused: { entry: string; usedAt: number }[] = [];
    for (const entry of await readdir(transpiled).catch(() => [] as string[])) {
      // Staging directories are `#sweep`'s: one may be this process's transpile under way.
      if (entry.endsWith('.tmp') || inUse.keys.has(entry) || this.#inFlight.has(`transpile:${entry}`)) continue;
      const usedAt = await stat(join(transpiled, entry, 'meta.json')).then(
        (meta) => meta.mtimeMs,
        () => 0,
      );
      unused.push({ entry, usedAt });
    }
    unused.sort((a, b) => b.usedAt - a.usedAt);
    const kept = new Set(unused.slice(0, keepUnused).map(({ entry }) => entry));
    for (const { entry } of unused.slice(keepUnused)) {
      await rm(join(transpiled, entry), { recursive: true, force: true });
      removed++;
    }
    // A component's world goes with its last transpiled entry (keys begin with its digest's hex).
    const digests = new Set([...inUse.digests].map((digest) => hexOf(digest).slice(0, 32)));
    for (const entry of kept) digests.add(entry.slice(0, 32));
    const inspected = join(this.#cacheDir, 'inspect');
    for (const entry of await readdir(inspected).catch(() => [] as string[])) {
      if (entry.endsWith('.tmp') || digests.has(entry.slice(0, 32)) || this.#inFlight.has(`inspect:sha256:${entry.replace(/\.json$/, '')}`))
        continue;
      await rm(join(inspected, entry), { force: true });
      removed++;
    }
    return removed;
  }

  /** Removes what a host killed in the middle of transpiling left behind (once per process). */
  async #sweep(): Promise<void> {
    if (this.#swept) return;
    this.#swept = true;
    const dir = join(this.#cacheDir, 'transpiled');
    const entries = await readdir(dir).catch(() => [] as string[]);
    for (const entry of entries) {
      if (!entry.endsWith('.tmp') || entry.includes(`.${process.pid}.`)) continue;
      await rm(join(dir, entry), { recursive: true, force: true });
    }
  }

  #once<T>(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.#inFlight.get(key) as Promise<T> | undefined;
    if (running) return running;
    const promise = work().finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, promise);
    return promise;
  }

  #run(job: TranspileWorkerJob): Promise<TranspileWorkerReply> {
    const worker = this.#ensureWorker();
    const id = this.#nextJob++;
    return new Promise<TranspileWorkerReply>((resolve, reject) => {
      this.#jobs.set(id, { resolve, reject });
      clearTimeout(this.#workerIdle);
      worker.ref();
      worker.postMessage({ ...job, id });
    }).then((reply) => {
      if (!reply.ok) {
        throw new StratumError('TRANSPILE_FAILED', `the component is not a valid WebAssembly component (jco could not ${job.op} it)`, {
          details: [reply.message],
          hint: 'Build it again (`stratum build`), and check that the file was not cut short or changed on its way: the detail gives the offset of the first problem.',
          user: true,
        });
      }
      return reply;
    });
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./transpile-worker.ts', import.meta.url));
    this.stats.transpileWorkersStarted++;
    worker.unref();
    worker.on('message', (reply: TranspileWorkerReply) => {
      const job = this.#jobs.get(reply.id);
      this.#jobs.delete(reply.id);
      if (this.#jobs.size === 0) {
        worker.unref();
        // jco holds about 250 MB in that thread; a host transpiles only when a new component
        // comes, so the thread goes once it has been idle a while (and starts again when needed).
        clearTimeout(this.#workerIdle);
        this.#workerIdle = setTimeout(() => {
          if (this.#worker === worker && this.#jobs.size === 0) {
            this.#worker = undefined;
            void worker.terminate();
          }
        }, this.#transpileIdleMs);
        this.#workerIdle.unref();
      }
      job?.resolve(reply);
    });
    const fail = (error: Error) => {
      if (this.#worker === worker) this.#worker = undefined;
      if (this.#jobs.size === 0) return;
      for (const job of this.#jobs.values())
        job.reject(new StratumError('TRANSPILE_FAILED', 'the transpile worker stopped', { details: [error.message], user: false }));
      this.#jobs.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    this.#worker = worker;
    return worker;
  }
}

function hexOf(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice(7) : digest;
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

async function writeAtomic(file: string, text: string): Promise<void> {
  await mkdir(join(file, '..'), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
}
