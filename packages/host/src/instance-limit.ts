import { totalmem } from 'node:os';

/**
 * The default of `[instances] max`: one instance per 32 MiB of the machine's memory, at least 16.
 * A warm instance takes 12-27 MiB (bench/README.md), so this leaves room for engines that grow.
 */
export function defaultMaxInstances(memoryBytes = totalmem()): number {
  return Math.max(16, Math.floor(memoryBytes / (32 * 1024 * 1024)));
}
