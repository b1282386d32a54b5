// The components the benchmarks run, built and cached exactly as the tests build them.
import { fileURLToPath } from 'node:url';
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
