/// <reference path="../wit/guest.generated.d.ts" />
// A statement's parameters as the WIT takes them, checked first: the bindings lowered whatever
// they were given, and `db.query(sql, { id })` (named parameters, as other drivers take them)
// failed inside them with "can't access property "tag", variant5 is undefined", naming neither
// the call nor what was wrong. Kept apart from sql.ts, which imports the WIT interface, so that
// Node.js can test it.
import type { Value } from 'stratum:sql/database@0.1.0';
import { isBytes } from './binding-arrays.ts';
import { kindOf as kind } from './errors.ts';

/** What a parameter may be. Booleans become 0 and 1; whole numbers are integers, others reals. */
export type SqlParam = null | undefined | boolean | number | bigint | string | Uint8Array;

const PARAMS = 'an array of string, number, bigint, boolean, null or Uint8Array values, one for each ? placeholder in order';

/**
 * `db.query(sql, params): params` and the like: the call and the argument, for a message. Made
 * only for one, as a string built on every query costs the guest's interpreter.
 */
function named(method: string, statement: number | undefined): string {
  return statement === undefined ? `db.${method}(sql, params): params` : `db.${method}(statements): statements[${statement}].params`;
}

function toValue(param: SqlParam, index: number, method: string, statement: number | undefined): Value {
  if (param === null || param === undefined) return { tag: 'null' };
  if (typeof param === 'boolean') return { tag: 'integer', val: param ? 1n : 0n };
  if (typeof param === 'bigint') return { tag: 'integer', val: param };
  if (typeof param === 'number') return Number.isSafeInteger(param) ? { tag: 'integer', val: BigInt(param) } : { tag: 'real', val: param };
  if (typeof param === 'string') return { tag: 'text', val: param };
  if (isBytes(param)) return { tag: 'blob', val: param };
  // Not a SqlParam by its type; JavaScript callers can pass anything.
  const given: unknown = param;
  const fix =
    given instanceof Date
      ? ' (bind date.toISOString() or date.getTime())'
      : typeof given === 'object'
        ? ' (bind JSON.stringify(value) for JSON)'
        : '';
  throw new TypeError(`${named(method, statement)}[${index}] is ${kind(given)}${fix}; params must be ${PARAMS}`);
}

/**
 * The parameters given to `db.<method>` (of its `statement`th statement, for a transaction) as
 * WIT values, or a TypeError naming the call and what is wrong: params that are no array, or the
 * element that is no parameter.
 */
// Plain loops rather than map and forEach: the guest's interpreter runs those as self-hosted JS
// with a call per element, and queries sit in request loops.
export function toValues(params: readonly SqlParam[], method: string, statement?: number): Value[] {
  if (!Array.isArray(params)) {
    const given: unknown = params;
    const hint =
      typeof given === 'object' && given !== null
        ? ' (named parameters are not supported: use ? placeholders and pass their values in order)'
        : '';
    throw new TypeError(`${named(method, statement)} is ${kind(given)}${hint}; params must be ${PARAMS}`);
  }
  const values: Value[] = new Array(params.length);
  for (let i = 0; i < params.length; i++) values[i] = toValue(params[i], i, method, statement);
  return values;
}
