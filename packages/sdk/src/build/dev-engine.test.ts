// The dev build without componentize-js: what the bundle looks like to an engine, the engine's
// key, and the checks that come before any engine is built. (tests/dev-engine.test.ts builds
// and runs a real engine.)
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isStratumError } from '@stratum/core';
import { buildDevCapsule, locateDevEngine } from './build.ts';
import { DEV_GLOBAL_KEY, describeImportSet, devEngineCacheDir, devEngineKey, devEngineSource } from './dev-engine.ts';

const examples = fileURLToPath(new URL('../../../../examples/', import.meta.url));

async function copyExample(t: TestContext, name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `stratum-dev-build-${name}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await cp(join(examples, name), dir, { recursive: true, filter: (source) => !/\/(dist|\.stratum)$/.test(source) });
  return dir;
}

/** Options that fail the test if an engine would be built (componentize takes 20 s). */
function noEngineBuild(t: TestContext) {
  return {
    engineCacheDir: join(tmpdir(), `stratum-no-engines-${process.pid}`),
    onStep: (step: string) => {
      if (step === 'engine') t.assert.fail('no engine should be built');
    },
  };
}

test('a dev bundle is a script that reads its interfaces from the engine’s table and registers the handler there', async (t) => {
  const dir = await copyExample(t, 'counter');
  const engines = await mkdtemp(join(tmpdir(), 'stratum-engines-'));
  t.after(() => rm(engines, { recursive: true, force: true }));
  const imports = [
    'stratum:keyvalue/atomics@0.1.0',
    'stratum:keyvalue/batch@0.1.0',
    'stratum:keyvalue/store@0.1.0',
    'wasi:http/types@0.2.10',
  ];
  // A stand-in engine in the cache: only the bundle is looked at here.
  const located = await locateDevEngine(imports, { cacheDir: engines });
  await writeFile(located.path, 'stand-in');

  const dev = await buildDevCapsule(dir, { engineCacheDir: engines });
  assert.deepEqual(
    dev.imports.map((item) => item.name),
    imports,
    'the same imports as a production build of the same code',
  );
  assert.deepEqual(dev.engine, { path: located.path, key: located.key, built: false, serves: 'keyvalue' });
  assert.doesNotMatch(dev.bundle, /^\s*(import|export)\s/m, 'a script, not a module');

  const table: { imports: Record<string, Record<string, unknown>>; handler?: { handle: unknown } } = {
    imports: Object.fromEntries(imports.map((name) => [name, {}])),
  };
  const globals = globalThis as unknown as Record<symbol, unknown>;
  globals[Symbol.for(DEV_GLOBAL_KEY)] = table;
  try {
    new Function(dev.bundle)();
  } finally {
    delete globals[Symbol.for(DEV_GLOBAL_KEY)];
  }
  assert.equal(typeof table.handler?.handle, 'function');
});

test('the SDK’s WebCrypto, and the stratum:crypto import, come only with code that mentions crypto.subtle', async (t) => {
  const dir = await copyExample(t, 'hello');
  const engines = await mkdtemp(join(tmpdir(), 'stratum-engines-'));
  t.after(() => rm(engines, { recursive: true, force: true }));
  const imports = ['stratum:crypto/primitives@0.1.0', 'wasi:http/types@0.2.10'];
  await writeFile((await locateDevEngine(imports, { cacheDir: engines })).path, 'stand-in');
  const plain = await buildDevCapsule(dir, { engineCacheDir: engines });
  assert.deepEqual(
    plain.imports.map((item) => item.name),
    ['wasi:http/types@0.2.10'],
  );
  assert.doesNotMatch(plain.bundle, /addSecretKeys/);
  const source = join(dir, 'src', 'index.ts');
  await writeFile(
    source,
    `${await readFile(source, 'utf8')}\n(globalThis as Record<string, unknown>).digest = (bytes: Uint8Array) => crypto.subtle.digest('SHA-256', bytes);\n`,
  );
  const hashing = await buildDevCapsule(dir, { engineCacheDir: engines });
  assert.deepEqual(
    hashing.imports.map((item) => item.name),
    imports,
  );
  assert.match(hashing.bundle, /addSecretKeys/);
});

test('the SDK’s Intl, and the stratum:intl import, come only with code that formats for a locale or normalizes', async (t) => {
  const dir = await copyExample(t, 'hello');
  const engines = await mkdtemp(join(tmpdir(), 'stratum-engines-'));
  t.after(() => rm(engines, { recursive: true, force: true }));
  const imports = ['stratum:intl/services@0.1.0', 'wasi:http/types@0.2.10'];
  await writeFile((await locateDevEngine(imports, { cacheDir: engines })).path, 'stand-in');
  const source = join(dir, 'src', 'index.ts');
  const original = await readFile(source, 'utf8');
  for (const use of [
    'new Intl.NumberFormat().format(1)',
    'new Date().toLocaleDateString()',
    "'a'.localeCompare('b')",
    "'é'.normalize('NFD')",
  ]) {
    await writeFile(source, `${original}\n(globalThis as Record<string, unknown>).used = () => ${use};\n`);
    const using = await buildDevCapsule(dir, { engineCacheDir: engines });
    assert.deepEqual(
      using.imports.map((item) => item.name),
      imports,
      use,
    );
    assert.match(using.bundle, /RelativeTimeFormat/, use);
  }
  await writeFile(source, original);
  const plain = await buildDevCapsule(dir, { engineCacheDir: engines });
  assert.deepEqual(
    plain.imports.map((item) => item.name),
    ['wasi:http/types@0.2.10'],
  );
  assert.doesNotMatch(plain.bundle, /RelativeTimeFormat/);
});

test('the engine key follows the import set', async () => {
  const witDirs: string[] = [];
  const key = (imports: string[]) =>
    devEngineKey({ source: devEngineSource(imports), world: imports.join(';'), witDirs, disableFeatures: ['fetch-event'] });
  const kv = ['stratum:keyvalue/store@0.1.0', 'wasi:http/types@0.2.10'];
  assert.equal(await key(kv), await key([...kv]));
  assert.notEqual(await key(kv), await key([...kv, 'wasi:logging/logging@0.1.0-draft']));
  assert.match(await key(kv), /^[0-9a-f]{32}$/);
});

test('engines are cached user-wide, under XDG_CACHE_HOME when set', () => {
  assert.equal(devEngineCacheDir({ XDG_CACHE_HOME: '/x/cache' }), '/x/cache/stratum/dev-engines');
  assert.match(devEngineCacheDir({}), /\/\.cache\/stratum\/dev-engines$/);
  // The XDG spec says a relative path is invalid and must be ignored.
  assert.match(devEngineCacheDir({ XDG_CACHE_HOME: 'relative' }), /\/\.cache\/stratum\/dev-engines$/);
});

test('an engine is named after what it serves', () => {
  assert.equal(describeImportSet(['wasi:http/types@0.2.10']), 'HTTP only');
  assert.equal(
    describeImportSet([
      'stratum:sql/database@0.1.0',
      'stratum:keyvalue/store@0.1.0',
      'stratum:keyvalue/atomics@0.1.0',
      'wasi:logging/logging',
    ]),
    'keyvalue, logging, sql',
  );
});

test('a syntax error and an ungranted import are refused before any engine is built', async (t) => {
  const dir = await copyExample(t, 'counter');
  const source = join(dir, 'src', 'index.ts');
  const good = await readFile(source, 'utf8');

  await writeFile(source, good.replace('const kv = openKeyValue', 'const kv = = openKeyValue'));
  const broken = await buildDevCapsule(dir, noEngineBuild(t)).catch((error: unknown) => error);
  assert.ok(isStratumError(broken) && broken.code === 'BUILD_BUNDLE_FAILED', String(broken));
  const line = good.split('\n').findIndex((text) => text.includes('const kv = openKeyValue')) + 1;
  assert.match(broken.details[0] ?? '', new RegExp(`src/index\\.ts:${line}:\\d+: `));

  await writeFile(
    source,
    `import { openDatabase } from '@stratum/sdk/sql';\n${good.replace('const kv = ', 'openDatabase();\n    const kv = ')}`,
  );
  const ungranted = await buildDevCapsule(dir, noEngineBuild(t)).catch((error: unknown) => error);
  assert.ok(isStratumError(ungranted) && ungranted.code === 'BUILD_UNGRANTED_IMPORT', String(ungranted));
  assert.deepEqual(ungranted.details, ['stratum:sql/database@0.1.0 needs the sql capability']);
});
