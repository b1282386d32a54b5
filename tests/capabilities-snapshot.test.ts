import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { isStratumError } from '@stratum/core';
import { directoryBucket } from '../packages/host/src/capabilities/bucket/backends/directory.ts';
import { s3Bucket } from '../packages/host/src/capabilities/bucket/backends/s3.ts';
import { exportBucket, importBucket } from '../packages/host/src/capabilities/bucket/snapshot.ts';
import type { BucketBackend } from '../packages/host/src/capabilities/bucket/types.ts';
import { natsKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/nats.ts';
import { redisKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/redis.ts';
import { sqliteKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/sqlite.ts';
import { uniqueCapsule } from '../packages/host/src/capabilities/keyvalue/conformance.ts';
import { exportKeyValue, importKeyValue } from '../packages/host/src/capabilities/keyvalue/snapshot.ts';
import type { KeyValueBackend } from '../packages/host/src/capabilities/keyvalue/types.ts';
import { postgresSql } from '../packages/host/src/capabilities/sql/backends/postgres.ts';
import { sqliteSql } from '../packages/host/src/capabilities/sql/backends/sqlite.ts';
import { blob, int, nul, real, txt } from '../packages/host/src/capabilities/sql/conformance.ts';
import { exportSql, importSql } from '../packages/host/src/capabilities/sql/snapshot.ts';
import type { SqlBackend } from '../packages/host/src/capabilities/sql/types.ts';
import { startS3rver, stopS3rver } from './capabilities-s3rver.ts';
import { requireService } from './support/services.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'stratum-snapshot-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
after(stopS3rver);

async function collect(lines: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const line of lines) out.push(line);
  return out;
}

/** Records only: the header's time and the trailer's hash cover it, so compare what is between. */
const records = (lines: string[]) => lines.slice(1, -1);

const keyValueBackends: Record<string, (t: TestContext) => Promise<KeyValueBackend | undefined>> = {
  sqlite: async () => sqliteKeyValue({ dataDir }),
  redis: async (t) => {
    const url = await requireService(t, 'redis');
    return url ? redisKeyValue({ url, keyPrefix: 'stratum-test:kv:' }) : undefined;
  },
  nats: async (t) => {
    const url = await requireService(t, 'nats');
    return url ? natsKeyValue({ url, bucketPrefix: 'stratum_test_kv' }) : undefined;
  },
};

for (const [name, make] of Object.entries(keyValueBackends)) {
  test(`keyvalue snapshot: a store of more keys than one import batch comes back whole (${name})`, async (t) => {
    const backend = await make(t);
    if (!backend) return;
    const source = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
    const target = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
    try {
      // 1,234 keys: two full batches of 500 and a part one, in ascending order.
      const keys = Array.from({ length: 1_234 }, (_, index) => `k${String(index).padStart(4, '0')}`);
      for (let at = 0; at < keys.length; at += 500) {
        await source.setMany(keys.slice(at, at + 500).map((key, index) => [key, new Uint8Array([(at + index) % 256])] as const));
      }
      const exported = await collect(exportKeyValue(source, 'default'));
      assert.deepEqual(await importKeyValue(target, () => exported), { records: 1_234, skipped: 0 });
      assert.deepEqual(records(await collect(exportKeyValue(target, 'default'))), records(exported));
      assert.deepEqual(await target.usage(), { keys: 1_234, bytes: 1_234 * 6 });
    } finally {
      await source.drop();
      await target.drop();
      await backend.close();
    }
  });
}

for (const [fromName, makeFrom] of Object.entries(keyValueBackends)) {
  for (const [toName, makeTo] of Object.entries(keyValueBackends)) {
    test(`keyvalue snapshot: ${fromName} -> ${toName} gives identical data`, async (t) => {
      const from = await makeFrom(t);
      const to = from && (await makeTo(t));
      if (!from || !to) return;
      const source = await from.open({ capsule: uniqueCapsule(), label: 'default' });
      const target = await to.open({ capsule: uniqueCapsule(), label: 'default' });
      t.after(async () => {
        await source.drop();
        await target.drop();
        await from.close();
        await to.close();
      });
      await source.set('plain', new TextEncoder().encode('value'));
      await source.set('binary', new Uint8Array([0, 1, 2, 255]));
      await source.set('a.b/ü 🙂', new Uint8Array());
      await source.set('counter', new TextEncoder().encode('41'));
      await source.restore([{ key: 'timed', value: new Uint8Array([7]), expiresAt: Date.now() + 3_600_000 }]);
      await target.set('stale', new Uint8Array([1]));

      const exported = await collect(exportKeyValue(source, 'default'));
      assert.deepEqual(await importKeyValue(target, () => exported), { records: 5, skipped: 0 });
      const reexported = await collect(exportKeyValue(target, 'default'));
      // Expiries travel as absolute times; backends that keep a TTL (Redis) may round by a few ms.
      const normalise = (lines: string[]) =>
        records(lines).map((line) => {
          const record = JSON.parse(line) as { expiresAt?: number };
          if (record.expiresAt !== undefined) record.expiresAt = Math.round(record.expiresAt / 60_000);
          return record;
        });
      assert.deepEqual(normalise(reexported), normalise(exported));
      assert.equal(await target.get('stale'), undefined, 'import replaces what was there');
      assert.equal(await target.increment('counter', 1n), 42n);
    });
  }
}

test('keyvalue snapshot: a changed, cut or foreign snapshot is refused', async (t) => {
  const backend = sqliteKeyValue({ dataDir });
  t.after(() => backend.close());
  const store = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  await store.set('k', new Uint8Array([1]));
  const lines = await collect(exportKeyValue(store, 'default'));
  const tampered = lines.map((line) => line.replace('"AQ=="', '"Ag=="'));
  await assert.rejects(
    importKeyValue(store, () => tampered),
    /checksum does not match/,
  );
  await assert.rejects(
    importKeyValue(store, () => lines.slice(0, -1)),
    /trailer is missing/,
  );
  await assert.rejects(
    importKeyValue(store, () => ['{"stratum-snapshot":1,"capability":"sql","label":"x","created":"2026-11-25T14:00:00.000Z"}\n']),
    /not a version 1 key-value snapshot/,
  );
  await assert.rejects(
    importKeyValue(store, () => ['not json\n']),
    /line 1: not JSON/,
  );
  // Split into arbitrary chunks, as a network stream would be.
  const whole = lines.join('');
  const chunks = [whole.slice(0, 7), whole.slice(7, 50), whole.slice(50)].map((part) => new TextEncoder().encode(part));
  assert.deepEqual(await importKeyValue(store, () => chunks), { records: 1, skipped: 0 });
});

const sqlBackends: Record<string, (t: TestContext) => Promise<SqlBackend | undefined>> = {
  sqlite: async () => sqliteSql({ dataDir }),
  postgres: async (t) => {
    const url = await requireService(t, 'postgres');
    return url ? postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 2 }) : undefined;
  },
};

for (const [fromName, makeFrom] of Object.entries(sqlBackends)) {
  for (const [toName, makeTo] of Object.entries(sqlBackends)) {
    test(`sql snapshot: ${fromName} -> ${toName} gives identical data`, async (t) => {
      const from = await makeFrom(t);
      const to = from && (await makeTo(t));
      if (!from || !to) return;
      const source = await from.open({ capsule: uniqueCapsule(), label: 'default' });
      const target = await to.open({ capsule: uniqueCapsule(), label: 'default' });
      t.after(async () => {
        await source.drop();
        await target.drop();
        await from.close();
        await to.close();
      });
      await source.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE, score REAL, body BLOB, n INTEGER)', []);
      await source.execute('CREATE INDEX notes_n ON notes (n)', []);
      await source.execute('CREATE TABLE tags (note INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (note, tag))', []);
      await source.execute('INSERT INTO notes (title, score, body, n) VALUES (?, ?, ?, ?)', [
        txt('first ✓'),
        real(0.25),
        blob(new Uint8Array([0, 9, 255])),
        int(-9007199254740993n),
      ]);
      await source.execute('INSERT INTO notes (title, score, body, n) VALUES (?, ?, ?, ?)', [txt('second'), nul, nul, int(7)]);
      await source.execute('INSERT INTO tags (note, tag) VALUES (?, ?)', [int(1), txt('a')]);
      await target.execute('CREATE TABLE stale (x INTEGER)', []);

      const exported = await collect(exportSql(source, 'default'));
      assert.deepEqual(await importSql(target, () => exported), { records: 6, skipped: 0 });
      const query = 'SELECT id, title, score, body, n FROM notes ORDER BY id';
      assert.deepEqual(await target.query(query, []), await source.query(query, []));
      assert.deepEqual(await target.query('SELECT note, tag FROM tags', []), { columns: ['note', 'tag'], rows: [[int(1), txt('a')]] });
      // Keys continue after the imported ones, and the constraints came along.
      assert.deepEqual((await target.execute('INSERT INTO notes (title) VALUES (?)', [txt('third')])).lastInsertId, 3n);
      await assert.rejects(async () => target.execute('INSERT INTO notes (title) VALUES (?)', [txt('second')]), /UNIQUE|unique|duplicate/);
      await assert.rejects(async () => target.query('SELECT * FROM stale', []), /stale/);
      const reexported = await collect(exportSql(target, 'default'));
      const rowsOf = (lines: string[]) => records(lines).filter((line) => line.startsWith('{"row"'));
      assert.deepEqual(rowsOf(reexported).slice(0, 2), rowsOf(exported).slice(0, 2));
    });
  }
}

test('sql snapshot: a move through PostgreSQL keeps foreign keys with their actions and AUTOINCREMENT, and leaves CHECK constraints behind', async (t) => {
  const sqlite = await sqlBackends.sqlite?.(t);
  const pg = sqlite && (await sqlBackends.postgres?.(t));
  if (!sqlite || !pg) return;
  const source = await sqlite.open({ capsule: uniqueCapsule(), label: 'default' });
  const middle = await pg.open({ capsule: uniqueCapsule(), label: 'default' });
  const target = await sqlite.open({ capsule: uniqueCapsule(), label: 'default' });
  t.after(async () => {
    for (const db of [source, middle, target]) await db.drop();
    await sqlite.close();
    await pg.close();
  });
  await source.execute(
    'CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, score INTEGER CHECK (score >= 0))',
    [],
  );
  await source.execute(
    'CREATE TABLE tags (id INTEGER PRIMARY KEY, note INTEGER NOT NULL REFERENCES notes (id) ON DELETE CASCADE, tag TEXT)',
    [],
  );
  for (const title of ['a', 'b', 'c']) await source.execute('INSERT INTO notes (title, score) VALUES (?, 1)', [txt(title)]);
  await source.execute('INSERT INTO tags (note, tag) VALUES (1, ?), (3, ?)', [txt('x'), txt('y')]);

  await importSql(middle, await collect(exportSql(source, 'default')).then((lines) => () => lines));
  await importSql(target, await collect(exportSql(middle, 'default')).then((lines) => () => lines));

  await target.execute('DELETE FROM notes WHERE id = 1', []);
  assert.deepEqual((await target.query('SELECT note FROM tags ORDER BY id', [])).rows, [[int(3)]], 'ON DELETE CASCADE came along');
  await assert.rejects(async () => target.execute('INSERT INTO tags (note, tag) VALUES (99, ?)', [txt('z')]), /FOREIGN KEY/);
  await target.execute('DELETE FROM notes WHERE id = 3', []);
  assert.equal((await target.execute("INSERT INTO notes (title) VALUES ('d')", [])).lastInsertId, 4n, 'a deleted key is not given again');
  // PostgreSQL writes a CHECK in its own dialect ('score >= 0' comes back as '(score >= 0)', but
  // 'title <> ''''' as "title <> ''::text"), which SQLite refuses: spec/snapshot.md section 4.
  assert.equal((await target.execute("INSERT INTO notes (title, score) VALUES ('e', -1)", [])).rowsAffected, 1n);
});

/** A snapshot of these records, with the header and a trailer that verifies: what only the store can refuse. */
function sqlSnapshot(records: unknown[]): string[] {
  const lines = [{ 'stratum-snapshot': 1, capability: 'sql', label: 'default', created: '2026-11-25T14:00:00.000Z' }, ...records].map(
    (record) => `${JSON.stringify(record)}\n`,
  );
  const sha256 = createHash('sha256').update(lines.join('')).digest('hex');
  return [...lines, `${JSON.stringify({ end: { records: records.length, sha256 } })}\n`];
}

const manyRows = Array.from({ length: 1_200 }, (_, i) => ({ row: [{ integer: String(i + 1) }, { text: `n${i}` }, { integer: '1' }] }));
const refusedBy: Record<string, Record<string, unknown[]>> = {
  sqlite: {
    'a NULL in a NOT NULL column': [{ row: [{ integer: '5000' }, null, null] }],
  },
  postgres: {
    'a NULL in a NOT NULL column': [{ row: [{ integer: '5000' }, null, null] }],
    'U+0000 in text': [{ row: [{ integer: '5000' }, { text: 'a\u0000b' }, null] }],
    'text in a NUMERIC column': [{ row: [{ integer: '5000' }, { text: 'x' }, { text: '12abc' }] }],
  },
};

for (const [name, make] of Object.entries(sqlBackends)) {
  for (const [what, bad] of Object.entries(refusedBy[name] ?? {})) {
    test(`sql snapshot: ${name} refusing ${what} after a thousand rows leaves the database as it was, and says the snapshot is intact`, async (t) => {
      const backend = await make(t);
      if (!backend) return;
      const db = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
      t.after(async () => {
        await db.drop();
        await backend.close();
      });
      await db.execute('CREATE TABLE kept (x TEXT)', []);
      await db.execute("INSERT INTO kept (x) VALUES ('before')", []);
      const snapshot = sqlSnapshot([
        {
          table: {
            name: 'notes',
            sql: 'CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, amount NUMERIC)',
            columns: ['id', 'title', 'amount'],
          },
        },
        ...manyRows,
        ...bad,
      ]);
      await assert.rejects(
        importSql(db, () => snapshot),
        (error: unknown) => {
          assert.ok(isStratumError(error), String(error));
          assert.equal(error.code, 'SNAPSHOT_INVALID');
          assert.match(error.message, /^sql snapshot line \d+: the store refused it/);
          assert.match(error.hint ?? '', /^The snapshot is intact/);
          return true;
        },
      );
      assert.deepEqual((await db.query('SELECT x FROM kept', [])).rows, [[txt('before')]]);
      await assert.rejects(async () => db.query('SELECT count(*) AS c FROM notes', []), /notes/);
    });
  }
}

test('sql snapshot: a row may refer to one after it (SQLite checks foreign keys at the end of the import); one that refers to none is refused whole', async (t) => {
  const backend = await sqlBackends.sqlite?.(t);
  if (!backend) return;
  const db = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  t.after(async () => {
    await db.drop();
    await backend.close();
  });
  const tree = {
    table: {
      name: 'tree',
      sql: 'CREATE TABLE tree (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES tree (id))',
      columns: ['id', 'parent'],
    },
  };
  const rows = [{ row: [{ integer: '1' }, { integer: '2' }] }, { row: [{ integer: '2' }, null] }];
  assert.equal((await importSql(db, () => sqlSnapshot([tree, ...rows]))).records, 3);
  assert.deepEqual((await db.query('SELECT id, parent FROM tree ORDER BY id', [])).rows, [
    [int(1), int(2)],
    [int(2), nul],
  ]);
  const dangling = sqlSnapshot([tree, { row: [{ integer: '1' }, { integer: '9' }] }]);
  await assert.rejects(
    importSql(db, () => dangling),
    /line 4: the store refused it: FOREIGN KEY constraint failed/,
  );
  assert.deepEqual((await db.query('SELECT count(*) AS c FROM tree', [])).rows, [[int(2)]]);
});

const bucketBackends: Record<string, () => Promise<BucketBackend>> = {
  directory: async () => directoryBucket({ root: join(dataDir, 'buckets') }),
  s3: async () => s3Bucket((await startS3rver()).options),
};

for (const [fromName, makeFrom] of Object.entries(bucketBackends)) {
  for (const [toName, makeTo] of Object.entries(bucketBackends)) {
    test(`bucket snapshot: ${fromName} -> ${toName} gives identical data`, async (t) => {
      const from = await makeFrom();
      const to = await makeTo();
      const source = await from.open({ capsule: uniqueCapsule(), label: 'default' });
      const target = await to.open({ capsule: uniqueCapsule(), label: 'default' });
      t.after(async () => {
        await source.drop();
        await target.drop();
        await from.close();
        await to.close();
      });
      const large = new Uint8Array(700_000).map((_, i) => (i * 7) % 251);
      await source.put('photos/cat.jpg', new TextEncoder().encode('meow'), 'image/jpeg');
      await source.put('empty', new Uint8Array());
      const upload = await source.startUpload('large.bin');
      for (let offset = 0; offset < large.length; offset += 100_000) await upload.write(large.subarray(offset, offset + 100_000));
      await upload.finish();
      await target.put('stale', new Uint8Array([1]));

      const exported = await collect(exportBucket(source, 'default'));
      assert.equal((await importBucket(target, () => exported)).skipped, 0);
      const describe = async (bucket: typeof source) =>
        (await bucket.list()).objects.map((info) => ({ name: info.name, size: info.size, contentType: info.contentType }));
      assert.deepEqual(await describe(target), await describe(source));
      const copied = [];
      for await (const chunk of target.stream('large.bin')) copied.push(chunk);
      assert.deepEqual(new Uint8Array(Buffer.concat(copied)), large);
      assert.deepEqual((await target.get('photos/cat.jpg'))?.data, new TextEncoder().encode('meow'));
      assert.equal(await target.head('stale'), undefined);
    });
  }
}
