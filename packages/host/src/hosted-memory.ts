// The memory the host creates for a core module, shared by the loader (wasm-memory.ts) and the
// capsule worker, which must not load @stratum/core for it.

/**
 * Where a module whose own memory the host creates imports it from (see `prepareMemoryCaps`).
 * The host makes that memory itself so that a spare thread can write its pages before an instance
 * needs them: on a small VM a first write to a page costs 80-100 times a later one (a new 4 MiB
 * memory: 10.6-14.8 ms, then 0.13-0.18 ms), and a JS capsule's instantiation copies 3.4 MiB of
 * data segments into new memory.
 */
export const HOST_MEMORY_IMPORT = { module: 'stratum:memory', name: 'memory' } as const;

/** The memory the host creates for a module that imports it from `HOST_MEMORY_IMPORT`. */
export interface HostedMemory {
  /** In 64 KiB pages, as `WebAssembly.Memory` takes them. */
  initial: number;
  maximum: number;
  /** Byte ranges, whole 4 KiB pages, that the module's data segments fill at instantiation. */
  touch: [number, number][];
}

/** The OS page: writing one byte of it makes the kernel back all of it. */
export const OS_PAGE = 4096;
