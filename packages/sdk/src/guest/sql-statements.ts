/// <reference path="../wit/guest.generated.d.ts" />
import type { Connection, Value } from 'stratum:sql/database@0.1.0';
import { witError } from './errors.ts';

/** Texts seen on a connection, with their prepared numbers; past this many it starts again. */
const KEPT_STATEMENTS = 256;
const SEEN_ONCE = -1;

/**
 * Runs statements on a connection, the ones it runs again by a prepared number: the bindings copy
 * a string into the host a character at a time (about 0.15 us each in the interpreter), so a query
 * of 100 characters spent 15 us sending its text. A statement is prepared on its second use, so
 * that one run once (a CREATE TABLE, SQL built around its values) costs no second call.
 */
export function preparedStatements(connection: Pick<Connection, 'query' | 'execute' | 'prepare' | 'queryPrepared' | 'executePrepared'>) {
  const seen = new Map<string, number>();
  const numberOf = (sql: string): number | undefined => {
    const known = seen.get(sql);
    if (known === undefined) {
      if (seen.size >= KEPT_STATEMENTS) seen.clear();
      seen.set(sql, SEEN_ONCE);
      return undefined;
    }
    if (known !== SEEN_ONCE) return known;
    const number = connection.prepare(sql);
    seen.set(sql, number);
    return number;
  };
  /** Rethrows all but the host's having forgotten a number: then the text this once, and a new number next time. */
  const forgotten = (sql: string, thrown: unknown) => {
    if (witError(thrown)?.tag !== 'unknown-statement') throw thrown;
    seen.set(sql, SEEN_ONCE);
  };
  return {
    query(sql: string, values: Value[]) {
      const number = numberOf(sql);
      if (number !== undefined) {
        try {
          return connection.queryPrepared(number, values);
        } catch (thrown) {
          forgotten(sql, thrown);
        }
      }
      return connection.query(sql, values);
    },
    execute(sql: string, values: Value[]) {
      const number = numberOf(sql);
      if (number !== undefined) {
        try {
          return connection.executePrepared(number, values);
        } catch (thrown) {
          forgotten(sql, thrown);
        }
      }
      return connection.execute(sql, values);
    },
  };
}
