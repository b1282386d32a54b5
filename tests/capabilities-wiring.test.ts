import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_OPEN_UPLOADS } from '../packages/host/src/capabilities/bucket/bindings.ts';
import bucket, { exportBucketState, importBucketState } from '../packages/host/src/capabilities/bucket/index.ts';
import config from '../packages/host/src/capabilities/config/index.ts';
import keyvalue, { exportKeyValueState, importKeyValueState } from '../packages/host/src/capabilities/keyvalue/index.ts';
import logging from '../packages/host/src/capabilities/logging/index.ts';
import { LogRing } from '../packages/host/src/capabilities/logging/ring.ts';
import sql, { exportSqlState, importSqlState } from '../packages/host/src/capabilities/sql/index.ts';
import wasi from '../packages/host/src/capabilities/wasi/index.ts';
import { configureContext, manifestWith, prepareContext, witError } from './capabilities-support.ts';
import { requireService } from './support/services.ts';

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
  const kvLines: string[] = [];
  const prepared = await keyvalue.prepare(prepareContext(plan.settings, 'kvsync', kvLines));
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
  assert.deepEqual(
    kvLines,
    [
      // The guest's no-such-store carries no text: the capsule's log says what the manifest grants.
      'warn keyvalue open("other") refused (no-such-store): the manifest grants keyvalue stores "default" only',
      'quota-exceeded quota: the store holds 2 keys, its quota',
    ],
    'a refused label and a quota refusal are reported to the host, which logs them (and meters the quota)',
  );
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
  const sqlLines: string[] = [];
  const prepared = await sql.prepare(prepareContext(plan.settings, 'sqlsync', sqlLines));
  t.after(() => sql.shutdown?.());
  const database = prepared.imports['stratum:sql/database'] as { open(label: string): Record<string, (...args: unknown[]) => unknown> };
  assert.deepEqual(await witError(() => database.open('nope')), { tag: 'no-such-database' });
  assert.deepEqual(sqlLines, ['warn sql open("nope") refused (no-such-database): the manifest grants sql databases "default" only']);
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
  const bucketLines: string[] = [];
  const prepared = await bucket.prepare(prepareContext(plan.settings, 'bucketsync', bucketLines));
  t.after(() => bucket.shutdown?.());
  const objects = prepared.imports['stratum:bucket/objects'] as { open(label: string): Record<string, (...args: unknown[]) => unknown> };
  assert.deepEqual(await witError(() => objects.open('default')), { tag: 'no-such-bucket' });
  assert.deepEqual(bucketLines, ['warn bucket open("default") refused (no-such-bucket): the manifest grants buckets "uploads" only']);
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

  // Unfinished uploads hold a file each: an instance holds at most MAX_OPEN_UPLOADS of them.
  type OpenUpload = { abort(): void; finish(): unknown; [Symbol.dispose](): void };
  const open = Array.from({ length: MAX_OPEN_UPLOADS }, (_, index) => uploads.startUpload?.(`u${index}`, undefined) as OpenUpload);
  assert.deepEqual(await witError(() => uploads.startUpload?.('one-more', undefined)), {
    tag: 'limit-exceeded',
    val: `${MAX_OPEN_UPLOADS} uploads are unfinished already: finish or abort one first`,
  });
  // Finished, aborted or dropped, each makes room for one more.
  open[0]?.finish();
  open[1]?.abort();
  open[2]?.[Symbol.dispose]();
  const more = [0, 1, 2].map((index) => uploads.startUpload?.(`v${index}`, undefined) as OpenUpload);
  assert.deepEqual(await witError(() => uploads.startUpload?.('one-more', undefined)), {
    tag: 'limit-exceeded',
    val: `${MAX_OPEN_UPLOADS} uploads are unfinished already: finish or abort one first`,
  });
  for (const upload of [...open, ...more]) upload.abort();
});

test('config: manifest variables with installation values; missing and unknown ones named, values never shown', async () => {
  const manifest = manifestWith({
    config: {
      greeting: { default: 'hello', required: false, secret: false },
      api_key: { required: true, secret: true },
      region: { required: false, secret: false },
    },
  });
  const imports = ['wasi:config/store@0.2.0-draft'];
  assert.throws(
    () => config.configure(configureContext({ imports, manifest, config: { api_kee: 'sk-live-123456' } })),
    (error: Error & { details?: string[] }) => {
      const text = `${error.message}\n${error.details?.join('\n')}`;
      assert.match(text, /"api_key" is required and has no value \(a secret\)/);
      assert.match(text, /"api_kee" is not a variable the manifest declares \(did you mean "api_key"\?\)/);
      assert.doesNotMatch(text, /sk-live-123456/);
      return true;
    },
  );
  const plan = await config.configure(configureContext({ imports, manifest, config: { api_key: 'sk-live-123456' } }));
  const prepared = await config.prepare(prepareContext(plan.settings));
  const store = prepared.imports['wasi:config/store'] as { get(key: string): string | undefined; getAll(): [string, string][] };
  assert.equal(store.get('greeting'), 'hello');
  assert.equal(store.get('api_key'), 'sk-live-123456');
  assert.equal(store.get('region'), undefined);
  assert.equal(store.get('undeclared'), undefined);
  assert.deepEqual(store.getAll(), [
    ['api_key', 'sk-live-123456'],
    ['greeting', 'hello'],
  ]);
});

test('logging: wasi:logging lines reach the capsule log with level and context, secrets masked, never throwing', async () => {
  const manifest = manifestWith({
    config: { token: { required: true, secret: true }, name: { required: false, secret: false, default: 'demo' } },
  });
  const plan = await logging.configure(
    configureContext({ imports: ['wasi:logging/logging@0.1.0-draft'], manifest, config: { token: 'tok-abcdef' } }),
  );
  const lines: string[] = [];
  const prepared = await logging.prepare(prepareContext(plan.settings, 'demo', lines));
  const { log } = prepared.imports['wasi:logging/logging'] as { log(level: string, context: string, message: string): void };
  log('warn', 'auth', 'using token tok-abcdef for demo');
  log('critical', '', 'x'.repeat(20_000));
  log('bogus', 'c', 'still kept');
  assert.equal(lines[0], 'warn using token [secret] for demo');
  assert.match(lines[1] ?? '', /^critical x+\.\.\. \(truncated\)$/);
  assert.ok((lines[1]?.length ?? 0) < 17_000);
  assert.equal(lines[2], 'info still kept');
});

test('stdout: each line is logged with its secrets masked before it is cut; the rest of an overlong line is dropped', async () => {
  const secret = 'ALPHA-SECRET-sk-live-1234';
  const manifest = manifestWith({ config: { token: { required: true, secret: true } } });
  const plan = await wasi.configure(configureContext({ imports: ['wasi:cli/stdout@0.2.3'], manifest, config: { token: secret } }));
  const lines: string[] = [];
  const prepared = await wasi.prepare(prepareContext(plan.settings, 'demo', lines));
  const stdout = (prepared.imports['wasi:cli/stdout'] as { getStdout(): { write(bytes: Uint8Array): void } }).getStdout();
  const write = (text: string) => stdout.write(new TextEncoder().encode(text));
  write(`token ${secret.slice(0, 9)}`);
  write(`${secret.slice(9)} ok\n`);
  // The secret straddles the 16 KiB cut, and the line goes on past it in pieces.
  write('x'.repeat(16_370));
  write(secret);
  for (let piece = 0; piece < 10; piece++) write('y'.repeat(10_000));
  write(`\nafter ${secret}\n`);
  assert.equal(lines.length, 3, lines.map((line) => line.slice(0, 40)).join('\n'));
  assert.equal(lines[0], 'info token [secret] ok');
  assert.equal(lines[1], `info ${'x'.repeat(16_370)}[secret]${'y'.repeat(16_384 - 16_378)}... (truncated)`);
  assert.equal(lines[2], 'info after [secret]');
  for (const line of lines) assert.ok(!line.includes(secret.slice(0, 5)), line.slice(-60));
});

test('LogRing keeps the newest entries, replays a backlog and follows new ones', () => {
  const ring = new LogRing<number>(3);
  for (const n of [1, 2, 3, 4, 5]) ring.push(n);
  assert.deepEqual(ring.recent(), [3, 4, 5]);
  assert.deepEqual(ring.recent(2), [4, 5]);
  assert.equal(ring.dropped, 2);
  const seen: number[] = [];
  const stop = ring.subscribe((n) => seen.push(n), { backlog: 1 });
  ring.push(6);
  stop();
  ring.push(7);
  assert.deepEqual(seen, [5, 6]);
  assert.throws(() => new LogRing(0), RangeError);
});

test("state helpers: a capsule's data exported where its worker wrote it, and imported for another capsule", async (t) => {
  const kvPlan = await keyvalue.configure(configureContext({ imports: KV_IMPORTS, manifest: manifestWith({ keyvalue: ['default'] }) }));
  const source = await keyvalue.prepare(prepareContext(kvPlan.settings, 'statefrom'));
  const target = await keyvalue.prepare(prepareContext(kvPlan.settings, 'stateto'));
  t.after(() => keyvalue.shutdown?.());
  const open = (prepared: typeof source) =>
    (prepared.imports['stratum:keyvalue/store'] as { open(label: string): Record<string, (...args: unknown[]) => unknown> }).open(
      'default',
    );
  open(source).set?.('moved', new TextEncoder().encode('yes'));
  const where = (capsule: string) => ({ hostConfig: undefined, dataDir: prepareContext({}, capsule).dataDir, capsule, label: 'default' });
  const lines: string[] = [];
  for await (const line of exportKeyValueState(where('statefrom'))) lines.push(line);
  assert.deepEqual(await importKeyValueState(where('stateto'), () => lines), { records: 1, skipped: 0 });
  assert.deepEqual(open(target).get?.('moved'), new TextEncoder().encode('yes'));

  const sqlPlan = await sql.configure(
    configureContext({ imports: ['stratum:sql/database@0.1.0'], manifest: manifestWith({ sql: ['default'] }) }),
  );
  const db = (await sql.prepare(prepareContext(sqlPlan.settings, 'sqlstate'))).imports['stratum:sql/database'] as {
    open(label: string): Record<string, (...args: unknown[]) => unknown>;
  };
  t.after(() => sql.shutdown?.());
  db.open('default').execute?.('CREATE TABLE t (v TEXT)', []);
  db.open('default').execute?.('INSERT INTO t (v) VALUES (?)', [{ tag: 'text', val: 'row' }]);
  const sqlLines: string[] = [];
  for await (const line of exportSqlState(where('sqlstate'))) sqlLines.push(line);
  assert.equal((await importSqlState(where('sqlstate2'), () => sqlLines)).records, 2);

  const bucketPlan = await bucket.configure(
    configureContext({ imports: ['stratum:bucket/objects@0.1.0'], manifest: manifestWith({ bucket: ['default'] }) }),
  );
  const objects = (await bucket.prepare(prepareContext(bucketPlan.settings, 'bucketstate'))).imports['stratum:bucket/objects'] as {
    open(label: string): Record<string, (...args: unknown[]) => unknown>;
  };
  t.after(() => bucket.shutdown?.());
  objects.open('default').put?.('a.txt', new TextEncoder().encode('abc'), 'text/plain');
  const bucketLines: string[] = [];
  for await (const line of exportBucketState(where('bucketstate'))) bucketLines.push(line);
  assert.equal((await importBucketState(where('bucketstate2'), () => bucketLines)).records, 2);
});
