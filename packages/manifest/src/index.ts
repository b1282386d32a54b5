export { CPU_CLASSES, type CpuClass, DEFAULT_CPU_CLASS, DEFAULT_TIMEOUT_MS, RESOURCE_CLASSES, type ResourceClass } from './classes.ts';
export { locate } from './locate.ts';
export { nearest } from './nearest.ts';
export {
  formatPath,
  formatProblem,
  loadManifest,
  MAX_MANIFEST_BYTES,
  ManifestError,
  manifestSchema,
  type ParsedManifest,
  parseManifest,
  parseManifestBytes,
  schemaUrl,
} from './parse.ts';
export { normaliseOrigin, type OutboundOrigin, originAllowed, originMatch, parseOrigin, routeExample, routeMatches } from './rules.ts';
export { type GeneratedValidator, schemaErrors, unitHint } from './schema-validator.ts';
export { tomlSyntaxProblem } from './toml-syntax.ts';
export type {
  Capabilities,
  ConfigVariable,
  LocalSource,
  Manifest,
  ManifestProblem,
  RegistrySource,
  ResourceKey,
  Resources,
} from './types.ts';
