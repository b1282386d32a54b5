/**
 * Deleting a name's data (`DELETE /capsules/{name}?data=delete`, spec/host-api.md section 5.5)
 * over a runtime that only installs: the stores are real, and one bucket label lives outside the
 * capsule's directory (host.toml gives it a location), as a shared directory, S3, Redis or
 * PostgreSQL keep data, so that only emptying that store deletes its data.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import postgres from 'postgres';
import { schemaName } from '../packages/host/src/capabilities/sql/backends/postgres.ts';
import { parseHostConfig } from '../packages/host/src/config/parse.ts';
import { ControlApiError, type ControlClient, createControlClient } from '../packages/host/src/control/client.ts';
import { type RuntimeFactory, startHost } from '../packages/host/src/control/host.ts';
import { testHostToml } from './support/host-dir.ts';
import { installingRuntime } from './support/installing-runtime.ts';
import { requireService } from './support/services.ts';
import { testDir } from './support/temp.ts';

/** The gallery example's manifest, its bucket label given. */
const manifest = (version: string, bucket: string) =>
  `stratum = 1\n[capsule]\nname = "gallery"\nversion = "${version}"\n[source]\nwasm = "gallery.wasm"\n[capabilities]\nbucket = ["${bucket}"]\n`;
const COMPONENT = new TextEncoder().encode('not a component: this runtime only installs');

/**
 * A host trusting two registrars, acme and bravo, whose bucket labels `images` and `pics` are kept
 * in directories of their own outside the data directory.
 */
async function setup(t: TestContext) {
  const { dir, closing } = await testDir(t, 'stratum-data-delete-');
  const [acmeKey, bravoKey] = [await generateEd25519KeyPair(), await generateEd25519KeyPair()];
  await writeKeyFile(join(dir, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const outside = (label: string) => `[bucket.${label}]\ntype = "directory"\nlocation = "file://${join(dir, label)}"\n`;
  const config = parseHostConfig(
    testHostToml({
      registrar: acmeKey.publicJwk.x,
      registrarName: 'acme',
      tables: `[registrars.bravo]\nkey = "${bravoKey.publicJwk.x}"\n${outside('images')}${outside('pics')}`,
    }),
    join(dir, 'host.toml'),
  );
  const createRuntime: RuntimeFactory = () => installingRuntime();
  const host = closing(await startHost(config, { createRuntime, pullComponent: false }));
  const connect = (key: typeof acmeKey) =>
    createControlClient({ url: host.controlUrl, key: key.privateJwk, audience: 'host1.example.net' });
  return { dir, acme: connect(acmeKey), bravo: connect(bravoKey) };
}

const install = (client: ControlClient, version: string, bucket: string) =>
  client.install({
    name: 'gallery',
    domains: ['gallery.example'],
    manifest: manifest(version, bucket),
    component: COMPONENT,
    start: false,
  });

/** A bucket snapshot of the objects given, name to content, as spec/snapshot.md writes one. */
function snapshot(objects: Record<string, string>): string {
  const header = `${JSON.stringify({ 'stratum-snapshot': 1, capability: 'bucket', label: 'images', created: '2026-12-01T00:00:00.000Z' })}\n`;
  const records = Object.entries(objects).flatMap(([name, text]) => [
    { object: { name, size: Buffer.byteLength(text), contentType: 'image/png' } },
    { data: Buffer.from(text).toString('base64') },
  ]);
  const body = header + records.map((record) => `${JSON.stringify(record)}\n`).join('');
  return `${body}${JSON.stringify({ end: { records: records.length, sha256: createHash('sha256').update(body).digest('hex') } })}\n`;
}

/** The names of the objects a bucket store holds, as its export lists them. */
async function objects(client: ControlClient, label: string): Promise<string[]> {
  const text = await new Response(await client.exportState('gallery', 'bucket', label)).text();
  return text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { object?: { name: string } })
    .flatMap((record) => (record.object ? [record.object.name] : []));
}

/** The promise is refused with this status and code. */
async function refused(promise: Promise<unknown>, status: number, code: string): Promise<ControlApiError> {
  let caught: ControlApiError | undefined;
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ControlApiError, String(error));
    assert.equal(`${error.status} ${error.code}`, `${status} ${code}`);
    caught = error;
    return true;
  });
  return caught as ControlApiError;
}

test("deleting a name's data empties every store an installation of it was granted, one an upgrade dropped too: the name then holds nothing of anyone's", async (t) => {
  const { acme, bravo } = await setup(t);
  await install(acme, '0.1.0', 'images');
  await acme.importState('gallery', 'bucket', 'images', snapshot({ 'a.png': 'one', 'b.png': 'two' }));
  // An upgrade whose manifest grants another bucket: the images stay under the name, and the
  // answers about the installation say where.
  const upgraded = await install(acme, '0.2.0', 'pics');
  assert.deepEqual(upgraded.stores, { keyvalue: [], sql: [], bucket: ['pics'] });
  assert.deepEqual(upgraded.retainedStores, { keyvalue: [], sql: [], bucket: ['images'] });
  assert.deepEqual((await acme.capsule('gallery')).retainedStores, { keyvalue: [], sql: [], bucket: ['images'] });

  assert.deepEqual(await acme.uninstall('gallery', { deleteData: true }), { deleted: ['bucket/images', 'bucket/pics'] });
  // Another registrar takes the name, as it may now: none of acme's images are there.
  const taken = await install(bravo, '0.1.0', 'images');
  assert.equal(taken.keptData, undefined);
  assert.equal(taken.retainedStores, undefined);
  assert.deepEqual(await objects(bravo, 'images'), []);
});

test('a plain uninstall keeps every store the name holds, and deleting that data later finds them all', async (t) => {
  const { dir, acme, bravo } = await setup(t);
  await install(acme, '0.1.0', 'images');
  await acme.importState('gallery', 'bucket', 'images', snapshot({ 'a.png': 'one' }));
  // A record an older host wrote, which did not keep the stores: its manifest's are all that is known.
  const record = join(dir, 'data', 'installations', 'gallery.json');
  const { stores: _, ...older } = JSON.parse(await readFile(record, 'utf8')) as Record<string, unknown>;
  await writeFile(record, JSON.stringify(older));
  await install(acme, '0.2.0', 'pics');
  await acme.uninstall('gallery');
  // Not bravo's to delete, nor to take.
  await refused(bravo.uninstall('gallery', { deleteData: true }), 404, 'CAPSULE_NOT_FOUND');
  await refused(install(bravo, '0.1.0', 'images'), 409, 'NAME_TAKEN');
  // Acme deletes what the name kept without installing it again.
  assert.deepEqual(await acme.uninstall('gallery', { deleteData: true }), { deleted: ['bucket/images', 'bucket/pics'], installed: false });
  await refused(acme.uninstall('gallery', { deleteData: true }), 404, 'CAPSULE_NOT_FOUND');
  assert.equal((await install(bravo, '0.1.0', 'images')).keptData, undefined);
  assert.deepEqual(await objects(bravo, 'images'), []);
});

test("a deletion that fails part-way leaves the name its registrar's, and asked again deletes the rest", async (t) => {
  const { dir, acme, bravo } = await setup(t);
  await install(acme, '0.1.0', 'images');
  await acme.importState('gallery', 'bucket', 'images', snapshot({ 'a.png': 'one' }));
  await install(acme, '0.2.0', 'pics');
  // The pics bucket cannot be opened: a file stands where its directory goes.
  await mkdir(join(dir, 'pics'), { recursive: true });
  await writeFile(join(dir, 'pics', 'gallery'), 'in the way');
  const failed = await refused(acme.uninstall('gallery', { deleteData: true }), 500, 'DELETE_INCOMPLETE');
  assert.match(failed.message, /^gallery is uninstalled, but deleting its data did not finish/);
  assert.match(failed.hint ?? '', /stratum host uninstall gallery --delete-data/);
  // What is left is acme's still: no other registrar may take the name meanwhile.
  await refused(acme.capsule('gallery'), 404, 'CAPSULE_NOT_FOUND');
  await refused(install(bravo, '0.1.0', 'images'), 409, 'NAME_TAKEN');

  await rm(join(dir, 'pics', 'gallery'));
  assert.deepEqual(await acme.uninstall('gallery', { deleteData: true }), { deleted: ['bucket/images', 'bucket/pics'], installed: false });
  assert.equal((await install(bravo, '0.1.0', 'images')).keptData, undefined);
  assert.deepEqual(await objects(bravo, 'images'), []);
});

test("deleting a name's data drops its PostgreSQL schema and the capsule's login role, not only their rows", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const { dir, closing } = await testDir(t, 'stratum-data-delete-pg-');
  const acmeKey = await generateEd25519KeyPair();
  await writeKeyFile(join(dir, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const prefix = `deltest${Date.now().toString(36)}`;
  const config = parseHostConfig(
    testHostToml({
      registrar: acmeKey.publicJwk.x,
      tables: `[sql.default]\ntype = "postgres"\nurl = "${url}"\nschema_prefix = "${prefix}"\n`,
    }),
    join(dir, 'host.toml'),
  );
  const host = closing(await startHost(config, { createRuntime: () => installingRuntime(), pullComponent: false }));
  const client = createControlClient({ url: host.controlUrl, key: acmeKey.privateJwk, audience: 'host1.example.net' });
  const notes =
    'stratum = 1\n[capsule]\nname = "notes"\nversion = "1.0.0"\n[source]\nwasm = "notes.wasm"\n[capabilities]\nsql = ["default"]\n';
  await client.install({ name: 'notes', domains: ['notes.example'], manifest: notes, component: COMPONENT, start: false });
  const header = `${JSON.stringify({ 'stratum-snapshot': 1, capability: 'sql', label: 'default', created: '2026-12-01T00:00:00.000Z' })}\n`;
  const records = [
    { table: { name: 'notes', sql: 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)', columns: ['id', 'body'] } },
    { row: [{ integer: '1' }, { text: 'private' }] },
  ];
  const body = header + records.map((record) => `${JSON.stringify(record)}\n`).join('');
  await client.importState(
    'notes',
    'sql',
    'default',
    `${body}${JSON.stringify({ end: { records: 2, sha256: createHash('sha256').update(body).digest('hex') } })}\n`,
  );

  const sql = postgres(url, { max: 1, onnotice: () => {} });
  // The host's own schema (its role key and its stores' rows) is this test's alone: it goes too.
  t.after(async () => {
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${prefix}_host" CASCADE`);
    await sql.end();
  });
  const schema = schemaName(prefix, { capsule: 'notes', label: 'default' });
  const present = async () =>
    [
      (await sql`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = ${schema}`)[0]?.n,
      (await sql`SELECT count(*)::int AS n FROM pg_roles WHERE rolname = ${schema}`)[0]?.n,
    ] as const;
  assert.deepEqual(await present(), [1, 1]);
  assert.deepEqual((await client.uninstall('notes', { deleteData: true })).deleted, ['sql/default']);
  assert.deepEqual(await present(), [0, 0]);
});
