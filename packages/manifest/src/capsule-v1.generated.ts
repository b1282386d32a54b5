// Generated from spec/capsule/capsule-v1.schema.json by scripts/generate-types.ts. Do not edit: run `npm run generate`.

/**
 * Where the component comes from: a local file, or an OCI registry pinned by digest.
 */
export type Source = {
  /**
   * A relative path, from the manifest's directory, to the component file (not absolute, no .. segments).
   */
  wasm?: string;
  /**
   * An OCI reference: oci://registry-host[:port]/repository[:tag], with a lowercase repository.
   */
  registry?: string;
  digest?: Digest;
} & Source1;
/**
 * A sha256 digest: "sha256:" and 64 lowercase hex digits.
 */
export type Digest = string;
export type Source1 = {
  [k: string]: unknown | undefined;
};
/**
 * A store label: 1 to 63 lowercase letters, digits, hyphens and underscores, starting with a letter.
 */
export type Label = string;
/**
 * Key-value store labels (stratum:keyvalue, wasi:keyvalue).
 *
 * @maxItems 32
 */
export type Labels = Label[];
/**
 * SQL database labels (stratum:sql).
 *
 * @maxItems 32
 */
export type Labels1 = Label[];
/**
 * Object storage bucket labels (stratum:bucket).
 *
 * @maxItems 32
 */
export type Labels2 = Label[];
/**
 * An origin: http:// or https://; a host name, *. and a domain (any name below it), or * (any host); an optional port, or :* (any port); no path (such as "https://api.example.com", "https://*.example.com" or "https://*:*"). A trailing / is allowed and dropped.
 */
export type Origin = string;
/**
 * A path pattern: an exact path such as "/health", or a prefix ending in "/*" such as "/api/*"; "/*" is every path.
 */
export type Route = string;

/**
 * The manifest of a Stratum capsule: a WebAssembly component and what it may use. See spec/capsule/README.md.
 */
export interface CapsuleManifestV1 {
  /**
   * The manifest spec version. This schema describes version 1.
   */
  stratum: 1;
  capsule: Capsule;
  source: Source;
  build?: Build;
  resources?: Resources;
  capabilities?: Capabilities;
  http?: Http;
}
/**
 * Who the capsule is.
 */
export interface Capsule {
  /**
   * A DNS label: 1 to 63 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen.
   */
  name: string;
  /**
   * A Semantic Versioning 2.0.0 version, such as "1.2.0", without a leading v.
   */
  version: string;
  description?: string;
  /**
   * @maxItems 64
   */
  authors?: string[];
  /**
   * An SPDX license expression.
   */
  license?: string;
}
/**
 * How `stratum build` makes the component from JavaScript or TypeScript sources.
 */
export interface Build {
  /**
   * A relative path (not absolute, no .. segments) to a .js, .mjs, .ts or .mts module that default-exports the capsule's handler.
   */
  entry?: string;
}
/**
 * What the capsule asks for. The host caps every value with its own limits.
 */
export interface Resources {
  /**
   * The resource class: CPU time per request, concurrency and the largest memory it may ask for.
   */
  cpu?: 'nano' | 'micro' | 'small' | 'medium' | 'large';
  /**
   * The largest linear memory of one instance.
   */
  memory?: string;
  /**
   * The wall-clock time one request may take.
   */
  timeout?: string;
  /**
   * Requests one capsule serves at once.
   */
  concurrency?: number;
}
/**
 * What the capsule may use. Nothing is granted that is not listed here.
 */
export interface Capabilities {
  keyvalue?: Labels;
  sql?: Labels1;
  bucket?: Labels2;
  /**
   * Origins the capsule may send HTTP requests to (wasi:http/outgoing-handler).
   *
   * @maxItems 64
   */
  outbound?: Origin[];
  /**
   * Configuration variables (wasi:config), by name.
   */
  config?: {
    [k: string]: ConfigVariable | undefined;
  };
}
export interface ConfigVariable {
  default?: string;
  required?: boolean;
  secret?: boolean;
  description?: string;
}
/**
 * Inbound HTTP.
 */
export interface Http {
  /**
   * The paths the capsule serves; other paths get 404 from the host.
   *
   * @minItems 1
   * @maxItems 128
   */
  routes?: [Route, ...Route[]];
}
