import { constants } from 'node:fs';
import { access, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { formatBytes, formatDuration, isStratumError, StratumError } from '@stratum/core';
import { type Command, type CommandIo, EXIT_OK, paint, stringOption, usageError } from '../command.ts';

/**
 * Checks -o before a build of many seconds, which found out only when it wrote, and makes its
 * directory. The directories are made one by one rather than by a recursive mkdir, which on a
 * path it can never make (under /proc) loops forever.
 */
async function prepareOutput(given: string): Promise<void> {
  const path = resolve(given);
  const hint = 'Give -o a file path whose directories exist or can be made, such as dist/capsule.wasm.';
  const kind = await stat(path).catch(() => undefined);
  if (kind?.isDirectory())
    throw usageError(`-o ${given} is a directory`, `Name the file in it, such as ${given.replace(/\/$/, '')}/capsule.wasm.`);
  const missing: string[] = [];
  let existing = dirname(path);
  for (;;) {
    const info = await stat(existing).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw new StratumError('BUILD_OUTPUT_UNUSABLE', `cannot write -o ${given}: ${existing} cannot be read`, {
        details: [error.message],
        hint,
      });
    });
    if (info) {
      if (!info.isDirectory()) throw usageError(`cannot write -o ${given}: ${existing} is a file, not a directory`, hint);
      break;
    }
    missing.unshift(existing);
    existing = dirname(existing);
  }
  await access(existing, constants.W_OK).catch(() => {
    throw usageError(`cannot write -o ${given}: ${existing} is not writable`, hint);
  });
  for (const dir of missing) {
    await mkdir(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') return;
      throw usageError(`cannot write -o ${given}: cannot make the directory ${dir} (${error.code ?? error.message})`, hint);
    });
  }
}

/**
 * Why a manifest whose [source] is a registry's has nothing to build to, and how to build again:
 * `stratum push --pin` once pinned stratum.toml itself (it writes stratum.pinned.toml now), and
 * left the wasm line it replaced as a comment, which is named.
 */
async function registrySourceError(dir: string): Promise<StratumError> {
  const file = join(dir, 'stratum.toml');
  const text = await readFile(file, 'utf8').catch(() => '');
  const wasm = /^\s*#\s*((?:source\.)?wasm\s*=\s*"[^"\n]*")\s*\(before `stratum push --pin`\)/m.exec(text)?.[1];
  return new StratumError('BUILD_NO_OUTPUT', `${file}'s [source] names a registry, so there is no local path to build to`, {
    hint: wasm
      ? `An earlier \`stratum push --pin\` pinned ${file} itself (it now writes the pin to stratum.pinned.toml and leaves stratum.toml alone): put back \`${wasm}\` in place of [source] registry and digest, and uncomment [build]. Or pass -o <file.wasm>.`
      : 'Set [source] wasm = "dist/<name>.wasm" to build here (`stratum push --pin` writes the pinned manifest hosts install to stratum.pinned.toml), or pass -o <file.wasm>.',
  });
}

/**
 * Builds the capsule in `dir` as \`stratum build\` does, its steps on stderr as they start, then
 * what was built on `summary` (stdout for \`stratum build\`; stderr for a command whose stdout
 * says something else, such as \`stratum push\`'s digest).
 */
export async function buildWithProgress(
  dir: string,
  io: CommandIo,
  options: { out?: string; summary: NodeJS.WritableStream & { isTTY?: boolean } },
): Promise<void> {
  const { buildCapsule, linkSdkForEditors } = await import('@stratum/sdk/build');
  // For the editor (see `stratum init`): a convenience, which a read-only node_modules must not fail.
  await linkSdkForEditors(dir).catch(() => undefined);
  const result = await buildCapsule(dir, {
    ...(options.out !== undefined ? { output: options.out } : {}),
    onStep: (_step, message) => io.stderr.write(`${paint(io.stderr, 2, '…')} ${message}\n`),
  });
  const summary = options.summary;
  const fromHere = relative(process.cwd(), result.output);
  const shown = fromHere.startsWith('..') ? result.output : fromHere;
  const capabilities = result.imports.filter((check) => check.grant !== 'none');
  const ungranted = result.imports.filter((check) => check.grant === 'none');
  // The SDK's WebCrypto and Intl, which only code that uses them imports.
  const computed = ungranted.filter((check) => check.name.startsWith('stratum:'));
  const basics = ungranted.filter((check) => !check.name.startsWith('stratum:'));
  const packages = (checks: typeof basics) => [...new Set(checks.map((check) => check.name.replace(/\/.*$/, '')))].join(', ');
  summary.write(
    [
      `${paint(summary, 32, 'built')} ${shown} (${formatBytes(result.bytes)}) in ${formatDuration(result.elapsedMs)}`,
      `  entry         ${result.entry}`,
      `  exports       ${result.exports.join(', ')}`,
      `  capabilities  ${capabilities.length > 0 ? capabilities.map((check) => `${check.name} (${check.grant})`).join(', ') : 'none (HTTP in only)'}`,
      // The interfaces every JS component imports whatever its code does, by package: eighteen names
      // of them buried the capabilities line above.
      ...(computed.length > 0
        ? [`  computed      ${packages(computed)} (by the host, for the SDK's WebCrypto and Intl; no grant needed)`]
        : []),
      `  basics        ${packages(basics)} (${basics.length} interfaces every JS capsule imports)`,
      '',
    ].join('\n'),
  );
}

export const buildCommand: Command = {
  name: 'build',
  summary: 'build a JavaScript or TypeScript capsule into a WebAssembly component',
  usage: 'build [dir] [-o file.wasm]',
  description: `
Bundles the capsule's entry module ([build] entry in stratum.toml, else src/index.ts) with
esbuild and makes a WebAssembly component of it with componentize-js. The component exports
wasi:http/incoming-handler and imports only the capabilities the code uses; the build fails
when the code imports one that stratum.toml does not grant. The directory defaults to the
current one; the component goes to the manifest's [source] wasm path unless -o says otherwise.

Examples:
  stratum build examples/hello
  stratum build . -o /tmp/capsule.wasm`,
  maxPositionals: 1,
  options: {
    out: {
      type: 'string',
      short: 'o',
      value: 'file.wasm',
      description: "where to write the component (default: the manifest's [source] wasm)",
    },
  },
  async run(args, io) {
    const dir = args.positionals[0] ?? '.';
    const out = stringOption(args, 'out');
    if (out !== undefined) await prepareOutput(out);
    await buildWithProgress(dir, io, { ...(out !== undefined ? { out } : {}), summary: io.stdout }).catch(async (error: unknown) => {
      throw isStratumError(error) && error.code === 'BUILD_NO_OUTPUT' ? await registrySourceError(dir) : error;
    });
    return EXIT_OK;
  },
};
