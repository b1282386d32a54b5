import { StratumError } from '@stratum/core';
import { readArtifactManifest, type WasmArtifact } from './artifact.ts';
import { BlobCache } from './cache.ts';
import {
  type FetchedManifest,
  RegistryClient,
  type RegistryClientOptions,
  RegistryUnreachableError,
  type TransferProgress,
} from './client.ts';
import { checkDigest } from './digest.ts';
import { formatReference, type OciReference, parseReference } from './reference.ts';

export interface PullOptions extends Omit<RegistryClientOptions, 'fetch'> {
  /**
   * `oci://host[:port]/repository[:tag][@digest]`. A digest written in the reference is, as
   * everywhere in OCI, the artifact's manifest digest (a component digest is accepted there too).
   */
  reference: string;
  /**
   * The component's digest (the sha256 of the `.wasm`, what `[source] digest` pins and `stratum
   * push` prints). With it, only those bytes are accepted, whatever the tag now points at.
   */
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
  /** The component's digest: the sha256 of the bytes at `path`. */
  digest: string;
  size: number;
  /** The artifact manifest the component came in, when one was read. */
  manifestDigest?: string;
  /** The stratum.toml the artifact carries, when it carries one and its manifest was read. */
  manifestText?: string;
  /**
   * What the bytes were found by: `oci://host/repository:tag` when the tag's manifest named them,
   * else `oci://host/repository@<digest>` (the artifact's manifest digest, or the component's).
   */
  reference: string;
  /**
   * The tag the reference wrote, when the bytes were found by a digest instead: the digest
   * decides (spec/registry.md section 4), and this tag was not checked against it. It may name
   * other bytes, or nothing.
   */
  uncheckedTag?: string;
  /** True when nothing was fetched: every byte came from the cache. */
  fromCache: boolean;
}

/**
 * What a pull fetched, for a person: its reference, and a tag it did not check.
 *
 * @example
 * describePulled({ reference: 'oci://127.0.0.1:5000/me/counter@sha256:4e4a...', uncheckedTag: '0.2.0' });
 * // 'oci://127.0.0.1:5000/me/counter@sha256:4e4a... (pinned by digest; tag 0.2.0 ignored)'
 */
export function describePulled(pulled: Pick<PulledCapsule, 'reference' | 'uncheckedTag'>): string {
  return pulled.uncheckedTag === undefined
    ? pulled.reference
    : `${pulled.reference} (pinned by digest; tag ${pulled.uncheckedTag} ignored)`;
}

/**
 * What a host pulls for a pinned `[source]`, said before it pulls: the digest decides, and a tag
 * the reference writes is not checked against it (spec/registry.md section 4).
 *
 * @example
 * describePinnedSource('oci://127.0.0.1:5000/me/counter:0.2.0', 'sha256:4e4a...');
 * // 'oci://127.0.0.1:5000/me/counter@sha256:4e4a... (pinned by digest; tag 0.2.0 ignored)'
 */
export function describePinnedSource(registry: string, digest: string): string {
  const { tag, ...repository } = parseReference(registry);
  return describePulled({
    reference: formatReference({ ...repository, digest }),
    ...(tag !== undefined ? { uncheckedTag: tag } : {}),
  });
}

/**
 * Pulls a capsule's component into the content-addressed cache, verifying every byte as it
 * streams. A pull by digest that is already cached makes no request at all, so it works offline.
 *
 * Resolution: the component digest (`digest`) when given is the pin. The artifact manifest is
 * read by the reference's digest, else its tag (default `latest`); when the tag now points at
 * other bytes than the pin, or there is no tag, the component is fetched as a blob by its digest.
 *
 * @example
 * const { path, digest } = await pullCapsule({ reference: 'oci://127.0.0.1:5000/acme/hello:1.0' });
 */
export async function pullCapsule(options: PullOptions): Promise<PulledCapsule> {
  const reference = parseReference(options.reference);
  const pin = options.digest === undefined ? undefined : checkDigest(options.digest, 'the digest');
  const cache = new BlobCache(options.cacheDir);
  const client = new RegistryClient(options);
  const repository: OciReference = { registry: reference.registry, repository: reference.repository };
  const name = formatReference({ ...repository, ...(reference.tag ? { tag: reference.tag } : {}) });
  const logger = options.logger;

  /** The reference by the digest that found the bytes, and the tag beside it that was not checked. */
  const byDigest = (digest: string) => ({
    reference: formatReference({ ...repository, digest }),
    ...(reference.tag !== undefined ? { uncheckedTag: reference.tag } : {}),
  });

  const cached = await fromCache(cache, reference.digest, pin, client.maxManifestBytes, name);
  if (cached) {
    logger?.debug({ reference: name, digest: cached.digest }, 'capsule served from the cache');
    return { ...cached, ...byDigest(reference.digest ?? cached.digest), fromCache: true };
  }
  if (options.offline) {
    throw new StratumError('REGISTRY_NOT_CACHED', `${formatReference(reference)} is not in the cache, and the pull is offline`, {
      details: [`cache: ${cache.dir}`],
      hint:
        pin || reference.digest
          ? 'Pull it once while online.'
          : 'An offline pull needs a digest: a tag can move, so only a digest can be answered from the cache.',
    });
  }

  let artifact: { manifest: FetchedManifest; wasm: WasmArtifact } | undefined;
  /** Whether the tag's manifest named the bytes; else a digest did. */
  let foundByTag = false;
  /** The component the tag's manifest holds, when it was read and holds another than the pin. */
  let taggedComponent: string | undefined;
  // A component digest written after "@" names a blob, not a manifest: registries answer that
  // with 404, the distribution registry with 500, others with the blob's bytes.
  let pinned = pin;
  const maybeBlob = pin === undefined || pin === reference.digest;
  if (reference.digest !== undefined) {
    const fetched = await client.getManifest(repository, reference.digest).catch((error: unknown) => {
      if (maybeBlob && isNotAManifest(error)) return undefined;
      throw error;
    });
    let read: WasmArtifact | undefined;
    try {
      read = fetched && readArtifactManifest(fetched.bytes, name);
    } catch (error) {
      if (!(maybeBlob && isNotAManifest(error))) throw error;
    }
    if (fetched && read) artifact = { manifest: fetched, wasm: read };
    if (artifact && pin !== undefined && artifact.wasm.wasm.digest !== pin) {
      throw new StratumError(
        'REGISTRY_DIGEST_MISMATCH',
        `the artifact ${formatReference(reference)} holds another component than the pinned one`,
        {
          details: [`pinned ${pin}`, `artifact ${artifact.wasm.wasm.digest}`],
          hint: 'The reference and the digest name different capsules; fix one of them.',
        },
      );
    }
    // Not a manifest: then it is the component's digest, and the tag may still say more.
    if (!artifact) pinned ??= reference.digest;
  }
  if (!artifact && (reference.tag !== undefined || pinned === undefined)) {
    const fetched = await client.getManifest({ ...repository, tag: reference.tag ?? 'latest' }).catch((error: unknown) => {
      // With a pin, the tag only helps find the stratum.toml; the blob can be fetched without it.
      if (pinned !== undefined && error instanceof StratumError && error.code === 'REGISTRY_NOT_FOUND') return undefined;
      throw error;
    });
    if (fetched) {
      let read: WasmArtifact | undefined;
      try {
        read = readArtifactManifest(fetched.bytes, name);
      } catch (error) {
        // The tag now names something else altogether; the pin does not depend on it.
        if (pinned === undefined) throw error;
      }
      if (read && (pinned === undefined || read.wasm.digest === pinned)) {
        artifact = { manifest: fetched, wasm: read };
        foundByTag = true;
      } else {
        taggedComponent = read?.wasm.digest;
        logger?.debug({ reference: name, pinned, tagged: read?.wasm.digest }, 'the tag has moved; fetching the pinned component by digest');
      }
    }
  }
  const componentDigest = artifact?.wasm.wasm.digest ?? pinned;
  if (componentDigest === undefined) throw new StratumError('REGISTRY_PROTOCOL', `nothing to pull for ${name}`, { user: false });
  if (artifact) await cache.writeBytes(artifact.manifest.digest, artifact.manifest.bytes);

  const size = artifact?.wasm.wasm.size;
  const cachedBlob =
    size === undefined
      ? await cache.verifiedAnySize(componentDigest)
      : await cache.verifiedPath(componentDigest, size).then((found) => (found === undefined ? undefined : { path: found, size }));
  let blob = cachedBlob;
  if (!blob) {
    const temp = await cache.tempPath(componentDigest);
    const pulledSize = await client.downloadBlob(repository, componentDigest, size, temp, options.onProgress).catch((error: unknown) => {
      throw artifact ? error : componentNotFound(error, reference, componentDigest, pin !== undefined, taggedComponent);
    });
    blob = { path: await cache.commit(temp, componentDigest), size: pulledSize };
  }
  await cache.noteSource(componentDigest, reference.registry, reference.repository).catch(() => {});
  if (artifact) {
    await cache.noteArtifact(componentDigest, artifact.manifest.digest).catch(() => {});
    await cache.noteSource(artifact.wasm.config.digest, reference.registry, reference.repository).catch(() => {});
  }
  logger?.debug({ reference: name, digest: componentDigest, manifest: artifact?.manifest.digest }, 'capsule pulled');
  return {
    path: blob.path,
    digest: componentDigest,
    size: blob.size,
    ...(artifact ? { manifestDigest: artifact.manifest.digest } : {}),
    ...(artifact?.wasm.stratumToml !== undefined ? { manifestText: artifact.wasm.stratumToml } : {}),
    ...(foundByTag ? { reference: name } : byDigest(reference.digest ?? componentDigest)),
    fromCache: false,
  };
}

/**
 * A component fetched by its digest that the repository does not hold. The digest is the one
 * most often mistaken: `stratum push` prints two, and only the component's is a pin.
 */
function componentNotFound(
  error: unknown,
  reference: OciReference,
  digest: string,
  pinned: boolean,
  taggedComponent: string | undefined,
): unknown {
  if (!(error instanceof StratumError && error.code === 'REGISTRY_NOT_FOUND')) return error;
  const where = `${reference.registry}/${reference.repository}`;
  const details = [
    ...error.details,
    ...(taggedComponent !== undefined ? [`the tag ${reference.tag} holds the component ${taggedComponent}`] : []),
  ];
  if (pinned) {
    return new StratumError('REGISTRY_NOT_FOUND', `the pinned component ${digest} is not in ${where}`, {
      details,
      hint: `A pin ([source] digest) is the component's digest, the sha256 of the .wasm: the one \`stratum push\` prints on stdout and --pin writes, not the artifact's manifest digest in its "pushed ...@sha256:" line. Push the component there, or pin the digest push printed.`,
      cause: error,
    });
  }
  return new StratumError('REGISTRY_NOT_FOUND', `${where} holds no artifact manifest and no component with the digest ${digest}`, {
    details,
    hint: `A digest after "@" is the artifact's manifest digest (\`stratum push\` prints it in its "pushed ...@sha256:" line) or its component digest (what push prints on stdout and [source] digest pins).`,
    cause: error,
  });
}

function isNotAManifest(error: unknown): boolean {
  return error instanceof StratumError && ['REGISTRY_NOT_FOUND', 'REGISTRY_ERROR', 'REGISTRY_NOT_A_CAPSULE'].includes(error.code);
}

/** Answers from the cache alone: by the pinned component digest, or by the reference's manifest digest. */
async function fromCache(
  cache: BlobCache,
  manifestDigest: string | undefined,
  pin: string | undefined,
  maxManifestBytes: number,
  name: string,
): Promise<Omit<PulledCapsule, 'reference' | 'fromCache'> | undefined> {
  const readManifest = async (digest: string | undefined) => {
    if (digest === undefined) return undefined;
    const bytes = await cache.readVerified(digest, maxManifestBytes);
    if (!bytes) return undefined;
    try {
      return { digest, artifact: readArtifactManifest(bytes, name) };
    } catch {
      // A component digest written after "@" is not a manifest; it is looked up as a blob below.
      return undefined;
    }
  };
  let manifest = await readManifest(manifestDigest);
  const componentDigest = manifest?.artifact.wasm.digest ?? pin ?? manifestDigest;
  if (componentDigest === undefined) return undefined;
  if (pin !== undefined && componentDigest !== pin) return undefined;
  const blob = await cache.verifiedAnySize(componentDigest);
  if (!blob) return undefined;
  manifest ??= await readManifest(await cache.artifactOf(componentDigest));
  if (manifest && manifest.artifact.wasm.digest !== componentDigest) manifest = undefined;
  return {
    path: blob.path,
    digest: componentDigest,
    size: blob.size,
    ...(manifest ? { manifestDigest: manifest.digest } : {}),
    ...(manifest?.artifact.stratumToml !== undefined ? { manifestText: manifest.artifact.stratumToml } : {}),
  };
}

export interface PullComponentOptions extends Omit<PullOptions, 'digest'> {
  /** Required: the component's sha256 digest; the host runs only pinned bytes. */
  digest: string;
  /** The name of the host that pulls, for its errors: a registry it cannot reach is reached from there, not from the registrar. */
  host?: string;
}

/**
 * The host loader's entry point: pulls a `[source]` registry reference pinned by its component
 * digest, and refuses one without a digest.
 *
 * @example
 * const { path } = await pullComponent({ reference: manifest.source.registry, digest: manifest.source.digest });
 */
export async function pullComponent(options: PullComponentOptions): Promise<PulledCapsule> {
  if (typeof options.digest !== 'string' || options.digest === '') {
    throw new StratumError('REGISTRY_DIGEST_REQUIRED', `${options.reference} has no digest; the host runs only pinned capsules`, {
      hint: 'Pin the source: `stratum push --pin` writes a stratum.pinned.toml whose [source] has digest = "sha256:...".',
    });
  }
  try {
    return await pullCapsule(options);
  } catch (error) {
    if (!(error instanceof RegistryUnreachableError)) throw error;
    // The registrar asked, but the host pulls: an address that works on the registrar's machine
    // (127.0.0.1, a name only its resolver knows) may not work from the host.
    const host = options.host === undefined ? 'the host' : `the host ${options.host}`;
    throw new StratumError('REGISTRY_UNREACHABLE', `${host} could not reach the registry at ${error.registry}: ${error.reason}`, {
      details: error.details,
      hint: `The host pulls the component itself, so [source] registry must name an address the host reaches, where the registry runs (${error.registry} is looked up from the host; a loopback address is the host's own).`,
      cause: error,
    });
  }
}
