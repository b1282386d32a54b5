import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { formatBytes, StratumError } from '@stratum/core';
import { loadManifest, ManifestError, parseManifest } from '@stratum/manifest';
import { credentialsFrom, digestOf, formatReference, parseReference, pushCapsule, type TransferProgress } from '@stratum/registry';
import type { AST } from 'toml-eslint-parser';
import { booleanOption, type Command, type CommandIo, EXIT_OK, paint, stringOption, usageError } from '../command.ts';
import { manifestPath } from './validate.ts';

/** Blobs at least this large show progress while they move. */
const PROGRESS_FROM_BYTES = 1024 * 1024;

/**
 * Shows the progress of large blobs on stderr: one updating line on a terminal, a line per
 * quarter otherwise (so CI logs stay short).
 */
export function progressReporter(io: CommandIo): (progress: TransferProgress) => void {
  const lastQuarter = new Map<string, number>();
  return ({ phase, digest, done, total }) => {
    if (total < PROGRESS_FROM_BYTES) return;
    const verb = phase === 'upload' ? 'uploading' : 'downloading';
    const percent = Math.floor((done / total) * 100);
    const text = `${verb} ${digest.slice(0, 19)}... ${String(percent).padStart(3)}% (${formatBytes(done)} of ${formatBytes(total)})`;
    if (io.stderr.isTTY) {
      io.stderr.write(`\r${text}${done === total ? '\n' : ''}`);
      return;
    }
    const quarter = Math.floor(percent / 25);
    if (lastQuarter.get(digest) === quarter) return;
    lastQuarter.set(digest, quarter);
    io.stderr.write(`${text}\n`);
  };
}

type Edit = { start: number; end: number; text: string };

const keyNames = (key: AST.TOMLKey): string[] => key.keys.map((part) => (part.type === 'TOMLBare' ? part.name : part.value));

/**
 * Rewrites a stratum.toml so that `[source]` names the pushed artifact: `registry` and `digest`
 * replace `wasm` (kept as a comment), and a `[build]` table, which needs a local source, is
 * commented out. Only those lines change: every other comment, blank line and key order stays.
 * The result is validated before it is returned.
 *
 * @example
 * pinSource(text, 'stratum.toml', 'oci://ghcr.io/acme/hello:1.0', 'sha256:...');
 */
export function pinSource(text: string, file: string, registry: string, digest: string): string {
  const { ast } = parseManifest(text, file);
  const top = ast.body[0];
  if (!top) throw new StratumError('PIN_FAILED', `${file} is empty`);
  const edits: Edit[] = [];
  const value = (name: 'registry' | 'digest') => JSON.stringify(name === 'registry' ? registry : digest);
  const lineStart = (offset: number) => text.lastIndexOf('\n', offset - 1) + 1;
  const lineEnd = (offset: number) => {
    const end = text.indexOf('\n', offset);
    return end === -1 ? text.length : end + 1;
  };
  const commentLines = (from: number, to: number) => {
    for (let offset = lineStart(from); offset < to; offset = lineEnd(offset)) {
      edits.push({ start: offset, end: offset, text: '# ' });
      if (lineEnd(offset) === offset) break;
    }
  };

  // Each key-value that lives under [source], with the text its keys are written after
  // (`source.` for a dotted key at the top, nothing inside a [source] table).
  const sourcePairs: { name: string; pair: AST.TOMLKeyValue; prefix: string }[] = [];
  let buildCommented = false;
  for (const item of top.body) {
    if (item.type === 'TOMLTable') {
      if (item.resolvedKey[0] === 'build') {
        commentLines(item.range[0], item.range[1]);
        buildCommented = true;
        continue;
      }
      if (item.resolvedKey.length !== 1 || item.resolvedKey[0] !== 'source') continue;
      for (const pair of item.body) {
        const [name] = keyNames(pair.key);
        if (name !== undefined) sourcePairs.push({ name, pair, prefix: '' });
      }
      continue;
    }
    const names = keyNames(item.key);
    if (names[0] === 'build') {
      commentLines(item.range[0], item.range[1]);
      buildCommented = true;
    }
    if (names[0] !== 'source') continue;
    if (names.length === 1 && item.value.type === 'TOMLInlineTable') {
      // An inline table cannot hold a comment: it is rewritten whole.
      edits.push({
        start: item.value.range[0],
        end: item.value.range[1],
        text: `{ registry = ${value('registry')}, digest = ${value('digest')} }`,
      });
      continue;
    }
    const last = item.key.keys.at(-1);
    if (names.length === 2 && last)
      sourcePairs.push({ name: names[1] ?? '', pair: item, prefix: text.slice(item.key.range[0], last.range[0]) });
  }
  if (buildCommented) {
    const first = edits.find((edit) => edit.text === '# ');
    if (first)
      first.text = `# Off since \`stratum push --pin\` made the source a registry; restore [source] wasm to build here.\n${first.text}`;
  }
  const wasm = sourcePairs.find((entry) => entry.name === 'wasm');
  for (const { name, pair, prefix } of sourcePairs) {
    if (name === 'wasm') {
      const indent = text.slice(lineStart(pair.range[0]), pair.range[0]);
      const original = text.slice(pair.range[0], pair.range[1]);
      edits.push({
        start: pair.range[0],
        end: pair.range[1],
        text: `# ${original} (before \`stratum push --pin\`)\n${indent}${prefix}registry = ${value('registry')}\n${indent}${prefix}digest = ${value('digest')}`,
      });
    } else if (name === 'digest' && wasm) {
      // The local file's digest gives way to the artifact's, written beside registry.
      edits.push({ start: lineStart(pair.range[0]), end: lineEnd(pair.range[1]), text: '' });
    } else if (name === 'registry' || name === 'digest') {
      edits.push({ start: pair.value.range[0], end: pair.value.range[1], text: value(name) });
    }
  }
  if (!sourcePairs.some((entry) => entry.name === 'digest') && !wasm) {
    const registryPair = sourcePairs.find((entry) => entry.name === 'registry');
    if (registryPair) {
      const indent = text.slice(lineStart(registryPair.pair.range[0]), registryPair.pair.range[0]);
      edits.push({
        start: registryPair.pair.range[1],
        end: registryPair.pair.range[1],
        text: `\n${indent}${registryPair.prefix}digest = ${value('digest')}`,
      });
    }
  }
  let result = text;
  // Later edits first, so that earlier offsets stay right (no two edits share an offset).
  for (const edit of edits.sort((a, b) => b.start - a.start)) result = result.slice(0, edit.start) + edit.text + result.slice(edit.end);
  const { manifest } = parseManifest(result, file);
  if (manifest.source.kind !== 'registry' || manifest.source.registry !== registry || manifest.source.digest !== digest) {
    throw new StratumError('PIN_FAILED', `could not write the pin into ${file}`, {
      hint: `Write it by hand under [source]: registry = ${value('registry')} and digest = ${value('digest')}.`,
      user: false,
    });
  }
  return result;
}

function createdTime(): Date {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined && /^[0-9]+$/.test(epoch)) return new Date(Number(epoch) * 1000);
  return new Date();
}

export const pushCommand: Command = {
  name: 'push',
  summary: 'push a capsule to an OCI registry and print its digest',
  usage: 'push [dir] <oci-ref> [--pin]',
  description: `
Pushes the capsule in dir (default: the current directory) as a CNCF Wasm OCI artifact: its
component as the one application/wasm layer, its stratum.toml in the manifest (spec/registry.md).
The reference is oci://host[:port]/repository[:tag]. The component's digest (the sha256 of
the .wasm) is printed on stdout: it is what [source] digest pins and what hosts check.

--pin writes registry and digest into the manifest's [source] (the wasm line is kept as a
comment, and a [build] table is commented out), leaving the rest of the file as it was.

Credentials: STRATUM_REGISTRY_USERNAME and STRATUM_REGISTRY_PASSWORD (STRATUM_REGISTRY_HOST limits
them to one registry), or the auths of ~/.config/stratum/registry-auth.json, or of docker's
~/.docker/config.json. Loopback registries are reached over plain HTTP, others over HTTPS.
SOURCE_DATE_EPOCH fixes the artifact's creation time, for reproducible digests.

Examples:
  stratum push examples/hello oci://127.0.0.1:5000/acme/hello:1.0.0
  stratum push oci://ghcr.io/acme/hello:1.0.0 --pin`,
  maxPositionals: 2,
  options: {
    pin: { type: 'boolean', description: 'write registry and digest into [source] of stratum.toml' },
    credentials: { type: 'string', value: 'file', description: 'the credentials file (docker config.json auths format)' },
    'cache-dir': { type: 'string', value: 'dir', description: 'the blob cache (default: ~/.cache/stratum/registry)' },
    'plain-http': { type: 'boolean', description: 'speak HTTP, not HTTPS, to a registry that is not on loopback' },
  },
  async run(args, io) {
    const [first, second] = args.positionals;
    const target = second ?? first;
    const dir = second === undefined ? undefined : first;
    if (target === undefined) throw usageError('push needs an OCI reference, such as oci://127.0.0.1:5000/acme/hello:1.0.0');
    const reference = parseReference(target);
    if (reference.digest !== undefined) throw usageError(`push to a repository and tag, not a digest: ${target}`);
    const path = await manifestPath(dir);
    const { manifest } = await loadManifest(path);
    if (manifest.source.kind !== 'wasm') {
      throw new StratumError(
        'PUSH_NO_LOCAL_SOURCE',
        `${path} already comes from ${manifest.source.registry}; there is no local component to push`,
        {
          hint: 'Push from a capsule whose [source] names a wasm file.',
        },
      );
    }
    const wasmPath = resolve(dirname(path), manifest.source.wasm);
    const wasm = await readFile(wasmPath).catch((error: NodeJS.ErrnoException) => {
      throw new StratumError('PUSH_NO_COMPONENT', `cannot read the component ${wasmPath}`, {
        details: [error.code === 'ENOENT' ? 'no such file' : String(error)],
        hint: manifest.build ? 'Build it first: `stratum build`.' : `Check [source] wasm in ${path}.`,
      });
    });
    if (manifest.source.digest !== undefined && digestOf(wasm) !== manifest.source.digest) {
      throw new StratumError('PUSH_DIGEST_MISMATCH', `${wasmPath} does not match the digest in ${path}`, {
        details: [`[source] digest ${manifest.source.digest}`, `the file has ${digestOf(wasm)}`],
        hint: 'Rebuild the component, or update the digest if the new file is the one you mean.',
      });
    }
    const stratumToml = await readFile(path, 'utf8');
    const { capsule } = manifest;
    const annotations: Record<string, string> = {
      'org.opencontainers.image.title': capsule.name,
      'org.opencontainers.image.version': capsule.version,
      ...(capsule.description ? { 'org.opencontainers.image.description': capsule.description } : {}),
      ...(capsule.license ? { 'org.opencontainers.image.licenses': capsule.license } : {}),
      ...(capsule.authors.length > 0 ? { 'org.opencontainers.image.authors': capsule.authors.join(', ') } : {}),
    };
    const credentialsFile = stringOption(args, 'credentials');
    const cacheDir = stringOption(args, 'cache-dir');
    io.stderr.write(`pushing ${capsule.name} ${capsule.version} (${formatBytes(wasm.length)}) to ${formatReference(reference)}\n`);
    const pushed = await pushCapsule({
      reference: target,
      wasm: { bytes: wasm },
      stratumToml,
      annotations,
      created: createdTime(),
      credentials: credentialsFrom(credentialsFile !== undefined ? { file: credentialsFile } : {}),
      ...(cacheDir !== undefined ? { cacheDir } : {}),
      ...(booleanOption(args, 'plain-http') ? { plainHttp: true } : {}),
      onProgress: progressReporter(io),
    });
    const kept = pushed.blobs.filter((blob) => blob.result !== 'uploaded').length;
    io.stderr.write(
      `${paint(io.stderr, 32, 'pushed')} ${pushed.reference}${kept > 0 ? ` (${kept} of ${pushed.blobs.length} blobs were already there)` : ''}\n`,
    );
    if (booleanOption(args, 'pin')) {
      const pinnedReference = formatReference({
        registry: reference.registry,
        repository: reference.repository,
        ...(reference.tag ? { tag: reference.tag } : {}),
      });
      let pinned: string;
      try {
        pinned = pinSource(stratumToml, path, pinnedReference, pushed.digest);
      } catch (error) {
        if (error instanceof ManifestError)
          throw new StratumError('PIN_FAILED', `the pinned ${path} would not be valid`, { details: error.details, user: false });
        throw error;
      }
      const temp = join(dirname(path), `.stratum.toml.${process.pid}.tmp`);
      try {
        await writeFile(temp, pinned);
        await rename(temp, path);
      } finally {
        await rm(temp, { force: true });
      }
      io.stderr.write(`pinned ${path}: [source] registry = "${pinnedReference}", digest = "${pushed.digest}"\n`);
    }
    io.stdout.write(`${pushed.digest}\n`);
    return EXIT_OK;
  },
};
