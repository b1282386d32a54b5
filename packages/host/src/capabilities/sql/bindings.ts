import type { Logger } from '@stratum/core';
import { type ImportObjects, WitError } from '../contract.ts';
import { type MaybePromise, type SqlDatabase, SqlError, type SqlStatement, type SqlValue } from './types.ts';

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
  class Connection {
    readonly db: SqlDatabase;
    constructor(db: SqlDatabase) {
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
    if (!db) throw new WitError({ tag: 'no-such-database' });
    return new Connection(db);
  }
  return { 'stratum:sql/database': { Connection, open } };
}

export function sqlAsyncImports(imports: readonly string[]): string[] {
  return imports
    .filter((versioned) => versioned.startsWith('stratum:sql/database@'))
    .flatMap((versioned) =>
      ['[method]connection.query', '[method]connection.execute', '[method]connection.transaction'].map((fn) => `${versioned}#${fn}`),
    );
}
