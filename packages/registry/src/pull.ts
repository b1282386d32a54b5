import { StratumError } from '@stratum/core';
import { readArtifactManifest, type WasmArtifact } from './artifact.ts';
import { BlobCache } from './cache.ts';
import { RegistryClient, type RegistryClientOptions, type TransferProgress } from './client.ts';
import { checkDigest } from './digest.ts';
import { formatReference, type OciReference, parseReference } from './reference.ts';

export interface PullOptions extends Omit<RegistryClientOptions, 'fetch'> {
  /** `oci://host[:port]/repository[:tag][@digest]`. */
  reference: string;
  /** The artifact's manifest digest; when the reference carries one too, they must agree. */
  digest?: string;
  /** The content-addressed cache; default {@link defaultCacheDir}. */
  cacheDir?: string;
  /** Never touch the network: answer from the cache or fail. */
  offline?: boolean;
  onProgress?: (progress: TransferProgress) => void;
  /** For tests; default: the global fetch. */
  fetch?: typeof fetch;
}

export interface PulledCapsule {
  /** The verified component, inside the cache. Treat it as read-only. */
  path: string;
  /** The artifact's manifest digest (what a `[source]` pins). */
  digest: string;
  /** The digest and size of the `.wasm` itself (the component). */
  componentDigest: string;
  componentSize: number;
  /** The stratum.toml the artifact carries, when it carries one. */
  manifestText?: string;
  /** `oci://host/repository[:tag]@digest`. */
  reference: string;
  /** True when nothing was fetched: every byte came from the cache. */
  fromCache: boolean;
}

function resolveDigest(reference: OciReference, digest: string | undefined): string | undefined {
  const given = digest === undefined ? undefined : checkDigest(digest, 'the digest');
  if (given !== undefined && reference.digest !== undefined && given !== reference.digest) {
    throw new StratumError('REGISTRY_BAD_REFERENCE', `the reference pins ${reference.digest} but the digest given is ${given}`, {
      hint: 'Give one digest, or the same digest twice.',
    });
  }
  return given ?? reference.digest;
}

/**
 * Pulls a capsule's component into the content-addressed cache, verifying every byte as it
 * streams. A pull by digest that is already cached makes no request at all, so it works offline.
 *
 * @example
 * const { path, digest } = await pullCapsule({ reference: 'oci://127.0.0.1:5000/acme/hello:1.0' });
 */
export async function pullCapsule(options: PullOptions): Promise<PulledCapsule> {
  const reference = parseReference(options.reference);
  const digest = resolveDigest(reference, options.digest);
  const cache = new BlobCache(options.cacheDir);
  const client = new RegistryClient(options);
  const name = formatReference({
    registry: reference.registry,
    repository: reference.repository,
    ...(reference.tag ? { tag: reference.tag } : {}),
  });

  if (digest !== undefined) {
    const cached = await fromCache(cache, digest, client.maxManifestBytes, name);
    if (cached) {
      options.logger?.debug({ reference: name, digest }, 'capsule served from the cache');
      return { ...cached, reference: formatReference({ ...reference, digest }) };
    }
  }
  if (options.offline) {
    throw new StratumError(
      'REGISTRY_NOT_CACHED',
      `${formatReference({ ...reference, ...(digest ? { digest } : {}) })} is not in the cache, and the pull is offline`,
      {
        details: [`cache: ${cache.dir}`],
        hint: digest
          ? 'Pull it once while online.'
          : 'An offline pull needs a digest: a tag can move, so only a digest can be answered from the cache.',
      },
    );
  }
  const fetched = await client.getManifest(reference, digest);
  const artifact = readArtifactManifest(fetched.bytes, name);
  await cache.writeBytes(fetched.digest, fetched.bytes);
  let path = await cache.verifiedPath(artifact.wasm.digest, artifact.wasm.size);
  if (!path) {
    if (artifact.wasm.size > client.maxBlobBytes) {
      throw new StratumError(
        'REGISTRY_TOO_LARGE',
        `the component of ${name} is ${artifact.wasm.size} bytes, more than the ${client.maxBlobBytes} allowed`,
        {
          hint: 'Nothing was fetched. If it is genuine, raise maxBlobBytes.',
        },
      );
    }
    const temp = await cache.tempPath(artifact.wasm.digest);
    await client.downloadBlob(reference, artifact.wasm.digest, artifact.wasm.size, temp, options.onProgress);
    path = await cache.commit(temp, artifact.wasm.digest);
  }
  options.logger?.debug(
    { reference: name, digest: fetched.digest, component: artifact.wasm.digest, size: artifact.wasm.size },
    'capsule pulled',
  );
  await cache.noteSource(artifact.wasm.digest, reference.registry, reference.repository).catch(() => {});
  await cache.noteSource(artifact.config.digest, reference.registry, reference.repository).catch(() => {});
  return {
    ...result(path, fetched.digest, artifact),
    reference: formatReference({ ...reference, digest: fetched.digest }),
    fromCache: false,
  };
}

function result(path: string, digest: string, artifact: WasmArtifact) {
  return {
    path,
    digest,
    componentDigest: artifact.wasm.digest,
    componentSize: artifact.wasm.size,
    ...(artifact.stratumToml !== undefined ? { manifestText: artifact.stratumToml } : {}),
  };
}

async function fromCache(cache: BlobCache, digest: string, maxManifestBytes: number, name: string) {
  const bytes = await cache.readVerified(digest, maxManifestBytes);
  if (!bytes) return undefined;
  const artifact = readArtifactManifest(bytes, name);
  const path = await cache.verifiedPath(artifact.wasm.digest, artifact.wasm.size);
  if (!path) return undefined;
  return { ...result(path, digest, artifact), fromCache: true };
}

export interface PullComponentOptions extends Omit<PullOptions, 'digest'> {
  /** Required: the host runs only pinned bytes. */
  digest: string;
}

/**
 * The host loader's entry point: pulls a `[source]` registry reference pinned by digest, and
 * refuses one without a digest.
 *
 * @example
 * const { path } = await pullComponent({ reference: manifest.source.registry, digest: manifest.source.digest });
 */
export async function pullComponent(options: PullComponentOptions): Promise<PulledCapsule> {
  if (typeof options.digest !== 'string' || options.digest === '') {
    throw new StratumError('REGISTRY_DIGEST_REQUIRED', `${options.reference} has no digest; the host runs only pinned capsules`, {
      hint: 'Pin the source: `stratum push --pin` writes digest = "sha256:..." into [source].',
    });
  }
  return pullCapsule(options);
}
