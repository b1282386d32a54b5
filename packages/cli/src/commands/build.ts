import { relative } from 'node:path';
import { formatBytes, formatDuration } from '@stratum/core';
import { type Command, EXIT_OK, paint, stringOption } from '../command.ts';

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
    const { buildCapsule, linkSdkForEditors } = await import('@stratum/sdk/build');
    // For the editor (see `stratum init`): a convenience, which a read-only node_modules must not fail.
    await linkSdkForEditors(dir).catch(() => undefined);
    const result = await buildCapsule(dir, {
      ...(out !== undefined ? { output: out } : {}),
      onStep: (_step, message) => io.stderr.write(`${paint(io.stderr, 2, '…')} ${message}\n`),
    });
    const fromHere = relative(process.cwd(), result.output);
    const shown = fromHere.startsWith('..') ? result.output : fromHere;
    const capabilities = result.imports.filter((check) => check.grant !== 'none');
    const ungranted = result.imports.filter((check) => check.grant === 'none');
    // The SDK's WebCrypto and Intl, which only code that uses them imports.
    const computed = ungranted.filter((check) => check.name.startsWith('stratum:'));
    const basics = ungranted.filter((check) => !check.name.startsWith('stratum:'));
    const packages = (checks: typeof basics) => [...new Set(checks.map((check) => check.name.replace(/\/.*$/, '')))].join(', ');
    io.stdout.write(
      [
        `${paint(io.stdout, 32, 'built')} ${shown} (${formatBytes(result.bytes)}) in ${formatDuration(result.elapsedMs)}`,
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
    return EXIT_OK;
  },
};
