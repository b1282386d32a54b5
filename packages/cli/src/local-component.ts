import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { StratumError } from '@stratum/core';
import type { Manifest } from '@stratum/manifest';

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
  const bytes = await readFile(path).catch((error: NodeJS.ErrnoException) => {
    throw new StratumError(code, `cannot read the component ${path}`, {
      details: [error.code === 'ENOENT' ? 'no such file' : String(error)],
      hint: manifest.build ? 'Build it first: `stratum build`.' : `Check [source] wasm in ${manifestFile}.`,
    });
  });
  return { path, bytes };
}
