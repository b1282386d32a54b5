/**
 * Resource classes: what `[resources] cpu = "<class>"` buys. The table is part of the manifest
 * spec (spec/capsule/README.md); a host may cap every value further with its own limits.
 */
export const CPU_CLASSES = ['nano', 'micro', 'small', 'medium', 'large'] as const;
export type CpuClass = (typeof CPU_CLASSES)[number];

export interface ResourceClass {
  /** CPU time one request may use. */
  cpuMsPerRequest: number;
  /** Requests served at once, and the default for `concurrency`. */
  concurrency: number;
  /** The largest linear memory one instance may ask for, and the default for `memory`. */
  maxMemoryBytes: number;
}

const MiB = 1024 * 1024;

export const RESOURCE_CLASSES: Readonly<Record<CpuClass, ResourceClass>> = {
  nano: { cpuMsPerRequest: 10, concurrency: 4, maxMemoryBytes: 64 * MiB },
  micro: { cpuMsPerRequest: 50, concurrency: 16, maxMemoryBytes: 128 * MiB },
  small: { cpuMsPerRequest: 200, concurrency: 32, maxMemoryBytes: 256 * MiB },
  medium: { cpuMsPerRequest: 1000, concurrency: 64, maxMemoryBytes: 1024 * MiB },
  large: { cpuMsPerRequest: 5000, concurrency: 128, maxMemoryBytes: 4096 * MiB },
};

export const DEFAULT_CPU_CLASS: CpuClass = 'micro';
export const DEFAULT_TIMEOUT_MS = 30_000;
export const MAX_TIMEOUT_MS = 15 * 60_000;
