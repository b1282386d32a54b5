import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { natsKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/nats.ts';
import { redisKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/redis.ts';
import { sqliteKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/sqlite.ts';
import { keyValueConformance } from '../packages/host/src/capabilities/keyvalue/conformance.ts';
import { captureLogger, type LoggedLine } from './support/capture-logger.ts';
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

for (const kind of ['redis', 'nats'] as const) {
  test(`${kind}: an outage is logged once with its cause, and again when the server answers, however many calls fail between`, async (t) => {
    const url = await requireService(t, kind);
    if (!url) return;
    const target = new URL(url);
    // A TCP proxy to the real server, that can stop listening and cut its connections, then listen again.
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const upstream = connect(Number(target.port || (kind === 'redis' ? 6379 : 4222)), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const port = (proxy.address() as AddressInfo).port;

    const lines: LoggedLine[] = [];
    const proxied = `${kind}://127.0.0.1:${port}${kind === 'redis' ? '/0' : ''}`;
    const backend =
      kind === 'redis'
        ? redisKeyValue({ url: proxied, keyPrefix: 'stratum-test:kv-outage:', logger: captureLogger(lines) })
        : natsKeyValue({ url: proxied, bucketPrefix: 'stratum_test_kv_outage', logger: captureLogger(lines) });
    t.after(async () => {
      await backend.close();
      proxy.close();
      for (const socket of sockets) socket.destroy();
    });
    const store = await backend.open({ capsule: 'outage', label: 'default' });
    await store.set('k', new Uint8Array([1]));

    proxy.close();
    for (const socket of sockets) socket.destroy();
    for (let call = 0; call < 3; call++)
      await assert.rejects(async () => store.get('k'), { message: 'the key-value backend is unavailable' });
    const warned = lines.filter((line) => line.level === 'warn' || line.level === 'error');
    assert.equal(warned.length, 1, JSON.stringify(warned));
    assert.match(
      warned[0]?.message ?? '',
      new RegExp(`^the ${kind} key-value backend at ${kind}://127\\.0\\.0\\.1:${port}(/0)? does not answer`),
    );
    assert.doesNotMatch(JSON.stringify(lines), /maxRetriesPerRequest/);

    await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
    for (const deadline = Date.now() + 60_000; !lines.some((line) => line.message?.endsWith('answers again')); ) {
      assert.ok(Date.now() < deadline, 'no recovery line within a minute');
      await Promise.resolve()
        .then(() => store.get('k'))
        .catch(() => undefined);
      await setTimeout(50);
    }
    const recovered = lines.find((line) => line.message?.endsWith('answers again'));
    assert.equal(recovered?.level, 'info');
    assert.ok(Number(recovered?.fields.failedCalls) >= 3);
    assert.deepEqual(await store.get('k'), new Uint8Array([1]));
  });
}
