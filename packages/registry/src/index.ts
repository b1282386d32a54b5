export {
  type BuildArtifactOptions,
  type BuiltArtifact,
  buildArtifact,
  type ComponentWorld,
  type Descriptor,
  describeComponent,
  readArtifactManifest,
  STRATUM_MANIFEST_ANNOTATION,
  WASM_CONFIG_MEDIA_TYPE,
  WASM_LAYER_MEDIA_TYPE,
  type WasmArtifact,
  wasmKind,
} from './artifact.ts';
export { BlobCache, defaultCacheDir } from './cache.ts';
export { type AuthChallenge, parseChallenges } from './challenge.ts';
export {
  type BlobPushResult,
  type BlobSource,
  bytesSource,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_MAX_BLOB_BYTES,
  DEFAULT_MAX_MANIFEST_BYTES,
  type FetchedManifest,
  fileSource,
  OCI_MANIFEST_MEDIA_TYPE,
  RegistryClient,
  type RegistryClientOptions,
  type TransferProgress,
} from './client.ts';
export {
  type CredentialsLookup,
  type CredentialsProvider,
  credentialsFrom,
  defaultCredentialsFiles,
  type RegistryCredentials,
  readCredentialsFile,
} from './credentials.ts';
export { checkDigest, DIGEST_PATTERN, digestOf, isDigest } from './digest.ts';
export {
  describePinnedSource,
  describePulled,
  type PullComponentOptions,
  type PulledCapsule,
  type PullOptions,
  pullCapsule,
  pullComponent,
} from './pull.ts';
export { type PushOptions, type PushResult, pushCapsule } from './push.ts';
export { formatReference, isLoopbackRegistry, type OciReference, parseReference } from './reference.ts';
