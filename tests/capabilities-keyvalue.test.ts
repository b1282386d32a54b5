import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { natsKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/nats.ts';
import { redisKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/redis.ts';
import { sqliteKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/sqlite.ts';
import { keyValueConformance } from '../packages/host/src/capabilities/keyvalue/conformance.ts';
import { requireService } from './support/services.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'stratum-kv-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

keyValueConformance('sqlite', async (_t, limits) => sqliteKeyValue({ dataDir, ...(limits ? { limits } : {}) }));

keyValueConformance('redis', async (t, limits) => {
  const url = await requireService(t, 'redis');
  return url ? redisKeyValue({ url, keyPrefix: 'stratum-test:kv:', ...(limits ? { limits } : {}) }) : undefined;
});

keyValueConformance('nats', async (t, limits) => {
  const url = await requireService(t, 'nats');
  return url ? natsKeyValue({ url, bucketPrefix: 'stratum_test_kv', ...(limits ? { limits } : {}) }) : undefined;
});

test('sqlite: a store written before the row counts existed is counted once, and its quota holds', async () => {
  // A capsule's file as a host before the kv_rows table left it: the kv table alone, 3 keys.
  const dir = mkdtempSync(join(tmpdir(), 'stratum-kv-old-'));
  try {
    mkdirSync(join(dir, 'keyvalue'));
    const old = new DatabaseSync(join(dir, 'keyvalue', 'legacy.sqlite'));
    old.exec(
      'CREATE TABLE kv (label TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, expires_at INTEGER, PRIMARY KEY (label, key)) WITHOUT ROWID',
    );
    for (const key of ['a', 'b', 'c']) old.prepare("INSERT INTO kv VALUES ('default', ?, x'31', NULL)").run(key);
    old.close();
    for (let opening = 0; opening < 2; opening++) {
      const backend = sqliteKeyValue({ dataDir: dir, limits: { maxKeys: 4 } });
      const store = await backend.open({ capsule: 'legacy', label: 'default' });
      if (opening === 0) await store.set('d', new Uint8Array([1]));
      // Four keys, counted once however often the file is opened: a fifth is over the quota.
      await assert.rejects(async () => store.set('e', new Uint8Array([1])), /4 keys/);
      await store.set('a', new Uint8Array([2]));
      await backend.close();
    }
    const backend = sqliteKeyValue({ dataDir: dir, limits: { maxKeys: 4 } });
    const store = await backend.open({ capsule: 'legacy', label: 'default' });
    await store.delete('a');
    await store.set('e', new Uint8Array([1]));
    assert.deepEqual((await store.listKeys()).keys, ['b', 'c', 'd', 'e']);
    await backend.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
