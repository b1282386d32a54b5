import { stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { formatBytes, formatDuration, sha256Hex } from '@stratum/core';
import type { Manifest } from '@stratum/manifest';
import { booleanOption, type Command, EXIT_FAILURE, EXIT_OK, paint, shellWord } from '../command.ts';
import { componentState } from '../local-component.ts';

/** `stratum.toml` inside a directory, or the path itself when it names a file. */
export async function manifestPath(path: string | undefined): Promise<string> {
  const target = path ?? '.';
  const info = await stat(target).catch(() => undefined);
  return info?.isDirectory() ? join(target, 'stratum.toml') : target;
}

export function describeManifest(manifest: Manifest): string[] {
  const { capsule, source, resources, capabilities, http } = manifest;
  const grants = [
    ...capabilities.keyvalue.map((label) => `keyvalue:${label}`),
    ...capabilities.sql.map((label) => `sql:${label}`),
    ...capabilities.bucket.map((label) => `bucket:${label}`),
    ...capabilities.outbound.map((origin) => `outbound:${origin}`),
  ];
  const config = Object.entries(capabilities.config).map(
    ([name, variable]) =>
      `${name}${variable.secret ? ' (secret)' : ''}${variable.required ? ' (required)' : ''}${variable.default !== undefined ? ` = ${variable.secret ? '***' : JSON.stringify(variable.default)}` : ''}`,
  );
  return [
    `${capsule.name} ${capsule.version}${capsule.description ? `: ${capsule.description}` : ''}`,
    `  source        ${source.kind === 'wasm' ? source.wasm : source.registry}${source.digest ? ` @ ${source.digest.slice(0, 19)}...` : ''}`,
    `  resources     cpu ${resources.cpu} (${resources.cpuMsPerRequest} ms CPU per request), memory ${formatBytes(resources.memoryBytes)}, timeout ${formatDuration(resources.timeoutMs)}, ${resources.concurrency} concurrent`,
    `  capabilities  ${grants.length > 0 ? grants.join(', ') : 'none (HTTP in only)'}`,
    ...(config.length > 0 ? [`  config        ${config.join(', ')}`] : []),
    `  routes        ${http.routes.join(' ')}`,
  ];
}

export const validateCommand: Command = {
  name: 'validate',
  summary: 'check a stratum.toml and show what it asks for',
  usage: 'validate [path] [--json]',
  description: `
Validates a capsule manifest against the spec (spec/capsule/README.md). The path is a
stratum.toml or a directory that holds one; it defaults to the current directory. It also says
whether the component [source] wasm names is there (its size and digest), and refuses one that
[source] digest does not pin, and notes an outbound origin on this machine or a private address,
which a host refuses unless its [outbound] allow_addresses lists the range. What the component imports is checked when it runs: \`stratum dev\`
serves a prebuilt component too, and refuses an import its manifest does not grant, as a host
does at install.

Exit status: 0 when valid, 1 when not (one line per problem: file:line:col: message),
2 for a usage error.

Examples:
  stratum validate examples/hello
  stratum validate stratum.toml --json`,
  maxPositionals: 1,
  options: {
    json: { type: 'boolean', description: 'print the normalised manifest as JSON (sizes in bytes, times in ms)' },
  },
  async run(args, io) {
    const path = await manifestPath(args.positionals[0]);
    const { loadManifest, ManifestError } = await import('@stratum/manifest');
    try {
      const { manifest } = await loadManifest(path);
      if (booleanOption(args, 'json')) io.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
      else {
        io.stdout.write(`${paint(io.stdout, 32, 'valid')} ${path}\n${describeManifest(manifest).join('\n')}\n`);
        for (const note of await localOrigins(manifest)) io.stdout.write(`  ${paint(io.stdout, 33, 'note')}          ${note}\n`);
      }
      return (await checkComponentFile(path, manifest, io, booleanOption(args, 'json'))) ? EXIT_OK : EXIT_FAILURE;
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      for (const line of error.details) io.stderr.write(`${line}\n`);
      return EXIT_FAILURE;
    }
  },
};

/**
 * Outbound origins a host refuses by default although the manifest grants them: a name of this
 * machine or a loopback, private or otherwise special address. Valid, as the grant is the
 * capsule's to make, but the fetch fails at run time on a host that does not allow the range.
 */
async function localOrigins(manifest: Manifest): Promise<string[]> {
  const { parseOrigin } = await import('@stratum/manifest/rules');
  const notes: string[] = [];
  for (const origin of manifest.capabilities.outbound) {
    const parsed = parseOrigin(origin);
    if (typeof parsed === 'string') continue;
    const loopback = parsed.host === 'localhost' || parsed.host.endsWith('.localhost') || /^127\./.test(parsed.host);
    if (!loopback && !(await import('@stratum/host')).specialAddress(parsed.host)) continue;
    notes.push(
      `outbound ${origin} is ${loopback ? 'this machine' : 'a private or special address'}: ${loopback ? '`stratum dev` reaches it, but ' : ''}a host refuses it unless its [outbound] allow_addresses lists the range`,
    );
  }
  return notes;
}

/**
 * The file `[source] wasm` names, when the manifest has one (`componentState`): said to be there
 * (with its size and digest) or not yet built, or built before a change to the build's inputs
 * (which \`stratum push\` and \`host install\` build again first), and refused when `[source]
 * digest` pins other bytes, as a host would refuse it. A component made by another language's
 * toolchain is checked no further here: `stratum dev` runs it and checks its imports as a host
 * does at install.
 */
async function checkComponentFile(
  path: string,
  manifest: Manifest,
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
  json: boolean,
): Promise<boolean> {
  // With --json, stdout holds the manifest alone: only a refusal is said, on stderr.
  const say = (line: string) => (json ? undefined : io.stdout.write(line));
  if (manifest.source.kind !== 'wasm') return true;
  const build = `stratum build ${shellWord(dirname(path))}`;
  const state = await componentState(path, { ...manifest, source: manifest.source });
  if (!state.built) {
    say(`  component     ${manifest.source.wasm}, not built yet${manifest.build ? `: ${build}` : ''}\n`);
    return true;
  }
  const digest = `sha256:${sha256Hex(state.bytes)}`;
  if (manifest.source.digest !== undefined && manifest.source.digest !== digest) {
    io.stderr.write(`${path}: [source] digest is ${manifest.source.digest}, but ${manifest.source.wasm} is ${digest}: a host refuses it\n`);
    return false;
  }
  say(
    `  component     ${manifest.source.wasm}, ${formatBytes(state.bytes.byteLength)}, ${digest}${manifest.source.digest ? ' (pinned)' : ''}${state.newer ? `; built before ${state.newer} changed: ${build}` : ''}\n`,
  );
  return true;
}
