import { copyFile, cp, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { appendCustomSection, frameMapper, isStratumError, JS_SOURCE_MAP_SECTION, StratumError } from '@stratum/core';
import { loadManifest, type Manifest } from '@stratum/manifest';
import * as esbuild from 'esbuild';
import { specWitDir } from '../wit/types.ts';
import {
  DEV_GLOBAL_KEY,
  DEV_SOURCE_INTERFACE,
  describeImportSet,
  devEngineCacheDir,
  devEngineKey,
  devEngineSource,
  devWitDir,
  UNICODE_PROPERTY_HINT,
} from './dev-engine.ts';
import { checkImports, GRANT_HINTS, grantFor, type ImportCheck, unversioned } from './grants.ts';
import { runToolchain } from './toolchain.ts';
import { lowerPropertyEscapes, type UnreadableLiteral } from './unicode-properties.ts';

/** The `wasi:http` version componentize-js 0.23 (StarlingMonkey) is built against. */
export const WASI_HTTP_VERSION = '0.2.10';
export const INCOMING_HANDLER = `wasi:http/incoming-handler@${WASI_HTTP_VERSION}`;

/** Entry modules tried, in order, when the manifest has no `[build] entry`. */
export const DEFAULT_ENTRIES = ['src/index.ts', 'src/index.js', 'src/index.mts', 'src/index.mjs', 'index.ts', 'index.js'];

const sdkSrc = fileURLToPath(new URL('../', import.meta.url));
/** `@stratum/sdk/<subpath>` -> the module a capsule gets; capsules always build against this SDK. */
const GUEST_MODULES: Readonly<Record<string, string>> = {
  '@stratum/sdk': 'index.ts',
  '@stratum/sdk/http': 'guest/http.ts',
  '@stratum/sdk/keyvalue': 'guest/keyvalue.ts',
  '@stratum/sdk/sql': 'guest/sql.ts',
  '@stratum/sdk/bucket': 'guest/bucket.ts',
  '@stratum/sdk/config': 'guest/config.ts',
  '@stratum/sdk/log': 'guest/log.ts',
};

export type BuildStep = 'manifest' | 'bundle' | 'check' | 'componentize' | 'inspect' | 'write';

export interface BuildOptions {
  /** Where to write the component; default: the manifest's `[source] wasm`, relative to its directory. */
  output?: string;
  /** Told when each step starts, for progress output. */
  onStep?: (step: BuildStep, message: string) => void;
}

export interface BuildResult {
  /** Absolute path of the written component. */
  output: string;
  bytes: number;
  /** Wall-clock time the whole build took. */
  elapsedMs: number;
  /** The capsule's entry module, relative to the project directory. */
  entry: string;
  /** Interfaces the component imports, with versions, sorted, each with the grant it needs. */
  imports: ImportCheck[];
  /** Interfaces the component exports. */
  exports: string[];
  manifest: Manifest;
}

/**
 * Builds a capsule project (a directory with a `stratum.toml`) into a WebAssembly component:
 * bundles the entry module with esbuild, checks the interfaces it imports against the manifest's
 * grants, makes a component with componentize-js against a world holding only those interfaces,
 * and checks the finished component's imports again.
 *
 * @example
 * const result = await buildCapsule('examples/hello');
 * result.output; // /…/examples/hello/dist/hello.wasm
 * @throws StratumError: MANIFEST_INVALID, BUILD_NO_ENTRY, BUILD_BUNDLE_FAILED, BUILD_UNGRANTED_IMPORT, BUILD_UNKNOWN_IMPORT, BUILD_TOP_LEVEL_IMPORT, TOOLCHAIN_FAILED
 */
export async function buildCapsule(projectDir: string, options: BuildOptions = {}): Promise<BuildResult> {
  const started = performance.now();
  const step = options.onStep ?? (() => {});
  const { dir, manifest, entry } = await openProject(projectDir, step);
  const output = outputPath(dir, manifest, options.output);

  step('bundle', `bundling ${entry}`);
  const work = await mkdtemp(join(tmpdir(), 'stratum-build-'));
  try {
    const { code, map, imports: moduleImports } = await bundle(dir, entry, 'component');
    const bundlePath = join(work, 'capsule.js');
    await writeFile(bundlePath, code);

    step('check', `checking ${moduleImports.length} imported interface(s) against the manifest`);
    assertGranted(manifest, moduleImports, 'the capsule code imports');

    step('componentize', 'making the component (componentize-js; this takes a while)');
    const { witDir, worldName } = await writeWorld(work, moduleImports);
    const made = await componentize(bundlePath, witDir, worldName).catch((error: unknown) => {
      throw topLevelImport(error) ?? inSources(error, map);
    });
    const component = map ? appendCustomSection(made, JS_SOURCE_MAP_SECTION, new TextEncoder().encode(map)) : made;

    step('inspect', 'reading the component’s imports and exports');
    const { imports, exports } = await componentInterfaces(component);
    const checks = assertGranted(manifest, imports, 'the component imports');
    if (!exports.includes(INCOMING_HANDLER)) {
      throw new StratumError('BUILD_NO_HANDLER', `the component does not export ${INCOMING_HANDLER}`, {
        details: [`exports: ${exports.join(', ') || 'none'}`],
        user: false,
      });
    }

    step('write', `writing ${shown(output)}`);
    await mkdir(dirname(output), { recursive: true });
    const temporary = `${output}.${process.pid}.tmp`;
    await writeFile(temporary, component);
    await rename(temporary, output);
    return {
      output,
      bytes: component.length,
      elapsedMs: performance.now() - started,
      entry,
      imports: checks,
      exports,
      manifest,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export interface DevBuildOptions {
  /** Where dev engines are kept; default {@link devEngineCacheDir} (user-wide). */
  engineCacheDir?: string;
  /** Told when each step starts; `engine` only when a dev engine has to be built (about 20 s). */
  onStep?: (step: BuildStep | 'engine', message: string) => void;
}

/** A dev engine component in the cache. */
export interface DevEngine {
  /** Absolute path of the component. */
  path: string;
  /** Its cache key (a hash of everything it is built from). */
  key: string;
  /** True when this call had to build it (or wait for another process building it); false when it was in the cache. */
  built: boolean;
  /** What it serves, for people: `keyvalue, sql`, or `HTTP only`. */
  serves: string;
}

export interface DevBuildResult {
  manifest: Manifest;
  /** The capsule's entry module, relative to the project directory. */
  entry: string;
  /** The capsule's code as a script for the engine to evaluate (served by `stratum:dev/source`). */
  bundle: string;
  /**
   * The bundle's source map (JSON, without the sources' text). Stack frames in the engine name
   * the bundle as `<entry>.bundle.js` (its `file`); the runtime maps them back to the sources.
   */
  sourceMap: string;
  /** Interfaces the capsule's code imports, each with the grant it needs (all granted). */
  imports: ImportCheck[];
  engine: DevEngine;
  elapsedMs: number;
}

/**
 * What `stratum dev` builds on a save: the capsule bundled as a script (esbuild, milliseconds),
 * its imports checked against the manifest as in {@link buildCapsule}, and the dev engine for
 * that import set, from the cache or built once (componentize-js, about 20 s). Install the
 * engine with a host that also serves `stratum:dev/source` from the bundle; a production host
 * refuses it. What differs from a production build: the capsule's top-level code runs on each
 * instance's first request instead of at build time.
 *
 * @example
 * const dev = await buildDevCapsule('examples/counter');
 * dev.engine.path; // ~/.cache/stratum/dev-engines/<key>.wasm, shared by every capsule importing the same interfaces
 * @throws StratumError: MANIFEST_INVALID, BUILD_NO_ENTRY, BUILD_BUNDLE_FAILED, BUILD_UNGRANTED_IMPORT, BUILD_UNKNOWN_IMPORT, TOOLCHAIN_FAILED
 */
export async function buildDevCapsule(projectDir: string, options: DevBuildOptions = {}): Promise<DevBuildResult> {
  const started = performance.now();
  const step = options.onStep ?? (() => {});
  const { dir, manifest, entry } = await openProject(projectDir, step);

  step('bundle', `bundling ${entry}`);
  const { code, imports, map } = await bundle(dir, entry, 'dev');

  step('check', `checking ${imports.length} imported interface(s) against the manifest`);
  const checks = assertGranted(manifest, imports, 'the capsule code imports');

  const engine = await devEngine(imports, {
    ...(options.engineCacheDir ? { cacheDir: options.engineCacheDir } : {}),
    ...(options.onStep ? { onStep: options.onStep } : {}),
  });
  return { manifest, entry, bundle: code, sourceMap: map ?? '', imports: checks, engine, elapsedMs: performance.now() - started };
}

/** Engines not used for this long are deleted when a new one is built (each is about 13 MB). */
const ENGINE_UNUSED_MS = 30 * 24 * 3600_000;
const enginesBuilding = new Map<string, Promise<DevEngine>>();

/** Where the dev engine for a set of imported interfaces is, or will be once built. */
export async function locateDevEngine(
  imports: readonly string[],
  options: { cacheDir?: string } = {},
): Promise<Omit<DevEngine, 'built'> & { source: string }> {
  const source = devEngineSource(imports);
  const key = await devEngineKey({
    source,
    world: worldText(imports, { dev: true }),
    witDirs: [join(specWitDir, 'deps'), devWitDir],
    disableFeatures: DISABLED_FEATURES,
  });
  return { path: join(options.cacheDir ?? devEngineCacheDir(), `${key}.wasm`), key, serves: describeImportSet(imports), source };
}

/**
 * The dev engine for a set of imported interfaces (as the bundle names them): from the cache,
 * or built and cached. Two capsules of one `stratum dev` needing the same engine share one build.
 */
export async function devEngine(
  imports: readonly string[],
  options: { cacheDir?: string; onStep?: DevBuildOptions['onStep'] } = {},
): Promise<DevEngine> {
  const cacheDir = options.cacheDir ?? devEngineCacheDir();
  const { path, key, serves, source } = await locateDevEngine(imports, { cacheDir });
  if ((await stat(path).catch(() => undefined))?.isFile()) {
    // The mtime says when it was last used, for pruning.
    const now = new Date();
    await utimes(path, now, now).catch(() => {});
    return { path, key, built: false, serves };
  }
  let pending = enginesBuilding.get(path);
  if (!pending) {
    pending = buildEngineLocked({ imports, source, path, cacheDir, serves, step: options.onStep ?? (() => {}) }).then(() => ({
      path,
      key,
      built: true,
      serves,
    }));
    enginesBuilding.set(path, pending);
    pending.then(
      () => enginesBuilding.delete(path),
      () => enginesBuilding.delete(path),
    );
  }
  return pending;
}

interface EngineJob {
  imports: readonly string[];
  source: string;
  path: string;
  cacheDir: string;
  serves: string;
  step: NonNullable<DevBuildOptions['onStep']>;
}

/** A lock older than this belongs to a build that died; an engine takes well under a minute. */
const STALE_ENGINE_LOCK_MS = 10 * 60_000;

/**
 * Whether the process that wrote the lock still runs. A build killed half-way (Ctrl-C, a test
 * runner's timeout) leaves its lock behind, and waiting out `STALE_ENGINE_LOCK_MS` looked like a
 * hang: a `stratum dev` showed "building the dev engine" and nothing for minutes.
 */
export async function lockHolderAlive(lock: string): Promise<boolean> {
  const pid = Number.parseInt(await readFile(lock, 'utf8').catch(() => ''), 10);
  // Just taken, the pid not written yet: alive.
  if (!Number.isSafeInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Builds the engine, unless another process (a second `stratum dev`, a test) is: then waits for it. */
async function buildEngineLocked(job: EngineJob): Promise<void> {
  job.step('engine', `building the dev engine for ${job.serves} (once; about 20 s)`);
  await mkdir(job.cacheDir, { recursive: true });
  const lock = `${job.path}.lock`;
  for (;;) {
    if ((await stat(job.path).catch(() => undefined))?.isFile()) return;
    const handle = await open(lock, 'wx').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') return undefined;
      throw error;
    });
    if (handle) {
      try {
        await handle.writeFile(String(process.pid));
        // Another process may have finished between the check and taking the lock.
        if (!(await stat(job.path).catch(() => undefined))?.isFile()) await buildEngine(job);
        return;
      } finally {
        await handle.close();
        await rm(lock, { force: true });
      }
    }
    const info = await stat(lock).catch(() => undefined);
    if (info && (Date.now() - info.mtimeMs > STALE_ENGINE_LOCK_MS || !(await lockHolderAlive(lock)))) await rm(lock, { force: true });
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function buildEngine(job: EngineJob): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'stratum-dev-engine-'));
  try {
    const sourcePath = join(work, 'engine.js');
    await writeFile(sourcePath, job.source);
    const { witDir, worldName } = await writeWorld(work, job.imports, { dev: true });
    const component = await componentize(sourcePath, witDir, worldName);
    const { imports, exports } = await componentInterfaces(component);
    const wanted = new Set(job.imports.map(unversioned));
    // Whatever the engine imports beyond the bundle's interfaces must be the dev source or what
    // StarlingMonkey links into every component; else the bundle's grant check would not cover it.
    const extra = imports.filter(
      (name) => unversioned(name) !== unversioned(DEV_SOURCE_INTERFACE) && !wanted.has(unversioned(name)) && grantFor(name) !== 'none',
    );
    if (extra.length > 0 || !exports.includes(INCOMING_HANDLER)) {
      throw new StratumError('TOOLCHAIN_FAILED', 'the dev engine came out with other imports or exports than it was built for', {
        details: [...extra.map((name) => `imports ${name}`), `exports: ${exports.join(', ') || 'none'}`],
        user: false,
      });
    }
    const temporary = `${job.path}.${process.pid}.tmp`;
    await writeFile(temporary, component);
    await rename(temporary, job.path);
    await pruneEngines(job.cacheDir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function pruneEngines(cacheDir: string): Promise<void> {
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{32}\.wasm$/.test(name)) continue;
    const info = await stat(join(cacheDir, name)).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > ENGINE_UNUSED_MS) await rm(join(cacheDir, name), { force: true });
  }
}

/** A path as the user would type it: relative when under the working directory, else absolute. */
function shown(path: string): string {
  const fromHere = relative(process.cwd(), path);
  return fromHere === '' || fromHere.startsWith('..') ? path : fromHere;
}

/** A capsule project's directory, its manifest (read and checked) and its entry module: where every build starts. */
async function openProject(
  projectDir: string,
  step: (step: BuildStep, message: string) => void,
): Promise<{ dir: string; manifest: Manifest; entry: string }> {
  const dir = resolve(projectDir);
  const manifestFile = join(dir, 'stratum.toml');
  step('manifest', `reading ${shown(manifestFile)}`);
  const { manifest } = await loadManifest(manifestFile, shown(manifestFile));
  return { dir, manifest, entry: await findEntry(dir, manifest) };
}

function outputPath(dir: string, manifest: Manifest, output: string | undefined): string {
  if (output !== undefined) return resolve(output);
  if (manifest.source.kind !== 'wasm') {
    throw new StratumError('BUILD_NO_OUTPUT', 'the manifest’s [source] is a registry reference, so there is no local path to build to', {
      hint: 'Pass -o <file.wasm>, or set [source] wasm = "dist/<name>.wasm" while you develop.',
    });
  }
  return resolve(dir, manifest.source.wasm);
}

async function findEntry(dir: string, manifest: Manifest): Promise<string> {
  const candidates = manifest.build ? [manifest.build.entry] : DEFAULT_ENTRIES;
  for (const candidate of candidates) {
    const info = await stat(join(dir, candidate)).catch(() => undefined);
    if (info?.isFile()) return candidate;
  }
  throw new StratumError(
    'BUILD_NO_ENTRY',
    manifest.build ? `the entry module ${manifest.build.entry} does not exist` : 'no entry module found',
    {
      details: manifest.build ? [`looked for ${join(dir, manifest.build.entry)}`] : [`looked for ${candidates.join(', ')} in ${dir}`],
      hint: 'Create the module, or name it in stratum.toml: [build] entry = "src/index.ts".',
    },
  );
}

/**
 * How the capsule's code is bundled. `component`: an ES module exporting `incomingHandler`, with
 * the interfaces left as imports, for componentize-js. `dev`: a script for a dev engine to
 * evaluate, which reads the interfaces from the engine's global table and registers the handler
 * there (dev-engine.ts).
 */
export type BundleMode = 'component' | 'dev';

/** esbuild's namespace for the interface modules of a dev bundle. */
const INTERFACE_NAMESPACE = 'stratum-interface';

/**
 * A bundle's source map as a capsule ships it: `file` is the script's name in stack frames, and
 * its sources are named as a developer reads them, never by the build machine's paths: the
 * project's own files relative to it, the SDK's as `@stratum/sdk/...`, anything else outside the
 * project by its file name.
 */
function sourceMapOf(text: string, dir: string, file: string): string {
  const map = JSON.parse(text) as { sources?: string[]; sourceRoot?: string; file?: string };
  const sources = (map.sources ?? []).map((source) => {
    const absolute = resolve(dir, source);
    const inProject = relative(dir, absolute);
    if (!inProject.startsWith('..') && !isAbsolute(inProject)) return inProject;
    const inSdk = relative(sdkSrc, absolute);
    if (!inSdk.startsWith('..') && !isAbsolute(inSdk)) return `@stratum/sdk/${inSdk}`;
    return basename(absolute);
  });
  return JSON.stringify({ ...map, file, sources, sourceRoot: undefined });
}

/** The name a dev bundle's code has in stack traces (its `//# sourceURL`). */
function bundleSourceUrl(entry: string): string {
  return `${entry}.bundle.js`;
}

/** Node.js's built-in modules, as a bare import names them (`buffer`; `node:buffer` is plain). */
const NODE_BUILTINS = new Set(builtinModules);

/** The package a bare import specifier names (`lodash/fp` is lodash, `@scope/name/sub` is @scope/name). */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
}

/**
 * What to do about esbuild's errors, for the ones a capsule's author meets most; none for the
 * rest (a syntax error, say), whose lines above say it all.
 */
function bundleHint(mode: BundleMode, texts: readonly string[]): string | undefined {
  if (mode === 'dev' && texts.some((text) => text.startsWith('Top-level await'))) {
    return "stratum dev's fast path runs the bundle as a script, which cannot await at its top level: move the await into fetch(), or run dev with --full-build (stratum build allows it).";
  }
  if (texts.some((text) => /^No matching export in "[^"]+" for import "default"/.test(text))) {
    return "The entry module default-exports the capsule's handler, as a Workers module does: export default { fetch(request, env, ctx) { ... } }. Service Worker syntax (addEventListener('fetch', ...)) is not supported.";
  }
  const unresolved = texts.flatMap((text) => /^Could not resolve "([^"]+)"/.exec(text)?.[1] ?? []);
  const builtin = unresolved.find((name) => name.startsWith('node:') || NODE_BUILTINS.has(name));
  if (builtin) {
    return `A capsule runs on StarlingMonkey, a JavaScript engine for WebAssembly, not on Node.js: "${builtin}" and Node.js's other built-in modules are not there. Use the web platform's own (Uint8Array and TextEncoder for Buffer, crypto.subtle, fetch, streams), or a package that has a build for browsers or workers.`;
  }
  // A bare name is a package; a path, a `#` import or a `scheme:` name (a WIT interface) is not.
  const missing = unresolved.find((name) => /^[@\w]/.test(name) && !name.includes(':'));
  if (missing) {
    const name = packageOf(missing);
    return `"${name}" is not installed where the capsule's code can find it: run \`npm install ${name}\` in the project (a capsule's build bundles the packages in its node_modules).`;
  }
  return undefined;
}

/** Code that would reach what intl.ts adds: `Intl`, locale-aware methods, `normalize`. */
const INTL_USE = /\bIntl\b|\btoLocale(?:Date|Time)?String\b|\blocaleCompare\b|\.normalize\(/;

async function bundle(dir: string, entry: string, mode: BundleMode): Promise<{ code: string; map?: string; imports: string[] }> {
  const entryPath = join(dir, entry);
  const devGlobal = `globalThis[Symbol.for(${JSON.stringify(DEV_GLOBAL_KEY)})]`;
  const sdkPlugin: esbuild.Plugin = {
    name: 'stratum-sdk',
    setup(build) {
      build.onResolve({ filter: /^@stratum\/sdk(\/|$)/ }, (args) => {
        const target = GUEST_MODULES[args.path];
        if (!target)
          return {
            errors: [{ text: `${args.path} is not a module of @stratum/sdk (there are: ${Object.keys(GUEST_MODULES).join(', ')})` }],
          };
        return { path: join(sdkSrc, target) };
      });
      if (mode === 'component') {
        build.onResolve({ filter: /^(wasi|stratum):/ }, (args) => ({ path: args.path, external: true }));
        return;
      }
      build.onResolve({ filter: /^(wasi|stratum):/ }, (args) => ({ path: args.path, namespace: INTERFACE_NAMESPACE }));
      // A CommonJS stand-in: esbuild's interop then reads each named import off the module
      // namespace object the engine imported, when it is used (resources stay the engine's classes).
      build.onLoad({ filter: /.*/, namespace: INTERFACE_NAMESPACE }, (args) => ({
        contents: `module.exports = ${devGlobal}.imports[${JSON.stringify(args.path)}];`,
        loader: 'js',
      }));
    },
  };
  const register = mode === 'component' ? 'export const incomingHandler = serve(capsule);' : `${devGlobal}.handler = serve(capsule);`;
  const build = (globals: readonly string[]) =>
    esbuild.build({
      stdin: {
        // The SDK's globals first: ES modules run in the order they are imported, and the
        // capsule's top-level code, and its libraries', may use them.
        contents: `${globals.map((module) => `import ${JSON.stringify(join(sdkSrc, 'guest', module))};\n`).join('')}import capsule from ${JSON.stringify(entryPath)};\nimport { serve } from '@stratum/sdk/http';\n${register}\n`,
        resolveDir: dir,
        sourcefile: 'stratum-entry.js',
        loader: 'js',
      },
      // Error locations are then relative to the project, as they are shown.
      absWorkingDir: dir,
      bundle: true,
      format: mode === 'component' ? 'esm' : 'iife',
      platform: 'neutral',
      mainFields: ['module', 'main'],
      // A package's build for workers or browsers, not for Node.js: its Node.js one imports
      // node:crypto, node:stream and the like, which a capsule does not have (uuid, nanoid,
      // react-dom/server). esbuild adds `import` or `require`, and `default`.
      conditions: ['worker', 'browser'],
      target: 'es2022',
      // The engine reads `v`-flag literals (`/[\p{L}--[a-z]]/v`): left as literals, not made
      // `new RegExp(...)` calls, so that the build lowers their property escapes (below).
      supported: { 'regexp-set-notation': true },
      // A capsule has no `process`; libraries pick their build by this (React's index.js throws
      // "process is not defined" otherwise), and bundlers for Workers and browsers set it so.
      define: { 'process.env.NODE_ENV': JSON.stringify(mode === 'dev' ? 'development' : 'production') },
      outfile: join(dir, 'capsule.js'),
      write: false,
      metafile: true,
      logLevel: 'silent',
      plugins: [sdkPlugin],
      // Hosts map the capsule's stack frames back to its sources with the map (`sourceMapOf`); no
      // sourceMappingURL comment, which the engine has no use for, and no sources' text.
      sourcemap: 'external',
      sourcesContent: false,
      // Stack traces from code the dev engine evaluates name this file rather than an anonymous eval.
      ...(mode === 'dev' ? { footer: { js: `//# sourceURL=${bundleSourceUrl(entry)}` } } : {}),
    });
  let result: esbuild.BuildResult<{ metafile: true; write: false }>;
  try {
    result = await build(['globals.ts']);
    // The SDK's WebCrypto (webcrypto.ts) only for code that reaches crypto.subtle, its own or a
    // package's: it is 40 KB of script, which a component holds as about 290 KB of compiled
    // engine state, copied into every new instance, and it imports stratum:crypto. Its Intl
    // (intl.ts) likewise, for code that formats for a locale or normalizes, with stratum:intl.
    const text = result.outputFiles.find((output) => output.path.endsWith('.js'))?.text ?? '';
    const extras = [...(/\bsubtle\b/.test(text) ? ['webcrypto.ts'] : []), ...(INTL_USE.test(text) ? ['intl.ts'] : [])];
    if (extras.length > 0) result = await build(['globals.ts', ...extras]);
  } catch (error) {
    const failure = error as esbuild.BuildFailure;
    const messages = Array.isArray(failure.errors) ? failure.errors : [];
    const hint = bundleHint(
      mode,
      messages.map((message) => message.text),
    );
    throw new StratumError('BUILD_BUNDLE_FAILED', `cannot bundle ${entry}`, {
      details: messages.map((message) => {
        const where = message.location
          ? `${shown(resolve(dir, message.location.file))}:${message.location.line}:${message.location.column + 1}: `
          : '';
        return `${where}${message.text}`;
      }),
      ...(hint ? { hint } : {}),
      cause: error,
    });
  }
  const file = result.outputFiles.find((output) => output.path.endsWith('.js'));
  if (!file) throw new StratumError('BUILD_BUNDLE_FAILED', 'esbuild produced no output', { user: false });
  const mapFile = result.outputFiles.find((output) => output.path.endsWith('.js.map'));
  // Frames name the script as the engine ran it: the dev engine by its sourceURL, componentize-js
  // by the file's name (capsule.js, as `buildCapsule` writes it).
  const map = mapFile ? sourceMapOf(mapFile.text, dir, mode === 'dev' ? bundleSourceUrl(entry) : 'capsule.js') : undefined;
  const imports = new Set<string>();
  for (const out of Object.values(result.metafile.outputs)) {
    // Both lists are after tree shaking: an interface the code no longer uses is not imported.
    for (const imported of out.imports) if (imported.external) imports.add(imported.path);
    for (const [input, { bytesInOutput }] of Object.entries(out.inputs)) {
      if (input.startsWith(`${INTERFACE_NAMESPACE}:`) && bytesInOutput > 0) imports.add(input.slice(INTERFACE_NAMESPACE.length + 1));
    }
  }
  // After bundling, so that the packages' literals are reached too. A lowered literal is longer
  // than it was: the map's columns after it on its line are off by that much.
  let code = file.text;
  let lowered: ReturnType<typeof lowerPropertyEscapes> | undefined;
  try {
    lowered = lowerPropertyEscapes(code, mode === 'component' ? 'module' : 'script');
  } catch {
    // Code acorn cannot read is left as it was; the engine reports what it cannot run.
  }
  if (lowered && lowered.unreadable.length > 0) throw unreadableLiterals(entry, file.text, lowered.unreadable, map);
  if (lowered) code = lowered.code;
  return { code, ...(map ? { map } : {}), imports: [...imports].sort() };
}

/**
 * The build's refusal of regular expression literals the engine cannot read, each at its place in
 * the sources (through the bundle's source map) or else in the bundle.
 */
function unreadableLiterals(entry: string, code: string, literals: readonly UnreadableLiteral[], map: string | undefined): StratumError {
  const file = map ? (JSON.parse(map) as { file: string }).file : 'capsule.js';
  const mapper = map ? frameMapper(map) : undefined;
  return new StratumError('BUILD_BUNDLE_FAILED', `cannot bundle ${entry}`, {
    details: literals.map(({ start, literal, properties }) => {
      const before = code.slice(0, start).split('\n');
      const at = `${file}:${before.length}:${(before.at(-1)?.length ?? 0) + 1}`;
      const shownLiteral = literal.length > 60 ? `${literal.slice(0, 57)}...` : literal;
      return `${mapper ? mapper(at) : at}: ${shownLiteral} names ${properties.map((name) => `\\p{${name}}`).join(', ')}, a property of strings, which StarlingMonkey cannot read`;
    }),
    hint: 'StarlingMonkey is built without Unicode data, and the build rewrites a property escape into the code points it stands for, which it cannot do for a property of strings (sequences such as emoji with modifiers). Match those sequences another way (a package such as emoji-regex), or use a property of code points (\\p{Extended_Pictographic}).',
  });
}

function assertGranted(manifest: Manifest, imports: readonly string[], who: string): ImportCheck[] {
  const { checks, unknown } = checkImports(manifest, imports);
  if (unknown.length > 0) {
    throw new StratumError(
      'BUILD_UNKNOWN_IMPORT',
      `${who} ${unknown.length === 1 ? 'an interface' : 'interfaces'} that Stratum does not serve`,
      {
        details: unknown,
        hint: 'A capsule may import the interfaces of the stratum:capsule world (spec/wit/README.md).',
      },
    );
  }
  const missing = checks.filter((check) => !check.granted);
  if (missing.length > 0) {
    const grants = [...new Set(missing.map((check) => check.grant))] as (keyof typeof GRANT_HINTS)[];
    throw new StratumError('BUILD_UNGRANTED_IMPORT', `${who} ${grants.join(', ')}, which stratum.toml does not grant`, {
      details: missing.map((check) => `${check.name} needs the ${check.grant} capability`),
      hint: `Grant it in stratum.toml (${grants.map((grant) => GRANT_HINTS[grant]).join('; ')}), or stop using it.`,
    });
  }
  return checks;
}

/**
 * A WIT package whose world imports exactly what the bundle uses, beside the spec's deps; a dev
 * engine's world also imports `stratum:dev/source`, whose package goes into the deps.
 */
async function writeWorld(
  work: string,
  imports: readonly string[],
  options: { dev?: boolean } = {},
): Promise<{ witDir: string; worldName: string; world: string }> {
  const witDir = join(work, 'wit');
  await mkdir(witDir);
  await cp(join(specWitDir, 'deps'), join(witDir, 'deps'), { recursive: true });
  if (options.dev) {
    await mkdir(join(witDir, 'deps', 'stratum-dev'));
    await copyFile(join(devWitDir, 'source.wit'), join(witDir, 'deps', 'stratum-dev', 'source.wit'));
  }
  const world = worldText(imports, options);
  await writeFile(join(witDir, 'world.wit'), world);
  return { witDir, worldName: options.dev ? 'stratum:capsule-dev/engine' : 'stratum:capsule-build/capsule', world };
}

function worldText(imports: readonly string[], options: { dev?: boolean }): string {
  // Imports the capsule's code names without a version get the spec's version from the world.
  const lines = imports
    .filter((name) => !name.startsWith('wasi:http/types') && !name.startsWith('wasi:io/'))
    .map((name) => `  import ${name};`);
  if (options.dev) lines.push(`  import ${DEV_SOURCE_INTERFACE};`);
  const [pkg, world] = options.dev ? ['stratum:capsule-dev', 'engine'] : ['stratum:capsule-build', 'capsule'];
  return `package ${pkg}@0.1.0;\n\nworld ${world} {\n${lines.join('\n')}\n  export ${INCOMING_HANDLER};\n}\n`;
}

/** What the SDK's adapter needs from StarlingMonkey, for production builds and dev engines alike. */
const DISABLED_FEATURES = [
  // The SDK exports incoming-handler itself; the built-in fetch event would answer only one
  // request per instance.
  // (StarlingMonkey's `http` feature must stay: without it the wasi:http/types bindings the
  // adapter needs are stubbed out, so every JS component imports outgoing-handler for fetch().)
  'fetch-event',
];

/**
 * A toolchain error with the bundle's positions (`capsule.js:6:11`: a syntax error the engine
 * finds while it runs the top-level code, an exception thrown there) mapped to the sources'
 * (`src/index.ts:8:9`), as a host maps a capsule's stack frames.
 */
function inSources(error: unknown, map: string | undefined): unknown {
  const mapper = map ? frameMapper(map) : undefined;
  if (!mapper || !isStratumError(error) || !error.details) return error;
  const mapped = error.details.map(mapper);
  // Nothing of the capsule's code named: the toolchain's own failure, left as it was.
  if (mapped.every((line, index) => line === error.details?.[index])) return error;
  // The engine reports an exception of the top-level code twice, the second time as the module's
  // rejected promise: the same message again, which said nothing more.
  const details = mapped.filter((line, index) => {
    if (/^\s*Additionally, some promises were rejected/.test(line)) return false;
    const rejected = /^\s*Promise rejected but never handled: (.+)$/.exec(line)?.[1];
    return rejected === undefined || !mapped.slice(0, index).some((earlier) => earlier.endsWith(rejected));
  });
  return new StratumError(error.code, "the capsule's top-level code failed while the component was built", {
    details,
    user: true,
    hint: details.some((line) => /invalid (class )?property name in regular expression/.test(line))
      ? UNICODE_PROPERTY_HINT
      : "The capsule's top-level code failed while the component was made (componentize-js runs it then): fix the line above.",
  });
}

/** What a capsule reaches each interface through, for the error that names one. */
function reachedThrough(name: string): string {
  const [pkg] = unversioned(name).split('/');
  switch (pkg) {
    case 'stratum:keyvalue':
      return "openKeyValue() of @stratum/sdk/keyvalue, or the interface's own functions";
    case 'stratum:sql':
      return "openDatabase() of @stratum/sdk/sql, or the interface's own functions";
    case 'stratum:bucket':
      return "openBucket() of @stratum/sdk/bucket, or the interface's own functions";
    case 'wasi:config':
      return "getConfig() of @stratum/sdk/config, or the interface's own functions";
    case 'wasi:logging':
      return "the interface's own log function (@stratum/sdk/log writes to stdout there instead)";
    case 'stratum:intl':
      return 'Intl, toLocaleString, localeCompare or normalize';
    case 'stratum:crypto':
      return 'crypto.subtle';
    default:
      return "the interface's functions";
  }
}

/**
 * The build's error for top-level code that called an imported function. componentize-js runs
 * that code under wizer, which links no imports: it traps, and the toolchain's message is ten
 * lines of wasm backtrace ending in "attempted to call an unknown imported function: 'stratum:
 * keyvalue/store@0.1.0' 'open'. You cannot call arbitrary imported functions during Wizer
 * initialization", with no source line (a trap has no JavaScript stack). The SDK's own entry
 * points refuse first with the capsule's line (guest/top-level.ts); this is for the rest.
 */
function topLevelImport(error: unknown): StratumError | undefined {
  if (!isStratumError(error)) return undefined;
  const text = error.details.join('\n');
  const match = /attempted to call an unknown imported function: '([^']+)' '([^']+)'/.exec(text);
  if (!match || !/during Wizer initialization/.test(text)) return undefined;
  const [, iface = '', fn = ''] = match;
  // The capsule's own output before the trap (console.log at the top level) may say where it was.
  const output = error.details.filter(
    (line) =>
      !/^\s*(\d+: |Caused by:|Error: |Failed to initialize|You cannot call|0x)/.test(line) && !/wasm function|wasm backtrace/.test(line),
  );
  return new StratumError('BUILD_TOP_LEVEL_IMPORT', `the capsule's top-level code called ${iface} (${fn}) while the component was built`, {
    details: [
      `${iface} ${fn}: top-level code runs once while the component is built (componentize-js runs it then), where no host answers: no key-value store, database, bucket, config or log exists`,
      `it is reached through ${reachedThrough(iface)}`,
      ...output.map((line) => `output before it: ${line.trim()}`),
    ],
    hint: 'Call it inside fetch(), or in a function that fetch() calls; to open a handle once per instance, open it lazily on first use (let kv; … kv ??= openKeyValue("x")).',
    cause: error,
  });
}

async function componentize(sourcePath: string, witDir: string, worldName: string): Promise<Uint8Array> {
  const { component } = await runToolchain({
    op: 'componentize',
    sourcePath,
    witPath: witDir,
    worldName,
    disableFeatures: DISABLED_FEATURES,
  });
  if (!component) throw new StratumError('TOOLCHAIN_FAILED', 'componentize-js returned no component', { user: false });
  return component;
}

/** The interfaces a component imports and exports, read from its embedded WIT. */
export async function componentInterfaces(component: Uint8Array): Promise<{ imports: string[]; exports: string[] }> {
  const { wit } = await runToolchain({ op: 'wit', component });
  const imports = new Set<string>();
  const exports = new Set<string>();
  let inWorld = false;
  for (const line of (wit ?? '').split('\n')) {
    if (/^\s*world\s/.test(line)) inWorld = true;
    if (!inWorld) continue;
    const match = /^\s*(import|export)\s+([a-z0-9-]+:[a-z0-9-/]+(?:@[0-9A-Za-z.+-]+)?);/.exec(line);
    if (match?.[1] === 'import' && match[2]) imports.add(match[2]);
    if (match?.[1] === 'export' && match[2]) exports.add(match[2]);
  }
  return { imports: [...imports].sort(), exports: [...exports].sort() };
}
