import { StratumError } from '@stratum/core';
import { OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE } from './client.ts';
import { checkDigest, digestOf } from './digest.ts';

/** The CNCF TAG Runtime "Wasm OCI Artifact" layout: its config and layer media types. */
export const WASM_CONFIG_MEDIA_TYPE = 'application/vnd.wasm.config.v0+json';
export const WASM_LAYER_MEDIA_TYPE = 'application/wasm';
/** The annotation that carries the capsule's stratum.toml, verbatim (spec/registry.md). */
export const STRATUM_MANIFEST_ANNOTATION = 'dev.stratum.capsule.manifest';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** What a pulled artifact manifest says, after checking it is a Wasm artifact Stratum can run. */
export interface WasmArtifact {
  config: Descriptor;
  /** The one `application/wasm` layer. */
  wasm: Descriptor;
  annotations: Record<string, string>;
  /** The capsule's stratum.toml, when the artifact carries one. */
  stratumToml?: string;
}

/** The imports and exports of a component's world, for the config's `component` field. */
export interface ComponentWorld {
  imports: string[];
  exports: string[];
}

export interface BuildArtifactOptions {
  wasm: { digest: string; size: number };
  /** `wasip2` for a component, `wasip1` for a core module (see {@link wasmKind}). */
  os: 'wasip1' | 'wasip2';
  component?: ComponentWorld;
  /** The capsule's stratum.toml text, carried as the {@link STRATUM_MANIFEST_ANNOTATION}. */
  stratumToml?: string;
  /** Extra manifest annotations (`org.opencontainers.image.*`). */
  annotations?: Record<string, string>;
  /** The config's `created`; fix it (SOURCE_DATE_EPOCH) for reproducible digests. */
  created: Date;
}

export interface BuiltArtifact {
  config: Uint8Array;
  configDigest: string;
  manifest: Uint8Array;
  manifestDigest: string;
}

/** Builds the config blob and the image manifest for one component. */
export function buildArtifact(options: BuildArtifactOptions): BuiltArtifact {
  const configValue = {
    created: options.created.toISOString(),
    architecture: 'wasm',
    os: options.os,
    layerDigests: [options.wasm.digest],
    ...(options.component ? { component: options.component } : {}),
  };
  const config = Buffer.from(JSON.stringify(configValue));
  const configDigest = digestOf(config);
  const annotations: Record<string, string> = { ...options.annotations };
  if (options.stratumToml !== undefined) annotations[STRATUM_MANIFEST_ANNOTATION] = options.stratumToml;
  const manifestValue = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: { mediaType: WASM_CONFIG_MEDIA_TYPE, digest: configDigest, size: config.length },
    layers: [{ mediaType: WASM_LAYER_MEDIA_TYPE, digest: options.wasm.digest, size: options.wasm.size }],
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
  };
  const manifest = Buffer.from(JSON.stringify(manifestValue));
  return { config, configDigest, manifest, manifestDigest: digestOf(manifest) };
}

/** `wasip2` for a component (layer 1 binary), `wasip1` for a core module, else undefined. */
export function wasmKind(bytes: Uint8Array): 'wasip1' | 'wasip2' | undefined {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) return undefined;
  if (bytes[4] === 1 && bytes[5] === 0 && bytes[6] === 0 && bytes[7] === 0) return 'wasip1';
  if (bytes[6] === 1 && bytes[7] === 0) return 'wasip2';
  return undefined;
}

/**
 * The imports and exports of a component's world, read with jco's `componentWit`. Loaded on
 * demand: only a push needs it, and jco's wasm-tools takes a moment to start.
 */
export async function describeComponent(bytes: Uint8Array): Promise<ComponentWorld | undefined> {
  const { componentWit } = await import('@bytecodealliance/jco');
  let wit: string;
  try {
    wit = await componentWit(bytes);
  } catch {
    return undefined;
  }
  const world: ComponentWorld = { imports: [], exports: [] };
  let inWorld = false;
  let depth = 0;
  for (const line of wit.split('\n')) {
    if (!inWorld) {
      inWorld = /^world\s+\S+\s*\{\s*$/.test(line);
      continue;
    }
    // Only the world's own items, not the bodies of inline interfaces.
    if (depth === 0) {
      // `import wasi:cli/environment@0.2.0;` names an interface; `export answer: func()` a function.
      const item = /^\s*(import|export)\s+([^\s;{]+?)(?::\s|;|\s*\{|$)/.exec(line);
      if (item?.[1] && item[2]) (item[1] === 'import' ? world.imports : world.exports).push(item[2]);
      if (/^\}\s*$/.test(line)) break;
    }
    depth += (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length;
    if (depth < 0) break;
  }
  return world;
}

function notCapsule(where: string, problem: string): StratumError {
  return new StratumError('REGISTRY_NOT_A_CAPSULE', `${where} is not a Wasm artifact Stratum can run: ${problem}`, {
    hint: `A capsule is an OCI image manifest with config ${WASM_CONFIG_MEDIA_TYPE} and one ${WASM_LAYER_MEDIA_TYPE} layer, as \`stratum push\` writes it.`,
  });
}

function descriptor(value: unknown, where: string, what: string): Descriptor {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw notCapsule(where, `${what} is not an object`);
  const { mediaType, digest, size, annotations } = value as Record<string, unknown>;
  if (typeof mediaType !== 'string') throw notCapsule(where, `${what} has no mediaType`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw notCapsule(where, `${what} has no valid size`);
  return {
    mediaType,
    digest: checkDigest(digest, `the digest of ${what} in ${where}`),
    size,
    ...(isStringRecord(annotations) ? { annotations } : {}),
  };
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    value !== null && typeof value === 'object' && !Array.isArray(value) && Object.values(value).every((item) => typeof item === 'string')
  );
}

/**
 * Reads a manifest fetched from a registry (untrusted bytes) and checks that it is a Wasm
 * artifact: an OCI image manifest, the Wasm config media type, exactly one `application/wasm`
 * layer. Extra layers of other types are allowed and ignored.
 */
export function readArtifactManifest(bytes: Uint8Array, where: string): WasmArtifact {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw notCapsule(where, 'the manifest is not JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw notCapsule(where, 'the manifest is not a JSON object');
  const manifest = value as Record<string, unknown>;
  if (manifest.mediaType === OCI_INDEX_MEDIA_TYPE || Array.isArray(manifest.manifests)) {
    throw notCapsule(where, 'it is an image index (several platforms), not one artifact');
  }
  if (manifest.schemaVersion !== 2) throw notCapsule(where, 'schemaVersion is not 2');
  if (manifest.mediaType !== undefined && manifest.mediaType !== OCI_MANIFEST_MEDIA_TYPE) {
    throw notCapsule(where, `its media type is ${JSON.stringify(String(manifest.mediaType).slice(0, 100))}`);
  }
  const config = descriptor(manifest.config, where, 'the config');
  if (config.mediaType !== WASM_CONFIG_MEDIA_TYPE) {
    throw notCapsule(where, `the config media type is ${JSON.stringify(config.mediaType.slice(0, 100))}, not ${WASM_CONFIG_MEDIA_TYPE}`);
  }
  if (!Array.isArray(manifest.layers)) throw notCapsule(where, 'it has no layers');
  const layers = manifest.layers.map((layer, index) => descriptor(layer, where, `layer ${index}`));
  const wasm = layers.filter((layer) => layer.mediaType === WASM_LAYER_MEDIA_TYPE);
  const [only] = wasm;
  if (!only || wasm.length !== 1)
    throw notCapsule(where, `it has ${wasm.length} ${WASM_LAYER_MEDIA_TYPE} layers; a capsule has exactly one`);
  const annotations = isStringRecord(manifest.annotations) ? manifest.annotations : {};
  const stratumToml = annotations[STRATUM_MANIFEST_ANNOTATION];
  return { config, wasm: only, annotations, ...(stratumToml !== undefined ? { stratumToml } : {}) };
}
