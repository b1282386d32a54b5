export { errorMessage, isStratumError, StratumError, type StratumErrorOptions } from './errors.ts';
export { newId, newRequestId } from './ids.ts';
export { publicPart, readKeyFile, writeKeyFile } from './keyfile.ts';
export { type LogFn, type Logger, silentLogger } from './logger.ts';
export { redactUrl } from './redact.ts';
export { releaseVersion } from './release.ts';
export {
  type Ed25519KeyPair,
  type Ed25519PrivateJwk,
  type Ed25519PublicJwk,
  generateEd25519KeyPair,
  jwkThumbprint,
  publicKeyFromRaw,
  sha256Hex,
  signEd25519,
  verifyEd25519,
} from './signing.ts';
export { type FrameMapper, frameMapper, SOURCE_MAP_MAX_BYTES, sourceMapScript } from './source-map.ts';
export { DURATION_PATTERN, formatBytes, formatDuration, parseDuration, parseSize, SIZE_PATTERN } from './units.ts';
export { appendCustomSection, type ByteReader, JS_SOURCE_MAP_SECTION, readCustomSection, readU32, writeU32 } from './wasm-binary.ts';
