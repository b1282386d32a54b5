import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { postgresSql, schemaName } from '../packages/host/src/capabilities/sql/backends/postgres.ts';
import { sqliteSql } from '../packages/host/src/capabilities/sql/backends/sqlite.ts';
import { int, rejectsWith, sqlConformance, txt, uniqueCapsule } from '../packages/host/src/capabilities/sql/conformance.ts';
import type { SqlDatabase } from '../packages/host/src/capabilities/sql/types.ts';
import { requireService } from './support/services.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'stratum-sql-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

sqlConformance('sqlite', async (_t, limits) => sqliteSql({ dataDir, ...(limits ? { limits } : {}) }));

sqlConformance('postgres', async (t, limits) => {
  const url = await requireService(t, 'postgres');
  return url ? postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 4, ...(limits ? { limits } : {}) }) : undefined;
});

/* PostgreSQL only: the sandbox that SQLite's authorizer gives for free, and the documented dialect differences. */

async function openPostgres(t: TestContext) {
  const url = await requireService(t, 'postgres');
  if (!url) return undefined;
  const backend = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 2 });
  const db = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  t.after(async () => {
    await db.drop();
    await backend.close();
  });
  await db.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL)', []);
  return { backend, db };
}

test("postgres: a statement is cancelled by the server past the capsule's timeout, not left running after its request", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const backend = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 2 });
  const db = await backend.open({ capsule: uniqueCapsule(), label: 'default', statementTimeoutMs: 200 });
  t.after(async () => {
    await db.drop();
    await backend.close();
  });
  // Counting to 100 million takes PostgreSQL some tens of seconds.
  const long = 'WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 100000000) SELECT count(*) FROM c';
  await rejectsWith(() => db.query(long, []), 'limit-exceeded', /statement timeout.*\[resources\] timeout/);
  // The connection is fine afterwards, and a statement within the time runs.
  assert.deepEqual(await db.query('SELECT 1 AS one', []), { columns: ['one'], rows: [[int(1)]] });
});

test('postgres: statements that change the session or reach other schemas are refused', async (t) => {
  const opened = await openPostgres(t);
  if (!opened) return;
  const { backend, db } = opened;
  const neighbour = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  await neighbour.execute('CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT)', []);
  await neighbour.execute("INSERT INTO secrets (value) VALUES ('hidden')", []);
  // The neighbour's schema name, learnt the way a curious capsule could: it is no secret, only closed.
  const neighbourSchema = schemaName('stratum_test', { capsule: await neighbourName(neighbour), label: 'default' });

  for (const sql of [
    'SET search_path TO public',
    'SET ROLE postgres',
    'RESET ROLE',
    'SET SESSION AUTHORIZATION postgres',
    "SELECT set_config('role', 'postgres', false)",
    "SELECT set_config('search_path', 'public', true)",
    'SELECT * FROM pg_catalog.pg_tables',
    'SELECT * FROM information_schema.tables',
    "SELECT pg_read_file('/etc/passwd')",
    "COPY notes TO '/tmp/stratum-escape'",
    'DO $$ BEGIN PERFORM 1; END $$',
    'CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql',
    'CREATE SCHEMA elsewhere',
    'ALTER TABLE notes SET SCHEMA public',
    'ALTER TABLE notes OWNER TO postgres',
    'GRANT SELECT ON notes TO PUBLIC',
    "SELECT query_to_xml('select 1', true, true, '')",
    'LISTEN anything',
    'SHOW search_path',
  ]) {
    // Refused either as a statement a capsule may not run, or (dollar-quoted bodies) as more than one.
    await rejectsWith(() => db.query(sql, []), 'invalid-query', /not allowed|one statement/);
  }
  await rejectsWith(() => db.query(`SELECT * FROM "${neighbourSchema}".secrets`, []), 'access-denied');
  await rejectsWith(() => db.execute('CREATE TABLE public.stratum_escape (id INTEGER)', []), 'access-denied');
  assert.deepEqual((await neighbour.query('SELECT value FROM secrets', [])).rows, [[txt('hidden')]]);
  await neighbour.drop();
});

test('postgres: a misspelt statement is named as one, not as a forbidden statement', async (t) => {
  const opened = await openPostgres(t);
  if (!opened) return;
  await rejectsWith(
    () => opened.db.query('SELEC title FROM notes', []),
    'invalid-query',
    /^SELEC is not a statement: did you mean SELECT\?$/,
  );
  await rejectsWith(() => opened.db.execute("INSRT INTO notes (title) VALUES ('x')", []), 'invalid-query', /did you mean INSERT\?/);
  // A real statement a capsule may not run is still refused as such.
  await rejectsWith(() => opened.db.execute('SET search_path TO public', []), 'invalid-query', /not allowed in a capsule's database: SET/);
});

test('postgres: the documented differences from the SQLite dialect', async (t) => {
  const opened = await openPostgres(t);
  if (!opened) return;
  const { db } = opened;
  // Unquoted names fold to lower case, as PostgreSQL folds them.
  assert.deepEqual((await db.query('SELECT title AS Heading FROM notes', [])).columns, ['heading']);
  // Column types are enforced.
  await rejectsWith(() => db.execute("INSERT INTO notes (id, title) VALUES ('abc', 'x')", []), 'invalid-query');
  // INSERT OR REPLACE and REPLACE INTO have no equivalent.
  await rejectsWith(() => db.execute("INSERT OR REPLACE INTO notes (id, title) VALUES (1, 'x')", []), 'invalid-query', /ON CONFLICT/);
  await rejectsWith(() => db.execute("REPLACE INTO notes (id, title) VALUES (1, 'x')", []), 'invalid-query');
  // A parameter whose type nothing in the statement fixes is text.
  assert.deepEqual((await db.query('SELECT ? AS v', [int(5)])).rows, [[txt('5')]]);
  // Without an INTEGER PRIMARY KEY there is no rowid, so no last-insert-id.
  await db.execute('CREATE TABLE tags (name TEXT PRIMARY KEY)', []);
  assert.deepEqual(await db.execute("INSERT INTO tags (name) VALUES ('a')", []), { rowsAffected: 1n, lastInsertId: undefined });
  // Booleans come back as the integers 0 and 1, as SQLite has them.
  assert.deepEqual((await db.query('SELECT 1 < 2 AS yes', [])).rows, [[int(1)]]);
});

async function neighbourName(db: SqlDatabase): Promise<string> {
  const [row] = (await db.query('SELECT current_user AS me', [])).rows;
  const me = row?.[0];
  assert.ok(me?.tag === 'text');
  const match = /^stratum_test_[0-9]+_(.+)_default$/.exec(me.val);
  assert.ok(match?.[1], `unexpected role ${me.val}`);
  return match[1];
}

test("sqlite: the host's own temporary table, which sets the last insert id apart, is closed to the capsule", async () => {
  const backend = sqliteSql({ dataDir });
  const db = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  try {
    await db.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT)', []);
    for (const sql of [
      'SELECT * FROM temp.stratum_last_insert_id',
      'DROP TABLE temp.stratum_last_insert_id',
      'DELETE FROM stratum_last_insert_id',
      'ALTER TABLE temp.stratum_last_insert_id RENAME TO gone',
    ]) {
      await rejectsWith(() => db.execute(sql, []), 'invalid-query', /not allowed in a capsule's database: stratum_last_insert_id/);
    }
    assert.deepEqual(await db.execute("INSERT INTO notes (title) VALUES ('a')", []), { rowsAffected: 1n, lastInsertId: 1n });
  } finally {
    await db.drop();
    await backend.close();
  }
});
