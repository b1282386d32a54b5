import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { linkSdkForEditors, PROJECT_TSCONFIG } from './editor-types.ts';
import { currentEngineTypes, declaredProbes, ENGINE_LIBS, engineTypesFile, libraryFiles, typescriptLibDir } from './engine-types.ts';

test('engine.generated.d.ts is what engine-types.ts makes from the TypeScript installed (else run it again)', async () => {
  assert.equal(await readFile(engineTypesFile, 'utf8'), await currentEngineTypes());
});

test("the ECMAScript libraries the types name bring in none of what the engine lacks: SharedArrayBuffer, Atomics, Temporal, a browser's or a worker's globals", async () => {
  const files = await libraryFiles(ENGINE_LIBS, await typescriptLibDir());
  const named = [...files.keys()];
  for (const lib of named)
    assert.doesNotMatch(lib, /sharedmemory|temporal|^dom|^webworker|scripthost|^esnext\.(date|intl|decorators)$|^es2025\.intl$/);
  for (const text of files.values()) assert.doesNotMatch(text, /^declare var (SharedArrayBuffer|Atomics|Temporal)\b/m);
  // ES2025 and the ESNext parts the engine has are in.
  for (const lib of ['es2024.object', 'es2025.collection', 'es2025.iterator', 'esnext.array']) assert.ok(named.includes(lib), lib);
});

/** What `tsc -p <dir>` reports for a project, as `file(line,col): error TSxxxx` lines. */
function typeErrors(dir: string): string[] {
  const tsc = join(dirname(fileURLToPath(import.meta.resolve('typescript/package.json'))), 'bin', 'tsc');
  const checked = spawnSync(process.execPath, [tsc, '-p', dir, '--pretty', 'false'], { encoding: 'utf8' });
  return `${checked.stdout}${checked.stderr}`.split('\n').filter(Boolean);
}

test("a project's types are the engine's: what a capsule has checks, what it lacks is an error at its line", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-engine-types-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify(PROJECT_TSCONFIG));
  await linkSdkForEditors(dir);
  const present = [
    "Object.groupBy([1, 2], (n) => (n % 2 ? 'odd' : 'even'))",
    'Map.groupBy([1], (n) => n)',
    'Promise.withResolvers<number>()',
    'new Set([1]).union(new Set([2]))',
    'Array.fromAsync([1])',
    '[1, 2].values().map((n) => n * 2).toArray()',
    'Iterator.from([1])',
    "'a'.isWellFormed()",
    'Promise.try(() => 1)',
    "RegExp.escape('a.b')",
    'new Float16Array(1)',
    'Error.isError(1)',
    "Uint8Array.fromBase64('AA==')",
    'new DisposableStack()',
    'new ArrayBuffer(1, { maxByteLength: 2 }).resize',
    'performance.timeOrigin + performance.now()',
    'AbortSignal.any([AbortSignal.timeout(10)])',
    "Response.json({}, { headers: new Headers({ 'x-a': 'b' }) })",
    "new URL('http://x.test/').searchParams",
    'structuredClone({ a: 1 })',
    "crypto.subtle.digest('SHA-256', new Uint8Array(1))",
    'new TextDecoderStream()',
    'new MessageChannel().port1',
    "new CompressionStream('gzip')",
    'self.fetch',
  ];
  const missing = [
    "new URLPattern({ pathname: '/a' })",
    'caches.default',
    'navigator.userAgent',
    'Response.error()',
    "new Request('http://x.test/').mode",
    "performance.mark('a')",
    'new SharedArrayBuffer(8)',
    'Atomics.add',
    'Temporal.Now',
    'document.title',
    "new WebSocket('ws://x.test/')",
    "new BroadcastChannel('b')",
    'self.caches',
    'new Intl.DurationFormat()',
  ];
  await writeFile(
    join(dir, 'src', 'index.ts'),
    `export const present = [\n${present.map((line) => `  ${line},\n`).join('')}];\n${missing.map((line) => `export const missing${missing.indexOf(line)} = ${line};\n`).join('')}`,
  );
  const errors = typeErrors(dir);
  const lines = errors.map((error) => Number(/src\/index\.ts\((\d+),/.exec(error)?.[1]));
  // Each missing one is an error at its line (no such name, or property), the rest none.
  const first = present.length + 3;
  assert.deepEqual(
    lines,
    missing.map((_, index) => first + index),
    errors.join('\n'),
  );
});

test('declared probes: globals, statics, and each interface with its ancestors, on the object the engine has for it', () => {
  const probes = declaredProbes([
    `interface Body {
    readonly body: ReadableStream | null;
    text(): Promise<string>;
}
/** A response. */
interface Response extends Body {
    readonly status: number;
    readonly type?: string;
    [Symbol.iterator](): Iterator<number>;
    clone(): Response;
}
declare var Response: {
    prototype: Response;
    new(body?: string): Response;
    json(data: any): Response;
};
interface FooConstructor {
    from(x: number): Foo;
}
declare var foo: Foo;
declare function fetch(input: string): Promise<Response>;
declare namespace Intl {
    interface Collator {
        compare(a: string, b: string): number;
    }
    var Collator: CollatorConstructor;
    function getCanonicalLocales(locales?: string): string[];
}
`,
  ]);
  const byOwner = Object.fromEntries(probes.map((probe) => [probe.owner, probe]));
  assert.deepEqual(byOwner.globalThis, {
    owner: 'globalThis',
    candidates: [{ path: [], on: 'value' }],
    members: ['Intl', 'Response', 'fetch', 'foo'],
  });
  assert.deepEqual(byOwner['Response (static)']?.members, ['json']);
  // Optional members are not required; an ancestor's are.
  assert.deepEqual(byOwner.Response?.members, ['Symbol.iterator', 'body', 'clone', 'status', 'text']);
  assert.deepEqual(byOwner.Response?.candidates, [{ path: ['Response'], on: 'prototype' }]);
  assert.deepEqual(byOwner.FooConstructor?.candidates, [{ path: ['Foo'], on: 'value' }]);
  assert.deepEqual(byOwner.Intl?.members, ['Collator', 'getCanonicalLocales']);
  assert.deepEqual(byOwner['Intl.Collator']?.candidates, [{ path: ['Intl', 'Collator'], on: 'prototype' }]);
});
