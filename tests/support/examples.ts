// Builds the example capsules for tests, each at most once per machine: the component is cached
// under node_modules/.cache/stratum-examples/ by a hash of everything that goes into it (the
// example's sources and manifest, the SDK, spec/wit, the toolchain versions). Test files run in
// parallel processes, so a lock file makes one build while the others wait for its result.
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCapsule } from '@stratum/sdk/build';

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
export async function exampleHash(name: ExampleName): Promise<string> {
  const hash = createHash('sha256');
  const inputs = [
    ...(await listFiles(exampleDir(name), skipBuildOutput)),
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
  let pending = inProcess.get(name);
  if (!pending) {
    pending = buildCached(name);
    pending.catch(() => inProcess.delete(name));
    inProcess.set(name, pending);
  }
  return pending;
}

async function buildCached(name: ExampleName): Promise<string> {
  await mkdir(cacheDir, { recursive: true });
  const hash = await exampleHash(name);
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
        await buildCapsule(exampleDir(name), { output: temporary });
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
