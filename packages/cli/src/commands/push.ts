import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { formatBytes, StratumError } from '@stratum/core';
import type { TransferProgress } from '@stratum/registry';
import { booleanOption, type Command, type CommandIo, EXIT_OK, paint, shellWord, stringOption, usageError } from '../command.ts';
import { builtComponent } from '../local-component.ts';
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

For a manifest with [build], a component not built yet, or built before a change to a build
input (a module under the directory, package.json, tsconfig.json; not node_modules, dist/ or
stratum.toml), is built first as \`stratum build\` builds it, its steps shown on stderr: what is
pushed is the code as it is now, not the last build.

--pin writes a pinned copy of the manifest beside it, stratum.pinned.toml: its [source] names
the registry and the digest pushed (the wasm line kept as a comment, a [build] table commented
out), the rest as it was. \`stratum host install <dir>/stratum.pinned.toml\` then installs what
was pushed, which the host pulls and checks by that digest. stratum.toml itself is left as it
is, so that \`stratum dev\`, \`stratum build\` and the next push go on working from the sources; push
with --pin again to pin the next version.

Credentials: STRATUM_REGISTRY_USERNAME and STRATUM_REGISTRY_PASSWORD (STRATUM_REGISTRY_HOST limits
them to one registry), or the auths of ~/.config/stratum/registry-auth.json, or of docker's
~/.docker/config.json. Loopback registries are reached over plain HTTP, others over HTTPS.
SOURCE_DATE_EPOCH fixes the artifact's creation time, for reproducible digests.

Examples:
  stratum push examples/hello oci://127.0.0.1:5000/acme/hello:1.0.0
  stratum push oci://ghcr.io/acme/hello:1.0.0 --pin`,
  maxPositionals: 2,
  options: {
    pin: { type: 'boolean', description: 'also write stratum.pinned.toml: the manifest with [source] pinned to what was pushed' },
    credentials: { type: 'string', value: 'file', description: 'the credentials file (docker config.json auths format)' },
    'cache-dir': { type: 'string', value: 'dir', description: 'the blob cache (default: ~/.cache/stratum/registry)' },
    'plain-http': { type: 'boolean', description: 'speak HTTP, not HTTPS, to a registry that is not on loopback' },
  },
  async run(args, io) {
    const [first, second] = args.positionals;
    const target = second ?? first;
    const dir = second === undefined ? undefined : first;
    if (target === undefined) throw usageError('push needs an OCI reference, such as oci://127.0.0.1:5000/acme/hello:1.0.0');
    const { credentialsFrom, digestOf, formatReference, parseReference, pushCapsule } = await import('@stratum/registry');
    const { loadManifest, ManifestError } = await import('@stratum/manifest');
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
    const { path: wasmPath, bytes: wasm } = await builtComponent(path, { ...manifest, source: manifest.source }, 'PUSH_NO_COMPONENT', io);
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
    // Two digests, and a new user pinned the wrong one: each line says which is which.
    io.stderr.write(
      [
        `${paint(io.stderr, 32, 'pushed')} ${pushed.reference}${kept > 0 ? ` (${kept} of ${pushed.blobs.length} blobs were already there)` : ''}`,
        `  manifest digest   ${pushed.manifestDigest}  the artifact's, as OCI tools name it (after "@" above)`,
        `  component digest  ${pushed.digest}  the .wasm's sha256, printed on stdout: what [source] digest pins`,
        '',
      ].join('\n'),
    );
    if (booleanOption(args, 'pin')) {
      const pinnedReference = formatReference({
        registry: reference.registry,
        repository: reference.repository,
        ...(reference.tag ? { tag: reference.tag } : {}),
      });
      const { pinnedManifestPath, pinSource } = await import('../pin-source.ts');
      let pinned: string;
      try {
        pinned = pinSource(stratumToml, path, pinnedReference, pushed.digest);
      } catch (error) {
        if (error instanceof ManifestError)
          throw new StratumError('PIN_FAILED', `the pinned copy of ${path} would not be valid`, { details: error.details, user: false });
        throw error;
      }
      const pinnedPath = pinnedManifestPath(path);
      const temp = join(dirname(path), `.stratum.pinned.toml.${process.pid}.tmp`);
      try {
        await writeFile(temp, pinned);
        await rename(temp, pinnedPath);
      } finally {
        await rm(temp, { force: true });
      }
      io.stderr.write(
        [
          `pinned ${pinnedPath}: [source] registry = "${pinnedReference}", digest = "${pushed.digest}"`,
          `  \`stratum host install ${shellWord(pinnedPath)} --domain <name>\` installs what was pushed; ${basename(path)} is left as it was, to build from`,
          '',
        ].join('\n'),
      );
    }
    io.stdout.write(`${pushed.digest}\n`);
    return EXIT_OK;
  },
};
