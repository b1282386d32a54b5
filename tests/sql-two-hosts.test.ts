import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import postgres from 'postgres';
import { schemaName } from '../packages/host/src/capabilities/sql/backends/postgres.ts';
import { parseHostConfig } from '../packages/host/src/config/parse.ts';
import { ControlApiError, createControlClient } from '../packages/host/src/control/client.ts';
import { startHost } from '../packages/host/src/control/host.ts';
import { testHostToml } from './support/host-dir.ts';
import { installingRuntime } from './support/installing-runtime.ts';
import { requireService } from './support/services.ts';
import { testDir } from './support/temp.ts';

const COMPONENT = new TextEncoder().encode('not a component: this runtime only installs');
const NOTES =
  'stratum = 1\n[capsule]\nname = "notes"\nversion = "1.0.0"\n[source]\nwasm = "notes.wasm"\n[capabilities]\nsql = ["default"]\n';

function snapshot(body: string): string {
  const header = `${JSON.stringify({ 'stratum-snapshot': 1, capability: 'sql', label: 'default', created: '2026-12-01T00:00:00.000Z' })}\n`;
  const records = [
    { table: { name: 'notes', sql: 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)', columns: ['id', 'body'] } },
    { row: [{ integer: '1' }, { text: body }] },
  ];
  const text = header + records.map((record) => `${JSON.stringify(record)}\n`).join('');
  return `${text}${JSON.stringify({ end: { records: 2, sha256: createHash('sha256').update(text).digest('hex') } })}\n`;
}

test("two hosts from one host.toml (names and keys their own, one database and schema_prefix): the second can neither import into nor delete the first's notes", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const prefix = `twohost${Date.now().toString(36)}`;
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  t.after(async () => {
    for (const { nspname } of await sql`SELECT nspname FROM pg_namespace WHERE starts_with(nspname, ${`${prefix}_`})`)
      await sql.unsafe(`DROP SCHEMA "${nspname}" CASCADE`);
    for (const { rolname } of await sql`SELECT rolname FROM pg_roles WHERE starts_with(rolname, ${`${prefix}_`})`) {
      await sql.unsafe(`DROP OWNED BY "${rolname}" CASCADE`);
      await sql.unsafe(`DROP ROLE "${rolname}"`);
    }
    await sql.end();
  });
  const hosts = [];
  for (const name of ['host1.example.net', 'host2.example.net']) {
    const { dir, closing } = await testDir(t, 'stratum-two-hosts-');
    const registrar = await generateEd25519KeyPair();
    await writeKeyFile(join(dir, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
    const config = parseHostConfig(
      testHostToml({
        name,
        registrar: registrar.publicJwk.x,
        tables: `[sql.default]\ntype = "postgres"\nurl = "${url}"\nschema_prefix = "${prefix}"\n`,
      }),
      join(dir, 'host.toml'),
    );
    const host = closing(await startHost(config, { createRuntime: () => installingRuntime(), pullComponent: false }));
    const client = createControlClient({ url: host.controlUrl, key: registrar.privateJwk, audience: name });
    await client.install({ name: 'notes', domains: ['notes.example'], manifest: NOTES, component: COMPONENT, start: false });
    hosts.push(client);
  }
  const [first, second] = hosts as [ReturnType<typeof createControlClient>, ReturnType<typeof createControlClient>];
  await first.importState('notes', 'sql', 'default', snapshot('private'));
  await assert.rejects(
    () => second.importState('notes', 'sql', 'default', snapshot('other')),
    (error: unknown) => {
      assert.ok(error instanceof ControlApiError, String(error));
      assert.equal(error.code, 'SQL_ERROR');
      assert.match(error.message, /is the Stratum host host1\.example\.net's .*not this host, host2\.example\.net/);
      assert.match(error.message, /\[sql\.default\] schema_prefix in host\.toml/);
      return true;
    },
  );
  await assert.rejects(
    () => second.uninstall('notes', { deleteData: true }),
    (error: unknown) => {
      assert.ok(error instanceof ControlApiError, String(error));
      assert.equal(error.code, 'DELETE_INCOMPLETE');
      return true;
    },
  );
  const schema = schemaName(prefix, { capsule: 'notes', label: 'default' });
  assert.deepEqual([...(await sql.unsafe(`SELECT body FROM "${schema}".notes`))], [{ body: 'private' }]);
  assert.deepEqual((await first.uninstall('notes', { deleteData: true })).deleted, ['sql/default']);
});
