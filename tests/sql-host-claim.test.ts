import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { silentLogger } from '@stratum/core';
import postgres from 'postgres';
import { postgresSql, schemaName } from '../packages/host/src/capabilities/sql/backends/postgres.ts';
import { int, txt, uniqueCapsule } from '../packages/host/src/capabilities/sql/conformance.ts';
import { createSqlBackend, parseSqlHostConfig, withSqlHost } from '../packages/host/src/capabilities/sql/index.ts';
import { SqlError, type SqlHostIdentity } from '../packages/host/src/capabilities/sql/types.ts';
import { deleteState } from '../packages/host/src/control/state.ts';
import { ownPrefix } from './support/postgres-prefix.ts';
import { requireService } from './support/services.ts';

function identity(name: string): SqlHostIdentity {
  return { key: randomBytes(32).toString('base64url'), name };
}

function look(t: TestContext, url: string): postgres.Sql {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  t.after(() => sql.end({ timeout: 5 }));
  return sql;
}

/** The refusal of a host whose database and prefix another host claimed: it names that host, the setting, and the way to release it. */
function claimedBy(owner: SqlHostIdentity, prefix: string) {
  return (error: unknown) => {
    assert.ok(error instanceof SqlError, String(error));
    assert.equal(error.kind, 'other');
    assert.match(
      error.message,
      new RegExp(`with schema_prefix "${prefix}" is the Stratum host ${owner.name}'s \\(identity key ${owner.key}\\)`),
    );
    assert.match(error.message, /\[sql\.default\] schema_prefix in host\.toml a value of its own/);
    assert.match(error.message, new RegExp(`DELETE FROM "${prefix}_host"\\.owner`));
    return true;
  };
}

test("postgres: a second host on the same database and schema_prefix is refused, and can neither read nor drop the first host's capsules' data", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const prefix = ownPrefix(t, url, 'c');
  const first = identity('host1.example.net');
  const second = identity('host2.example.net');
  // The walkthrough's: host.toml copied to a second host, its name (and key) its own.
  const hostA = postgresSql({ url, schemaPrefix: prefix, maxConnections: 1, host: first });
  const hostB = postgresSql({ url, schemaPrefix: prefix, maxConnections: 1, host: second });
  const tool = postgresSql({ url, schemaPrefix: prefix, maxConnections: 1 });
  t.after(() => Promise.all([hostA.close(), hostB.close(), tool.close()]));
  const admin = look(t, url);
  const notes = { capsule: uniqueCapsule(), label: 'default' };
  const role = schemaName(prefix, notes);

  const db = await hostA.open(notes);
  await db.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)', []);
  await db.execute("INSERT INTO notes (body) VALUES ('private')", []);

  await assert.rejects(() => hostB.open(notes), claimedBy(first, prefix));
  // Not only same-named capsules: the whole prefix is the first host's.
  await assert.rejects(() => hostB.open({ capsule: uniqueCapsule(), label: 'default' }), claimedBy(first, prefix));
  // `stratum host uninstall notes --delete-data` on the second host: nothing of the first's is dropped.
  await assert.rejects(() => hostB.drop(notes), claimedBy(first, prefix));
  assert.deepEqual([...(await admin`SELECT rolname FROM pg_roles WHERE rolname = ${role}`)], [{ rolname: role }]);
  assert.deepEqual((await db.query('SELECT body FROM notes', [])).rows, [[txt('private')]]);
  // A backend without a host identity (stratum dev, a tool) is no host's: refused as well.
  await assert.rejects(
    () => tool.open(notes),
    (error: Error) => error.message.includes('not this process, which has no host identity'),
  );
  // Nothing the refused opens began is left: no role or schema of the capsules they asked for.
  assert.equal(Number((await admin`SELECT count(*)::int AS n FROM pg_roles WHERE starts_with(rolname, ${`${prefix}_`})`)[0]?.n), 1);
  assert.deepEqual([...(await admin.unsafe(`SELECT key, name FROM "${prefix}_host".owner`))], [{ key: first.key, name: first.name }]);
});

test('postgres: the claiming host restarted, restored elsewhere or renamed keeps its stores; a new identity key takes them over only once the prefix is released', async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const prefix = ownPrefix(t, url, 'c');
  const admin = look(t, url);
  const key = identity('host1.example.net');
  const notes = { capsule: uniqueCapsule(), label: 'default' };
  const before = postgresSql({ url, schemaPrefix: prefix, maxConnections: 1, host: key });
  const db = await before.open(notes);
  await db.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)', []);
  await db.execute("INSERT INTO notes (body) VALUES ('kept')", []);
  await before.close();

  // Restarted, or its data directory (and so its identity key) restored on another machine, under another name.
  const restored = postgresSql({ url, schemaPrefix: prefix, maxConnections: 1, host: { key: key.key, name: 'host1-new.example.net' } });
  t.after(() => restored.close());
  assert.deepEqual((await (await restored.open(notes)).query('SELECT body FROM notes', [])).rows, [[txt('kept')]]);
  assert.deepEqual([...(await admin.unsafe(`SELECT name FROM "${prefix}_host".owner`))], [{ name: 'host1-new.example.net' }]);

  // The operator gives the host a new identity key on purpose: refused until the prefix is released, as the error says.
  const rekeyed = identity('host1-new.example.net');
  const after = postgresSql({ url, schemaPrefix: prefix, maxConnections: 1, host: rekeyed });
  t.after(() => after.close());
  let release = '';
  await assert.rejects(
    () => after.open(notes),
    (error: Error) => {
      release = /DELETE FROM "[a-z0-9_]+"\.owner$/.exec(error.message)?.[0] ?? '';
      return release !== '';
    },
  );
  await admin.unsafe(release);
  assert.deepEqual((await (await after.open(notes)).query('SELECT count(*) AS n FROM notes', [])).rows, [[int(1)]]);
  // Now the old key is the other host.
  await assert.rejects(() => restored.open(notes), claimedBy(rekeyed, prefix));
  await after.drop(notes);
});

test('postgres: two hosts claiming a fresh database and prefix at once: one of them has it, the other is refused', async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const prefix = ownPrefix(t, url, 'c');
  const hosts = [identity('host1.example.net'), identity('host2.example.net')].map((host) =>
    postgresSql({ url, schemaPrefix: prefix, maxConnections: 1, host }),
  );
  t.after(() => Promise.all(hosts.map((host) => host.close())));
  const results = await Promise.allSettled(hosts.map((host) => host.open({ capsule: uniqueCapsule(), label: 'default' })));
  assert.deepEqual(results.map((result) => result.status).sort(), ['fulfilled', 'rejected']);
  const refused = results.find((result) => result.status === 'rejected');
  assert.match(String(refused?.reason), /\[sql\.default\] schema_prefix/);
});

test("postgres: the host's identity reaches the backend from withSqlHost through the [sql] section, never from host.toml's text, and another host's deletion of a capsule's data is refused", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const prefix = ownPrefix(t, url, 'c');
  const host = identity('host1.example.net');
  const toml = { sql: { default: { type: 'postgres', url, schema_prefix: prefix } } };
  const carried = withSqlHost(toml, host);
  // What a reload compares, and what a copied host.toml holds, have no identity in them.
  assert.equal(JSON.stringify(carried), JSON.stringify(toml));
  assert.equal(parseSqlHostConfig(toml.sql).default?.host, undefined);
  const settings = parseSqlHostConfig(carried.sql).default;
  assert.deepEqual(settings?.host, host);
  // Settings cross to the workers by structuredClone: the identity goes with them.
  const backend = await createSqlBackend(structuredClone(settings) as NonNullable<typeof settings>, '/nonexistent', silentLogger);
  t.after(() => backend.close());
  const scope = { capsule: uniqueCapsule(), label: 'default' };
  const db = await backend.open(scope);
  await db.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)', []);
  const admin = look(t, url);
  assert.deepEqual([...(await admin.unsafe(`SELECT key FROM "${prefix}_host".owner`))], [{ key: host.key }]);

  // The walkthrough's `stratum host uninstall notes --delete-data` on the second host, as the
  // control API runs it (state access with the host's capabilities config): refused, and the
  // first host's schema and role stay.
  const dataDir = await mkdtemp(join(tmpdir(), 'stratum-sql-claim-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const other = withSqlHost(toml, identity('host2.example.net'));
  await assert.rejects(
    () => deleteState({ capabilityConfig: other, dataDir }, scope.capsule, [{ capability: 'sql', label: 'default' }]),
    claimedBy(host, prefix),
  );
  const role = schemaName(prefix, scope);
  assert.deepEqual([...(await admin`SELECT nspname FROM pg_namespace WHERE nspname = ${role}`)], [{ nspname: role }]);
  assert.deepEqual((await db.query('SELECT count(*) AS n FROM notes', [])).rows, [[int(0)]]);
  // The first host's own deletion goes on.
  await deleteState({ capabilityConfig: carried, dataDir }, scope.capsule, [{ capability: 'sql', label: 'default' }]);
  assert.deepEqual([...(await admin`SELECT rolname FROM pg_roles WHERE rolname = ${role}`)], []);
});
