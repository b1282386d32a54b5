import assert from 'node:assert/strict';
import { test } from 'node:test';
import { libcInMaps, missingHostEnv, processLibc, RECOMMENDED_HOST_ENV } from './process-environment.ts';

test('a host on glibc without the recommended settings is told both, each as NAME=value to add', () => {
  assert.deepEqual(missingHostEnv({}, 'glibc'), ['MALLOC_ARENA_MAX=2', 'GLIBC_TUNABLES=glibc.malloc.hugetlb=1']);
  assert.deepEqual(missingHostEnv({ ...RECOMMENDED_HOST_ENV }, 'glibc'), []);
  // Other tunables are kept in what it asks for.
  assert.deepEqual(missingHostEnv({ MALLOC_ARENA_MAX: '4', GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' }, 'glibc'), [
    'GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1',
  ]);
});

test("either way of capping the arenas counts, and an operator's own value is theirs to keep", () => {
  assert.deepEqual(missingHostEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=8:glibc.malloc.hugetlb=0' }, 'glibc'), []);
  assert.deepEqual(missingHostEnv({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' }, 'glibc'), ['MALLOC_ARENA_MAX=2']);
  assert.deepEqual(missingHostEnv({ MALLOC_ARENA_MAX: '1' }, 'glibc'), ['GLIBC_TUNABLES=glibc.malloc.hugetlb=1']);
});

test('nothing is asked of a host on another C library, which would ignore the settings', () => {
  assert.deepEqual(missingHostEnv({}, 'other'), []);
});

test('glibc is told from its file among the mappings, old and new, and musl from it', () => {
  const line = (file: string) => `7f3c0a000000-7f3c0a028000 r--p 00000000 fe:01 1835 ${file}`;
  const node = line('/usr/local/bin/node');
  assert.equal(libcInMaps([node, line('/usr/lib/x86_64-linux-gnu/libc.so.6')].join('\n')), 'glibc');
  assert.equal(libcInMaps([node, line('/lib/x86_64-linux-gnu/libc-2.31.so'), ''].join('\n')), 'glibc');
  assert.equal(libcInMaps([node, line('/lib/ld-musl-x86_64.so.1')].join('\n')), 'other');
  assert.equal(libcInMaps([node, line('/usr/lib/x86_64-linux-gnu/libcrypto.so.3')].join('\n')), 'other');
});

test("the C library is read from the process's own mappings, as Node.js's report names it", () => {
  const header = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header;
  assert.equal(processLibc(), header.glibcVersionRuntime === undefined ? 'other' : 'glibc');
});
