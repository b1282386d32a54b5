import { cp, mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StratumError } from '@stratum/core';
import { loadManifest, type Manifest } from '@stratum/manifest';
import * as esbuild from 'esbuild';
import { specWitDir } from '../wit/types.ts';
import { checkImports, GRANT_HINTS, type ImportCheck } from './grants.ts';
import { runToolchain } from './toolchain.ts';

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
 * @throws StratumError: MANIFEST_INVALID, BUILD_NO_ENTRY, BUILD_BUNDLE_FAILED, BUILD_UNGRANTED_IMPORT, BUILD_UNKNOWN_IMPORT, TOOLCHAIN_FAILED
 */
export async function buildCapsule(projectDir: string, options: BuildOptions = {}): Promise<BuildResult> {
  const started = performance.now();
  const step = options.onStep ?? (() => {});
  const dir = resolve(projectDir);
  const manifestFile = join(dir, 'stratum.toml');

  step('manifest', `reading ${shown(manifestFile)}`);
  const { manifest } = await loadManifest(manifestFile, shown(manifestFile));
  const output = outputPath(dir, manifest, options.output);
  const entry = await findEntry(dir, manifest);

  step('bundle', `bundling ${entry}`);
  const work = await mkdtemp(join(tmpdir(), 'stratum-build-'));
  try {
    const { bundlePath, imports: moduleImports } = await bundle(dir, entry, work);

    step('check', `checking ${moduleImports.length} imported interface(s) against the manifest`);
    assertGranted(manifest, moduleImports, 'the capsule code imports');

    step('componentize', 'making the component (componentize-js; this takes a while)');
    const witDir = await writeWorld(work, moduleImports);
    const { component } = await runToolchain({
      op: 'componentize',
      sourcePath: bundlePath,
      witPath: witDir,
      worldName: 'stratum:capsule-build/capsule',
      // The SDK exports incoming-handler itself; the built-in fetch event would answer only one
      // request per instance.
      // (StarlingMonkey's `http` feature must stay: without it the wasi:http/types bindings the
      // adapter needs are stubbed out, so every JS component imports outgoing-handler for fetch().)
      disableFeatures: ['fetch-event'],
    });
    if (!component) throw new StratumError('TOOLCHAIN_FAILED', 'componentize-js returned no component', { user: false });

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

/** A path as the user would type it: relative when under the working directory, else absolute. */
function shown(path: string): string {
  const fromHere = relative(process.cwd(), path);
  return fromHere === '' || fromHere.startsWith('..') ? path : fromHere;
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

async function bundle(dir: string, entry: string, work: string): Promise<{ bundlePath: string; imports: string[] }> {
  const bundlePath = join(work, 'capsule.js');
  const entryPath = join(dir, entry);
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
      build.onResolve({ filter: /^(wasi|stratum):/ }, (args) => ({ path: args.path, external: true }));
    },
  };
  let result: esbuild.BuildResult<{ metafile: true; write: false }>;
  try {
    result = await esbuild.build({
      stdin: {
        contents: `import capsule from ${JSON.stringify(entryPath)};\nimport { serve } from '@stratum/sdk/http';\nexport const incomingHandler = serve(capsule);\n`,
        resolveDir: dir,
        sourcefile: 'stratum-entry.js',
        loader: 'js',
      },
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      mainFields: ['module', 'main'],
      target: 'es2022',
      outfile: bundlePath,
      write: false,
      metafile: true,
      logLevel: 'silent',
      plugins: [sdkPlugin],
    });
  } catch (error) {
    const failure = error as esbuild.BuildFailure;
    const messages = Array.isArray(failure.errors) ? failure.errors : [];
    throw new StratumError('BUILD_BUNDLE_FAILED', `cannot bundle ${entry}`, {
      details: messages.map((message) => {
        const where = message.location
          ? `${shown(resolve(dir, message.location.file))}:${message.location.line}:${message.location.column + 1}: `
          : '';
        return `${where}${message.text}`;
      }),
      hint: 'Fix the code above; the entry module must default-export an object with a fetch(request) method.',
      cause: error,
    });
  }
  const file = result.outputFiles[0];
  if (!file) throw new StratumError('BUILD_BUNDLE_FAILED', 'esbuild produced no output', { user: false });
  await writeFile(bundlePath, file.contents);
  const imports = new Set<string>();
  for (const out of Object.values(result.metafile.outputs)) {
    for (const imported of out.imports) if (imported.external) imports.add(imported.path);
  }
  return { bundlePath, imports: [...imports].sort() };
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

/** A WIT package whose world imports exactly what the bundle uses, beside the spec's deps. */
async function writeWorld(work: string, imports: readonly string[]): Promise<string> {
  const witDir = join(work, 'wit');
  await mkdir(witDir);
  await cp(join(specWitDir, 'deps'), join(witDir, 'deps'), { recursive: true });
  // Imports the capsule's code names without a version get the spec's version from the world.
  const lines = imports
    .filter((name) => !name.startsWith('wasi:http/types') && !name.startsWith('wasi:io/'))
    .map((name) => `  import ${name};`);
  await writeFile(
    join(witDir, 'world.wit'),
    `package stratum:capsule-build@0.1.0;\n\nworld capsule {\n${lines.join('\n')}\n  export ${INCOMING_HANDLER};\n}\n`,
  );
  return witDir;
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
