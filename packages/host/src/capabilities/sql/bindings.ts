import type { Logger } from '@stratum/core';
import { type GuestMemory, type HandleTables, HostResource, lowerResourceFunction, settle, type VariantCases } from '../canonical-abi.ts';
import { type ImportObjects, WitError } from '../contract.ts';
import { type MaybePromise, type SqlDatabase, SqlError, type SqlOutcome, type SqlRows, type SqlStatement, type SqlValue } from './types.ts';

/**
 * The import object for `stratum:sql/database` over databases already opened for the capsule's
 * granted labels. Values are jco's shapes (the `value` variant as `{ tag, val }`, s64 as
 * bigint); a function returns a promise exactly when its database's backend is asynchronous.
 */
export interface SqlBindingOptions {
  databases: ReadonlyMap<string, SqlDatabase>;
  logger: Logger;
  /** Called for every quota refusal, so the host can log and count it. */
  onQuota?: (message: string) => void;
  /** Called when the guest opens a label the manifest does not grant (its error case has no text). */
  onNotGranted?: (label: string) => void;
  /**
   * Every database's backend is synchronous. When not, the component is transpiled with JSPI, and
   * query and execute served at the canonical ABI (../canonical-abi.ts) suspend the guest themselves.
   */
  synchronous: boolean;
}

function payload(error: unknown, logger: Logger, onQuota?: (message: string) => void): unknown {
  if (error instanceof WitError) return error.payload;
  if (error instanceof SqlError && error.kind === 'limit-exceeded') onQuota?.(error.message);
  if (error instanceof SqlError) {
    if (error.kind === 'no-such-database' || error.kind === 'access-denied') return { tag: error.kind };
    return { tag: error.kind, val: error.message };
  }
  logger.error({ err: error instanceof Error ? error.message : String(error) }, 'sql operation failed unexpectedly');
  return { tag: 'other', val: 'internal error in the database' };
}

function run<T>(logger: Logger, work: () => MaybePromise<T>, onQuota?: (message: string) => void): MaybePromise<T> {
  try {
    const result = work();
    if (result instanceof Promise) {
      return result.catch((error: unknown) => {
        throw new WitError(payload(error, logger, onQuota));
      });
    }
    return result;
  } catch (error) {
    throw new WitError(payload(error, logger, onQuota));
  }
}

/** Guest values come from the component glue; anything else is refused before the backend sees it. */
function checkParams(params: SqlValue[]): SqlValue[] {
  if (!Array.isArray(params)) throw new SqlError('invalid-query', 'parameters must be a list');
  return params;
}

export function sqlImports(options: SqlBindingOptions): ImportObjects {
  const { databases, onQuota } = options;
  const logger = options.logger;
  const guard = <T>(work: () => MaybePromise<T>) => run(logger, work, onQuota);
  class Connection extends HostResource {
    readonly db: SqlDatabase;
    constructor(db: SqlDatabase) {
      super();
      this.db = db;
    }
    query(sql: string, params: SqlValue[]) {
      return guard(() => this.db.query(sql, checkParams(params)));
    }
    execute(sql: string, params: SqlValue[]) {
      return guard(() => this.db.execute(sql, checkParams(params)));
    }
    transaction(statements: SqlStatement[]) {
      return guard(() =>
        this.db.transaction(statements.map((statement) => ({ sql: statement.sql, params: checkParams(statement.params) }))),
      );
    }
  }
  function open(label: string): Connection {
    const db = databases.get(label);
    if (!db) {
      options.onNotGranted?.(label);
      throw new WitError({ tag: 'no-such-database' });
    }
    return new Connection(db);
  }
  lowerConnection(Connection, !options.synchronous);
  return { 'stratum:sql/database': { Connection, open } };
}

const SQL_ERROR: VariantCases = [
  ['no-such-database', false],
  ['access-denied', false],
  ['invalid-query', true],
  ['constraint-violation', true],
  ['limit-exceeded', true],
  ['other', true],
];

const VALUE_TAGS = ['null', 'integer', 'real', 'text', 'blob'] as const;
/** A `value` in memory: the case at +0, the payload at +8 (s64, f64, or a string's or list's pointer and length). */
const VALUE_SIZE = 16;

function readValues(memory: GuestMemory, ptr: number, count: number): SqlValue[] {
  const values: SqlValue[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const at = ptr + i * VALUE_SIZE;
    const view = memory.view();
    const tag = VALUE_TAGS[view.getUint8(at)];
    if (tag === 'null') values[i] = { tag };
    else if (tag === 'integer') values[i] = { tag, val: view.getBigInt64(at + 8, true) };
    else if (tag === 'real') values[i] = { tag, val: view.getFloat64(at + 8, true) };
    else if (tag === 'text') values[i] = { tag, val: memory.string(view.getUint32(at + 8, true), view.getUint32(at + 12, true)) };
    else if (tag === 'blob') values[i] = { tag, val: memory.bytes(view.getUint32(at + 8, true), view.getUint32(at + 12, true)) };
    else throw new TypeError(`invalid value case ${view.getUint8(at)}`);
  }
  return values;
}

function writeValue(memory: GuestMemory, at: number, value: SqlValue): void {
  const view = memory.view();
  view.setUint8(at, VALUE_TAGS.indexOf(value.tag));
  if (value.tag === 'integer') view.setBigInt64(at + 8, BigInt.asIntN(64, value.val), true);
  else if (value.tag === 'real') view.setFloat64(at + 8, value.val, true);
  else if (value.tag === 'text') memory.writeString(at + 8, value.val);
  else if (value.tag === 'blob') memory.writeList(at + 8, value.val);
}

interface ConnectionMethods {
  query(sql: string, params: SqlValue[]): MaybePromise<SqlRows>;
  execute(sql: string, params: SqlValue[]): MaybePromise<SqlOutcome>;
}

/**
 * `stratum:sql/database`'s query and execute at the canonical ABI. `result<rows, error>`: the
 * case at +0, then the columns list at +4 and the rows list at +12 (each row a list of values),
 * or the error's case at +4 and its string at +8. `result<outcome, error>` aligns its payload to
 * 8: rows-affected at +8, last-insert-id's case at +16 and value at +24, or the error at +8.
 * Errors come from the same methods the glue calls, so they map the same way.
 */
function lowerConnection(type: abstract new (...args: never[]) => ConnectionMethods, asynchronous: boolean): void {
  /** Both take (connection, sql, params) and a return area; they differ in the call and the layout. */
  const lowerStatement = <T>(
    method: object,
    errorAt: number,
    call: (connection: ConnectionMethods, sql: string, params: SqlValue[]) => MaybePromise<T>,
    write: (memory: GuestMemory, out: number, result: T) => void,
  ) =>
    lowerResourceFunction(
      method,
      (handles: HandleTables, memory: GuestMemory) =>
        (handle: number, sqlPtr: number, sqlLen: number, paramsPtr: number, paramsLen: number, out: number) => {
          const connection = handles.borrow(type, handle);
          const sql = memory.string(sqlPtr, sqlLen);
          const params = readValues(memory, paramsPtr, paramsLen);
          return settle(
            memory,
            out,
            out + errorAt,
            SQL_ERROR,
            () => call(connection, sql, params),
            (result) => write(memory, out, result),
          );
        },
      asynchronous,
    );
  lowerStatement(
    type.prototype.query,
    4,
    (connection, sql, params) => connection.query(sql, params),
    (memory, out, result) => {
      memory.view().setUint8(out, 0);
      const columns = memory.allocList(out + 4, result.columns.length, 8, 4);
      for (let i = 0; i < result.columns.length; i++) memory.writeString(columns + i * 8, result.columns[i] as string);
      const rows = memory.allocList(out + 12, result.rows.length, 8, 4);
      for (let r = 0; r < result.rows.length; r++) {
        const row = result.rows[r] as SqlValue[];
        const values = memory.allocList(rows + r * 8, row.length, VALUE_SIZE, 8);
        for (let i = 0; i < row.length; i++) writeValue(memory, values + i * VALUE_SIZE, row[i] as SqlValue);
      }
    },
  );
  lowerStatement(
    type.prototype.execute,
    8,
    (connection, sql, params) => connection.execute(sql, params),
    (memory, out, result) => {
      const view = memory.view();
      view.setUint8(out, 0);
      view.setBigUint64(out + 8, BigInt.asUintN(64, result.rowsAffected), true);
      view.setUint8(out + 16, result.lastInsertId === undefined ? 0 : 1);
      if (result.lastInsertId !== undefined) view.setBigInt64(out + 24, BigInt.asIntN(64, result.lastInsertId), true);
    },
  );
}

export function sqlAsyncImports(imports: readonly string[]): string[] {
  return imports
    .filter((versioned) => versioned.startsWith('stratum:sql/database@'))
    .flatMap((versioned) =>
      ['[method]connection.query', '[method]connection.execute', '[method]connection.transaction'].map((fn) => `${versioned}#${fn}`),
    );
}
