import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { StratumError } from '@stratum/core';
import type { Manifest } from '@stratum/manifest';
import { shellWord } from './command.ts';
import { pathExists } from './files.ts';

/** Scripts a project without a [build] table may make its component with (examples/tiny/build.ts does). */
const BUILD_SCRIPTS = ['build.ts', 'build.js', 'build.mjs'];

/** How to make the component a manifest names, for the hint when it is not there. */
async function howToBuild(manifestFile: string, manifest: Manifest): Promise<string> {
  const dir = dirname(manifestFile);
  if (manifest.build) return `Build it first: \`stratum build${dir === '.' ? '' : ` ${shellWord(dir)}`}\`.`;
  for (const script of BUILD_SCRIPTS) {
    const path = join(dir, script);
    if (await pathExists(path)) return `Build it first with the project's build script: \`node ${shellWord(path)}\`.`;
  }
  return `Build it first, or check [source] wasm in ${manifestFile}.`;
}

/**
 * The component a capsule's [source] wasm names, read whole; or an error that says where it was
 * looked for and how to make it (`code` is the command's own, such as PUSH_NO_COMPONENT).
 */
export async function readLocalComponent(
  manifestFile: string,
  manifest: Manifest & { source: { kind: 'wasm' } },
  code: string,
): Promise<{ path: string; bytes: Buffer }> {
  const path = resolve(dirname(manifestFile), manifest.source.wasm);
  try {
    return { path, bytes: await readFile(path) };
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new StratumError(code, `cannot read the component ${path}`, {
      details: [missing ? 'no such file' : String(error)],
      hint: missing ? await howToBuild(manifestFile, manifest) : `Check [source] wasm in ${manifestFile}.`,
    });
  }
}
