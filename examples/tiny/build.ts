/**
 * Builds the tiny capsule (and any other WAT capsule of the same world) into a wasi:http
 * component: WAT -> core module (jco's `parse`), + the world's WIT (`componentEmbed`), ->
 * component (`componentNew`). The WIT comes from spec/wit/deps, the WASI 0.2.10 packages the
 * project vendors.
 *
 * Run: `node examples/tiny/build.ts [out.wasm]` (default examples/tiny/tiny.wasm, not committed).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco';

const WIT_DEPS = new URL('../../spec/wit/deps/', import.meta.url);
const PACKAGES = ['io', 'clocks', 'random', 'cli', 'filesystem', 'sockets', 'http'];

/**
 * One WIT source with the WASI packages nested in it: jco's `componentEmbed` reads a WIT
 * directory through a sandboxed filesystem that cannot see the host's, so the packages are
 * inlined (`package wasi:io@0.2.10 { ... }`) instead.
 */
export function worldSource(world = 'package stratum:tiny;\nworld tiny { export wasi:http/incoming-handler@0.2.10; }\n'): string {
  let source = world;
  for (const name of PACKAGES) source += nestedPackage(`wasi-${name}/package.wit`);
  return source;
}

/** A package of spec/wit/deps (`file` relative to it) as nested WIT: `package x:y@1.0.0 { ... }`. */
export function nestedPackage(file: string): string {
  const text = readFileSync(new URL(file, WIT_DEPS), 'utf8');
  const header = /^package ([^;]+);/m.exec(text);
  if (!header) throw new Error(`spec/wit/deps/${file} has no package header`);
  const body = text.slice(0, header.index) + text.slice(header.index + header[0].length);
  return `package ${header[1]} {\n${body}\n}\n`;
}

/**
 * Turns a WAT core module exporting `wasi:http/incoming-handler` into a component. `world` is
 * WIT text for package `stratum:tiny` with a world named `tiny` (and any packages of its own,
 * nested); the WASI packages are added to it.
 */
export async function componentFromWat(wat: string, world?: string): Promise<Uint8Array> {
  const core = await parse(wat);
  const embedded = await componentEmbed({ binary: core, witSource: worldSource(world), world: 'tiny' });
  return componentNew(embedded);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? fileURLToPath(new URL('tiny.wasm', import.meta.url));
  const component = await componentFromWat(readFileSync(new URL('tiny.wat', import.meta.url), 'utf8'));
  writeFileSync(out, component);
  process.stdout.write(`wrote ${out} (${component.length} bytes)\n`);
}
