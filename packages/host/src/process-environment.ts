import { readFileSync } from 'node:fs';

/**
 * The environment README.md's "Run a host" recommends for a host process on Linux with glibc.
 * glibc reads both when the process starts, so a running host cannot set them for itself:
 * - `MALLOC_ARENA_MAX=2`: malloc otherwise gives threads up to 8 arenas per core and keeps what a
 *   thread freed in its arena, and every capsule instance is a thread (about a tenth of a warm
 *   instance's memory, bench/README.md's density table).
 * - `glibc.malloc.hugetlb=1` (glibc 2.35 and later; older ones ignore it): malloc asks for
 *   transparent huge pages for what it maps, so that copying a JS capsule's 12 MB core module on
 *   its way to V8, and V8's compilers, fault one 2 MiB page at a time instead of 512 small ones
 *   (a restarted host's first JS answer about 12% sooner on a small VM, bench/README.md).
 */
export const RECOMMENDED_HOST_ENV = { MALLOC_ARENA_MAX: '2', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' } as const;

/** The tunables in a `GLIBC_TUNABLES` value (`name=value:name=value`), by name. */
function tunables(value: string | undefined): Map<string, string> {
  const found = new Map<string, string>();
  for (const item of (value ?? '').split(':')) {
    const at = item.indexOf('=');
    if (at > 0) found.set(item.slice(0, at), item.slice(at + 1));
  }
  return found;
}

/**
 * The settings of `RECOMMENDED_HOST_ENV` that `env` leaves out, as `NAME=value` to add, where they
 * apply: none unless the C library is glibc. Either way of capping the arenas counts, and a
 * setting the operator chose (any value, `glibc.malloc.hugetlb=0` too) is theirs to keep.
 */
export function missingHostEnv(env: NodeJS.ProcessEnv, libc: 'glibc' | 'other'): string[] {
  if (libc !== 'glibc') return [];
  const set = tunables(env.GLIBC_TUNABLES);
  const missing: string[] = [];
  if (env.MALLOC_ARENA_MAX === undefined && !set.has('glibc.malloc.arena_max')) missing.push('MALLOC_ARENA_MAX=2');
  if (!set.has('glibc.malloc.hugetlb')) {
    missing.push(`GLIBC_TUNABLES=${[...(env.GLIBC_TUNABLES ? [env.GLIBC_TUNABLES] : []), 'glibc.malloc.hugetlb=1'].join(':')}`);
  }
  return missing;
}

/**
 * The C library a process's mappings (the text of `/proc/<pid>/maps`) show: glibc's file is
 * `libc.so.6` (`libc-2.31.so` and the like before glibc 2.34); musl's is its loader.
 */
export function libcInMaps(maps: string): 'glibc' | 'other' {
  return /\/libc(?:-[0-9.]+)?\.so(?:\.6)?$/m.test(maps) ? 'glibc' : 'other';
}

/**
 * Which C library this process runs on. Reading its mappings takes well under a millisecond,
 * where `process.report` takes about 20 the first time.
 */
export function processLibc(): 'glibc' | 'other' {
  if (process.platform !== 'linux') return 'other';
  try {
    return libcInMaps(readFileSync('/proc/self/maps', 'utf8'));
  } catch {
    return 'other';
  }
}
