import type { CpuClass } from './classes.ts';

/** A manifest after validation and normalisation: defaults filled, sizes in bytes, times in ms. */
export interface Manifest {
  stratum: 1;
  capsule: {
    name: string;
    version: string;
    description?: string;
    authors: string[];
    license?: string;
  };
  source: LocalSource | RegistrySource;
  build?: { entry: string };
  resources: Resources;
  capabilities: Capabilities;
  http: { routes: string[] };
}

export interface LocalSource {
  kind: 'wasm';
  /** Relative to the manifest's directory, as written. */
  wasm: string;
  digest?: string;
}

export interface RegistrySource {
  kind: 'registry';
  /** The full reference, `oci://host[:port]/repository[:tag]`. */
  registry: string;
  digest: string;
}

export interface Resources {
  cpu: CpuClass;
  cpuMsPerRequest: number;
  memoryBytes: number;
  timeoutMs: number;
  concurrency: number;
  /**
   * The `[resources]` keys the manifest gives, as against the defaults: what its author asked for,
   * which a host that cannot meet it refuses (spec/capsule section 7), where a default it caps.
   */
  requested?: readonly ResourceKey[];
}

export type ResourceKey = 'cpu' | 'memory' | 'timeout' | 'concurrency';

export interface ConfigVariable {
  default?: string;
  required: boolean;
  secret: boolean;
  description?: string;
}

export interface Capabilities {
  keyvalue: string[];
  sql: string[];
  bucket: string[];
  outbound: string[];
  config: Record<string, ConfigVariable>;
}

/** One problem found in a manifest, with where it is. Lines and columns count from 1. */
export interface ManifestProblem {
  file: string;
  line: number;
  column: number;
  /** The key path, such as `capsule.name` or `capabilities.keyvalue[1]`; empty for the whole file. */
  path: string;
  message: string;
}
