import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes, formatDuration } from '@stratum/core';
import type { Manifest } from '@stratum/manifest';
import { booleanOption, type Command, EXIT_FAILURE, EXIT_OK, paint } from '../command.ts';

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
stratum.toml or a directory that holds one; it defaults to the current directory.

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
      else io.stdout.write(`${paint(io.stdout, 32, 'valid')} ${path}\n${describeManifest(manifest).join('\n')}\n`);
      return EXIT_OK;
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      for (const line of error.details) io.stderr.write(`${line}\n`);
      return EXIT_FAILURE;
    }
  },
};
