import { copyFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { formatBytes } from '@stratum/core';
import { booleanOption, type Command, EXIT_OK, paint, stringOption, usageError } from '../command.ts';
import { progressReporter } from './push.ts';

/** Writes by a rename, so a failed pull never leaves half a file at the destination. */
async function writeAtomically(path: string, write: (temp: string) => Promise<void>): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    await write(temp);
    await rename(temp, path);
  } finally {
    await rm(temp, { force: true });
  }
}

export const pullCommand: Command = {
  name: 'pull',
  summary: 'pull a capsule from an OCI registry, verified by digest',
  usage: 'pull <oci-ref>[@digest] [--out <file>] [--manifest <file>]',
  description: `
Pulls a capsule's component from an OCI registry into the local cache, checking every byte
against its digest while it streams, and copies it to --out (default: <name>.wasm in the
current directory). The component's digest is printed on stdout. A digest after "@" is the
artifact's manifest digest (in the "pushed ...@sha256:" line of \`stratum push\`) or the
component's digest (what push prints on stdout and [source] digest pins). With a digest, the
digest decides and a tag beside it is not checked. A pull by digest that is already cached makes
no request, so it works offline (--offline insists on it).

With --manifest it also writes the stratum.toml the artifact carries, made to go with the
file pulled: its [source] names that file and its digest, and its [build] is commented out (the
source did not come with it), so that \`stratum host install\` of that directory installs the
component pulled.

Credentials as for \`stratum push\`: STRATUM_REGISTRY_USERNAME and STRATUM_REGISTRY_PASSWORD,
or ~/.config/stratum/registry-auth.json, or docker's ~/.docker/config.json.

Examples:
  stratum pull oci://127.0.0.1:5000/acme/hello:1.0.0
  stratum pull oci://ghcr.io/acme/hello@sha256:... --out hello.wasm --manifest stratum.toml`,
  maxPositionals: 1,
  options: {
    out: { type: 'string', short: 'o', value: 'file', description: 'where to write the component (default: <name>.wasm)' },
    manifest: { type: 'string', value: 'file', description: 'also write the stratum.toml the artifact carries' },
    offline: { type: 'boolean', description: 'answer from the cache only (needs a digest)' },
    credentials: { type: 'string', value: 'file', description: 'the credentials file (docker config.json auths format)' },
    'cache-dir': { type: 'string', value: 'dir', description: 'the blob cache (default: ~/.cache/stratum/registry)' },
    'plain-http': { type: 'boolean', description: 'speak HTTP, not HTTPS, to a registry that is not on loopback' },
  },
  async run(args, io) {
    const target = args.positionals[0];
    if (target === undefined) throw usageError('pull needs an OCI reference, such as oci://127.0.0.1:5000/acme/hello:1.0.0');
    const { credentialsFrom, describePulled, parseReference, pullCapsule } = await import('@stratum/registry');
    const reference = parseReference(target);
    const credentialsFile = stringOption(args, 'credentials');
    const cacheDir = stringOption(args, 'cache-dir');
    const pulled = await pullCapsule({
      reference: target,
      credentials: credentialsFrom(credentialsFile !== undefined ? { file: credentialsFile } : {}),
      ...(cacheDir !== undefined ? { cacheDir } : {}),
      ...(booleanOption(args, 'offline') ? { offline: true } : {}),
      ...(booleanOption(args, 'plain-http') ? { plainHttp: true } : {}),
      onProgress: progressReporter(io),
    });
    const out = stringOption(args, 'out') ?? `${reference.repository.split('/').at(-1) ?? 'component'}.wasm`;
    await writeAtomically(out, (temp) => copyFile(pulled.path, temp));
    const manifestOut = stringOption(args, 'manifest');
    if (manifestOut !== undefined) {
      if (pulled.manifestText === undefined) io.stderr.write(`the artifact carries no stratum.toml; ${manifestOut} was not written\n`);
      else {
        // The artifact's manifest names its author's build output; this one names the file pulled beside it.
        const { pulledSource } = await import('../pin-source.ts');
        const wasm = relative(dirname(resolve(manifestOut)), resolve(out))
          .split(sep)
          .join('/');
        const text = pulledSource(pulled.manifestText, manifestOut, wasm, pulled.digest);
        await writeAtomically(manifestOut, (temp) => writeFile(temp, text));
      }
    }
    io.stderr.write(
      `${paint(io.stderr, 32, 'pulled')} ${describePulled(pulled)} -> ${out} (${formatBytes(pulled.size)}${pulled.fromCache ? ', from the cache' : ''})\n`,
    );
    io.stdout.write(`${pulled.digest}\n`);
    return EXIT_OK;
  },
};
