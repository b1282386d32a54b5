// Builds the example capsules for tests, each at most once per machine: the component is cached
// under node_modules/.cache/stratum-examples/ by a hash of everything that goes into it (the
// example's sources and manifest, the SDK, spec/wit, the toolchain versions). Test files run in
// parallel processes, so a lock file makes one build while the others wait for its result.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildCapsule } from '@stratum/sdk/build';
import { primitives as cryptoPrimitives } from '../../packages/host/src/capabilities/crypto/index.ts';
import { services as intlServices } from '../../packages/host/src/capabilities/intl/index.ts';
import { freePort } from './services.ts';

export type ExampleName = 'hello' | 'counter' | 'notes' | 'gallery';
export const EXAMPLES: readonly ExampleName[] = ['hello', 'counter', 'notes', 'gallery'];

const root = fileURLToPath(new URL('../../', import.meta.url));
const cacheDir = join(root, 'node_modules', '.cache', 'stratum-examples');
/** A lock older than this belongs to a build that died; componentize takes well under a minute. */
const STALE_LOCK_MS = 10 * 60_000;
const POLL_MS = 250;

export function exampleDir(name: ExampleName): string {
  return join(root, 'examples', name);
}

async function listFiles(dir: string, skip: (path: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (skip(path)) continue;
    if (entry.isDirectory()) out.push(...(await listFiles(path, skip)));
    else if (entry.isFile()) out.push(path);
  }
  return out.sort();
}

const skipBuildOutput = (path: string) => /(^|\/)(dist|node_modules|\.stratum)$/.test(path) || path.endsWith('.test.ts');

async function versionOf(pkg: string): Promise<string> {
  const text = await readFile(join(root, 'node_modules', pkg, 'package.json'), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/** The cache key of an example: every input of its build. */
export function exampleHash(name: ExampleName): Promise<string> {
  return capsuleHash(exampleDir(name));
}

/** The cache key of a capsule directory: its sources and manifest, the SDK, the WIT and the toolchain. */
async function capsuleHash(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const inputs = [
    ...(await listFiles(dir, skipBuildOutput)),
    ...(await listFiles(join(root, 'packages', 'sdk', 'src'), skipBuildOutput)),
    ...(await listFiles(join(root, 'spec', 'wit'), () => false)),
  ];
  for (const file of inputs) {
    hash
      .update(relative(root, file))
      .update('\0')
      .update(await readFile(file))
      .update('\0');
  }
  for (const pkg of ['@bytecodealliance/componentize-js', '@bytecodealliance/jco', 'esbuild'])
    hash.update(`${pkg}@${await versionOf(pkg)}\0`);
  return hash.digest('hex').slice(0, 32);
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

const inProcess = new Map<string, Promise<string>>();

/**
 * The path of the built component of `examples/<name>`, building it first when no cached build
 * of the same inputs exists. Safe to call from many test files at once.
 *
 * @example
 * const wasm = await buildExample('hello');
 */
export function buildExample(name: ExampleName): Promise<string> {
  return buildCapsuleDir(exampleDir(name), name);
}

/**
 * A capsule directory of the example's own, `<dir>/<name>`, with its stratum.toml and its built
 * component where the manifest names it (`dist/<name>.wasm`), as a user who built it has: for
 * tests that install it through the CLI. Returns the directory.
 */
export async function builtExampleCopy(name: ExampleName, dir: string): Promise<string> {
  const capsule = join(dir, name);
  await mkdir(join(capsule, 'dist'), { recursive: true });
  await copyFile(join(exampleDir(name), 'stratum.toml'), join(capsule, 'stratum.toml'));
  await copyFile(await buildExample(name), join(capsule, 'dist', `${name}.wasm`));
  return capsule;
}

/**
 * The same for any capsule directory (benchmark and fixture capsules): `name` prefixes the cached
 * file's name.
 */
export function buildCapsuleDir(dir: string, name: string): Promise<string> {
  let pending = inProcess.get(dir);
  if (!pending) {
    pending = buildCached(dir, name);
    pending.catch(() => inProcess.delete(dir));
    inProcess.set(dir, pending);
  }
  return pending;
}

async function buildCached(dir: string, name: string): Promise<string> {
  await mkdir(cacheDir, { recursive: true });
  const hash = await capsuleHash(dir);
  const target = join(cacheDir, `${name}-${hash}.wasm`);
  const lock = `${target}.lock`;
  for (;;) {
    if (await exists(target)) return target;
    const handle = await open(lock, 'wx').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') return undefined;
      throw error;
    });
    if (handle) {
      try {
        // Another process may have finished between our check and taking the lock.
        if (await exists(target)) return target;
        const temporary = `${target}.${process.pid}.tmp`;
        await buildCapsule(dir, { output: temporary });
        await rename(temporary, target);
        return target;
      } finally {
        await handle.close();
        await rm(lock, { force: true });
      }
    }
    const info = await stat(lock).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > STALE_LOCK_MS) await rm(lock, { force: true });
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

// ------------------------------------------------------------------------------------------------
// runComponent: runs a built component in this process the simplest way that exercises it fully:
// jco transpile, preview2-shim for WASI (and its HTTP server for wasi:http/incoming-handler), and
// small in-memory implementations of the Stratum capabilities. A test double for the real host
// (packages/host), which serves the same interfaces from real backends.

const requireFromSdk = createRequire(new URL('../../packages/sdk/package.json', import.meta.url));
type Shim = Record<string, Record<string, unknown>> & { http: { HTTPServer: new (handler: unknown) => HttpServer } };
interface HttpServer {
  listen(port: number, host: string): void;
  stop(): void;
}
// preview2-shim is a dependency of @stratum/sdk only; loaded on first use, so that test files
// that only build examples never load it.
const loadShim = async () => (await import(pathToFileURL(requireFromSdk.resolve('@bytecodealliance/preview2-shim')).href)) as Shim;

type WitError = { tag: string; val?: string };
const fail = (tag: string, val?: string): never => {
  throw val === undefined ? { tag } : { tag, val };
};

// --- keyvalue: a Map per label ---------------------------------------------------------------
class KvBucket {
  readonly entries = new Map<string, Uint8Array>();
  get(key: string) {
    return this.entries.get(key);
  }
  set(key: string, value: Uint8Array) {
    this.entries.set(key, value.slice());
  }
  setWithTtl(key: string, value: Uint8Array, _ttlMs: bigint) {
    this.set(key, value);
  }
  delete(key: string) {
    this.entries.delete(key);
  }
  exists(key: string) {
    return this.entries.has(key);
  }
  listKeys(cursor: string | undefined) {
    const keys = [...this.entries.keys()].sort().filter((key) => cursor === undefined || key > cursor);
    const page = keys.slice(0, 2);
    return { keys: page, cursor: keys.length > page.length ? page.at(-1) : undefined };
  }
}

// --- bucket: objects in a Map per label --------------------------------------------------------
interface StoredObject {
  data: Uint8Array;
  contentType: string | undefined;
  etag: string;
  modifiedMs: bigint;
}
let etagCounter = 0;
const objectInfo = (name: string, object: StoredObject) => ({
  name,
  size: BigInt(object.data.length),
  contentType: object.contentType,
  etag: object.etag,
  modifiedMs: object.modifiedMs,
});
class ObjectBucket {
  readonly objects = new Map<string, StoredObject>();
  /** The largest chunk any one call moved, to check that the SDK streams in pieces. */
  largestChunk = 0;
  store(name: string, data: Uint8Array, contentType: string | undefined) {
    const object = { data, contentType, etag: `"${++etagCounter}"`, modifiedMs: BigInt(Date.now()) };
    this.objects.set(name, object);
    return objectInfo(name, object);
  }
  put(name: string, data: Uint8Array, contentType: string | undefined) {
    this.largestChunk = Math.max(this.largestChunk, data.length);
    return this.store(name, data.slice(), contentType);
  }
  get(name: string, range: { offset: bigint; length?: bigint } | undefined) {
    const object = this.objects.get(name);
    if (!object) return undefined;
    const offset = Number(range?.offset ?? 0n);
    if (offset > object.data.length) fail('invalid-range');
    const end = range?.length === undefined ? object.data.length : offset + Number(range.length);
    const data = object.data.slice(offset, end);
    this.largestChunk = Math.max(this.largestChunk, data.length);
    return { info: objectInfo(name, object), data };
  }
  head(name: string) {
    const object = this.objects.get(name);
    return object ? objectInfo(name, object) : undefined;
  }
  delete(name: string) {
    this.objects.delete(name);
  }
  listObjects(prefix: string | undefined, cursor: string | undefined, limit: number | undefined) {
    const names = [...this.objects.keys()]
      .sort()
      .filter((name) => (prefix === undefined || name.startsWith(prefix)) && (cursor === undefined || name > cursor));
    const page = names.slice(0, limit ?? 1000);
    return {
      objects: page.map((name) => objectInfo(name, this.objects.get(name)!)),
      cursor: names.length > page.length ? page.at(-1) : undefined,
    };
  }
  startUpload(name: string, contentType: string | undefined) {
    return new Upload(this, name, contentType);
  }
}
class Upload {
  readonly chunks: Uint8Array[] = [];
  readonly bucket: ObjectBucket;
  readonly name: string;
  readonly contentType: string | undefined;
  constructor(bucket: ObjectBucket, name: string, contentType: string | undefined) {
    this.bucket = bucket;
    this.name = name;
    this.contentType = contentType;
  }
  write(chunk: Uint8Array) {
    this.bucket.largestChunk = Math.max(this.bucket.largestChunk, chunk.length);
    this.chunks.push(chunk.slice());
  }
  finish() {
    return this.bucket.store(this.name, Buffer.concat(this.chunks), this.contentType);
  }
  abort() {
    this.chunks.length = 0;
  }
}

// --- sql: node:sqlite in memory ---------------------------------------------------------------
type SqlValue =
  | { tag: 'null' }
  | { tag: 'integer'; val: bigint }
  | { tag: 'real'; val: number }
  | { tag: 'text'; val: string }
  | { tag: 'blob'; val: Uint8Array };
const toSqlite = (value: SqlValue): SQLInputValue => (value.tag === 'null' ? null : value.val);
function fromSqlite(value: unknown): SqlValue {
  if (value === null || value === undefined) return { tag: 'null' };
  if (typeof value === 'bigint') return { tag: 'integer', val: value };
  if (typeof value === 'number') return { tag: 'real', val: value };
  if (typeof value === 'string') return { tag: 'text', val: value };
  return { tag: 'blob', val: new Uint8Array(value as Uint8Array) };
}
function sqlError(error: unknown): WitError {
  const message = error instanceof Error ? error.message : String(error);
  return /constraint/i.test(message) ? { tag: 'constraint-violation', val: message } : { tag: 'invalid-query', val: message };
}
class Connection {
  readonly db = new DatabaseSync(':memory:');
  query(sql: string, params: SqlValue[]) {
    try {
      const statement = this.db.prepare(sql);
      statement.setReadBigInts(true);
      statement.setReturnArrays(true);
      const columns = statement.columns().map((column) => column.name);
      const rows = (statement.all(...params.map(toSqlite)) as unknown as unknown[][]).map((row) => row.map(fromSqlite));
      return { columns, rows };
    } catch (error) {
      throw sqlError(error);
    }
  }
  execute(sql: string, params: SqlValue[]) {
    try {
      const result = this.db.prepare(sql).run(...params.map(toSqlite));
      const inserted = /^\s*insert/i.test(sql) && Number(result.changes) > 0;
      return { rowsAffected: BigInt(result.changes), lastInsertId: inserted ? BigInt(result.lastInsertRowid) : undefined };
    } catch (error) {
      throw sqlError(error);
    }
  }
  transaction(statements: { sql: string; params: SqlValue[] }[]) {
    this.db.exec('BEGIN');
    try {
      const outcomes = statements.map((statement) => this.execute(statement.sql, statement.params));
      this.db.exec('COMMIT');
      return outcomes;
    } catch (error) {
      this.db.exec('ROLLBACK');
      throw error;
    }
  }
}

export interface Grants {
  keyvalue?: string[];
  sql?: string[];
  bucket?: string[];
}

export interface RunningExample {
  url: string;
  keyvalue: Map<string, KvBucket>;
  buckets: Map<string, ObjectBucket>;
  /** Bytes of linear memory in each core instance the component made (grows, never shrinks). */
  memoryBytes(): number[];
  close(): Promise<void>;
}

// The repository's TypeScript libs carry no WebAssembly declarations; this is the part used here.
interface CoreInstance {
  exports: Record<string, unknown>;
}
interface WasmApi {
  compile(bytes: Uint8Array): Promise<unknown>;
  instantiate(module: unknown, imports: unknown): Promise<CoreInstance>;
  Memory: abstract new (...args: never[]) => { buffer: ArrayBuffer };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const camel = (name: string) => name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());

/** Transpiles a component, instantiates it against in-memory capabilities, and serves it over HTTP on loopback. */
export async function runComponent(wasmPath: string, grants: Grants = {}): Promise<RunningExample> {
  const shim = await loadShim();
  const { transpile } = await import('@bytecodealliance/jco');
  const component = await readFile(wasmPath);
  const { files } = (await transpile(component, {
    name: 'capsule',
    instantiation: { tag: 'async' },
    noTypescript: true,
    quiet: true,
  } as never)) as {
    files: Record<string, Uint8Array>;
  };
  const dir = await mkdtemp(join(tmpdir(), 'stratum-example-'));
  for (const [name, bytes] of Object.entries(files)) {
    if (name.endsWith('.js') || name.endsWith('.wasm')) {
      await writeFile(join(dir, name.replaceAll('/', '_')), bytes);
    }
  }
  const keyvalue = new Map((grants.keyvalue ?? []).map((label) => [label, new KvBucket()] as const));
  const buckets = new Map((grants.bucket ?? []).map((label) => [label, new ObjectBucket()] as const));
  const databases = new Map((grants.sql ?? []).map((label) => [label, new Connection()] as const));
  const imports: Record<string, unknown> = {
    'stratum:keyvalue/store': { Bucket: KvBucket, open: (label: string) => keyvalue.get(label) ?? fail('no-such-store') },
    'stratum:keyvalue/atomics': {
      increment(bucket: KvBucket, key: string, delta: bigint) {
        const current = bucket.get(key);
        const next = (current === undefined ? 0n : BigInt(new TextDecoder().decode(current))) + delta;
        bucket.set(key, new TextEncoder().encode(String(next)));
        return next;
      },
      compareAndSwap(bucket: KvBucket, key: string, expected: Uint8Array | undefined, replacement: Uint8Array) {
        const current = bucket.get(key);
        const same = expected === undefined ? current === undefined : current !== undefined && Buffer.from(current).equals(expected);
        if (same) bucket.set(key, replacement);
        return same;
      },
    },
    'stratum:keyvalue/batch': {
      getMany: (bucket: KvBucket, keys: string[]) => keys.map((key) => (bucket.exists(key) ? [key, bucket.get(key)] : undefined)),
      setMany(bucket: KvBucket, pairs: [string, Uint8Array][]) {
        for (const [key, value] of pairs) bucket.set(key, value);
      },
      deleteMany(bucket: KvBucket, keys: string[]) {
        for (const key of keys) bucket.delete(key);
      },
    },
    'stratum:sql/database': { Connection, open: (label: string) => databases.get(label) ?? fail('no-such-database') },
    'stratum:bucket/objects': { Bucket: ObjectBucket, Upload, open: (label: string) => buckets.get(label) ?? fail('no-such-bucket') },
    // The host's own: computation on the call's arguments, with nothing to stand in for.
    'stratum:crypto/primitives': cryptoPrimitives,
    'stratum:intl/services': intlServices,
  };
  for (const pkg of ['cli', 'clocks', 'filesystem', 'http', 'io', 'random', 'sockets']) {
    for (const [name, value] of Object.entries(shim[pkg] ?? {})) {
      const kebab = name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
      imports[`wasi:${pkg}/${kebab}`] = value;
    }
  }
  for (const key of Object.keys(imports)) {
    for (const version of ['0.2.10', '0.2.12', '0.1.0']) imports[`${key}@${version}`] = imports[key];
  }
  const memories: { buffer: ArrayBuffer }[] = [];
  const glue = (await import(pathToFileURL(join(dir, 'capsule.js')).href)) as {
    instantiate(
      getCoreModule: (path: string) => Promise<unknown>,
      imports: Record<string, unknown>,
      instantiateCore: (module: unknown, imports: unknown) => Promise<CoreInstance>,
    ): Promise<Record<string, unknown>>;
  };
  const instance = await glue.instantiate(
    async (path) => wasm.compile(await readFile(join(dir, path.replaceAll('/', '_')))),
    imports,
    async (module, moduleImports) => {
      const core = await wasm.instantiate(module, moduleImports);
      for (const value of Object.values(core.exports)) if (value instanceof wasm.Memory) memories.push(value);
      return core;
    },
  );
  const handler = instance['wasi:http/incoming-handler@0.2.10'] ?? instance[camel('incoming-handler')];
  const server = new shim.http.HTTPServer(handler);
  const port = await freePort();
  server.listen(port, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}`,
    keyvalue,
    buckets,
    memoryBytes: () => memories.map((memory) => memory.buffer.byteLength),
    async close() {
      server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
