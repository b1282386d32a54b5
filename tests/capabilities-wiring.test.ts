import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '@stratum/core';
import type { Manifest } from '@stratum/manifest';
import bucket from '../packages/host/src/capabilities/bucket/index.ts';
import type { ConfigureContext, PrepareContext } from '../packages/host/src/capabilities/contract.ts';
import { WitError } from '../packages/host/src/capabilities/contract.ts';
import keyvalue from '../packages/host/src/capabilities/keyvalue/index.ts';
import sql from '../packages/host/src/capabilities/sql/index.ts';
import { requireService } from './support/services.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'stratum-wiring-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

export function manifestWith(capabilities: Partial<Manifest['capabilities']>): Manifest {
  return {
    stratum: 1,
    capsule: { name: 'demo', version: '1.0.0', authors: [] },
    source: { kind: 'wasm', wasm: 'demo.wasm' },
    resources: { cpu: 'micro', cpuMsPerRequest: 50, memoryBytes: 64 * 1024 * 1024, timeoutMs: 10_000, concurrency: 4 },
    capabilities: { keyvalue: [], sql: [], bucket: [], outbound: [], config: {}, ...capabilities },
    http: { routes: ['/*'] },
  };
}

export function configureContext(overrides: Partial<ConfigureContext>): ConfigureContext {
  return {
    capsule: 'demo',
    domains: ['demo.test'],
    manifest: manifestWith({}),
    imports: [],
    hostConfig: undefined,
    config: {},
    dataDir: join(dataDir, 'capsules', overrides.capsule ?? 'demo', 'cap'),
    logger: silentLogger,
    ...overrides,
  };
}

export function prepareContext<S>(settings: S, capsule = 'demo', lines: string[] = []): PrepareContext<S> {
  return {
    capsule,
    settings,
    dataDir: join(dataDir, 'capsules', capsule, 'cap'),
    logger: silentLogger,
    currentRequest: () => ({ requestId: 'req-1', domain: 'demo.test', outboundRemaining: 10 }),
    log: (level, message) => lines.push(`${level} ${message}`),
  };
}

/** Calls an import and returns the WIT error payload it threw. */
export async function witError(work: () => unknown): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    assert.ok(error instanceof WitError, `expected a WitError, got ${String(error)}`);
    return error.payload;
  }
  assert.fail('expected the import to return an error');
}

const KV_IMPORTS = [
  'stratum:keyvalue/store@0.1.0',
  'stratum:keyvalue/atomics@0.1.0',
  'stratum:keyvalue/batch@0.1.0',
  'wasi:keyvalue/store@0.2.0-draft2',
  'wasi:keyvalue/atomics@0.2.0-draft2',
];

test('keyvalue configure: a missing grant and bad host config are refused with what to fix', async () => {
  assert.throws(() => keyvalue.configure(configureContext({ imports: KV_IMPORTS })), /grants no store/);
  const manifest = manifestWith({ keyvalue: ['default'] });
  assert.throws(
    () =>
      keyvalue.configure(
        configureContext({ imports: KV_IMPORTS, manifest, hostConfig: { default: { type: 'redis', urll: 'redis://x' } } }),
      ),
    (error: Error & { details?: string[] }) =>
      /unknown key "urll" for type "redis" \(did you mean "url"\?\)/.test(error.details?.join('\n') ?? '') &&
      /url must be a redis:\/\/ URL/.test(error.details?.join('\n') ?? ''),
  );
  assert.throws(
    () =>
      keyvalue.configure(
        configureContext({ imports: KV_IMPORTS, manifest, hostConfig: { default: { type: 'reddis', url: 'redis://x' } } }),
      ),
    (error: Error & { details?: string[] }) => /did you mean "redis"/.test(error.details?.join('\n') ?? ''),
  );
  assert.throws(
    () =>
      keyvalue.configure(
        configureContext({ imports: KV_IMPORTS, manifest, hostConfig: { default: { type: 'sqlite', max_value_size: '1kb' } } }),
      ),
    (error: Error & { details?: string[] }) => /at least 1mib/.test(error.details?.join('\n') ?? ''),
  );
  const embedded = await keyvalue.configure(configureContext({ imports: KV_IMPORTS, manifest }));
  assert.deepEqual(embedded, { settings: { labels: { default: { type: 'sqlite', limits: {} } } } });
  const redis = await keyvalue.configure(
    configureContext({
      imports: KV_IMPORTS,
      manifest,
      hostConfig: { default: { type: 'redis', url: 'redis://127.0.0.1:6379/0', max_keys: 10 } },
    }),
  );
  assert.ok(redis.asyncImports?.includes('stratum:keyvalue/store@0.1.0#[method]bucket.get'));
  assert.ok(redis.asyncImports?.includes('wasi:keyvalue/atomics@0.2.0-draft2#[static]cas.new'));
  assert.deepEqual((await keyvalue.configure(configureContext({ imports: [], manifest }))).settings, { labels: {} });
});

test('keyvalue imports on SQLite: synchronous values in the WIT shapes, errors as variants', async (t) => {
  const manifest = manifestWith({ keyvalue: ['default'] });
  const plan = await keyvalue.configure(
    configureContext({ imports: KV_IMPORTS, manifest, hostConfig: { default: { type: 'sqlite', max_keys: 2 } } }),
  );
  const prepared = await keyvalue.prepare(prepareContext(plan.settings, 'kvsync'));
  t.after(() => keyvalue.shutdown?.());
  const store = prepared.imports['stratum:keyvalue/store'] as { open(label: string): Record<string, (...args: unknown[]) => unknown> };
  const atomics = prepared.imports['stratum:keyvalue/atomics'] as Record<string, (...args: unknown[]) => unknown>;
  const batch = prepared.imports['stratum:keyvalue/batch'] as Record<string, (...args: unknown[]) => unknown>;
  assert.deepEqual(await witError(() => store.open('other')), { tag: 'no-such-store' });
  const bucket = store.open('default');
  assert.equal(bucket.set?.('a', new Uint8Array([1])), undefined, 'a synchronous backend returns plain values');
  assert.deepEqual(bucket.get?.('a'), new Uint8Array([1]));
  assert.equal(bucket.get?.('missing'), undefined);
  assert.equal(atomics.increment?.(bucket, 'n', 5n), 5n);
  assert.deepEqual(await witError(() => bucket.set?.('c', new Uint8Array())), {
    tag: 'limit-exceeded',
    val: 'the store holds 2 keys, its quota',
  });
  assert.deepEqual(batch.getMany?.(bucket, ['a', 'zz']), [['a', new Uint8Array([1])], undefined]);
  assert.deepEqual(bucket.listKeys?.(undefined), { keys: ['a', 'n'], cursor: undefined });
  assert.equal(atomics.compareAndSwap?.(bucket, 'a', new Uint8Array([1]), new Uint8Array([2])), true);

  const wasiStore = prepared.imports['wasi:keyvalue/store'] as { open(label: string): Record<string, (...args: unknown[]) => unknown> };
  const wasiAtomics = prepared.imports['wasi:keyvalue/atomics'] as {
    Cas: { new (...args: unknown[]): unknown; new: (...args: unknown[]) => { current(): unknown } };
    swap(...args: unknown[]): unknown;
  };
  const wasiBucket = wasiStore.open('default');
  assert.deepEqual(wasiBucket.get?.('a'), new Uint8Array([2]), 'both packages see the same store');
  assert.deepEqual(await witError(() => wasiBucket.set?.('third', new Uint8Array())), {
    tag: 'other',
    val: 'the store holds 2 keys, its quota',
  });
  const cas = wasiAtomics.Cas.new(wasiBucket, 'a');
  assert.deepEqual(cas.current(), new Uint8Array([2]));
  wasiBucket.set?.('a', new Uint8Array([3]));
  const failed = (await witError(() => wasiAtomics.swap(cas, new Uint8Array([9])))) as { tag: string; val: { current(): unknown } };
  assert.equal(failed.tag, 'cas-failed');
  assert.deepEqual(failed.val.current(), new Uint8Array([3]));
  assert.equal(wasiAtomics.swap(failed.val, new Uint8Array([9])), undefined);
  assert.deepEqual(wasiBucket.get?.('a'), new Uint8Array([9]));
});

test('keyvalue imports on Redis return promises and keep capsules apart', async (t) => {
  const url = await requireService(t, 'redis');
  if (!url) return;
  const manifest = manifestWith({ keyvalue: ['default'] });
  const hostConfig = { default: { type: 'redis', url, key_prefix: 'stratum-test:wiring:' } };
  const plan = await keyvalue.configure(configureContext({ imports: KV_IMPORTS, manifest, hostConfig }));
  const capsuleA = `a${Date.now()}`;
  const first = await keyvalue.prepare(prepareContext(plan.settings, capsuleA));
  const second = await keyvalue.prepare(prepareContext(plan.settings, `b${Date.now()}`));
  t.after(() => keyvalue.shutdown?.());
  const open = (prepared: typeof first) =>
    (prepared.imports['stratum:keyvalue/store'] as { open(label: string): Record<string, (...args: unknown[]) => unknown> }).open(
      'default',
    );
  const a = open(first);
  const b = open(second);
  const pending = a.set?.('k', new Uint8Array([1]));
  assert.ok(pending instanceof Promise);
  await pending;
  assert.equal(await b.get?.('k'), undefined);
  assert.deepEqual(await a.get?.('k'), new Uint8Array([1]));
  await a.delete?.('k');
});

test('sql configure and imports: SQLite by default, synchronous, with WIT values and errors', async (t) => {
  const imports = ['stratum:sql/database@0.1.0'];
  assert.throws(() => sql.configure(configureContext({ imports })), /grants no database/);
  const manifest = manifestWith({ sql: ['default'] });
  assert.throws(
    () =>
      sql.configure(
        configureContext({ imports, manifest, hostConfig: { default: { type: 'postgres', url: 'postgres://x/y', max_sise: '1mb' } } }),
      ),
    (error: Error & { details?: string[] }) =>
      /unknown key "max_sise" for type "postgres" \(did you mean "max_size"\?\)/.test(error.details?.join('\n') ?? ''),
  );
  const postgresPlan = await sql.configure(
    configureContext({ imports, manifest, hostConfig: { default: { type: 'postgres', url: 'postgres://127.0.0.1/test' } } }),
  );
  assert.deepEqual(postgresPlan.asyncImports, [
    'stratum:sql/database@0.1.0#[method]connection.query',
    'stratum:sql/database@0.1.0#[method]connection.execute',
    'stratum:sql/database@0.1.0#[method]connection.transaction',
  ]);
  const plan = await sql.configure(configureContext({ imports, manifest }));
  assert.equal(plan.asyncImports, undefined);
  const prepared = await sql.prepare(prepareContext(plan.settings, 'sqlsync'));
  t.after(() => sql.shutdown?.());
  const database = prepared.imports['stratum:sql/database'] as { open(label: string): Record<string, (...args: unknown[]) => unknown> };
  assert.deepEqual(await witError(() => database.open('nope')), { tag: 'no-such-database' });
  const connection = database.open('default');
  connection.execute?.('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)', []);
  assert.deepEqual(connection.execute?.('INSERT INTO t (v) VALUES (?)', [{ tag: 'text', val: 'x' }]), {
    rowsAffected: 1n,
    lastInsertId: 1n,
  });
  assert.deepEqual(connection.query?.('SELECT id, v FROM t', []), {
    columns: ['id', 'v'],
    rows: [
      [
        { tag: 'integer', val: 1n },
        { tag: 'text', val: 'x' },
      ],
    ],
  });
  assert.deepEqual(await witError(() => connection.query?.("ATTACH DATABASE '/tmp/x' AS x", [])), {
    tag: 'invalid-query',
    val: "not allowed in a capsule's database: ATTACH and DETACH",
  });
});

test('bucket configure and imports: a directory by default, synchronous; S3 settings validated', async (t) => {
  const imports = ['stratum:bucket/objects@0.1.0'];
  assert.throws(() => bucket.configure(configureContext({ imports })), /grants no bucket/);
  const manifest = manifestWith({ bucket: ['uploads'] });
  assert.throws(
    () =>
      bucket.configure(
        configureContext({
          imports,
          manifest,
          hostConfig: { uploads: { type: 's3', location: 'http://nope', access_key_id: 'a', endpont: 'http://x' } },
        }),
      ),
    (error: Error & { details?: string[] }) => {
      const details = error.details?.join('\n') ?? '';
      return (
        /location must be s3:/.test(details) &&
        /did you mean "endpoint"/.test(details) &&
        /give both access_key_id and secret_access_key/.test(details)
      );
    },
  );
  assert.throws(
    () =>
      bucket.configure(configureContext({ imports, manifest, hostConfig: { uploads: { type: 'directory', location: 'relative/dir' } } })),
    /not valid/,
  );
  const s3Plan = await bucket.configure(
    configureContext({
      imports,
      manifest,
      hostConfig: {
        uploads: {
          type: 's3',
          location: 's3://stratum-bucket/p',
          endpoint: 'http://127.0.0.1:9',
          access_key_id: 'k',
          secret_access_key: 's',
        },
      },
    }),
  );
  assert.ok(s3Plan.asyncImports?.includes('stratum:bucket/objects@0.1.0#[method]upload.finish'));
  const plan = await bucket.configure(configureContext({ imports, manifest }));
  const prepared = await bucket.prepare(prepareContext(plan.settings, 'bucketsync'));
  t.after(() => bucket.shutdown?.());
  const objects = prepared.imports['stratum:bucket/objects'] as { open(label: string): Record<string, (...args: unknown[]) => unknown> };
  assert.deepEqual(await witError(() => objects.open('default')), { tag: 'no-such-bucket' });
  const uploads = objects.open('uploads');
  const info = uploads.put?.('a.txt', new TextEncoder().encode('hello'), 'text/plain') as { size: bigint; contentType: string };
  assert.equal(info.size, 5n);
  assert.equal(info.contentType, 'text/plain');
  const got = uploads.get?.('a.txt', { offset: 1n, length: 3n }) as { data: Uint8Array; info: { size: bigint } };
  assert.deepEqual(got.data, new TextEncoder().encode('ell'));
  assert.equal(got.info.size, 5n);
  assert.deepEqual(await witError(() => uploads.get?.('a.txt', { offset: 9n, length: undefined })), { tag: 'invalid-range' });
  assert.deepEqual(await witError(() => uploads.put?.('../x', new Uint8Array(), undefined)), {
    tag: 'invalid-name',
    val: 'an object name must not hold a ".." segment',
  });
  const upload = uploads.startUpload?.('b.bin', undefined) as { write(chunk: Uint8Array): void; [Symbol.dispose](): void };
  upload.write(new Uint8Array([1, 2]));
  upload[Symbol.dispose]();
  assert.equal(uploads.head?.('b.bin'), undefined, 'a dropped upload leaves nothing');
  const page = uploads.listObjects?.(undefined, undefined, undefined) as { objects: { name: string }[]; cursor: undefined };
  assert.deepEqual(
    page.objects.map((object) => object.name),
    ['a.txt'],
  );
});
