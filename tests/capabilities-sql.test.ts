import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { silentLogger } from '@stratum/core';
import postgres from 'postgres';
import { postgresSql, schemaName } from '../packages/host/src/capabilities/sql/backends/postgres.ts';
import { sqliteSql } from '../packages/host/src/capabilities/sql/backends/sqlite.ts';
import { int, nul, real, rejectsWith, sqlConformance, txt, uniqueCapsule } from '../packages/host/src/capabilities/sql/conformance.ts';
import type { SqlDatabase, SqlValue } from '../packages/host/src/capabilities/sql/types.ts';
import { requireService } from './support/services.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'stratum-sql-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

sqlConformance('sqlite', async (_t, limits) => sqliteSql({ dataDir, ...(limits ? { limits } : {}) }));

sqlConformance('postgres', async (t, limits) => {
  const url = await requireService(t, 'postgres');
  return url ? postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 4, ...(limits ? { limits } : {}) }) : undefined;
});

/**
 * A database whose collation is not SQLite's order (ICU en-US sorts "a, b, B") and whose time
 * zone is not UTC, as a host may be given: the suite must pass on it too. Created once for this
 * file, dropped at its end; skipped where the test user may not create databases.
 */
let foreignDatabase: Promise<string | undefined> | undefined;
const foreignName = `stratum_test_icu_${process.pid}`;
let foreignAdminUrl: string | undefined;
after(async () => {
  if (!foreignAdminUrl) return;
  const admin = postgres(foreignAdminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${foreignName} WITH (FORCE)`);
  await admin.end();
});
async function foreignPostgres(t: TestContext): Promise<string | undefined> {
  const url = await requireService(t, 'postgres');
  if (!url) return undefined;
  foreignDatabase ??= (async () => {
    const name = foreignName;
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      foreignAdminUrl = url;
      await admin.unsafe(`CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`);
      await admin.unsafe(`ALTER DATABASE ${name} SET timezone = 'America/New_York'`);
      const foreign = new URL(url);
      foreign.pathname = `/${name}`;
      return foreign.toString();
    } catch (error) {
      return `cannot create an ICU database: ${String(error)}`;
    } finally {
      await admin.end();
    }
  })();
  const foreign = await foreignDatabase;
  if (foreign?.startsWith('cannot')) {
    t.skip(foreign);
    return undefined;
  }
  return foreign;
}

sqlConformance('postgres (ICU en-US database, New York time)', async (t, limits) => {
  const url = await foreignPostgres(t);
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

  // What the portable subset leaves out (spec/wit/README.md), each as PostgreSQL answers it.
  const one = async (sql: string, params: SqlValue[] = []) => (await db.query(sql, params)).rows[0]?.[0];
  await db.execute('CREATE TABLE m (id INTEGER PRIMARY KEY, n INTEGER, r REAL, flag INTEGER, cat TEXT, name TEXT)', []);
  await db.execute(
    "INSERT INTO m (n, r, flag, cat, name) VALUES (4611686018427387904, 0.1, 1, 'a', 'bob'), (4611686018427387906, 2.5, 0, 'a', 'al')",
    [],
  );
  // NULL sorts last ascending (first in SQLite).
  assert.deepEqual((await db.query('SELECT n FROM (VALUES (1), (NULL)) AS v (n) ORDER BY n', [])).rows, [[int(1)], [nul]]);
  // Decimal literals are exact decimals: 0.1 + 0.2 is 0.3 (0.30000000000000004 in SQLite), also with a real parameter; a REAL column is floating point.
  assert.deepEqual(await one('SELECT 0.1 + 0.2 AS s'), real(0.3));
  assert.deepEqual(await one('SELECT ? + 0.2 AS s', [real(0.1)]), real(0.3));
  assert.deepEqual(await one('SELECT r + 0.2 AS s FROM m WHERE id = 1'), real(0.1 + 0.2));
  // Division by zero is an error (NULL in SQLite); so is integer overflow (a real in SQLite).
  await rejectsWith(() => db.query('SELECT 1 / 0 AS d', []), 'invalid-query', /division by zero/);
  await rejectsWith(() => db.query('SELECT 5 % 0 AS d', []), 'invalid-query', /division by zero/);
  await rejectsWith(() => db.query('SELECT 9223372036854775807 + 1 AS o', []), 'invalid-query', /out of range/);
  // avg() of integers is an exact decimal, whole here, so an integer (a real in SQLite); sum() past 64 bits is a real (an error in SQLite).
  assert.deepEqual(await one('SELECT avg(n) AS a FROM m'), int(4611686018427387905n));
  assert.deepEqual(await one('SELECT avg(flag) AS a FROM m'), real(0.5));
  assert.deepEqual(await one('SELECT sum(n) + sum(n) AS s FROM m'), real(Number(2n * 9223372036854775810n)));
  // Every selected column is grouped or aggregated; a condition is a boolean, not an integer.
  await rejectsWith(() => db.query('SELECT cat, name, max(n) AS m FROM m GROUP BY cat', []), 'invalid-query', /GROUP BY/);
  await rejectsWith(() => db.query('SELECT count(*) AS c FROM m WHERE flag', []), 'invalid-query', /boolean/);
  await rejectsWith(() => db.execute('INSERT INTO m (flag) VALUES (TRUE)', []), 'invalid-query', /boolean/);
  // Text cannot hold U+0000.
  await rejectsWith(() => db.execute('INSERT INTO m (name) VALUES (?)', [txt('a\u0000b')]), 'invalid-query', /0x00/);
  // CURRENT_TIMESTAMP has fractions of a second and an offset ('2026-01-02 03:04:05' in SQLite).
  assert.match(textOf(await one('SELECT CURRENT_TIMESTAMP AS t')), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\+00$/);
  // round() of a REAL rounds half to even and takes no digits; CAST to INTEGER rounds (SQLite truncates); substr() counts no position from the end.
  assert.deepEqual(await one('SELECT round(r) AS a FROM m WHERE id = 2'), real(2));
  await rejectsWith(() => db.query('SELECT round(r, 1) AS a FROM m', []), 'invalid-query', /round/);
  assert.deepEqual(await one('SELECT CAST(2.7 AS INTEGER) AS a'), int(3));
  assert.deepEqual(await one("SELECT substr('bob', -2) AS a"), txt('bob'));
  // coalesce() takes one type; IS compares only with NULL, TRUE and FALSE; LIMIT is never negative.
  await rejectsWith(() => db.query("SELECT coalesce(n, 'none') AS c FROM m", []), 'invalid-query');
  await rejectsWith(() => db.query('SELECT name FROM m WHERE name IS ?', [txt('bob')]), 'invalid-query');
  assert.deepEqual(await one('SELECT name FROM m WHERE name IS NOT DISTINCT FROM ?', [txt('bob')]), txt('bob'));
  await rejectsWith(() => db.query('SELECT name FROM m LIMIT -1', []), 'invalid-query', /LIMIT/);
  // An upsert may change a row once; a scalar subquery gives one row (SQLite takes the first).
  await rejectsWith(
    () => db.execute("INSERT INTO m (id, name) VALUES (1, 'x'), (1, 'y') ON CONFLICT (id) DO UPDATE SET name = excluded.name", []),
    'invalid-query',
    /a second time/,
  );
  await rejectsWith(() => db.query('SELECT (SELECT name FROM m) AS first', []), 'invalid-query', /more than one row/);
});

test('postgres: on a database of another collation and time zone, the host warns once, and CURRENT_TIMESTAMP is still UTC', async (t) => {
  const url = await foreignPostgres(t);
  if (!url) return;
  const warnings: string[] = [];
  const logger = { ...silentLogger, warn: (...args: unknown[]) => void warnings.push(String(args.at(-1))) };
  const backend = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 2, logger });
  const first = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  const second = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  t.after(async () => {
    await first.drop();
    await second.drop();
    await backend.close();
  });
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0] ?? '', /sorts text by ICU collation "en-US", not by code point as SQLite does.*LOCALE 'C\.UTF-8'/);
  assert.match(textOf((await first.query('SELECT CURRENT_TIMESTAMP AS t', [])).rows[0]?.[0]), /\+00$/);
  // Text that is no TEXT column sorts by the database's collation: SQLite gives B, a, b.
  assert.deepEqual((await first.query("SELECT x FROM (VALUES ('b'), ('B'), ('a')) AS v (x) ORDER BY x", [])).rows, [
    [txt('a')],
    [txt('b')],
    [txt('B')],
  ]);

  // A database that sorts by code point gets no warning.
  const plainUrl = await requireService(t, 'postgres');
  if (!plainUrl) return;
  const quiet: string[] = [];
  const plain = postgresSql({
    url: plainUrl,
    schemaPrefix: 'stratum_test',
    maxConnections: 1,
    logger: { ...silentLogger, warn: () => void quiet.push('warn') },
  });
  const db = await plain.open({ capsule: uniqueCapsule(), label: 'default' });
  await db.drop();
  await plain.close();
  assert.deepEqual(quiet, []);
});

function textOf(value: SqlValue | undefined): string {
  assert.equal(value?.tag, 'text');
  return value?.tag === 'text' ? value.val : '';
}

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
