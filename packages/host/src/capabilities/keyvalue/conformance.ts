import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type KeyValueBackend, KeyValueError, type KeyValueLimits, type KeyValueStore } from './types.ts';

/**
 * The key-value conformance suite: every backend runs exactly these tests (Hono's
 * `runTest({ newRouter })` pattern). `makeBackend` returns a new backend instance (its own
 * connections) over the same data as every other instance it returns, or undefined when the
 * backend's service is not available (after calling `t.skip` with the reason).
 *
 * @example
 * keyValueConformance('sqlite', async (t, limits) => sqliteKeyValue({ dataDir, limits }));
 */
export type MakeKeyValueBackend = (t: TestContext, limits?: Partial<KeyValueLimits>) => Promise<KeyValueBackend | undefined>;

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) => (value === undefined ? undefined : new TextDecoder().decode(value));

/** A capsule name no other test (or earlier run against a shared service) uses. */
export function uniqueCapsule(): string {
  return `t${randomBytes(6).toString('hex')}`;
}

async function rejectsWith(work: () => unknown, kind: KeyValueError['kind'], pattern?: RegExp): Promise<void> {
  await assert.rejects(
    async () => work(),
    (error: unknown) => {
      assert.ok(error instanceof KeyValueError, `expected a KeyValueError, got ${String(error)}`);
      assert.equal(error.kind, kind, error.message);
      if (pattern) assert.match(error.message, pattern);
      return true;
    },
  );
}

export function keyValueConformance(name: string, makeBackend: MakeKeyValueBackend): void {
  async function open(t: TestContext, limits?: Partial<KeyValueLimits>, capsule = uniqueCapsule(), label = 'default') {
    const backend = await makeBackend(t, limits);
    if (!backend) return undefined;
    const store = await backend.open({ capsule, label });
    t.after(async () => {
      await store.drop();
      await backend.close();
    });
    return { backend, store, capsule };
  }

  test(`${name}: set, get, exists, delete round-trip binary values`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { store } = opened;
    assert.equal(await store.get('missing'), undefined);
    assert.equal(await store.exists('missing'), false);
    const binary = new Uint8Array([0, 255, 1, 254, 0]);
    await store.set('binary', binary);
    assert.deepEqual(await store.get('binary'), binary);
    await store.set('empty', new Uint8Array());
    assert.deepEqual(await store.get('empty'), new Uint8Array());
    assert.equal(await store.exists('empty'), true);
    await store.set('binary', bytes('replaced'));
    assert.equal(text(await store.get('binary')), 'replaced');
    await store.delete('binary');
    await store.delete('binary');
    assert.equal(await store.get('binary'), undefined);
    assert.equal(await store.exists('binary'), false);
  });

  test(`${name}: keys with any characters keep their identity`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const keys = ['a.b', '..', '*', '>', 'with space', '=3D', 'ü/ß', 'emoji 🙂', '$KV', 'a/b/c', '-', '_'];
    for (const [i, key] of keys.entries()) await opened.store.set(key, bytes(String(i)));
    for (const [i, key] of keys.entries()) assert.equal(text(await opened.store.get(key)), String(i), key);
    const listed = (await opened.store.listKeys()).keys;
    assert.deepEqual([...listed].sort(), [...keys].sort());
  });

  test(`${name}: list-keys pages in byte order`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const keys = ['b', 'a', 'Z', 'é', 'aa', 'a0', '~'];
    for (const key of keys) await opened.store.set(key, bytes(key));
    const byteOrder = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await opened.store.listKeys(cursor, 3);
      assert.ok(page.keys.length <= 3);
      seen.push(...page.keys);
      cursor = page.cursor;
      pages++;
    } while (cursor !== undefined);
    assert.deepEqual(seen, byteOrder);
    assert.equal(pages, 3);
    assert.deepEqual(await opened.store.listKeys(undefined, 100), { keys: byteOrder });
  });

  test(`${name}: TTL expires keys, and set without a TTL clears one`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { store } = opened;
    await store.set('short', bytes('x'), 300);
    await store.set('kept', bytes('x'), 300);
    await store.set('kept', bytes('y'));
    await store.set('long', bytes('z'), 600_000);
    assert.equal(text(await store.get('short')), 'x');
    await sleep(400);
    assert.equal(await store.get('short'), undefined);
    assert.equal(await store.exists('short'), false);
    assert.equal(text(await store.get('kept')), 'y');
    assert.deepEqual((await store.listKeys()).keys, ['kept', 'long']);
    const exported = [];
    for await (const entry of store.entries()) exported.push(entry);
    assert.equal(exported.find((entry) => entry.key === 'kept')?.expiresAt, undefined);
    const long = exported.find((entry) => entry.key === 'long');
    assert.ok(long?.expiresAt !== undefined && long.expiresAt > Date.now() + 500_000, 'the long TTL is exported as an absolute expiry');
    await rejectsWith(() => store.set('bad', bytes('x'), 0), 'other', /TTL/);
  });

  test(`${name}: increment counts from zero, keeps a TTL, refuses non-integers and overflow`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { store } = opened;
    assert.equal(await store.increment('n', 5n), 5n);
    assert.equal(await store.increment('n', -7n), -2n);
    assert.equal(text(await store.get('n')), '-2');
    await store.set('big', bytes('9223372036854775806'));
    assert.equal(await store.increment('big', 1n), 9223372036854775807n);
    await rejectsWith(() => store.increment('big', 1n), 'other', /overflow/);
    assert.equal(text(await store.get('big')), '9223372036854775807');
    await store.set('word', bytes('ten'));
    await rejectsWith(() => store.increment('word', 1n), 'other', /not an integer/);
    assert.equal(text(await store.get('word')), 'ten');
    await store.set('ttl', bytes('1'), 300);
    assert.equal(await store.increment('ttl', 1n), 2n);
    await sleep(400);
    assert.equal(await store.get('ttl'), undefined, 'increment kept the TTL');
  });

  test(`${name}: compare-and-swap`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { store } = opened;
    assert.equal(await store.compareAndSwap('k', undefined, bytes('one')), true);
    assert.equal(await store.compareAndSwap('k', undefined, bytes('two')), false);
    assert.equal(await store.compareAndSwap('k', bytes('wrong'), bytes('two')), false);
    assert.equal(text(await store.get('k')), 'one');
    assert.equal(await store.compareAndSwap('k', bytes('one'), bytes('two')), true);
    assert.equal(text(await store.get('k')), 'two');
    assert.equal(await store.compareAndSwap('missing', bytes(''), bytes('x')), false, 'an empty value is not the same as no value');
    assert.equal(await store.exists('missing'), false);
  });

  test(`${name}: batch get, set and delete`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { store } = opened;
    await store.setMany([
      ['a', bytes('1')],
      ['b', bytes('2')],
      ['c', bytes('3')],
    ]);
    assert.deepEqual((await store.getMany(['c', 'x', 'a'])).map(text), ['3', undefined, '1']);
    await store.deleteMany(['a', 'c', 'x']);
    assert.deepEqual((await store.getMany(['a', 'b', 'c'])).map(text), [undefined, '2', undefined]);
    assert.deepEqual(await store.getMany([]), []);
    await rejectsWith(() => store.getMany(Array.from({ length: 1001 }, (_, i) => `k${i}`)), 'limit-exceeded');
  });

  test(`${name}: key and value size limits return the quota error`, async (t) => {
    const opened = await open(t, { maxValueBytes: 64 });
    if (!opened) return;
    const { store } = opened;
    await store.set('k'.repeat(1024), bytes('fits'));
    await rejectsWith(() => store.set('k'.repeat(1025), bytes('x')), 'limit-exceeded', /1025 bytes/);
    await rejectsWith(() => store.set('é'.repeat(513), bytes('x')), 'limit-exceeded', /1026 bytes/);
    await rejectsWith(() => store.get('k'.repeat(1025)), 'limit-exceeded');
    await store.set('v', new Uint8Array(64));
    await rejectsWith(() => store.set('v', new Uint8Array(65)), 'limit-exceeded', /65 bytes/);
    await rejectsWith(() => store.compareAndSwap('v', new Uint8Array(64), new Uint8Array(65)), 'limit-exceeded');
    await rejectsWith(
      () =>
        store.setMany([
          ['ok', bytes('x')],
          ['big', new Uint8Array(65)],
        ]),
      'limit-exceeded',
    );
    assert.equal(await store.exists('ok'), false, 'a batch with an oversized value writes nothing');
    assert.equal((await store.get('v'))?.byteLength, 64);
    await rejectsWith(() => store.get(''), 'other', /empty/);
  });

  test(`${name}: the key quota refuses new keys but allows updates, and frees up on delete or expiry`, async (t) => {
    const opened = await open(t, { maxKeys: 3 });
    if (!opened) return;
    const { store } = opened;
    await store.set('a', bytes('1'));
    await store.set('b', bytes('1'));
    await store.set('c', bytes('1'), 300);
    await rejectsWith(() => store.set('d', bytes('1')), 'limit-exceeded', /3 keys/);
    await rejectsWith(() => store.increment('d', 1n), 'limit-exceeded');
    await rejectsWith(() => store.compareAndSwap('d', undefined, bytes('1')), 'limit-exceeded');
    await store.set('a', bytes('updated'));
    assert.equal(await store.increment('b', 1n), 2n);
    await store.delete('a');
    await store.set('d', bytes('1'));
    await rejectsWith(() => store.set('e', bytes('1')), 'limit-exceeded');
    await sleep(400);
    await store.set('e', bytes('1'));
    assert.deepEqual((await store.listKeys()).keys, ['b', 'd', 'e']);
    assert.deepEqual(await store.usage(), { keys: 3, bytes: 3 + 1 + 1 + 1 });
  });

  test(`${name}: capsules and labels are isolated from each other`, async (t) => {
    const first = await open(t);
    if (!first) return;
    const other = await first.backend.open({ capsule: uniqueCapsule(), label: 'default' });
    const sameCapsuleOtherLabel = await first.backend.open({ capsule: first.capsule, label: 'other' });
    await first.store.set('secret', bytes('mine'));
    for (const store of [other, sameCapsuleOtherLabel]) {
      assert.equal(await store.get('secret'), undefined);
      assert.equal(await store.exists('secret'), false);
      assert.deepEqual((await store.listKeys()).keys, []);
      assert.equal(await store.compareAndSwap('secret', bytes('mine'), bytes('stolen')), false);
      await store.delete('secret');
      await store.set('secret', bytes('theirs'));
      await store.drop();
    }
    assert.equal(text(await first.store.get('secret')), 'mine');
  });

  test(`${name}: concurrent writers through separate connections lose no update`, async (t) => {
    const first = await open(t);
    if (!first) return;
    const secondBackend = await makeBackend(t);
    if (!secondBackend) return;
    t.after(() => secondBackend.close());
    const second = await secondBackend.open({ capsule: first.capsule, label: 'default' });
    const stores: KeyValueStore[] = [first.store, second];
    const rounds = 20;
    await Promise.all(stores.flatMap((store) => Array.from({ length: rounds }, () => store.increment('hits', 1n))));
    assert.equal(text(await first.store.get('hits')), String(rounds * 2));

    // A counter kept with compare-and-swap retries: only atomic CAS makes the total come out.
    async function casIncrement(store: KeyValueStore): Promise<void> {
      for (;;) {
        const current = await store.get('cas');
        const next = bytes(String(Number(text(current) ?? '0') + 1));
        if (await store.compareAndSwap('cas', current, next)) return;
      }
    }
    await Promise.all(stores.flatMap((store) => Array.from({ length: rounds }, () => casIncrement(store))));
    assert.equal(text(await second.get('cas')), String(rounds * 2));
  });

  test(`${name}: entries, clear and restore carry values and expiries`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { store } = opened;
    await store.set('plain', bytes('p'));
    const expiresAt = Date.now() + 3_600_000;
    await store.restore([
      { key: 'timed', value: bytes('t'), expiresAt },
      { key: 'gone', value: bytes('g'), expiresAt: Date.now() - 1 },
    ]);
    const entries = [];
    for await (const entry of store.entries()) entries.push(entry);
    assert.deepEqual(
      entries.map((entry) => entry.key),
      ['plain', 'timed'],
    );
    const timed = entries[1];
    assert.ok(timed?.expiresAt !== undefined && Math.abs(timed.expiresAt - expiresAt) < 5_000);
    await store.clear();
    assert.deepEqual((await store.listKeys()).keys, []);
    assert.deepEqual(await store.usage(), { keys: 0, bytes: 0 });
    await store.set('again', bytes('x'));
    await store.drop();
    const reopened = await opened.backend.open({ capsule: opened.capsule, label: 'default' });
    assert.deepEqual((await reopened.listKeys()).keys, [], 'a dropped store comes back empty');
  });
}
