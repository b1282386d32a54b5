import { StratumError } from '@stratum/core';

/**
 * The SQL seam: one interface that every backend (SQLite, PostgreSQL) implements and that
 * `stratum:sql/database` serves. Values use the WIT variant's shape as jco represents it
 * (`{ tag, val }`, s64 as bigint, blobs as Uint8Array), so the bindings pass them through.
 * The dialect is SQLite's; ./README.md says exactly what PostgreSQL accepts of it.
 */
export type MaybePromise<T> = T | Promise<T>;

export type SqlValue =
  | { tag: 'null' }
  | { tag: 'integer'; val: bigint }
  | { tag: 'real'; val: number }
  | { tag: 'text'; val: string }
  | { tag: 'blob'; val: Uint8Array };

export interface SqlRows {
  columns: string[];
  rows: SqlValue[][];
}

export interface SqlOutcome {
  rowsAffected: bigint;
  lastInsertId: bigint | undefined;
}

export interface SqlStatement {
  sql: string;
  params: SqlValue[];
}

export type SqlErrorKind = 'no-such-database' | 'access-denied' | 'invalid-query' | 'constraint-violation' | 'limit-exceeded' | 'other';

/** An error a guest may see: its message never names a path, a URL or a credential. */
export class SqlError extends StratumError {
  readonly kind: SqlErrorKind;
  constructor(kind: SqlErrorKind, message: string, options: { cause?: unknown } = {}) {
    super(kind === 'limit-exceeded' ? 'SQL_QUOTA' : 'SQL_ERROR', message, { ...options, user: kind !== 'other' });
    this.name = 'SqlError';
    this.kind = kind;
  }
}

export interface DatabaseScope {
  capsule: string;
  label: string;
  /**
   * How long one statement may run: the capsule's own timeout, so that a statement never
   * outlives the request it serves (a server-side backend goes on after its client is gone).
   */
  statementTimeoutMs?: number;
}

export interface SqlLimits {
  /** The database's size on disk, as the engine counts it (pages or relation files). */
  maxDatabaseBytes: number;
  /** The longest statement, in UTF-8 bytes. */
  maxStatementBytes: number;
  /** The most `?` parameters one statement has. */
  maxParams: number;
  /** The most rows one query returns. */
  maxRows: number;
  /** The largest result one query returns, in bytes as `resultMeter` counts them. */
  maxResultBytes: number;
  /** The most statements one transaction runs. */
  maxStatements: number;
}

/** What spec/wit/README.md requires a host to accept, or (parameters) SQLite's own limit, which PostgreSQL's backend keeps too. */
export const DEFAULT_SQL_LIMITS: SqlLimits = {
  maxDatabaseBytes: 256 * 1024 * 1024,
  maxStatementBytes: 1024 * 1024,
  maxParams: 32_766,
  maxRows: 10_000,
  maxResultBytes: 16 * 1024 * 1024,
  maxStatements: 1000,
};

/** A table as a snapshot carries it: its SQLite-dialect definition, then its rows. */
export interface TableDump {
  name: string;
  /** `CREATE TABLE ...` in the SQLite dialect. */
  sql: string;
  /** `CREATE [UNIQUE] INDEX ...` statements for the table, SQLite dialect. */
  indexes: string[];
  columns: string[];
  rows: AsyncIterable<SqlValue[]>;
}

export interface SqlDatabase {
  query(sql: string, params: SqlValue[]): MaybePromise<SqlRows>;
  execute(sql: string, params: SqlValue[]): MaybePromise<SqlOutcome>;
  transaction(statements: SqlStatement[]): MaybePromise<SqlOutcome[]>;
  /** Bytes on disk, for metering and the quota. */
  size(): MaybePromise<number>;
  /** Every table with its rows, in creation order, for a snapshot. */
  tables(): AsyncIterable<TableDump>;
  /** Drops every table. */
  clear(): MaybePromise<void>;
  /** Removes the database itself, when the capsule is uninstalled. */
  drop(): MaybePromise<void>;
  /**
   * Begins a snapshot import: one transaction for the clearing and every write after it, so that
   * a record the engine refuses half-way leaves the database as it was. Nothing else may use
   * this database object until it is committed or rolled back.
   */
  beginImport(): MaybePromise<SqlImport>;
}

/** A snapshot import in progress (`SqlDatabase.beginImport`). */
export interface SqlImport {
  /** Drops every table, as `SqlDatabase.clear`. */
  clear(): MaybePromise<void>;
  /** Runs a definition (`CREATE TABLE`, `CREATE INDEX`) as a capsule statement is run: the same sandbox applies. */
  execute(sql: string): MaybePromise<void>;
  /** Inserts rows into a table by column name, bypassing nothing but the SQL text. */
  insertRows(table: string, columns: string[], rows: SqlValue[][]): MaybePromise<void>;
  /** Makes it all take effect; foreign keys are checked here at the latest. */
  commit(): MaybePromise<void>;
  /** Undoes it all; harmless after a failed commit. */
  rollback(): MaybePromise<void>;
}

export interface SqlBackend {
  readonly type: string;
  readonly synchronous: boolean;
  open(scope: DatabaseScope): Promise<SqlDatabase>;
  /**
   * Removes a capsule's database under one label and everything the backend made for it (a
   * file; a schema and its cluster-wide role), without opening it first: for uninstalling.
   * Nothing there is an error.
   */
  drop(scope: DatabaseScope): Promise<void>;
  close(): Promise<void>;
}

const SCOPE_PART = /^[a-z][a-z0-9_-]{0,62}$/;

export function checkScope(scope: DatabaseScope): void {
  for (const [what, value] of [
    ['capsule', scope.capsule],
    ['label', scope.label],
  ] as const) {
    if (!SCOPE_PART.test(value)) {
      throw new StratumError('SQL_SCOPE', `invalid ${what} name "${value}" for a database`, {
        hint: 'Names are 1 to 63 lowercase letters, digits, "-" and "_", starting with a letter.',
        user: false,
      });
    }
  }
}

export function checkStatementSize(sql: string, limits: SqlLimits): void {
  const bytes = Buffer.byteLength(sql);
  if (bytes > limits.maxStatementBytes)
    throw new SqlError('limit-exceeded', `statement is ${bytes} bytes, over the limit of ${limits.maxStatementBytes}`);
}

export function checkParamLimit(count: number, limits: SqlLimits): void {
  if (count > limits.maxParams)
    throw new SqlError('limit-exceeded', `the statement has ${count} "?" parameters, over the limit of ${limits.maxParams}`);
}

function valueBytes(value: SqlValue, exact: boolean): number {
  switch (value.tag) {
    case 'null':
      return 0;
    case 'integer':
    case 'real':
      return 8;
    case 'text':
      // A UTF-16 code unit is at most 3 bytes of UTF-8: the bound costs nothing to take.
      return exact ? Buffer.byteLength(value.val) : value.val.length * 3;
    case 'blob':
      return value.val.byteLength;
  }
}

function rowBytes(row: readonly SqlValue[], exact: boolean): number {
  let bytes = 0;
  for (const value of row) bytes += valueBytes(value, exact);
  return bytes;
}

/**
 * Counts a query's result as it is built, and refuses it past `maxResultBytes`: text as its
 * UTF-8 bytes, blobs as theirs, 8 bytes for a number (spec/wit/README.md). Text is counted by
 * an upper bound until that bound passes the limit, and exactly from then on, so that a small
 * result never pays for encoding every string.
 *
 * @example
 * const meter = resultMeter(limits);
 * for (const row of source) { rows.push(row); meter(row, rows); }
 */
export function resultMeter(limits: SqlLimits): (row: readonly SqlValue[], rows: readonly (readonly SqlValue[])[]) => void {
  let bound = 0;
  let exact: number | undefined;
  return (row, rows) => {
    if (exact === undefined) {
      bound += rowBytes(row, false);
      if (bound <= limits.maxResultBytes) return;
      exact = 0;
      for (const kept of rows) exact += rowBytes(kept, true);
    } else exact += rowBytes(row, true);
    if (exact > limits.maxResultBytes)
      throw new SqlError(
        'limit-exceeded',
        `the query returns more than ${limits.maxResultBytes} bytes; add a LIMIT or select fewer or smaller columns`,
      );
  };
}

export function tooManyRows(limits: SqlLimits): SqlError {
  return new SqlError('limit-exceeded', `the query returns more than ${limits.maxRows} rows; add a LIMIT`);
}

export function databaseFull(limits: SqlLimits): SqlError {
  return new SqlError('limit-exceeded', `the database reached its storage quota of ${limits.maxDatabaseBytes} bytes`);
}

/** The Stratum host a backend serves (`PostgresSqlOptions.host`, `withSqlHost`). */
export interface SqlHostIdentity {
  /** The host's identity key's RFC 7638 thumbprint (`jwkThumbprint`): what tells two hosts apart. */
  key: string;
  /** `[host] name`, for messages. */
  name: string;
}
