// The components the benchmarks run, built and cached exactly as the tests build them.
import { fileURLToPath } from 'node:url';
import { buildExample, type ExampleName, exampleDir } from '../../tests/support/examples.ts';
import { buildTiny } from '../../tests/support/tiny.ts';

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
export const plainServer = fileURLToPath(new URL('../servers/plain-http.ts', import.meta.url));
export const jcoBin = fileURLToPath(new URL('../../node_modules/@bytecodealliance/jco/dist/jco.js', import.meta.url));
