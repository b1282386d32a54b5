import { StratumError } from '@stratum/core';
import { buildArtifact, type ComponentWorld, describeComponent, wasmKind } from './artifact.ts';
import { BlobCache } from './cache.ts';
import {
  type BlobPushResult,
  type BlobSource,
  bytesSource,
  fileSource,
  OCI_MANIFEST_MEDIA_TYPE,
  RegistryClient,
  type RegistryClientOptions,
  type TransferProgress,
} from './client.ts';
import { formatReference, type OciReference, parseReference } from './reference.ts';

export interface PushOptions extends Omit<RegistryClientOptions, 'fetch'> {
  /** Where to push: `oci://host[:port]/repository[:tag]`. Without a tag the artifact is pushed by digest only. */
  reference: string;
  /** The component: a file path or its bytes. */
  wasm: { path: string } | { bytes: Uint8Array };
  /** The capsule's stratum.toml text, carried in the artifact (spec/registry.md). */
  stratumToml?: string;
  /** Extra manifest annotations, for example `org.opencontainers.image.version`. */
  annotations?: Record<string, string>;
  /** The config's `created` time; default now. Fix it for reproducible digests. */
  created?: Date;
  /** The component's world; default: read from the component with jco. */
  component?: ComponentWorld;
  /** The cache that remembers where blobs were seen, for cross-repository mounts; default: the user cache. */
  cacheDir?: string;
  onProgress?: (progress: TransferProgress) => void;
  /** For tests; default: the global fetch. */
  fetch?: typeof fetch;
}

export interface PushResult {
  /** The component's digest (the sha256 of the `.wasm`): what `[source] digest` pins. */
  digest: string;
  size: number;
  /** The artifact's manifest digest, as OCI tools name the artifact. */
  manifestDigest: string;
  /** `oci://host/repository[:tag]@<manifest digest>`. */
  reference: string;
  /** What happened to each blob: already there, mounted from another repository, or uploaded. */
  blobs: { digest: string; result: BlobPushResult }[];
}

/**
 * Pushes a component (and its stratum.toml) as a CNCF Wasm OCI artifact.
 *
 * @example
 * const { digest } = await pushCapsule({ reference: 'oci://127.0.0.1:5000/acme/hello:1.0', wasm: { path: 'build/hello.wasm' } });
 */
export async function pushCapsule(options: PushOptions): Promise<PushResult> {
  const reference = parseReference(options.reference);
  if (reference.digest !== undefined) {
    throw new StratumError('REGISTRY_BAD_REFERENCE', `cannot push to ${options.reference}: a digest names bytes that already exist`, {
      hint: 'Push to a repository and tag (oci://host/repository:tag); the digest is computed and printed.',
    });
  }
  const source: BlobSource = 'bytes' in options.wasm ? bytesSource(options.wasm.bytes) : await fileSource(options.wasm.path);
  const head = await source.read(0, Math.min(8, source.size));
  const os = wasmKind(head);
  if (!os) {
    throw new StratumError(
      'REGISTRY_NOT_WASM',
      `${'path' in options.wasm ? options.wasm.path : 'the component'} is not a WebAssembly binary`,
      {
        hint: 'Point at the .wasm file that `stratum build` (or your toolchain) wrote.',
      },
    );
  }
  const component = options.component ?? (os === 'wasip2' ? await describeComponent(await source.read(0, source.size)) : undefined);
  const artifact = buildArtifact({
    wasm: { digest: source.digest, size: source.size },
    os,
    ...(component ? { component } : {}),
    ...(options.stratumToml !== undefined ? { stratumToml: options.stratumToml } : {}),
    ...(options.annotations ? { annotations: options.annotations } : {}),
    created: options.created ?? new Date(),
  });
  const client = new RegistryClient(options);
  const cache = new BlobCache(options.cacheDir);
  if (artifact.manifest.length > client.maxManifestBytes) {
    throw new StratumError(
      'REGISTRY_TOO_LARGE',
      `the artifact manifest would be ${artifact.manifest.length} bytes, more than ${client.maxManifestBytes}`,
      {
        hint: 'The stratum.toml it carries is too large; a manifest is at most 256 KiB.',
      },
    );
  }
  const target: OciReference = { registry: reference.registry, repository: reference.repository };
  const mountFrom = async (digest: string) =>
    (await cache.sources(digest))
      .filter((entry) => entry.startsWith(`${reference.registry}/`))
      .map((entry) => entry.slice(reference.registry.length + 1));
  const blobs: PushResult['blobs'] = [];
  for (const blob of [source, bytesSource(artifact.config)]) {
    const result = await client.pushBlob(target, blob, {
      mountFrom: await mountFrom(blob.digest),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    blobs.push({ digest: blob.digest, result });
    await cache.noteSource(blob.digest, reference.registry, reference.repository).catch(() => {});
  }
  const manifestDigest = await client.putManifest(target, artifact.manifest, OCI_MANIFEST_MEDIA_TYPE, reference.tag);
  await cache.writeBytes(manifestDigest, artifact.manifest).catch(() => {});
  await cache.noteArtifact(source.digest, manifestDigest).catch(() => {});
  return {
    digest: source.digest,
    size: source.size,
    manifestDigest,
    reference: formatReference({ ...reference, digest: manifestDigest }),
    blobs,
  };
}
