/**
 * Importing state snapshots through the control API (`PUT .../state/{capability}/{label}`), as a
 * client written from spec/snapshot.md sends them: every way a snapshot breaks the format is
 * refused as 400 SNAPSHOT_INVALID naming its line, before the store changes, and the answer
 * names the target and says how many records were read and how many skipped.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import { parseHostConfig } from '../packages/host/src/config/parse.ts';
import { ControlApiError, createControlClient } from '../packages/host/src/control/client.ts';
import { type RuntimeFactory, startHost } from '../packages/host/src/control/host.ts';
import { testHostToml } from './support/host-dir.ts';
import { installingRuntime } from './support/installing-runtime.ts';
import { testDir } from './support/temp.ts';

const MANIFEST = `stratum = 1
[capsule]
name = "store"
version = "1.0.0"
[source]
wasm = "store.wasm"
[capabilities]
keyvalue = ["default"]
sql = ["default"]
bucket = ["default"]
`;

async function setup(t: TestContext) {
  const { dir: base, closing } = await testDir(t, 'stratum-snapshot-import-');
  const registrar = await generateEd25519KeyPair();
  await writeKeyFile(join(base, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const config = parseHostConfig(testHostToml({ registrar: registrar.publicJwk.x, operator: true }), join(base, 'host.toml'));
  const createRuntime: RuntimeFactory = () => installingRuntime();
  const host = closing(await startHost(config, { createRuntime, pullComponent: false }));
  const client = createControlClient({ url: host.controlUrl, key: registrar.privateJwk, audience: 'host1.example.net' });
  await client.install({
    name: 'store',
    domains: ['store.example'],
    manifest: MANIFEST,
    component: new TextEncoder().encode('not a component'),
    start: false,
  });
  const exported = async (capability: string) => new Response(await client.exportState('store', capability, 'default')).text();
  return { client, exported, dataDir: config.dataDir };
}

const CREATED = '2026-11-25T14:00:00.000Z';
const header = (capability: string, extra: Record<string, unknown> = {}) =>
  `${JSON.stringify({ 'stratum-snapshot': 1, capability, label: 'default', created: CREATED, ...extra })}\n`;

/** Header, records and a trailer that counts and hashes them: a snapshot whose only faults are the ones a test puts in. */
function sealed(head: string, records: unknown[]): string {
  const body = head + records.map((record) => `${typeof record === 'string' ? record : JSON.stringify(record)}\n`).join('');
  return `${body}${JSON.stringify({ end: { records: records.length, sha256: createHash('sha256').update(body).digest('hex') } })}\n`;
}

const kv = (key: string, text: string, extra: Record<string, unknown> = {}) => ({
  key,
  value: Buffer.from(text).toString('base64'),
  ...extra,
});

/** The import is refused as SNAPSHOT_INVALID with `message` (naming the line), and the store kept what it held. */
async function refused(
  setupResult: Awaited<ReturnType<typeof setup>>,
  capability: string,
  snapshot: string,
  message: RegExp,
): Promise<void> {
  const before = await setupResult.exported(capability);
  await assert.rejects(setupResult.client.importState('store', capability, 'default', snapshot), (error: unknown) => {
    assert.ok(error instanceof ControlApiError, String(error));
    assert.equal(error.status, 400);
    assert.equal(error.code, 'SNAPSHOT_INVALID');
    assert.match(error.message, message);
    return true;
  });
  const after = await setupResult.exported(capability);
  const withoutCreated = (text: string) => text.split('\n').slice(1, -2);
  assert.deepEqual(withoutCreated(after), withoutCreated(before), 'a refused snapshot changed the store');
}

test('an export of a store the host cannot open answers an error, not a stream cut off before its first line', async (t) => {
  const { client, dataDir } = await setup(t);
  // Where the embedded SQL backend keeps the capsule's database, taken by a directory.
  await mkdir(join(dataDir, 'runtime', 'capsules', 'store', 'sql', 'sql', 'store', 'default.sqlite'), { recursive: true });
  const error = await client.exportState('store', 'sql', 'default').then(
    () => assert.fail('the export answered 200'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof ControlApiError, String(error));
  assert.equal(error.status, 500);
});

test('a keyvalue import answers the target label, the records read and the expired keys skipped', async (t) => {
  const host = await setup(t);
  const snapshot = sealed(header('keyvalue', { label: 'elsewhere' }), [
    kv('a', 'one'),
    kv('b', 'two', { expiresAt: Date.now() + 3_600_000 }),
    kv('c', 'gone', { expiresAt: Date.now() - 1000 }),
    kv('d', 'four'),
  ]);
  assert.deepEqual(await host.client.importState('store', 'keyvalue', 'default', snapshot), {
    capability: 'keyvalue',
    label: 'default',
    records: 4,
    skipped: 1,
  });
  const keys = (await host.exported('keyvalue'))
    .split('\n')
    .filter((line) => line.startsWith('{"key"'))
    .map((line) => (JSON.parse(line) as { key: string }).key);
  assert.deepEqual(keys, ['a', 'b', 'd']);
});

test('a keyvalue snapshot that breaks spec/snapshot.md is refused naming its line, and the store keeps its content', async (t) => {
  const host = await setup(t);
  const good = sealed(header('keyvalue'), [kv('k1', 'kept'), kv('k2', 'kept too')]);
  await host.client.importState('store', 'keyvalue', 'default', good);
  const head = header('keyvalue');
  const cases: [string, string, RegExp][] = [
    ['a record after the trailer', `${sealed(head, [])}${JSON.stringify(kv('lost', 'x'))}\n`, /line 3: after the trailer/],
    ['a blank line after the trailer', `${sealed(head, [kv('a', 'x')])}\n`, /line 4: after the trailer/],
    ['a blank line among the records', sealed(head, [kv('a', 'x'), '', kv('b', 'y')]), /line 3: a blank line/],
    ['a record with a member the spec does not name', sealed(head, [kv('a', 'x', { foo: 1 })]), /line 2: a record has a member "foo"/],
    ['a header with a member the spec does not name', sealed(header('keyvalue', { foo: 1 }), []), /line 1: the header has a member "foo"/],
    [
      'a header without "created"',
      sealed(`${JSON.stringify({ 'stratum-snapshot': 1, capability: 'keyvalue', label: 'default' })}\n`, []),
      /line 1: the header has no "created"/,
    ],
    ['a header whose "created" is no date-time', sealed(header('keyvalue', { created: 'yesterday' }), []), /line 1: .*RFC 3339/],
    ['a byte-order mark', `\uFEFF${sealed(head, [kv('a', 'x')])}`, /line 1: begins with a byte-order mark/],
    ['no final line feed', sealed(head, [kv('a', 'x')]).slice(0, -1), /line 3: does not end in a line feed/],
    ['CR LF line ends', sealed(head, [kv('a', 'x')]).replaceAll('\n', '\r\n'), /line 1: ends in CR LF/],
    ['space after the object', sealed(head, [`${JSON.stringify(kv('a', 'x'))} `]), /line 2: whitespace around the object/],
    ['a key twice', sealed(head, [kv('a', 'first'), kv('a', 'second')]), /line 3: key "a" again \(line 2\)/],
    [
      'keys out of order',
      sealed(head, [kv('b', 'x'), kv('a', 'y')]),
      /line 3: key "a" after "b" \(line 2\): keys are in ascending byte order/,
    ],
    // "é" (C3 A9) sorts after "z" (7A) by bytes, though not by UTF-16 code units in every case.
    ['keys out of byte order', sealed(head, [kv('é', 'x'), kv('z', 'y')]), /line 3: key "z" after "é"/],
    ['unpadded base64', sealed(head, [{ key: 'a', value: 'NDI' }]), /line 2: "value" is not padded base64/],
    ['base64 with a character outside it', sealed(head, [{ key: 'a', value: 'N!I=' }]), /line 2: "value" is not padded base64/],
    [
      'the trailer with a member the spec does not name',
      sealed(head, []).replace('}}\n', '},"x":1}\n'),
      /line 2: the trailer has a member "x"/,
    ],
    ['a snapshot of another capability', sealed(header('sql'), []), /line 1: a "sql" snapshot, not a version 1 key-value snapshot/],
  ];
  for (const [what, snapshot, message] of cases) {
    await t.test(what, () => refused(host, 'keyvalue', snapshot, message));
  }
  const invalidUtf8 = Buffer.concat([Buffer.from(head), Buffer.from([0x7b, 0xff, 0x7d, 0x0a])]);
  await assert.rejects(host.client.importState('store', 'keyvalue', 'default', new Uint8Array(invalidUtf8)), /line 2: not UTF-8/);
  // Still what the good snapshot put there.
  assert.equal((await host.exported('keyvalue')).split('\n').filter((line) => line.startsWith('{"key"')).length, 2);
});

test('a SQL snapshot that breaks spec/snapshot.md is refused naming its line, before any table is made', async (t) => {
  const host = await setup(t);
  const head = header('sql');
  const table = { table: { name: 'notes', sql: 'CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT)', columns: ['id', 'title'] } };
  const row = (id: number, title: string) => ({ row: [{ integer: String(id) }, { text: title }] });
  assert.deepEqual(await host.client.importState('store', 'sql', 'default', sealed(head, [table, row(1, 'kept')])), {
    capability: 'sql',
    label: 'default',
    records: 2,
    skipped: 0,
  });
  const cases: [string, string, RegExp][] = [
    ['a record after the trailer', `${sealed(head, [table])}${JSON.stringify(row(2, 'lost'))}\n`, /line 4: after the trailer/],
    [
      'a table with a member the spec does not name',
      sealed(head, [{ table: { ...table.table, strict: true } }]),
      /line 2: a table has a member "strict"/,
    ],
    ['a record of two kinds', sealed(head, [{ ...table, ...row(1, 'x') }]), /line 2: not a record/],
    ['a value with two forms', sealed(head, [table, { row: [{ integer: '1', text: 'x' }, null] }]), /line 3: not a value/],
    [
      'an integer past 64 bits',
      sealed(head, [table, { row: [{ integer: '9223372036854775808' }, null] }]),
      /line 3: an integer outside 64 bits/,
    ],
    [
      'unpadded base64 in a blob',
      sealed(head, [table, { row: [{ integer: '1' }, { blob: 'NDI' }] }]),
      /line 3: a blob is not padded base64/,
    ],
    [
      "a row after its table's indexes",
      sealed(head, [table, { index: { sql: 'CREATE INDEX notes_title ON notes (title)' } }, row(1, 'x')]),
      /line 4: a row of table "notes" after its indexes/,
    ],
    ['a table twice', sealed(head, [table, table]), /line 3: table "notes" again/],
  ];
  for (const [what, snapshot, message] of cases) {
    await t.test(what, () => refused(host, 'sql', snapshot, message));
  }
});

test('a bucket snapshot that breaks spec/snapshot.md is refused naming its line, before any object is written', async (t) => {
  const host = await setup(t);
  const head = header('bucket');
  const object = (name: string, text: string) => [
    { object: { name, size: Buffer.byteLength(text) } },
    ...(text ? [{ data: Buffer.from(text).toString('base64') }] : []),
  ];
  assert.deepEqual(await host.client.importState('store', 'bucket', 'default', sealed(head, object('kept', 'yes'))), {
    capability: 'bucket',
    label: 'default',
    records: 2,
    skipped: 0,
  });
  const cases: [string, string, RegExp][] = [
    [
      'a record after the trailer',
      `${sealed(head, object('a', 'x'))}${JSON.stringify(object('b', 'y')[0])}\n`,
      /line 5: after the trailer/,
    ],
    [
      'an object with a member the spec does not name',
      sealed(head, [{ object: { name: 'a', size: 0, mtime: 1 } }]),
      /line 2: an object has a member "mtime"/,
    ],
    ['objects out of order', sealed(head, [...object('b', 'x'), ...object('a', 'y')]), /line 4: object name "a" after "b" \(line 2\)/],
    ['an object twice', sealed(head, [...object('a', 'x'), ...object('a', 'y')]), /line 4: object name "a" again/],
    [
      'more data than the size',
      sealed(head, [{ object: { name: 'a', size: 1 } }, { data: 'eHk=' }]),
      /line 3: more bytes than object "a"'s size, 1/,
    ],
    [
      'less data than the size',
      sealed(head, [{ object: { name: 'a', size: 5 } }, { data: 'eHk=' }, ...object('b', 'z')]),
      /line 2: object "a" has 2 bytes, its record says 5/,
    ],
    ['an empty data record', sealed(head, [{ object: { name: 'a', size: 0 } }, { data: '' }]), /line 3: an empty "data" record/],
    ['unpadded base64', sealed(head, [{ object: { name: 'a', size: 2 } }, { data: 'eHk' }]), /line 3: "data" is not padded base64/],
  ];
  for (const [what, snapshot, message] of cases) {
    await t.test(what, () => refused(host, 'bucket', snapshot, message));
  }
});
