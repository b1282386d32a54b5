import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { natsKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/nats.ts';
import { redisKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/redis.ts';
import { sqliteKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/sqlite.ts';
import { uniqueCapsule } from '../packages/host/src/capabilities/keyvalue/conformance.ts';
import { exportKeyValue, importKeyValue } from '../packages/host/src/capabilities/keyvalue/snapshot.ts';
import type { KeyValueBackend } from '../packages/host/src/capabilities/keyvalue/types.ts';
import { requireService } from './support/services.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'stratum-snapshot-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

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

for (const [fromName, makeFrom] of Object.entries(keyValueBackends)) {
  for (const [toName, makeTo] of Object.entries(keyValueBackends)) {
    test(`keyvalue snapshot: ${fromName} -> ${toName} gives identical data`, async (t) => {
      const from = await makeFrom(t);
      const to = from && (await makeTo(t));
      if (!from || !to) return;
      const source = await from.open({ capsule: uniqueCapsule(), label: 'default' });
      const target = await to.open({ capsule: uniqueCapsule(), label: 'default' });
      t.after(async () => {
        await source.clear();
        await target.clear();
        await from.close();
        await to.close();
      });
      await source.set('plain', new TextEncoder().encode('value'));
      await source.set('binary', new Uint8Array([0, 1, 2, 255]));
      await source.set('a.b/ü 🙂', new Uint8Array());
      await source.set('counter', new TextEncoder().encode('41'));
      await source.restore({ key: 'timed', value: new Uint8Array([7]), expiresAt: Date.now() + 3_600_000 });
      await target.set('stale', new Uint8Array([1]));

      const exported = await collect(exportKeyValue(source, 'default'));
      assert.deepEqual(await importKeyValue(target, exported), { label: 'default', records: 5 });
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
  await assert.rejects(importKeyValue(store, tampered), /checksum does not match/);
  await assert.rejects(importKeyValue(store, lines.slice(0, -1)), /trailer is missing/);
  await assert.rejects(
    importKeyValue(store, ['{"stratum-snapshot":1,"capability":"sql","label":"x"}\n']),
    /not a version 1 key-value snapshot/,
  );
  await assert.rejects(importKeyValue(store, ['not json\n']), /line 1: not JSON/);
  // Split into arbitrary chunks, as a network stream would be.
  const whole = lines.join('');
  const chunks = [whole.slice(0, 7), whole.slice(7, 50), whole.slice(50)].map((part) => new TextEncoder().encode(part));
  assert.deepEqual(await importKeyValue(store, chunks), { label: 'default', records: 1 });
});
