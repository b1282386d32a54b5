import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { StratumError } from '@stratum/core';
import type { Manifest } from '@stratum/manifest';
import { type CommandIo, shellWord } from './command.ts';
import { isWatchedPath } from './dev/watch.ts';
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

type LocalManifest = Manifest & { source: { kind: 'wasm' } };

/**
 * What a build reads of a project: its modules and the data they import, as esbuild loads them
 * by default, and package.json and tsconfig.json. Not stratum.toml: an edit to it (a version, a
 * grant, a route) leaves the component as it was, and is sent as it is.
 */
const BUILD_INPUT = /\.(?:[cm]?[jt]sx?|json|txt)$/;

/**
 * The component a capsule's [source] wasm names, as `stratum validate`, `stratum push` and `host
 * install` see it: not built yet, or built (its bytes), and for a manifest with [build], the
 * newest of the build's inputs changed since it was built (`newer`, relative to the project), if
 * any. The build's inputs are the project's files that `stratum dev` rebuilds for (not
 * node_modules, dist/ or .stratum/) that a build reads (`BUILD_INPUT`).
 */
export async function componentState(
  manifestFile: string,
  manifest: LocalManifest,
): Promise<{ path: string; built: false } | { path: string; built: true; bytes: Buffer; newer?: string }> {
  const path = resolve(dirname(manifestFile), manifest.source.wasm);
  const [bytes, info] = await Promise.all([readFile(path), stat(path)]).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [undefined, undefined];
    throw new StratumError('COMPONENT_UNREADABLE', `cannot read the component ${path}`, {
      details: [String(error)],
      hint: `Check [source] wasm in ${manifestFile}.`,
    });
  });
  if (bytes === undefined || info === undefined) return { path, built: false };
  if (!manifest.build) return { path, built: true, bytes };
  const project = dirname(resolve(manifestFile));
  const newer = await newestInput(project, project, path, info.mtimeMs);
  return { path, built: true, bytes, ...(newer ? { newer: newer.path } : {}) };
}

/** The most recently changed build input under `dir` changed after `since`, if any. */
async function newestInput(
  dir: string,
  project: string,
  component: string,
  since: number,
): Promise<{ path: string; mtimeMs: number } | undefined> {
  let newest: { path: string; mtimeMs: number } | undefined;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    const shown = relative(project, path);
    if (!isWatchedPath(shown) || path === component) continue;
    let found: { path: string; mtimeMs: number } | undefined;
    if (entry.isDirectory()) found = await newestInput(path, project, component, since);
    else if (entry.isFile() && BUILD_INPUT.test(entry.name)) {
      const mtimeMs = (await stat(path).catch(() => undefined))?.mtimeMs ?? 0;
      if (mtimeMs > since) found = { path: shown, mtimeMs };
    }
    if (found && (!newest || found.mtimeMs > newest.mtimeMs)) newest = found;
  }
  return newest;
}

/**
 * The component to send (`stratum push`, `host install`): as `readLocalComponent` reads it, but
 * for a manifest with [build] whose entry module is there, built first when it is not built yet
 * or a build input changed since it was (`componentState`), with the build's progress on stderr as \`stratum build\`
 * shows it: what was sent was the last build, not the code the developer had just edited.
 */
export async function builtComponent(
  manifestFile: string,
  manifest: LocalManifest,
  code: string,
  io: CommandIo,
): Promise<{ path: string; bytes: Buffer }> {
  const state = await componentState(manifestFile, manifest);
  const dir = dirname(manifestFile);
  // Without its sources here (a manifest copied beside a component), there is nothing to build.
  const buildable = manifest.build !== undefined && (await pathExists(resolve(dir, manifest.build.entry)));
  if (!buildable || (state.built && !state.newer)) return readLocalComponent(manifestFile, manifest, code);
  const why = state.built ? `${state.newer} changed since ${manifest.source.wasm} was built` : `${manifest.source.wasm} is not built yet`;
  // A build makes the component [source] wasm of the directory's stratum.toml names; another manifest's path it does not know.
  if (basename(manifestFile) !== 'stratum.toml') {
    throw new StratumError(code, `${why}: ${manifestFile} would send ${state.built ? 'an old build' : 'no component'}`, {
      hint: `Build it first (\`stratum build\` builds from a directory's stratum.toml), then run this again.`,
    });
  }
  io.stderr.write(`${why}: building it first\n`);
  const { buildWithProgress } = await import('./commands/build.ts');
  await buildWithProgress(dir, io, { summary: io.stderr });
  return readLocalComponent(manifestFile, manifest, code);
}
