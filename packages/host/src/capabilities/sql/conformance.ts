import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type TestContext, test } from 'node:test';
import { type SqlBackend, type SqlDatabase, SqlError, type SqlLimits, type SqlValue } from './types.ts';

/**
 * The SQL conformance suite: every backend runs exactly these tests, in the SQLite dialect.
 * `makeBackend` returns a new backend instance over the same data as every other one it
 * returns, or undefined (after `t.skip`) when its service is not available.
 *
 * @example
 * sqlConformance('sqlite', async (t, limits) => sqliteSql({ dataDir, limits }));
 */
export type MakeSqlBackend = (t: TestContext, limits?: Partial<SqlLimits>) => Promise<SqlBackend | undefined>;

export function uniqueCapsule(): string {
  return `t${randomBytes(6).toString('hex')}`;
}

export const int = (val: number | bigint): SqlValue => ({ tag: 'integer', val: BigInt(val) });
export const real = (val: number): SqlValue => ({ tag: 'real', val });
export const txt = (val: string): SqlValue => ({ tag: 'text', val });
export const blob = (val: Uint8Array): SqlValue => ({ tag: 'blob', val });
export const nul: SqlValue = { tag: 'null' };

export async function rejectsWith(work: () => unknown, kind: SqlError['kind'], pattern?: RegExp): Promise<void> {
  await assert.rejects(
    async () => work(),
    (error: unknown) => {
      assert.ok(error instanceof SqlError, `expected an SqlError, got ${String(error)}`);
      assert.equal(error.kind, kind, error.message);
      if (pattern) assert.match(error.message, pattern);
      return true;
    },
  );
}

export function sqlConformance(name: string, makeBackend: MakeSqlBackend): void {
  async function open(t: TestContext, limits?: Partial<SqlLimits>, capsule = uniqueCapsule()) {
    const backend = await makeBackend(t, limits);
    if (!backend) return undefined;
    const db = await backend.open({ capsule, label: 'default' });
    t.after(async () => {
      // Not db.drop(): a test may have dropped the database by its scope, closing this handle.
      await backend.drop({ capsule, label: 'default' });
      await backend.close();
    });
    return { backend, db, capsule };
  }

  async function notes(db: SqlDatabase): Promise<void> {
    await db.execute(
      'CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL UNIQUE, score REAL, data BLOB, n INTEGER)',
      [],
    );
  }

  test(`${name}: values of every type round-trip, with column names in order`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { db } = opened;
    await notes(db);
    const bytes = new Uint8Array([0, 1, 254, 255]);
    await db.execute('INSERT INTO notes (title, score, data, n) VALUES (?, ?, ?, ?)', [
      txt('héllo ✓'),
      real(1.5),
      blob(bytes),
      int(9223372036854775807n),
    ]);
    await db.execute('INSERT INTO notes (title, score, data, n) VALUES (?, ?, ?, ?)', [txt('nulls'), nul, nul, nul]);
    const result = await db.query('SELECT id, title, score, data, n FROM notes ORDER BY id', []);
    assert.deepEqual(result.columns, ['id', 'title', 'score', 'data', 'n']);
    assert.deepEqual(result.rows, [
      [int(1), txt('héllo ✓'), real(1.5), blob(bytes), int(9223372036854775807n)],
      [int(2), txt('nulls'), nul, nul, nul],
    ]);
    const computed = await db.query('SELECT count(*) AS c, sum(id) AS s, max(score) AS m FROM notes', []);
    assert.deepEqual(computed, { columns: ['c', 's', 'm'], rows: [[int(2), int(3), real(1.5)]] });
    // A whole number beyond 64 bits is a real (PostgreSQL reads 1e300 as a whole numeric).
    assert.deepEqual((await db.query('SELECT 1e300 AS big', [])).rows, [[real(1e300)]]);
    const empty = await db.query('SELECT title FROM notes WHERE id > ?', [int(100)]);
    assert.deepEqual(empty, { columns: ['title'], rows: [] });
  });

  test(`${name}: execute reports rows affected and the inserted key`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { db } = opened;
    await notes(db);
    const first = await db.execute('INSERT INTO notes (title) VALUES (?)', [txt('a')]);
    const second = await db.execute('INSERT INTO notes (title) VALUES (?)', [txt('b')]);
    assert.deepEqual(first, { rowsAffected: 1n, lastInsertId: 1n });
    assert.deepEqual(second, { rowsAffected: 1n, lastInsertId: 2n });
    assert.deepEqual(await db.execute('UPDATE notes SET score = ? WHERE id >= ?', [real(2), int(1)]), {
      rowsAffected: 2n,
      lastInsertId: undefined,
    });
    assert.deepEqual(await db.execute('DELETE FROM notes WHERE title = ?', [txt('a')]), { rowsAffected: 1n, lastInsertId: undefined });
    const returned = await db.query('INSERT INTO notes (title) VALUES (?) RETURNING id, title', [txt('c')]);
    assert.deepEqual(returned.rows, [[int(3), txt('c')]]);
  });

  test(`${name}: execute reports what its own statement changed and inserted, never an earlier statement's`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { db } = opened;
    const none = (rowsAffected: bigint) => ({ rowsAffected, lastInsertId: undefined });
    await db.execute('CREATE TABLE t1 (id INTEGER PRIMARY KEY, name TEXT)', []);
    for (let i = 1; i <= 5; i++) await db.execute('INSERT INTO t1 (name) VALUES (?)', [txt(`n${i}`)]);
    const upsert = 'INSERT INTO t1 (id, name) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name';
    // An upsert that updated inserted nothing: no key, though the connection's last insert was 5.
    assert.deepEqual(await db.execute(upsert, [int(1), txt('alice2')]), none(1n));
    assert.deepEqual(await db.execute(upsert, [int(6), txt('six')]), { rowsAffected: 1n, lastInsertId: 6n });
    // Of rows inserted and updated, the key is the last inserted one's.
    assert.deepEqual(
      await db.execute('INSERT INTO t1 (id, name) VALUES (7, ?), (2, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name', [
        txt('seven'),
        txt('two'),
      ]),
      { rowsAffected: 2n, lastInsertId: 7n },
    );
    assert.deepEqual(await db.execute('INSERT INTO t1 (id, name) VALUES (7, ?) ON CONFLICT (id) DO NOTHING', [txt('x')]), none(0n));
    assert.deepEqual(await db.execute('DELETE FROM t1 WHERE id = 7', []), none(1n));
    // The same key again, inserted: the key is reported though it equals the previous one.
    assert.deepEqual(await db.execute(upsert, [int(7), txt('again')]), { rowsAffected: 1n, lastInsertId: 7n });
    // Statements that change no rows count none, whatever the statement before changed.
    assert.deepEqual(await db.execute('DELETE FROM t1 WHERE id > 5', []), none(2n));
    assert.deepEqual(await db.execute('CREATE INDEX t1_name ON t1 (name)', []), none(0n));
    assert.deepEqual(await db.execute('UPDATE t1 SET name = name WHERE id > 0', []), none(5n));
    assert.deepEqual(await db.execute('SELECT 1', []), none(0n));
    assert.deepEqual(await db.execute('CREATE TABLE t2 AS SELECT id, name FROM t1', []), none(0n));
    assert.deepEqual(await db.execute('DROP INDEX t1_name', []), none(0n));
    // A table without a rowid has no key to report.
    await db.execute('CREATE TABLE tags (name TEXT PRIMARY KEY) WITHOUT ROWID', []);
    assert.deepEqual(await db.execute('INSERT INTO tags (name) VALUES (?)', [txt('a')]), none(1n));
    // After WITH, the statement is what follows the common table expressions.
    assert.deepEqual(await db.execute('WITH v (n) AS (SELECT ?) INSERT INTO t1 (name) SELECT n FROM v', [txt('with')]), {
      rowsAffected: 1n,
      lastInsertId: 6n,
    });
    assert.deepEqual(
      await db.execute('WITH old (id) AS (SELECT id FROM t1 WHERE id > 5) DELETE FROM t1 WHERE id IN (SELECT id FROM old)', []),
      none(1n),
    );
  });

  test(`${name}: the common SQLite dialect: LIKE ignores ASCII case, IFNULL, INSERT OR IGNORE, upsert, x'' blobs`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { db } = opened;
    await notes(db);
    await db.execute("INSERT INTO notes (title, data) VALUES ('Alpha', x'00ff')", []);
    assert.deepEqual((await db.query("SELECT title FROM notes WHERE title LIKE 'alp%'", [])).rows, [[txt('Alpha')]]);
    assert.deepEqual((await db.query('SELECT IFNULL(score, ?) AS s, data FROM notes', [real(-1)])).rows, [
      [real(-1), blob(new Uint8Array([0, 255]))],
    ]);
    assert.deepEqual(await db.execute('INSERT OR IGNORE INTO notes (title) VALUES (?)', [txt('Alpha')]), {
      rowsAffected: 0n,
      lastInsertId: undefined,
    });
    await db.execute('INSERT INTO notes (title, n) VALUES (?, ?) ON CONFLICT (title) DO UPDATE SET n = excluded.n', [txt('Alpha'), int(7)]);
    assert.deepEqual((await db.query('SELECT n FROM notes WHERE title = ?', [txt('Alpha')])).rows, [[int(7)]]);
    await db.execute('CREATE INDEX notes_score ON notes (score)', []);
    await db.execute('ALTER TABLE notes ADD COLUMN extra TEXT', []);
    await db.execute('DROP INDEX notes_score', []);
    assert.deepEqual((await db.query('SELECT extra FROM notes', [])).rows, [[nul]]);
  });

  test(`${name}: TEXT columns sort and compare by code point (SQLite's BINARY); NULLS FIRST and NULLS LAST place NULL`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { db } = opened;
    await db.execute('CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)', []);
    for (const name of ['bob', 'alice', 'Bob', null, 'Émile', 'émile'])
      await db.execute('INSERT INTO people (name) VALUES (?)', [name === null ? nul : txt(name)]);
    const names = async (sql: string) => (await db.query(sql, [])).rows.map(([value]) => (value?.tag === 'text' ? value.val : null));
    assert.deepEqual(await names('SELECT name FROM people ORDER BY name NULLS FIRST'), [null, 'Bob', 'alice', 'bob', 'Émile', 'émile']);
    assert.deepEqual(await names('SELECT name FROM people ORDER BY name DESC NULLS LAST'), ['émile', 'Émile', 'bob', 'alice', 'Bob', null]);
    assert.deepEqual(await names("SELECT name FROM people WHERE name > 'B' AND name < 'c' ORDER BY id"), ['bob', 'alice', 'Bob']);
    assert.deepEqual((await db.query('SELECT min(name) AS lo, max(name) AS hi FROM people', [])).rows, [[txt('Bob'), txt('émile')]]);
    // LIKE, lower() and upper() know the case of ASCII letters only.
    assert.deepEqual(await names("SELECT name FROM people WHERE name LIKE 'é%' ORDER BY id"), ['émile']);
    assert.deepEqual(await names("SELECT name FROM people WHERE name LIKE 'B%' ORDER BY id"), ['bob', 'Bob']);
    assert.deepEqual(
      (await db.query("SELECT lower(name) AS l, upper(name) AS u FROM people WHERE name LIKE '%mile' ORDER BY id", [])).rows,
      [
        [txt('Émile'), txt('ÉMILE')],
        [txt('émile'), txt('éMILE')],
      ],
    );
    await db.execute("ALTER TABLE people ADD COLUMN nick TEXT DEFAULT 'b'", []);
    await db.execute("UPDATE people SET nick = 'B' WHERE id = 1", []);
    assert.deepEqual(await names('SELECT nick FROM people WHERE id < 3 ORDER BY nick'), ['B', 'b']);
  });

  test(`${name}: a transaction applies all of its statements or none`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { db } = opened;
    await notes(db);
    const outcomes = await db.transaction([
      { sql: 'INSERT INTO notes (title) VALUES (?)', params: [txt('one')] },
      { sql: 'INSERT INTO notes (title) VALUES (?)', params: [txt('two')] },
      { sql: 'UPDATE notes SET n = 1', params: [] },
    ]);
    assert.deepEqual(outcomes, [
      { rowsAffected: 1n, lastInsertId: 1n },
      { rowsAffected: 1n, lastInsertId: 2n },
      { rowsAffected: 2n, lastInsertId: undefined },
    ]);
    await rejectsWith(
      () =>
        db.transaction([
          { sql: 'INSERT INTO notes (title) VALUES (?)', params: [txt('three')] },
          { sql: 'INSERT INTO notes (title) VALUES (?)', params: [txt('one')] },
        ]),
      'constraint-violation',
    );
    assert.deepEqual((await db.query('SELECT title FROM notes ORDER BY id', [])).rows, [[txt('one')], [txt('two')]]);
  });

  test(`${name}: errors are the interface's error cases`, async (t) => {
    const opened = await open(t, { maxRows: 3, maxStatementBytes: 200 });
    if (!opened) return;
    const { db } = opened;
    await notes(db);
    await rejectsWith(() => db.query('SELEC title FROM notes', []), 'invalid-query');
    await rejectsWith(() => db.query('SELECT * FROM missing', []), 'invalid-query', /missing/);
    await rejectsWith(() => db.query('SELECT nope FROM notes', []), 'invalid-query', /nope/);
    await rejectsWith(() => db.query('SELECT title FROM notes WHERE id = ?', []), 'invalid-query', /1 "\?" parameter, 0 given/);
    await rejectsWith(() => db.execute('INSERT INTO notes (title) VALUES (?)', [txt('x'), txt('y')]), 'invalid-query', /2 given/);
    await rejectsWith(() => db.execute('INSERT INTO notes (title) VALUES (?)', [nul]), 'constraint-violation');
    await db.execute('INSERT INTO notes (title) VALUES (?)', [txt('dup')]);
    await rejectsWith(() => db.execute('INSERT INTO notes (title) VALUES (?)', [txt('dup')]), 'constraint-violation');
    await rejectsWith(() => db.execute("INSERT INTO notes (title) VALUES ('a'); DROP TABLE notes", []), 'invalid-query', /one statement/);
    await rejectsWith(() => db.query('SELECT title FROM notes WHERE title = :name', [txt('x')]), 'invalid-query', /only "\?"/);
    await rejectsWith(() => db.execute('BEGIN', []), 'invalid-query', /transaction\(\)/);
    await rejectsWith(() => db.execute('COMMIT', []), 'invalid-query');
    await rejectsWith(() => db.query(`SELECT '${'x'.repeat(300)}'`, []), 'limit-exceeded', /over the limit of 200/);
    for (const title of ['a', 'b', 'c']) await db.execute('INSERT INTO notes (title) VALUES (?)', [txt(title)]);
    await rejectsWith(() => db.query('SELECT title FROM notes', []), 'limit-exceeded', /more than 3 rows/);
    assert.equal((await db.query('SELECT title FROM notes LIMIT 3', [])).rows.length, 3);
    await rejectsWith(() => db.query("SELECT 'unterminated", []), 'invalid-query');
    // A question mark inside a string, a quoted name or a comment is not a parameter.
    assert.deepEqual((await db.query(`SELECT '?' AS "q?" -- ?\n`, [])).rows, [[txt('?')]]);
  });

  test(`${name}: the limits the spec sets: statements of 1 MiB and 999 parameters are accepted, more than the host's limits is limit-exceeded`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { db } = opened;
    await notes(db);
    const MiB = 1024 * 1024;
    const padded = (bytes: number) => {
      const head = "SELECT '";
      const tail = "' AS big";
      return `${head}${'x'.repeat(bytes - head.length - tail.length)}${tail}`;
    };
    assert.equal((await db.query(padded(MiB), [])).rows[0]?.[0]?.tag, 'text');
    await rejectsWith(() => db.query(padded(MiB + 1), []), 'limit-exceeded', /over the limit of 1048576/);
    const marks = (count: number) => Array.from({ length: count }, () => '?').join(', ');
    const ids = (count: number) => Array.from({ length: count }, (_, i) => int(i));
    await db.execute('INSERT INTO notes (title) VALUES (?)', [txt('one')]);
    assert.deepEqual((await db.query(`SELECT count(*) AS c FROM notes WHERE id IN (${marks(999)})`, ids(999))).rows, [[int(1)]]);
    // 32,766 is SQLite's own limit, and the host's on every backend.
    assert.deepEqual((await db.query(`SELECT count(*) AS c FROM notes WHERE id IN (${marks(32_766)})`, ids(32_766))).rows, [[int(1)]]);
    await rejectsWith(
      () => db.query(`SELECT count(*) AS c FROM notes WHERE id IN (${marks(32_767)})`, ids(32_767)),
      'limit-exceeded',
      /32767 "\?" parameters, over the limit of 32766/,
    );
  });

  test(`${name}: an engine's own parameter limit below the host's is limit-exceeded too`, async (t) => {
    const opened = await open(t, { maxParams: 70_000, maxStatementBytes: 1024 * 1024 });
    if (!opened) return;
    const marks = Array.from({ length: 65_535 }, () => '?').join(', ');
    const params = Array.from({ length: 65_535 }, (_, i) => int(i));
    await rejectsWith(() => opened.db.query(`SELECT 1 AS one WHERE 1 IN (${marks})`, params), 'limit-exceeded', /variables|parameters/);
  });

  test(`${name}: a result over the byte limit is limit-exceeded, its text counted in UTF-8 bytes`, async (t) => {
    const opened = await open(t, { maxResultBytes: 100_000 });
    if (!opened) return;
    const { db } = opened;
    // 20,000 bytes a row in 10,000 characters: four rows fit, six do not.
    const wide = txt('é'.repeat(10_000));
    const rows = 'WITH RECURSIVE c (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?) SELECT n, ? AS v FROM c';
    assert.equal((await db.query(rows, [int(4), wide])).rows.length, 4);
    await rejectsWith(() => db.query(rows, [int(6), wide]), 'limit-exceeded', /more than 100000 bytes/);
    await db.execute('CREATE TABLE files (id INTEGER PRIMARY KEY, body BLOB)', []);
    for (let i = 0; i < 3; i++) await db.execute('INSERT INTO files (body) VALUES (?)', [blob(new Uint8Array(40_000))]);
    await rejectsWith(() => db.query('SELECT body FROM files', []), 'limit-exceeded', /more than 100000 bytes/);
    assert.equal((await db.query('SELECT body FROM files LIMIT 2', [])).rows.length, 2);
  });

  test(`${name}: a query that writes is all or nothing: a limit that stops its RETURNING rows undoes its writes`, async (t) => {
    const opened = await open(t, { maxRows: 2 });
    if (!opened) return;
    const { db } = opened;
    await notes(db);
    await rejectsWith(() => db.query("INSERT INTO notes (title) VALUES ('a'), ('b'), ('c') RETURNING id", []), 'limit-exceeded');
    assert.deepEqual((await db.query('SELECT count(*) AS c FROM notes', [])).rows, [[int(0)]]);
    assert.equal((await db.query("INSERT INTO notes (title) VALUES ('a'), ('b') RETURNING id", [])).rows.length, 2);
    assert.deepEqual((await db.query('SELECT count(*) AS c FROM notes', [])).rows, [[int(2)]]);
  });

  test(`${name}: the same statement text follows schema changes and recovers from its errors`, async (t) => {
    // Backends may keep statements prepared by their text; none of that may show.
    const opened = await open(t, { maxRows: 2 });
    if (!opened) return;
    const { db } = opened;
    await notes(db);
    const all = 'SELECT * FROM notes ORDER BY id';
    const byId = 'SELECT title FROM notes WHERE id = ?';
    await db.execute('INSERT INTO notes (title) VALUES (?)', [txt('one')]);
    assert.deepEqual((await db.query(all, [])).columns, ['id', 'title', 'score', 'data', 'n']);
    await db.execute('ALTER TABLE notes ADD COLUMN extra INTEGER DEFAULT 42', []);
    assert.deepEqual(await db.query(all, []), {
      columns: ['id', 'title', 'score', 'data', 'n', 'extra'],
      rows: [[int(1), txt('one'), nul, nul, nul, int(42)]],
    });
    assert.deepEqual((await db.query(byId, [int(1)])).rows, [[txt('one')]]);
    await rejectsWith(() => db.query(byId, []), 'invalid-query', /1 "\?" parameter, 0 given/);
    await db.execute('DROP TABLE notes', []);
    await rejectsWith(() => db.query(all, []), 'invalid-query', /notes/);
    await rejectsWith(() => db.query(byId, [int(1)]), 'invalid-query', /notes/);
    await notes(db);
    assert.deepEqual(await db.query(all, []), { columns: ['id', 'title', 'score', 'data', 'n'], rows: [] });
    for (const title of ['a', 'b', 'c']) await db.execute('INSERT INTO notes (title) VALUES (?)', [txt(title)]);
    await rejectsWith(() => db.query('SELECT title FROM notes ORDER BY title', []), 'limit-exceeded');
    await db.execute('DELETE FROM notes WHERE title = ?', [txt('c')]);
    assert.deepEqual((await db.query('SELECT title FROM notes ORDER BY title', [])).rows, [[txt('a')], [txt('b')]]);
    await rejectsWith(() => db.execute('INSERT INTO notes (title) VALUES (?)', [txt('a')]), 'constraint-violation');
    const inserted = await db.execute('INSERT INTO notes (title) VALUES (?)', [txt('d')]);
    assert.equal(inserted.rowsAffected, 1n);
    assert.equal(typeof inserted.lastInsertId, 'bigint');
  });

  test(`${name}: statements that would leave the sandbox are refused`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { db } = opened;
    await notes(db);
    const refused = [
      "ATTACH DATABASE '/tmp/stratum-escape.db' AS escape",
      'DETACH DATABASE main',
      "PRAGMA journal_mode = 'delete'",
      'PRAGMA writable_schema = 1',
      "VACUUM INTO '/tmp/stratum-escape.db'",
      'SAVEPOINT s1',
      'ROLLBACK',
    ];
    for (const sql of refused) await rejectsWith(() => db.execute(sql, []), 'invalid-query');
    await rejectsWith(() => db.query("SELECT load_extension('/tmp/x.so')", []), 'invalid-query');
    await rejectsWith(() => db.query('PRAGMA database_list', []), 'invalid-query');
    // The database still works after the refusals (no half-open transaction was left behind).
    await db.execute('INSERT INTO notes (title) VALUES (?)', [txt('still fine')]);
    assert.equal((await db.query('SELECT count(*) AS c FROM notes', [])).rows[0]?.[0]?.tag, 'integer');
  });

  test(`${name}: temporary tables and views are refused: they would sit outside the database and its quota`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { db } = opened;
    for (const sql of [
      'CREATE TEMP TABLE spill AS SELECT 1 AS x',
      'CREATE TEMPORARY TABLE spill (x INTEGER)',
      'CREATE TEMP VIEW spill AS SELECT 1 AS x',
      'CREATE TABLE temp.spill (x INTEGER)',
    ]) {
      await rejectsWith(() => db.execute(sql, []), 'invalid-query');
    }
    await rejectsWith(() => db.query('SELECT x FROM spill', []), 'invalid-query');
  });

  test(`${name}: drop(scope) removes a capsule's database without opening it`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { backend, db, capsule } = opened;
    await notes(db);
    await db.execute('INSERT INTO notes (title) VALUES (?)', [txt('gone')]);
    await backend.drop({ capsule, label: 'default' });
    const reopened = await backend.open({ capsule, label: 'default' });
    await rejectsWith(() => reopened.query('SELECT title FROM notes', []), 'invalid-query');
    // Never opened, or dropped already: nothing to do.
    await backend.drop({ capsule, label: 'default' });
    await backend.drop({ capsule: uniqueCapsule(), label: 'default' });
  });

  test(`${name}: capsules never see each other's tables or rows`, async (t) => {
    const first = await open(t);
    if (!first) return;
    const second = await first.backend.open({ capsule: uniqueCapsule(), label: 'default' });
    const otherLabel = await first.backend.open({ capsule: first.capsule, label: 'other' });
    await notes(first.db);
    await first.db.execute('INSERT INTO notes (title) VALUES (?)', [txt('private')]);
    for (const db of [second, otherLabel]) {
      await rejectsWith(() => db.query('SELECT * FROM notes', []), 'invalid-query');
      await notes(db);
      assert.deepEqual((await db.query('SELECT title FROM notes', [])).rows, []);
      await db.execute('INSERT INTO notes (title) VALUES (?)', [txt('theirs')]);
    }
    assert.deepEqual((await first.db.query('SELECT title FROM notes', [])).rows, [[txt('private')]]);
    await second.drop();
    await otherLabel.drop();
  });

  test(`${name}: the database size quota refuses growth and keeps what fits`, async (t) => {
    const opened = await open(t, { maxDatabaseBytes: 512 * 1024 });
    if (!opened) return;
    const { db } = opened;
    await db.execute('CREATE TABLE files (id INTEGER PRIMARY KEY, body BLOB)', []);
    let stored = 0;
    let refused: unknown;
    for (let i = 0; i < 100 && !refused; i++) {
      try {
        await db.execute('INSERT INTO files (body) VALUES (?)', [blob(randomBytes(16 * 1024))]);
        stored++;
      } catch (error) {
        refused = error;
      }
    }
    assert.ok(refused instanceof SqlError && refused.kind === 'limit-exceeded', `expected the quota error, got ${String(refused)}`);
    assert.match(refused.message, /quota/);
    assert.ok(stored > 5 && stored < 40, `stored ${stored} rows of 16 KiB under a 512 KiB quota`);
    assert.deepEqual((await db.query('SELECT count(*) AS c FROM files', [])).rows, [[int(stored)]]);
    await db.execute('DELETE FROM files WHERE id = ?', [int(1)]);
    assert.ok((await db.size()) > 0);
  });

  test(`${name}: concurrent writers through separate connections lose no update`, async (t) => {
    const first = await open(t);
    if (!first) return;
    const otherBackend = await makeBackend(t);
    if (!otherBackend) return;
    t.after(() => otherBackend.close());
    const second = await otherBackend.open({ capsule: first.capsule, label: 'default' });
    await first.db.execute('CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)', []);
    await first.db.execute('CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT)', []);
    await first.db.execute('INSERT INTO counter (id, n) VALUES (1, 0)', []);
    const rounds = 15;
    const ids = await Promise.all(
      [first.db, second].flatMap((db, who) =>
        Array.from({ length: rounds }, async () => {
          const [, logged] = await db.transaction([
            { sql: 'UPDATE counter SET n = n + 1 WHERE id = 1', params: [] },
            { sql: 'INSERT INTO log (who) VALUES (?)', params: [txt(String(who))] },
          ]);
          return logged?.lastInsertId;
        }),
      ),
    );
    assert.deepEqual((await second.query('SELECT n FROM counter', [])).rows, [[int(rounds * 2)]]);
    assert.equal(new Set(ids.map(String)).size, rounds * 2, 'every insert got its own key');
  });

  test(`${name}: tables() describes tables, indexes and rows; clear() drops them`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { db } = opened;
    await notes(db);
    await db.execute('CREATE INDEX notes_n ON notes (n)', []);
    await db.execute('INSERT INTO notes (title, n) VALUES (?, ?)', [txt('x'), int(5)]);
    const dumped = [];
    for await (const table of db.tables()) {
      const rows = [];
      for await (const row of table.rows) rows.push(row);
      dumped.push({ name: table.name, columns: table.columns, rows, indexes: table.indexes.length, sql: table.sql });
    }
    assert.equal(dumped.length, 1);
    assert.equal(dumped[0]?.name, 'notes');
    assert.deepEqual(dumped[0]?.columns, ['id', 'title', 'score', 'data', 'n']);
    assert.deepEqual(dumped[0]?.rows, [[int(1), txt('x'), nul, nul, int(5)]]);
    assert.equal(dumped[0]?.indexes, 1);
    assert.match(dumped[0]?.sql ?? '', /^CREATE TABLE/);
    await db.clear();
    await rejectsWith(() => db.query('SELECT * FROM notes', []), 'invalid-query');
    await notes(db);
    await db.drop();
    const reopened = await opened.backend.open({ capsule: opened.capsule, label: 'default' });
    await rejectsWith(() => reopened.query('SELECT * FROM notes', []), 'invalid-query');
  });
}
