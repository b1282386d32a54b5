import { mkdirSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { constants, DatabaseSync, type SQLInputValue, type SQLOutputValue, type StatementSync } from 'node:sqlite';
import {
  CHANGES_ROWS,
  checkParamNumber,
  countParams,
  leadingKeyword,
  notAllowed,
  refuseTransactionControl,
  singleStatement,
  statementKind,
} from '../lexer.ts';
import {
  checkParamLimit,
  checkScope,
  checkStatementSize,
  type DatabaseScope,
  DEFAULT_SQL_LIMITS,
  databaseFull,
  resultMeter,
  type SqlBackend,
  type SqlDatabase,
  SqlError,
  type SqlImport,
  type SqlLimits,
  type SqlOutcome,
  type SqlRows,
  type SqlStatement,
  type SqlValue,
  type TableDump,
  tooManyRows,
} from '../types.ts';

export interface SqliteSqlOptions {
  /**
   * The directory the runtime gives the capability (`<data dir>/runtime/capsules/<capsule>/sql`);
   * databases live in `<dataDir>/sql/<capsule>/<label>.sqlite` inside it.
   */
  dataDir: string;
  limits?: Partial<SqlLimits>;
  busyTimeoutMs?: number;
}

/** Pragmas that only read the schema; every other pragma (files, journal, limits) is refused. */
const READ_ONLY_PRAGMAS = new Set([
  'table_info',
  'table_xinfo',
  'table_list',
  'index_list',
  'index_info',
  'index_xinfo',
  'foreign_key_list',
]);

/**
 * The longest string, blob or row a statement may make or read: SQLite's default is 1 GB, and
 * one statement that builds two such values grew the host by 1.8 GB and ran for seconds in
 * native code, where neither the capsule's memory limit nor its CPU limit reaches. 16 MiB is
 * the most a result may carry (spec/wit/README.md), so a longer value could never be read back.
 * SQLite's heap limits (PRAGMA hard_heap_limit) would bound a statement as a whole, but Node's
 * SQLite is built without memory accounting (SQLITE_DEFAULT_MEMSTATUS=0), which they need: set,
 * they change nothing. README.md says what one statement can still hold.
 */
const MAX_VALUE_BYTES = 16 * 1024 * 1024;

/**
 * The embedded default: one SQLite file per capsule and label, WAL mode. The sandbox is
 * SQLite's own authorizer (no ATTACH/DETACH, no pragma but the schema readers, only the main
 * database) plus no extension loading; the size quota is `max_page_count`, so the
 * engine itself refuses to grow past it.
 */
export function sqliteSql(options: SqliteSqlOptions): SqlBackend {
  const limits = { ...DEFAULT_SQL_LIMITS, ...options.limits };
  // One connection per database for this backend: every instance of a worker shares it.
  const handles = new Map<string, DatabaseSync>();
  const opened = new Map<string, SqlDatabase>();
  return {
    type: 'sqlite',
    synchronous: true,
    async open(scope: DatabaseScope) {
      checkScope(scope);
      const known = opened.get(`${scope.capsule}/${scope.label}`);
      if (known) return known;
      const dir = join(options.dataDir, 'sql', scope.capsule);
      mkdirSync(dir, { recursive: true });
      const db = new DatabaseSync(join(dir, `${scope.label}.sqlite`), {
        timeout: options.busyTimeoutMs ?? 5000,
        allowExtension: false,
        enableForeignKeyConstraints: true,
        // No writable_schema, no writes to a virtual table's shadow tables: nothing that corrupts
        // the file on purpose. Node's default in this version; explicit, whatever a later one says.
        defensive: true,
        limits: { length: MAX_VALUE_BYTES, attach: 0 },
      });
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = NORMAL');
      // What a sort or a subquery spills goes to a file (a full disk is an error, SQLITE_FULL), not
      // to the host's memory; whatever the build's default.
      db.exec('PRAGMA temp_store = FILE');
      const pageSize = Number((db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size);
      db.exec(`PRAGMA max_page_count = ${Math.max(2, Math.floor(limits.maxDatabaseBytes / pageSize))}`);
      handles.set(`${scope.capsule}/${scope.label}`, db);
      const database = openDatabase(db, limits, pageSize);
      opened.set(`${scope.capsule}/${scope.label}`, database);
      return database;
    },
    async drop(scope: DatabaseScope) {
      checkScope(scope);
      const key = `${scope.capsule}/${scope.label}`;
      handles.get(key)?.close();
      handles.delete(key);
      opened.delete(key);
      const dir = join(options.dataDir, 'sql', scope.capsule);
      for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(join(dir, `${scope.label}.sqlite${suffix}`), { force: true });
      try {
        rmdirSync(dir);
      } catch {
        // Another label's database is still there, or there was none.
      }
    },
    async close() {
      for (const db of handles.values()) db.close();
      handles.clear();
      opened.clear();
    },
  };
}

function toInput(value: SqlValue): SQLInputValue {
  switch (value.tag) {
    case 'null':
      return null;
    case 'integer':
      return value.val;
    case 'real':
      return value.val;
    case 'text':
      return value.val;
    case 'blob':
      return value.val;
  }
}

function toValue(value: SQLOutputValue): SqlValue {
  if (value === null) return { tag: 'null' };
  if (typeof value === 'bigint') return { tag: 'integer', val: value };
  if (typeof value === 'number') return { tag: 'real', val: value };
  if (typeof value === 'string') return { tag: 'text', val: value };
  return { tag: 'blob', val: new Uint8Array(value) };
}

/**
 * Prepared statements kept per database, by SQL text. Preparing and lexing a point query cost
 * more than running it; capsules repeat the same few statements. SQLite re-prepares a kept
 * statement itself after a schema change, running the authorizer again.
 */
const STATEMENT_CACHE_SIZE = 64;

interface Prepared {
  statement: StatementSync;
  keyword: string;
  /** `statementKind`: what `execute` reports depends on it. */
  kind: string;
  params: number;
}

const TEMP_ACTIONS = new Set([
  constants.SQLITE_CREATE_TEMP_TABLE,
  constants.SQLITE_CREATE_TEMP_INDEX,
  constants.SQLITE_CREATE_TEMP_VIEW,
  constants.SQLITE_CREATE_TEMP_TRIGGER,
]);

/**
 * SQLite's last insert rowid is the connection's, not the statement's: an upsert that only
 * updated, or an insert into a table without a rowid, leaves the previous insert's there. So
 * before each INSERT the host sets it to this value (by inserting it into a temporary table of
 * its own) and reads it back after: unchanged means the statement inserted no row with a rowid.
 * A capsule that gives a row this very rowid itself is the one case taken for none.
 */
const NO_INSERT = -(2n ** 63n);
const NO_INSERT_TABLE = 'stratum_last_insert_id';

const SQLITE_ERROR = 1;
const SQLITE_CONSTRAINT = 19;
const SQLITE_TOOBIG = 18;
const SQLITE_FULL = 13;
const SQLITE_AUTH = 23;
const SQLITE_BUSY = 5;

function openDatabase(db: DatabaseSync, limits: SqlLimits, pageSize: number): SqlDatabase {
  let hostStatement = false;
  let refusal: string | undefined;
  db.setAuthorizer((action, first, second, database) => {
    if (hostStatement) return constants.SQLITE_OK;
    // The temp database is outside the file and so outside max_page_count: a temporary table
    // grew past the quota on the host's disk. It would also outlive the request on this shared
    // connection, where the next instance finds it. `CREATE TABLE temp.t` is an ordinary
    // CREATE TABLE whose database is temp, hence both tests; ALTER TABLE names its database in
    // `first`. The host's own temporary table (NO_INSERT_TABLE) is there too, written by host()
    // statements alone: a capsule's trigger on it would run as the host.
    if (database === 'temp' || TEMP_ACTIONS.has(action) || (action === constants.SQLITE_ALTER_TABLE && first === 'temp')) {
      const hostTable = first?.toLowerCase() === NO_INSERT_TABLE || second?.toLowerCase() === NO_INSERT_TABLE;
      refusal = hostTable ? NO_INSERT_TABLE : 'the temp database (temporary tables, views, indexes and triggers)';
      return constants.SQLITE_DENY;
    }
    switch (action) {
      case constants.SQLITE_ATTACH:
      case constants.SQLITE_DETACH:
        refusal = 'ATTACH and DETACH';
        return constants.SQLITE_DENY;
      case constants.SQLITE_PRAGMA:
        if (first !== null && READ_ONLY_PRAGMAS.has(first.toLowerCase())) return constants.SQLITE_OK;
        refusal = `PRAGMA ${first ?? ''}`.trim();
        return constants.SQLITE_DENY;
      case constants.SQLITE_TRANSACTION:
      case constants.SQLITE_SAVEPOINT:
        refusal = 'transaction control (use transaction())';
        return constants.SQLITE_DENY;
      case constants.SQLITE_FUNCTION:
        if (first === 'load_extension') {
          refusal = 'load_extension';
          return constants.SQLITE_DENY;
        }
        return constants.SQLITE_OK;
      default:
        return constants.SQLITE_OK;
    }
  });

  function failure(error: unknown): SqlError {
    if (error instanceof SqlError) return error;
    const { errcode, message } = error as { errcode?: number; message?: string };
    const primary = typeof errcode === 'number' ? errcode & 0xff : undefined;
    const text = String(message ?? error);
    if (primary === SQLITE_CONSTRAINT) return new SqlError('constraint-violation', text, { cause: error });
    if (primary === SQLITE_FULL) return databaseFull(limits);
    if (primary === SQLITE_TOOBIG)
      return new SqlError('limit-exceeded', `a string, blob or row is over ${MAX_VALUE_BYTES} bytes, the most one value may hold`, {
        cause: error,
      });
    if (primary === SQLITE_AUTH) return notAllowed(refusal ?? 'this statement');
    if (primary === SQLITE_BUSY) return new SqlError('other', 'the database is busy', { cause: error });
    // SQLite's own parameter limit, should it be below maxParams, is a limit too, not a mistake.
    if (primary === SQLITE_ERROR && text.startsWith('too many SQL variables'))
      return new SqlError('limit-exceeded', text, { cause: error });
    return new SqlError(primary === undefined ? 'other' : 'invalid-query', text, { cause: error });
  }

  function host<T>(work: () => T): T {
    hostStatement = true;
    try {
      return work();
    } finally {
      hostStatement = false;
    }
  }

  const noInsert = host(() => {
    db.exec(`CREATE TEMP TABLE IF NOT EXISTS ${NO_INSERT_TABLE} (unused)`);
    return db.prepare(`INSERT OR REPLACE INTO temp.${NO_INSERT_TABLE} (rowid) VALUES (${NO_INSERT})`);
  });

  const prepared = new Map<string, Prepared>();

  function prepare(sql: string, params: SqlValue[]): Prepared {
    let entry = prepared.get(sql);
    if (entry) {
      checkParamNumber(entry.params, params.length);
      // Map order is the eviction order: the newest use goes last.
      prepared.delete(sql);
      prepared.set(sql, entry);
      // A re-prepare after a schema change runs the authorizer during the step.
      refusal = undefined;
      return entry;
    }
    checkStatementSize(sql, limits);
    const tokens = singleStatement(sql, 'sqlite');
    refuseTransactionControl(tokens);
    const keyword = leadingKeyword(tokens);
    const { kind } = statementKind(tokens);
    // VACUUM INTO writes a file, and no authorizer action covers it.
    if (keyword === 'VACUUM') throw notAllowed('VACUUM');
    const count = countParams(tokens);
    checkParamLimit(count, limits);
    checkParamNumber(count, params.length);
    refusal = undefined;
    const statement = db.prepare(sql);
    statement.setReadBigInts(true);
    statement.setReturnArrays(true);
    entry = { statement, keyword, kind, params: count };
    prepared.set(sql, entry);
    if (prepared.size > STATEMENT_CACHE_SIZE) prepared.delete(prepared.keys().next().value as string);
    return entry;
  }

  function inputs(params: SqlValue[]): SQLInputValue[] {
    const values: SQLInputValue[] = new Array(params.length);
    for (let i = 0; i < params.length; i++) values[i] = toInput(params[i] as SqlValue);
    return values;
  }

  /**
   * Runs a kept statement; one that failed is dropped, because node:sqlite reports the same
   * error again on its next run (a statement whose table was dropped still fails once the table
   * exists again).
   */
  function run<T>(sql: string, work: () => T): T {
    try {
      return work();
    } catch (error) {
      prepared.delete(sql);
      throw error;
    }
  }

  function query(sql: string, params: SqlValue[]): SqlRows {
    const { statement, kind } = prepare(sql, params);
    const read = () =>
      run(sql, () => {
        const rows: SqlValue[][] = [];
        const meter = resultMeter(limits);
        // for-of resets the statement when the loop throws, so a kept statement never holds a read open.
        for (const row of statement.iterate(...inputs(params)) as unknown as SQLOutputValue[][]) {
          if (rows.length === limits.maxRows) throw tooManyRows(limits);
          const values: SqlValue[] = new Array(row.length);
          for (let i = 0; i < row.length; i++) values[i] = toValue(row[i] as SQLOutputValue);
          rows.push(values);
          meter(values, rows);
        }
        // Read after stepping: a kept statement re-prepared for a changed schema (SELECT * after
        // ALTER TABLE) has its new columns only once it has run.
        const columns = statement.columns().map((column) => column.name);
        return { columns, rows };
      });
    // A write with RETURNING commits as its statement is reset, even when a limit stopped the
    // reading: in a transaction of its own the call stays all or nothing.
    return CHANGES_ROWS.has(kind) && !db.isTransaction ? atomically(read) : read();
  }

  function execute(sql: string, params: SqlValue[]): SqlOutcome {
    const { statement, kind } = prepare(sql, params);
    const inserts = kind === 'INSERT' || kind === 'REPLACE';
    if (inserts) host(() => noInsert.run());
    const result = run(sql, () => statement.run(...inputs(params)));
    // SQLite's count of changes is also the connection's: any other statement leaves the last one's.
    const rowsAffected = CHANGES_ROWS.has(kind) ? BigInt(result.changes) : 0n;
    const last = BigInt(result.lastInsertRowid);
    return { rowsAffected, lastInsertId: inserts && last !== NO_INSERT ? last : undefined };
  }

  function atomically<T>(work: () => T): T {
    host(() => db.exec('BEGIN IMMEDIATE'));
    try {
      const result = work();
      host(() => db.exec('COMMIT'));
      return result;
    } catch (error) {
      host(() => db.exec('ROLLBACK'));
      throw error;
    }
  }

  function guarded<T>(work: () => T): T {
    try {
      return work();
    } catch (error) {
      throw failure(error);
    }
  }

  /**
   * A quoted name. The host's own statements name a capsule's table as `main.${quote(name)}`: a
   * bare name finds the temp database first, where NO_INSERT_TABLE is, and host() statements
   * may reach it, so a capsule's table of that name was exported, cleared and imported as the
   * host's.
   */
  function quote(name: string): string {
    return `"${name.replaceAll('"', '""')}"`;
  }

  function clear(): void {
    prepared.clear();
    host(() => {
      const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as {
        name: string;
      }[];
      db.exec('PRAGMA foreign_keys = OFF');
      try {
        for (const table of tables) db.exec(`DROP TABLE IF EXISTS main.${quote(table.name)}`);
        for (const { name, type } of db.prepare("SELECT name, type FROM sqlite_schema WHERE type IN ('view', 'trigger')").all() as {
          name: string;
          type: string;
        }[]) {
          db.exec(`DROP ${type.toUpperCase()} IF EXISTS main.${quote(name)}`);
        }
      } finally {
        db.exec('PRAGMA foreign_keys = ON');
      }
    });
  }

  return {
    query: (sql, params) => guarded(() => query(sql, params)),
    execute: (sql, params) => guarded(() => execute(sql, params)),
    transaction: (statements: SqlStatement[]) =>
      guarded(() => {
        if (statements.length > limits.maxStatements) {
          throw new SqlError(
            'limit-exceeded',
            `${statements.length} statements in one transaction, over the limit of ${limits.maxStatements}`,
          );
        }
        return atomically(() => statements.map((statement) => execute(statement.sql, statement.params)));
      }),
    size: () => host(() => Number((db.prepare('PRAGMA page_count').get() as { page_count: number }).page_count) * pageSize),
    async *tables(): AsyncIterable<TableDump> {
      const tables = host(
        () =>
          db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid").all() as {
            name: string;
            sql: string;
          }[],
      );
      for (const table of tables) {
        const indexes = host(
          () =>
            db
              .prepare("SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY rowid")
              .all(table.name) as {
              sql: string;
            }[],
        );
        const statement = host(() => db.prepare(`SELECT * FROM main.${quote(table.name)} ORDER BY rowid`));
        statement.setReadBigInts(true);
        statement.setReturnArrays(true);
        const columns = statement.columns().map((column) => column.name);
        yield {
          name: table.name,
          sql: table.sql,
          indexes: indexes.map((index) => index.sql),
          columns,
          rows: (async function* () {
            for (const row of statement.iterate() as unknown as SQLOutputValue[][]) yield row.map(toValue);
          })(),
        };
      }
    },
    drop: () => clear(),
    clear: () => clear(),
    beginImport: () =>
      guarded(() => {
        host(() => db.exec('BEGIN IMMEDIATE'));
        // Checked at COMMIT instead of at each statement: clear() drops a table before those that
        // refer to it (PRAGMA foreign_keys is fixed inside a transaction), and a snapshot's row
        // may refer to one that comes after it. SQLite resets this at the transaction's end.
        host(() => db.exec('PRAGMA defer_foreign_keys = ON'));
        const session: SqlImport = {
          clear: () => guarded(() => clear()),
          execute: (sql) =>
            guarded(() => {
              execute(sql, []);
            }),
          insertRows: (table, columns, rows) =>
            guarded(() => {
              const statement = host(() =>
                db.prepare(
                  `INSERT INTO main.${quote(table)} (${columns.map(quote).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
                ),
              );
              for (const row of rows) statement.run(...row.map(toInput));
            }),
          commit: () => guarded(() => host(() => db.exec('COMMIT'))),
          // A COMMIT that foreign keys refused leaves the transaction open.
          rollback: () =>
            guarded(() =>
              host(() => {
                if (db.isTransaction) db.exec('ROLLBACK');
              }),
            ),
        };
        return session;
      }),
  };
}
