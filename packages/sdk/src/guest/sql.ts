/// <reference path="../wit/guest.generated.d.ts" />
import { type Connection, open, type Value } from 'stratum:sql/database@0.1.0';
import { ownBytes } from './binding-arrays.ts';
import { call, toCapabilityError } from './errors.ts';
import { type SqlParam, toValues } from './sql-params.ts';
import { refuseAtTopLevel } from './top-level.ts';

export type { SqlParam };
/** What a column value comes back as; integers outside ±2^53 come back as bigint. */
export type SqlValue = null | number | bigint | string | Uint8Array;
export type Row = Record<string, SqlValue>;

export interface ExecuteResult {
  rowsAffected: number;
  /** The rowid (or serial key) of the last inserted row, when the statement inserted one. */
  lastInsertId: number | bigint | undefined;
}

export interface Statement {
  sql: string;
  params?: readonly SqlParam[];
}

/**
 * A SQL database the manifest grants (`[capabilities] sql = ["default"]`), in SQLite's dialect.
 * Parameters bind to `?` placeholders in order.
 */
export interface Database {
  readonly label: string;
  /** Rows as objects keyed by column name. */
  query<T extends object = Row>(sql: string, params?: readonly SqlParam[]): T[];
  /** Column names and rows as arrays, when names repeat or order matters. */
  queryRaw(sql: string, params?: readonly SqlParam[]): { columns: string[]; rows: SqlValue[][] };
  execute(sql: string, params?: readonly SqlParam[]): ExecuteResult;
  /** Runs the statements as one transaction: all take effect, or none does. */
  transaction(statements: readonly Statement[]): ExecuteResult[];
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function fromValue(value: Value): SqlValue {
  switch (value.tag) {
    case 'null':
      return null;
    case 'integer':
      return value.val >= MIN_SAFE && value.val <= MAX_SAFE ? Number(value.val) : value.val;
    case 'real':
    case 'text':
      return value.val;
    case 'blob':
      return ownBytes(value.val);
  }
}

// Plain loops rather than map and forEach: the guest's interpreter runs those as self-hosted JS
// with a call per element, and queries sit in request loops.
function fromValues(row: readonly Value[]): SqlValue[] {
  const values: SqlValue[] = new Array(row.length);
  for (let i = 0; i < row.length; i++) values[i] = fromValue(row[i] as Value);
  return values;
}

const outcome = (result: { rowsAffected: bigint; lastInsertId?: bigint | undefined }): ExecuteResult => ({
  rowsAffected: Number(result.rowsAffected),
  lastInsertId:
    result.lastInsertId === undefined ? undefined : (fromValue({ tag: 'integer', val: result.lastInsertId }) as number | bigint),
});

const opened = new Map<string, Database>();

/**
 * Opens a SQL database by its label in the manifest; the handle is kept for the instance's life.
 * Call it inside `fetch()`: the modules' top-level code runs while the component is built.
 *
 * @example
 * import { openDatabase } from '@stratum/sdk/sql';
 * const db = openDatabase();
 * db.execute('CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)');
 * const notes = db.query<{ id: number; text: string }>('SELECT id, text FROM notes');
 */
export function openDatabase(label = 'default'): Database {
  refuseAtTopLevel(`openDatabase(${JSON.stringify(label)})`, `let db; … db ??= openDatabase(${JSON.stringify(label)})`);
  const existing = opened.get(label);
  if (existing) return existing;
  const connection: Connection = call('sql', `open("${label}")`, () => open(label));
  const rows = (name: string, sql: string, params: readonly SqlParam[]) => {
    const values = toValues(params, name);
    try {
      return connection.query(sql, values);
    } catch (thrown) {
      throw toCapabilityError('sql', 'query', thrown);
    }
  };
  const database: Database = {
    label,
    query<T extends object = Row>(sql: string, params: readonly SqlParam[] = []): T[] {
      const result = rows('query', sql, params);
      const columns = result.columns;
      const records: T[] = new Array(result.rows.length);
      for (let r = 0; r < result.rows.length; r++) {
        const row = result.rows[r] ?? [];
        const record: Row = {};
        for (let c = 0; c < columns.length; c++) {
          const value = row[c];
          record[columns[c] as string] = value === undefined ? null : fromValue(value);
        }
        records[r] = record as T;
      }
      return records;
    },
    queryRaw(sql, params = []) {
      const result = rows('queryRaw', sql, params);
      const raw: SqlValue[][] = new Array(result.rows.length);
      for (let r = 0; r < result.rows.length; r++) raw[r] = fromValues(result.rows[r] ?? []);
      return { columns: Array.from(result.columns), rows: raw };
    },
    execute(sql, params = []) {
      let result: ReturnType<Connection['execute']>;
      const values = toValues(params, 'execute');
      try {
        result = connection.execute(sql, values);
      } catch (thrown) {
        throw toCapabilityError('sql', 'execute', thrown);
      }
      return outcome(result);
    },
    transaction(statements) {
      if (!Array.isArray(statements)) throw new TypeError('db.transaction(statements): statements must be an array of { sql, params }');
      const lowered = statements.map((statement, index) => ({
        sql: statement.sql,
        params: toValues(statement.params ?? [], 'transaction', index),
      }));
      return call('sql', 'transaction', () => connection.transaction(lowered)).map(outcome);
    },
  };
  opened.set(label, database);
  return database;
}
