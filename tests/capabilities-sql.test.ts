import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, type TestContext, test } from 'node:test';
import { silentLogger } from '@stratum/core';
import postgres from 'postgres';
import { postgresSql, schemaName } from '../packages/host/src/capabilities/sql/backends/postgres.ts';
import { sqliteSql } from '../packages/host/src/capabilities/sql/backends/sqlite.ts';
import {
  blob,
  int,
  nul,
  real,
  rejectsWith,
  sqlConformance,
  txt,
  uniqueCapsule,
} from '../packages/host/src/capabilities/sql/conformance.ts';
import type { PostgresStatement } from '../packages/host/src/capabilities/sql/dialect.ts';
import { type Dialect, isCode, tokenize } from '../packages/host/src/capabilities/sql/lexer.ts';
import { exportSql, importSql } from '../packages/host/src/capabilities/sql/snapshot.ts';
import { type SqlDatabase, SqlError, type SqlValue } from '../packages/host/src/capabilities/sql/types.ts';
import { ownPrefix } from './support/postgres-prefix.ts';
import { requireService } from './support/services.ts';
import { within } from './support/within.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'stratum-sql-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

sqlConformance('sqlite', async (_t, limits) => sqliteSql({ dataDir, ...(limits ? { limits } : {}) }));

sqlConformance('postgres', async (t, limits) => {
  const url = await requireService(t, 'postgres');
  return url ? postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 4, ...(limits ? { limits } : {}) }) : undefined;
});

test("sqlite: one value is at most 16 MiB, so one statement cannot build gigabytes in the host's memory", async (t) => {
  const backend = sqliteSql({ dataDir });
  const db = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  t.after(() => backend.close());
  // The audit's: 1.8 GB of native memory and seconds of CPU, neither seen by the capsule's limits.
  await rejectsWith(
    () => db.query('SELECT length(randomblob(900000000)) || length(randomblob(900000000))', []),
    'limit-exceeded',
    /over 16777216 bytes/,
  );
  await rejectsWith(() => db.query("SELECT length(zeroblob(16777217) || '') AS n", []), 'limit-exceeded');
  await db.execute('CREATE TABLE files (body BLOB)', []);
  await rejectsWith(
    () => db.execute('INSERT INTO files (body) VALUES (?)', [blob(new Uint8Array(16 * 1024 * 1024 + 1))]),
    'limit-exceeded',
  );
  await db.execute('INSERT INTO files (body) VALUES (?)', [blob(new Uint8Array(1024 * 1024))]);
  assert.deepEqual((await db.query('SELECT length(body) FROM files', [])).rows, [[int(1024 * 1024)]]);
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
  try {
    await refusedAndClosed(db, neighbour);
  } finally {
    await neighbour.drop();
  }
});

async function refusedAndClosed(db: SqlDatabase, neighbour: SqlDatabase): Promise<void> {
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
    // Quoted, escaped or hidden from a lexer that reads the text otherwise than PostgreSQL does.
    'SELECT nspname FROM "pg_namespace"',
    'SELECT nspname FROM "PG_NAMESPACE"',
    'SELECT nspname FROM [pg_namespace]',
    "SELECT \"set_config\"('role', 'none', true)",
    'SELECT nspname FROM U&"pg\\005fnamespace"',
    "SELECT E'\\'' AS a, current_setting('is_superuser') AS b, ' ' AS c -- '",
    "SELECT 1 AS a /* /* */ ' */ , current_setting('is_superuser') AS b -- '",
    "SELECT * FROM ts_stat('SELECT to_tsvector(nspname) FROM pg_namespace')",
    "SELECT table_to_xml('pg_roles'::regclass, true, false, '')",
  ]) {
    // Refused either as a statement a capsule may not run, or (dollar-quoted bodies) as more than one.
    await rejectsWith(() => db.query(sql, []), 'invalid-query', /not allowed|one statement/);
  }
  await rejectsWith(() => db.query(`SELECT * FROM "${neighbourSchema}".secrets`, []), 'access-denied');
  await rejectsWith(() => db.execute('CREATE TABLE public.stratum_escape (id INTEGER)', []), 'access-denied');
  assert.deepEqual((await neighbour.query('SELECT value FROM secrets', [])).rows, [[txt('hidden')]]);
}

/** Characters a scanner might take for whitespace or a line's end: every control character, and Unicode's spaces. */
const SCANNED_CHARS = [
  ...Array.from({ length: 32 }, (_, code) => String.fromCharCode(code)).filter((char) => char !== '\0'),
  ' ',
  '\u007f',
  '\u0085',
  '\u00a0',
  '\u1680',
  '\u2000',
  '\u200b',
  '\u2028',
  '\u2029',
  '\u202f',
  '\u3000',
  '\ufeff',
];

function lexed(sql: string, dialect: Dialect): { code: string[] } | { refused: string } {
  try {
    return {
      code: tokenize(sql, dialect)
        .filter(isCode)
        .map((token) => token.text),
    };
  } catch (error) {
    return { refused: String(error) };
  }
}

test('postgres: the lexer ends -- comments and reads whitespace exactly where the server does, asked of the server itself', async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const sql = superuser(t, url);
  const [{ version }] = (await sql`SELECT current_setting('server_version_num')::int AS version`) as unknown as [{ version: number }];
  const columns = async (text: string): Promise<number | undefined> => {
    try {
      const result = await sql.unsafe(text);
      return result.columns.length;
    } catch {
      return undefined;
    }
  };
  for (const char of SCANNED_CHARS) {
    const name = JSON.stringify(char);
    // Where the comment ends: a second column only if the server ended it at this character.
    const comment = `SELECT 1 AS a --${char}, 2 AS b`;
    const lexer = lexed(comment, 'postgres');
    assert.ok('code' in lexer, 'refused' in lexer ? lexer.refused : '');
    assert.equal(lexer.code.includes('b') ? 2 : 1, await columns(comment), `${name} ends a -- comment`);
    // Whitespace between two tokens: the server runs the statement only if it is.
    const spaced = `SELECT 1 AS a,${char}2 AS b`;
    const runs = (await columns(spaced)) === 2;
    const space = tokenize(spaced, 'postgres').some((token) => token.kind === 'space' && token.text.includes(char));
    // \v is whitespace from PostgreSQL 16; before, a token no statement accepts, so taking it for whitespace is safe.
    if (char === '\v' && version < 160000) assert.equal(runs, false, name);
    else assert.equal(space, runs, `${name} is whitespace`);
  }
  // PostgreSQL 14 read 1e'...' as 1 and an E'' string; 15 refuses it, and so does the lexer.
  const junk = "SELECT 1e'\\'' AS a, 2 AS b, ' ' AS c -- '";
  assert.ok('refused' in lexed(junk, 'postgres'));
  assert.equal(await columns(junk), version >= 150000 ? undefined : 3);
});

test('sqlite: the lexer ends -- comments and reads whitespace where SQLite does, asked of SQLite itself', () => {
  const db = new DatabaseSync(':memory:');
  const columns = (text: string): number | undefined => {
    try {
      return db.prepare(text).columns().length;
    } catch {
      return undefined;
    }
  };
  try {
    // Every character of the Basic Multilingual Plane: SQLite's tokenizer has a class of its own for the byte order mark.
    const every = Array.from({ length: 0x10000 }, (_, code) => String.fromCharCode(code)).filter(
      (char) => char !== '\0' && !/[\ud800-\udfff]/.test(char),
    );
    for (const char of every) {
      const name = JSON.stringify(char);
      const comment = `SELECT 1 AS a --${char}, 2 AS b`;
      const lexer = lexed(comment, 'sqlite');
      assert.ok('code' in lexer, 'refused' in lexer ? lexer.refused : '');
      assert.equal(lexer.code.includes('b') ? 2 : 1, columns(comment), `${name} ends a -- comment`);
      // Printable ASCII is punctuation, a name or a number, which may well run (`,+2`).
      if (/[!-~]/.test(char)) continue;
      const spaced = `SELECT 1 AS a,${char}2 AS b`;
      const runs = columns(spaced) === 2;
      const space = tokenize(spaced, 'sqlite').some((token) => token.kind === 'space' && token.text.includes(char));
      // SQLite takes \v for whitespace only after other whitespace; alone, it is refused.
      if (char === '\v') assert.equal(runs, false, name);
      else if (space !== runs) assert.fail(`${name} is whitespace: SQLite ${runs}, the lexer ${space}`);
    }
    // A byte order mark before the statement hides no keyword either.
    assert.deepEqual(lexed('\ufeffVACUUM', 'sqlite'), { code: ['VACUUM'] });
    assert.equal(columns('\ufeffVACUUM'), 0);
    // The lexer must see what SQLite runs: here VACUUM, refused by its leading keyword.
    assert.deepEqual(lexed('--\rSELECT 1\nVACUUM', 'sqlite'), { code: ['VACUUM'] });
    assert.equal(columns('--\rSELECT 1\nVACUUM'), 0);
  } finally {
    db.close();
  }
});

test("postgres: the audit's statements hidden behind a -- comment ended by \\r, \\f or \\v never reach the server", async (t) => {
  const opened = await openPostgres(t);
  if (!opened) return;
  const { db } = opened;
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const admin = superuser(t, url);
  const me = (await db.query('SELECT session_user AS me', [])).rows[0]?.[0];
  const role = me?.tag === 'text' ? me.val : '';
  for (const hidden of [
    'CREATE TABLE leaked AS SELECT rolname FROM pg_roles',
    "CREATE TABLE leaked AS SELECT set_config('statement_timeout', '0', false) AS v",
    'CREATE TABLE leaked AS SELECT pg_advisory_lock(1) AS v',
    "CREATE TABLE leaked AS SELECT lo_from_bytea(0, 'x') AS v",
    "CREATE TABLE leaked AS SELECT to_regrole('postgres') AS v",
    'GRANT USAGE ON SCHEMA public TO PUBLIC',
    "DO 'BEGIN CREATE TABLE leaked (a int); END'",
  ]) {
    for (const comment of ['--\r', '-- x\r', '--\r\n', '--\f\r', '/* \r */--\r']) {
      const sql = `${comment}${hidden} /*\nSELECT 1 */`;
      await rejectsWith(() => db.execute(sql, []), 'invalid-query', undefined);
      await rejectsWith(
        () => db.query(`SELECT 1 AS one ${comment}, 2 AS two FROM (${hidden.replace(/^CREATE TABLE leaked AS /, '')}) AS s /*\n*/`, []),
        'invalid-query',
      );
    }
  }
  assert.deepEqual([...(await admin`SELECT tablename FROM pg_tables WHERE tablename = 'leaked'`)], []);
  assert.deepEqual([...(await admin`SELECT 1 FROM pg_largeobject_metadata WHERE lomowner = ${role}::regrole`)], []);
  assert.deepEqual(
    [
      ...(await admin`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid IN (SELECT pid FROM pg_stat_activity WHERE usename = ${role})`),
    ],
    [],
  );
  // What the backend appends to a statement is not swallowed by a -- comment that ends it.
  assert.deepEqual(await db.execute("INSERT INTO notes (title) VALUES ('a') -- the key is returned", []), {
    rowsAffected: 1n,
    lastInsertId: 1n,
  });
  assert.deepEqual(await db.execute("INSERT OR IGNORE INTO notes (id, title) VALUES (1, 'b') -- no conflict error", []), {
    rowsAffected: 0n,
    lastInsertId: undefined,
  });
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

/**
 * Statements sent as written, with only `?` numbered: what a capsule could send had it found a
 * way past every refusal of the dialect. What stops it then is the server's privileges alone.
 */
function unrefused(sql: string): PostgresStatement {
  let params = 0;
  const text = sql.replace(/\?/g, () => `$${++params}`);
  const keyword = (/^\s*([A-Za-z]+)/.exec(sql)?.[1] ?? '').toUpperCase();
  return { text, params, keyword, kind: keyword };
}

/** A connection as the tests' own user (a superuser), to look at what the host made. */
function superuser(t: TestContext, url: string): postgres.Sql {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  t.after(() => sql.end({ timeout: 5 }));
  return sql;
}

test("postgres: a capsule's session is its own role, which reaches no other role, even with nothing refused before the server", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  // The tests' user is a superuser: the host's user at its most dangerous, as in the audit.
  const backend = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 2, dialect: unrefused });
  const victimName = uniqueCapsule();
  const attackerName = uniqueCapsule();
  const victim = await backend.open({ capsule: victimName, label: 'default' });
  const attacker = await backend.open({ capsule: attackerName, label: 'default' });
  t.after(async () => {
    await victim.drop();
    await attacker.drop();
    await backend.close();
  });
  await victim.execute('CREATE TABLE secrets (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, value TEXT)', []);
  await victim.execute("INSERT INTO secrets (value) VALUES ('hidden')", []);
  const victimRole = schemaName('stratum_test', { capsule: victimName, label: 'default' });
  const attackerRole = schemaName('stratum_test', { capsule: attackerName, label: 'default' });

  assert.deepEqual((await attacker.query('SELECT session_user AS s, current_user AS c', [])).rows, [
    [txt(attackerRole), txt(attackerRole)],
  ]);
  // The audit's probe: become the neighbour's role for the transaction, then read and write its table.
  await rejectsWith(
    () =>
      attacker.transaction([
        { sql: 'SELECT set_config(?, ?, true)', params: [txt('role'), txt(victimRole)] },
        { sql: `INSERT INTO "${victimRole}".secrets (value) SELECT value || ' copied' FROM "${victimRole}".secrets`, params: [] },
      ]),
    'access-denied',
    /permission denied to set role/,
  );
  await rejectsWith(() => attacker.query(`SELECT value FROM "${victimRole}".secrets`, []), 'access-denied');
  for (const sql of [`SET ROLE "${victimRole}"`, 'SET ROLE postgres', 'SET SESSION AUTHORIZATION postgres']) {
    await rejectsWith(() => attacker.execute(sql, []), 'access-denied');
  }
  // Role "none" and RESET ROLE go back to the session user: the capsule's own role, not the host's.
  await attacker.execute('CREATE TABLE loot (who TEXT, superuser TEXT)', []);
  await attacker.transaction([
    { sql: 'SELECT set_config(?, ?, true)', params: [txt('role'), txt('none')] },
    { sql: 'RESET ROLE', params: [] },
    { sql: "INSERT INTO loot SELECT current_user, current_setting('is_superuser')", params: [] },
  ]);
  assert.deepEqual((await attacker.query('SELECT who, superuser FROM loot', [])).rows, [[txt(attackerRole), txt('off')]]);
  await rejectsWith(() => attacker.query("SELECT pg_read_file('/etc/hostname')", []), 'access-denied');
  await rejectsWith(() => attacker.execute(`GRANT "${victimRole}" TO "${attackerRole}"`, []), 'access-denied');
  assert.deepEqual((await victim.query('SELECT value FROM secrets', [])).rows, [[txt('hidden')]]);
});

test("postgres: the host's user needs CREATEROLE, not superuser; what PUBLIC may do beyond a schema is closed, or the database refused", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  const suffix = randomBytes(4).toString('hex');
  const host = `stratum_test_host_${suffix}`;
  const owned = `stratum_test_owned_${suffix}`;
  const foreign = `stratum_test_foreign_${suffix}`;
  await admin.unsafe(`CREATE ROLE ${host} LOGIN CREATEROLE`);
  // The database an operator makes for Stratum, owned by the host's user; and one that is not.
  await admin.unsafe(`CREATE DATABASE ${owned} OWNER ${host}`);
  await admin.unsafe(`CREATE DATABASE ${foreign}`);
  await admin.unsafe(`GRANT CREATE ON DATABASE ${foreign} TO ${host}`);
  const at = (database: string) => {
    const address = new URL(url);
    address.username = host;
    address.password = '';
    address.pathname = `/${database}`;
    return address.href;
  };
  const backend = postgresSql({ url: at(owned), schemaPrefix: 'stratum_test', maxConnections: 2, dialect: unrefused });
  const refused = postgresSql({ url: at(foreign), schemaPrefix: 'stratum_test', maxConnections: 2 });
  const scope = { capsule: uniqueCapsule(), label: 'default' };
  const other = { capsule: uniqueCapsule(), label: 'default' };
  t.after(async () => {
    await Promise.all([backend.close(), refused.close()]);
    await admin.unsafe(`DROP DATABASE IF EXISTS ${owned} WITH (FORCE)`);
    await admin.unsafe(`DROP DATABASE IF EXISTS ${foreign} WITH (FORCE)`);
    // Roles are the cluster's: they outlive their database.
    for (const role of [schemaName('stratum_test', scope), schemaName('stratum_test', other), host]) {
      await admin.unsafe(`DROP ROLE IF EXISTS ${role}`);
    }
    await admin.end({ timeout: 5 });
  });

  const db = await backend.open(scope);
  await db.execute('CREATE TABLE notes (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, title TEXT)', []);
  await db.execute("INSERT INTO notes (title) VALUES ('x')", []);
  // Temporary tables would be outside the schema and its quota; the public schema is every capsule's.
  await rejectsWith(() => db.execute('CREATE TEMP TABLE spill (x TEXT)', []), 'access-denied');
  await rejectsWith(() => db.execute('CREATE TABLE public.shared (x TEXT)', []), 'access-denied');
  await backend.drop(scope);

  await assert.rejects(
    () => refused.open(other),
    (error: Error) => error.message.includes(`REVOKE TEMPORARY ON DATABASE "${foreign}" FROM PUBLIC`),
  );
  // Nothing of the refused database is left behind: its role was made in the same transaction.
  assert.deepEqual([...(await admin`SELECT rolname FROM pg_roles WHERE rolname = ${schemaName('stratum_test', other)}`)], []);
});

/** Drops the roles a test made, best effort: one that owns objects in a database not yet dropped stays for a later hook. */
async function dropRoles(url: string, prefix: string, ...more: string[]): Promise<void> {
  const cleanup = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const roles = await cleanup`SELECT rolname FROM pg_roles WHERE starts_with(rolname, ${`${prefix}_`}) OR rolname = ANY(${more})`;
    for (const { rolname } of roles) await cleanup.unsafe(`DROP ROLE "${rolname}"`).catch(() => {});
  } finally {
    await cleanup.end({ timeout: 5 });
  }
}

/**
 * The host's user as README.md asks for it, CREATEROLE and no more, with a database of its own
 * and a schema prefix of the test's own. Everything is removed at the end, the roles that
 * outlive the database too, on a connection of the hook's own.
 */
async function createroleHost(t: TestContext, url: string): Promise<{ url: string; prefix: string; database: string }> {
  const suffix = randomBytes(4).toString('hex');
  const host = `stratum_test_host_${suffix}`;
  const database = `stratum_test_db_${suffix}`;
  const prefix = `stratum_t${suffix}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE ROLE ${host} LOGIN CREATEROLE`);
    await admin.unsafe(`CREATE DATABASE ${database} OWNER ${host}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  t.after(async () => {
    const cleanup = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await cleanup.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    } finally {
      await cleanup.end({ timeout: 5 });
    }
    await dropRoles(url, prefix, host);
  });
  const address = new URL(url);
  address.username = host;
  address.password = '';
  address.pathname = `/${database}`;
  return { url: address.href, prefix, database };
}

test('postgres: drop(scope) removes a role that another capsule granted privileges to, or that owns large objects, as a CREATEROLE-only user', async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const host = await createroleHost(t, url);
  const backend = postgresSql({ url: host.url, schemaPrefix: host.prefix, maxConnections: 1, dialect: unrefused });
  t.after(() => backend.close());
  const victimScope = { capsule: uniqueCapsule(), label: 'default' };
  const attackerScope = { capsule: uniqueCapsule(), label: 'default' };
  const victim = await backend.open(victimScope);
  const attacker = await backend.open(attackerScope);
  const victimRole = schemaName(host.prefix, victimScope);
  const attackerRole = schemaName(host.prefix, attackerScope);
  // The audit's: a privilege given to the victim's role made its DROP ROLE fail, so its data could never be deleted.
  await attacker.execute(`GRANT USAGE ON SCHEMA "${attackerRole}" TO "${victimRole}"`, []);
  await attacker.execute('CREATE TABLE shared (a BIGINT)', []);
  await attacker.execute(`GRANT SELECT ON shared TO "${victimRole}"`, []);
  await attacker.execute(`ALTER DEFAULT PRIVILEGES IN SCHEMA "${attackerRole}" GRANT SELECT ON TABLES TO "${victimRole}"`, []);
  // And what the victim itself owns outside its schema: a large object, default privileges.
  await victim.query("SELECT lo_from_bytea(0, 'kept') AS oid", []);
  await victim.execute(`ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO "${attackerRole}"`, []);

  await backend.drop(victimScope);
  const superuserAt = new URL(url);
  superuserAt.pathname = `/${host.database}`;
  const look = superuser(t, superuserAt.href);
  assert.deepEqual([...(await look`SELECT rolname FROM pg_roles WHERE rolname = ${victimRole}`)], []);
  assert.deepEqual([...(await look`SELECT oid FROM pg_largeobject_metadata`)], []);
  // The attacker's own things are its own still, and it is dropped as well.
  assert.deepEqual((await attacker.query('SELECT count(*) AS n FROM shared', [])).rows, [[int(0)]]);
  await backend.drop(attackerScope);
  assert.deepEqual([...(await look`SELECT rolname FROM pg_roles WHERE rolname = ${attackerRole}`)], []);
});

test("postgres: drop(scope) removes a capsule's schema and its cluster-wide role, and ends the role's sessions", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const admin = superuser(t, url);
  const backend = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 2 });
  const other = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 2 });
  const scope = { capsule: uniqueCapsule(), label: 'default' };
  t.after(async () => {
    await backend.drop(scope);
    await Promise.all([backend.close(), other.close()]);
  });
  const role = schemaName('stratum_test', scope);
  // Another worker's connection, as an uninstalled capsule's last instance might still hold.
  const elsewhere = await other.open(scope);
  await elsewhere.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT)', []);
  assert.deepEqual([...(await admin`SELECT 1 AS found FROM pg_roles WHERE rolname = ${role}`)], [{ found: 1 }]);
  await backend.drop(scope);
  assert.deepEqual([...(await admin`SELECT nspname FROM pg_namespace WHERE nspname = ${role}`)], []);
  assert.deepEqual([...(await admin`SELECT rolname FROM pg_roles WHERE rolname = ${role}`)], []);
  // Its session was ended, and it cannot log in again.
  await rejectsWith(() => elsewhere.query('SELECT 1 AS one', []), 'other');
  // A capsule that never opened its database, or one dropped already: nothing to do.
  await backend.drop(scope);
  await backend.drop({ capsule: uniqueCapsule(), label: 'default' });
});

test("postgres: a capsule's advisory locks hold up no open, and a lock the host waits for fails its open alone, after lock_timeout", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const prefix = ownPrefix(t, url);
  const backend = postgresSql({ url, schemaPrefix: prefix, maxConnections: 1, dialect: unrefused });
  const fresh = postgresSql({ url, schemaPrefix: prefix, maxConnections: 1, lockTimeoutMs: 500 });
  t.after(() => Promise.all([backend.close(), fresh.close()]));
  const attacker = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  const victim = { capsule: uniqueCapsule(), label: 'default' };
  const other = { capsule: uniqueCapsule(), label: 'default' };
  // The audit's: session-level locks, kept by the pooled connection after the request, on the
  // keys the host serialised on: the victim's database, and the host schema every new backend reads.
  await attacker.query(
    `SELECT pg_advisory_lock(hashtext('stratum-sql:${schemaName(prefix, victim)}')) AS a, pg_advisory_lock(hashtext('stratum-sql:${prefix}_host')) AS b`,
    [],
  );
  await within(5000, fresh.open(victim), "the victim's open");

  // Another host holds the victim's row in the host schema (an open that does not go on): that open
  // fails after lock_timeout, saying why, and an open of another database waits no longer than that.
  const admin = superuser(t, url);
  const held = await admin.reserve();
  await held.unsafe('BEGIN');
  await held.unsafe(`SELECT 1 FROM "${prefix}_host".stores WHERE name = $1 FOR UPDATE`, [schemaName(prefix, victim)]);
  const started = Date.now();
  const [blocked, unblocked] = await Promise.allSettled([within(5000, fresh.open(victim), 'the held open'), fresh.open(other)]);
  assert.equal(blocked.status, 'rejected');
  assert.ok(blocked.reason instanceof SqlError, String(blocked.reason));
  assert.match(blocked.reason.message, /waited 500 ms for a lock/);
  assert.equal(unblocked.status, 'fulfilled');
  assert.ok(Date.now() - started < 4000, `${Date.now() - started} ms`);
  await held.unsafe('ROLLBACK');
  held.release();

  // Two new hosts making the host schema at once both open.
  const racePrefix = ownPrefix(t, url);
  const first = postgresSql({ url, schemaPrefix: racePrefix, maxConnections: 1 });
  const second = postgresSql({ url, schemaPrefix: racePrefix, maxConnections: 1 });
  t.after(() => Promise.all([first.close(), second.close()]));
  await Promise.all([
    first.open({ capsule: uniqueCapsule(), label: 'default' }),
    second.open({ capsule: uniqueCapsule(), label: 'default' }),
  ]);
});

test("postgres: a capsule role's stored password is the one the host derives, as a SCRAM-SHA-256 verifier", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const admin = superuser(t, url);
  const backend = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 2 });
  const db = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  t.after(async () => {
    await db.drop();
    await backend.close();
  });
  const role = (await db.query('SELECT session_user AS me', [])).rows[0]?.[0];
  assert.ok(role?.tag === 'text');
  const [{ key }] = (await admin`SELECT key FROM stratum_test_host.role_key`) as unknown as [{ key: Buffer }];
  const [{ rolpassword, rolcanlogin }] =
    (await admin`SELECT rolpassword, rolcanlogin FROM pg_authid WHERE rolname = ${role.val}`) as unknown as [
      { rolpassword: string; rolcanlogin: boolean },
    ];
  assert.equal(rolcanlogin, true);
  // RFC 5802 and RFC 7677, checked here from the stored verifier's own salt and iterations.
  const match = /^SCRAM-SHA-256\$([0-9]+):([^$]+)\$([^:]+):(.+)$/.exec(rolpassword);
  assert.ok(match, `not a SCRAM verifier: ${rolpassword.slice(0, 14)}`);
  const [, iterations, salt, storedKey, serverKey] = match as unknown as [string, string, string, string, string];
  const password = createHmac('sha256', key).update(`stratum-sql-role:${role.val}`).digest('base64url');
  const salted = pbkdf2Sync(password, Buffer.from(salt, 'base64'), Number(iterations), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  assert.equal(createHash('sha256').update(clientKey).digest('base64'), storedKey);
  assert.equal(createHmac('sha256', salted).update('Server Key').digest('base64'), serverKey);
  // The key is the host's user's alone: no capsule role may read it.
  await rejectsWith(() => db.query('SELECT key FROM stratum_test_host.role_key', []), 'access-denied');
});

test('postgres: two hosts on two databases of one cluster with the same schema_prefix: the second is refused, naming the setting, and resets no password', async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const first = await createroleHost(t, url);
  // The second host's database on the same cluster, its user made the same way, and the first's prefix.
  const second = await createroleHost(t, url);
  const hostA = postgresSql({ url: first.url, schemaPrefix: first.prefix, maxConnections: 1 });
  const hostB = postgresSql({ url: second.url, schemaPrefix: first.prefix, maxConnections: 1 });
  t.after(() => Promise.all([hostA.close(), hostB.close()]));
  // After both databases are gone: a role of the first's prefix that the second made objects for.
  t.after(() => dropRoles(url, first.prefix));
  const scope = { capsule: uniqueCapsule(), label: 'default' };
  const role = schemaName(first.prefix, scope);
  const look = superuser(t, url);
  const password = async () => String((await look`SELECT rolpassword FROM pg_authid WHERE rolname = ${role}`)[0]?.rolpassword);

  const db = await hostA.open(scope);
  await db.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT)', []);
  const before = await password();
  await assert.rejects(
    () => hostB.open(scope),
    (error: unknown) =>
      error instanceof SqlError &&
      error.message.includes(`belongs to the Stratum host of database "${first.database}"`) &&
      error.message.includes('[sql.default] another schema_prefix'),
  );
  assert.equal(await password(), before);
  // The second host's drop leaves the first's role, and its sessions, alone.
  await hostB.drop(scope);
  assert.deepEqual((await db.query('SELECT count(*) AS n FROM notes', [])).rows, [[int(0)]]);
  assert.equal(await password(), before);

  // A role from before roles were marked is this host's: the next open marks it.
  await look.unsafe(`COMMENT ON ROLE "${role}" IS NULL`);
  await hostA.open(scope);
  await assert.rejects(() => hostB.open(scope), /belongs to the Stratum host of database/);
  await hostA.drop(scope);
  assert.deepEqual([...(await look`SELECT 1 FROM pg_roles WHERE rolname = ${role}`)], []);
});

/** The capsule statements of `role` the server is running now (pg_sleep among them). */
async function runningFor(admin: postgres.Sql, role: string): Promise<string[]> {
  const rows = await admin`SELECT query FROM pg_stat_activity WHERE usename = ${role} AND state = 'active'`;
  return rows.map((row) => String(row.query));
}

/** Waits until `check` holds, for `ms` at most: a server's state that follows a client's act a moment later. */
async function eventually(ms: number, check: () => Promise<boolean>, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`${what}: not so after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test("postgres: a capsule role's defaults are the host's, in every database, with the capsule's statement timeout; an open without one keeps it", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const host = await createroleHost(t, url);
  const backend = postgresSql({ url: host.url, schemaPrefix: host.prefix, maxConnections: 1, dialect: unrefused });
  const other = postgresSql({ url: host.url, schemaPrefix: host.prefix, maxConnections: 1 });
  t.after(() => Promise.all([backend.close(), other.close()]));
  const scope = { capsule: uniqueCapsule(), label: 'default' };
  const role = schemaName(host.prefix, scope);
  const look = superuser(t, url);
  const settings = async () =>
    (
      await look`SELECT coalesce(d.datname, '*') AS db, unnest(s.setconfig) AS setting FROM pg_db_role_setting s
      LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = ${role}) ORDER BY 1, 2`
    ).map((row) => `${row.db}: ${row.setting}`);
  const db = await backend.open({ ...scope, statementTimeoutMs: 700 });
  assert.deepEqual(await settings(), ['*: client_connection_check_interval=2000', '*: statement_timeout=700']);
  // Defaults a session gives its own role, also for one database, which RESET ALL alone leaves.
  await db.execute(`ALTER ROLE CURRENT_USER IN DATABASE ${host.database} SET statement_timeout = 0`, []);
  await db.execute("ALTER ROLE CURRENT_USER SET work_mem = '1GB'", []);
  // An open without a timeout (an export's, an import's) resets them and keeps the instance's timeout.
  await other.open(scope);
  assert.deepEqual(await settings(), ['*: client_connection_check_interval=2000', '*: statement_timeout=700']);
  // A transaction that RESETs its statement_timeout runs under the role's.
  await rejectsWith(
    () =>
      db.transaction([
        { sql: 'RESET statement_timeout', params: [] },
        { sql: 'SELECT pg_sleep(5)', params: [] },
      ]),
    'limit-exceeded',
    /statement timeout/,
  );
});

test("postgres: a capsule's statement ends at its timeout even if its session turned the server's off, and none runs on after its pool closes", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const admin = superuser(t, url);
  // Nothing refused, and /*;*/ made a ; after the lexer: a lexer that took two statements for one.
  const misread = (sql: string) => unrefused(sql.replaceAll('/*;*/', ';'));
  const backend = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 2, dialect: misread });
  const scope = { capsule: uniqueCapsule(), label: 'default' };
  const role = schemaName('stratum_test', scope);
  const db = await backend.open({ ...scope, statementTimeoutMs: 300 });
  t.after(async () => {
    await backend.drop(scope);
    await backend.close();
  });
  const started = Date.now();
  await rejectsWith(
    () =>
      db.transaction([
        { sql: 'SET LOCAL statement_timeout = 0', params: [] },
        { sql: 'SELECT pg_sleep(30)', params: [] },
      ]),
    'limit-exceeded',
    /\[resources\] timeout/,
  );
  assert.ok(Date.now() - started < 5000, `${Date.now() - started} ms`);
  await eventually(3000, async () => (await runningFor(admin, role)).length === 0, 'the statement has ended on the server');
  // Two statements in one text are one statement too many for the server itself, whatever the lexer made of them.
  await rejectsWith(() => db.query('SELECT 1 AS a /*;*/ SELECT 2 AS b', []), 'invalid-query', /multiple commands/);

  // An instance's pool closing while a statement runs, one whose session turned off every timeout
  // and the server's check for a client that has gone.
  const untimed = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 1, dialect: unrefused });
  const opened = await untimed.open(scope);
  const long = Promise.resolve(
    opened.transaction([
      { sql: 'SET LOCAL statement_timeout = 0', params: [] },
      { sql: 'SET LOCAL client_connection_check_interval = 0', params: [] },
      { sql: 'SELECT pg_sleep(30)', params: [] },
    ]),
  );
  long.catch(() => {});
  await eventually(3000, async () => (await runningFor(admin, role)).some((query) => query.includes('pg_sleep')), 'the statement runs');
  await within(4000, untimed.close(), 'closing the pool');
  await eventually(2000, async () => (await runningFor(admin, role)).length === 0, 'the statement has ended on the server');
});

test("postgres: a capsule role's statement ends soon after its client has gone (client_connection_check_interval)", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const admin = superuser(t, url);
  const backend = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 1 });
  const scope = { capsule: uniqueCapsule(), label: 'default' };
  const role = schemaName('stratum_test', scope);
  await backend.open(scope);
  t.after(async () => {
    await backend.drop(scope);
    await backend.close();
  });
  // A host that is gone without a word: its connection closes while a statement runs, no cancel sent.
  const [{ key }] = (await admin`SELECT key FROM stratum_test_host.role_key`) as unknown as [{ key: Buffer }];
  const address = new URL(url);
  address.username = role;
  address.password = createHmac('sha256', key).update(`stratum-sql-role:${role}`).digest('base64url');
  const lost = postgres(address.href, { max: 1, onnotice: () => {} });
  lost`SELECT pg_sleep(30)`.catch(() => {});
  await eventually(3000, async () => (await runningFor(admin, role)).some((query) => query.includes('pg_sleep')), 'the statement runs');
  await lost.end({ timeout: 0 });
  await eventually(4000, async () => (await runningFor(admin, role)).length === 0, 'the statement has ended on the server');
});

test("postgres: what a capsule's role could set for itself does not outlive the instance, and it is a member of no role", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const admin = superuser(t, url);
  const backend = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 2, dialect: unrefused });
  const later = postgresSql({ url, schemaPrefix: 'stratum_test', maxConnections: 2 });
  const scope = { capsule: uniqueCapsule(), label: 'default' };
  const neighbour = { capsule: uniqueCapsule(), label: 'default' };
  t.after(async () => {
    await backend.drop(scope);
    await backend.drop(neighbour);
    await Promise.all([backend.close(), later.close()]);
  });
  const db = await backend.open(scope);
  await backend.open(neighbour);
  // A role's own defaults apply to each of its later sessions.
  await db.execute('ALTER ROLE CURRENT_USER SET default_transaction_read_only = on', []);
  // Before PostgreSQL 16 a role's own session could grant the role to another; done here as a superuser.
  await admin.unsafe(`GRANT "${schemaName('stratum_test', neighbour)}" TO "${schemaName('stratum_test', scope)}"`);
  const reopened = await later.open(scope);
  await reopened.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT)', []);
  await rejectsWith(() => db.execute(`SET ROLE "${schemaName('stratum_test', neighbour)}"`, []), 'access-denied');
  assert.deepEqual(
    [
      ...(await admin`SELECT roleid FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = ${schemaName('stratum_test', scope)}`),
    ],
    [],
  );
});

test("postgres: strings end where the dialect's lexer says, even in a database whose default is standard_conforming_strings = off", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  const database = `stratum_test_strings_${randomBytes(4).toString('hex')}`;
  await admin.unsafe(`CREATE DATABASE ${database}`);
  await admin.unsafe(`ALTER DATABASE ${database} SET standard_conforming_strings = off`);
  const address = new URL(url);
  address.pathname = `/${database}`;
  const backend = postgresSql({ url: address.href, schemaPrefix: 'stratum_test', maxConnections: 2 });
  const scope = { capsule: uniqueCapsule(), label: 'default' };
  t.after(async () => {
    await backend.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.unsafe(`DROP ROLE IF EXISTS ${schemaName('stratum_test', scope)}`);
    await admin.end({ timeout: 5 });
  });
  const db = await backend.open(scope);
  // With backslash escapes, '\'' is a whole string and current_setting(...) is SQL the lexer took for a string.
  await rejectsWith(() => db.query("SELECT '\\'' AS a, current_setting('is_superuser') AS b, ' ' AS c -- '", []), 'invalid-query');
  assert.deepEqual((await db.query("SELECT 'a\\b' AS s", [])).rows, [[txt('a\\b')]]);
});

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
      'INSERT INTO temp.stratum_last_insert_id (rowid) VALUES (7)',
      'UPDATE stratum_last_insert_id SET unused = 1',
      'CREATE INDEX temp.i ON stratum_last_insert_id (unused)',
    ]) {
      // The whole temp database is closed to a capsule; the refusal names the host's table when
      // the first thing the statement touches is that table, not temp's own schema table.
      await rejectsWith(
        () => db.execute(sql, []),
        'invalid-query',
        /not allowed in a capsule's database: (stratum_last_insert_id|the temp database)/,
      );
    }
    // Nor any temporary object of its own: the whole temp database is closed to it.
    await rejectsWith(() => db.execute('CREATE TEMP TABLE mine (x)', []), 'invalid-query', /not allowed.*temp database/);
    await rejectsWith(() => db.query('SELECT name FROM temp.sqlite_schema', []), 'invalid-query', /not allowed.*temp database/);
    // The host's own writes to it still happen around each INSERT, with the authorizer's host flag:
    // without them, the upsert that only updated would report the first insert's rowid.
    assert.deepEqual(await db.execute("INSERT INTO notes (title) VALUES ('a')", []), { rowsAffected: 1n, lastInsertId: 1n });
    assert.deepEqual(
      await db.execute("INSERT INTO notes (id, title) VALUES (1, 'b') ON CONFLICT (id) DO UPDATE SET title = excluded.title", []),
      { rowsAffected: 1n, lastInsertId: undefined },
    );
    await db.transaction([{ sql: "INSERT INTO notes (title) VALUES ('c')", params: [] }]);
    assert.deepEqual(await db.execute("INSERT INTO notes (title) VALUES ('d')", []), { rowsAffected: 1n, lastInsertId: 3n });
  } finally {
    await db.drop();
    await backend.close();
  }
});

test("sqlite: a capsule's own table named stratum_last_insert_id is its own to export, clear and import, and inserts go on", async () => {
  const backend = sqliteSql({ dataDir });
  const db = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  const target = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  try {
    // A main table of that name: the capsule reaches it as main.stratum_last_insert_id, since the
    // bare name is the temp database's (refused); the host's statements must not mistake the two.
    await db.execute('CREATE TABLE stratum_last_insert_id (x INTEGER)', []);
    await db.execute('INSERT INTO main.stratum_last_insert_id (x) VALUES (5)', []);
    const lines: string[] = [];
    for await (const line of exportSql(db, 'default')) lines.push(line);
    assert.ok(
      lines.some((line) => line.startsWith('{"row"') && line.includes('5')),
      `the capsule's row is exported:\n${lines.join('')}`,
    );
    await importSql(target, () => lines);
    assert.deepEqual((await target.query('SELECT x FROM main.stratum_last_insert_id', [])).rows, [[int(5)]]);
    await db.clear();
    await rejectsWith(() => db.query('SELECT x FROM main.stratum_last_insert_id', []), 'invalid-query', /no such table/);
    await db.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT)', []);
    assert.deepEqual(await db.execute("INSERT INTO notes (title) VALUES ('a')", []), { rowsAffected: 1n, lastInsertId: 1n });
  } finally {
    await db.drop();
    await target.drop();
    await backend.close();
  }
});
