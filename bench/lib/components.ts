// The components the benchmarks run, built and cached exactly as the tests build them.
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runToolchain, WASI_HTTP_VERSION } from '@stratum/sdk/build';
import { nestedPackage } from '../../examples/tiny/build.ts';
import { buildExample, type ExampleName, exampleDir } from '../../tests/support/examples.ts';
import { buildTiny, buildWat } from '../../tests/support/tiny.ts';

export interface BenchComponent {
  name: string;
  manifest: string;
  component: string;
}

export async function tinyComponent(): Promise<BenchComponent> {
  return {
    name: 'tiny',
    manifest: fileURLToPath(new URL('../../examples/tiny/stratum.toml', import.meta.url)),
    component: await buildTiny(),
  };
}

export async function exampleComponent(name: ExampleName): Promise<BenchComponent> {
  return { name, manifest: `${exampleDir(name)}/stratum.toml`, component: await buildExample(name) };
}

export const hostServer = fileURLToPath(new URL('../servers/host.ts', import.meta.url));
export const plainServer = fileURLToPath(new URL('../servers/plain-http.js', import.meta.url));
export const stratumCli = fileURLToPath(new URL('../../packages/cli/bin/stratum.js', import.meta.url));
export const jcoBin = fileURLToPath(new URL('../../node_modules/@bytecodealliance/jco/dist/jco.js', import.meta.url));

const opsNativeDir = new URL('../capsules/ops-native/', import.meta.url);

/**
 * The capabilities suite's native capsule (bench/capsules/ops-native): ops.wat, with a world that
 * imports Stratum's keyvalue store, nested from spec/wit as the build nests the WASI packages.
 */
export async function opsNativeComponent(): Promise<BenchComponent> {
  const world = `package stratum:tiny;\nworld tiny {\n  import stratum:keyvalue/store@0.1.0;\n  export wasi:http/incoming-handler@0.2.10;\n}\n${nestedPackage('stratum-keyvalue/keyvalue.wit')}`;
  return {
    name: 'ops-native',
    manifest: fileURLToPath(new URL('stratum.toml', opsNativeDir)),
    component: await buildWat(fileURLToPath(new URL('ops.wat', opsNativeDir)), world),
  };
}

const helloFloorDir = new URL('../capsules/hello-floor/', import.meta.url);
const benchCacheDir = fileURLToPath(new URL('../../node_modules/.cache/stratum-bench/', import.meta.url));

/**
 * The overhead suite's JS floor (bench/capsules/hello-floor): its module made into a component by
 * componentize-js with the options `stratum build` uses, but without the SDK's adapter, which
 * gives a capsule's code the Fetch API. Cached by its source, the toolchain's version and the
 * build's rewrite of the bindings.
 */
export async function helloFloorComponent(): Promise<BenchComponent> {
  const source = fileURLToPath(new URL('index.js', helloFloorDir));
  const toolchain = JSON.parse(
    await readFile(new URL('../../node_modules/@bytecodealliance/componentize-js/package.json', import.meta.url), 'utf8'),
  ) as { version: string };
  const hash = createHash('sha256')
    .update(await readFile(source))
    .update(toolchain.version)
    // What the build does to componentize-js's bindings changes the floor as much as a capsule.
    .update(await readFile(new URL('../../packages/sdk/src/build/lean-bindings.ts', import.meta.url)))
    .digest('hex')
    .slice(0, 32);
  const component = join(benchCacheDir, `hello-floor-${hash}.wasm`);
  const manifest = fileURLToPath(new URL('stratum.toml', helloFloorDir));
  if (await stat(component).catch(() => undefined)) return { name: 'hello-floor', manifest, component };
  const work = await mkdtemp(join(tmpdir(), 'stratum-bench-floor-'));
  try {
    await cp(fileURLToPath(new URL('../../spec/wit/deps/', import.meta.url)), join(work, 'wit', 'deps'), { recursive: true });
    await writeFile(
      join(work, 'wit', 'world.wit'),
      `package stratum:bench-floor@0.1.0;\n\nworld floor {\n  export wasi:http/incoming-handler@${WASI_HTTP_VERSION};\n}\n`,
    );
    // As `stratum build`: the handler is exported, so StarlingMonkey's own fetch event is off.
    const built = await runToolchain({
      op: 'componentize',
      sourcePath: source,
      witPath: join(work, 'wit'),
      worldName: 'stratum:bench-floor/floor',
      disableFeatures: ['fetch-event'],
    });
    if (!built.component) throw new Error('componentize-js returned no component for bench/capsules/hello-floor');
    await mkdir(benchCacheDir, { recursive: true });
    await writeFile(`${component}.tmp`, built.component);
    await rename(`${component}.tmp`, component);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { name: 'hello-floor', manifest, component };
}
