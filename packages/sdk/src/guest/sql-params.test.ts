import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type SqlParam, toValues } from './sql-params.ts';

test('parameters become WIT values: null, integers, reals, text, blobs; booleans 1 and 0', () => {
  assert.deepEqual(toValues([null, undefined, true, 7, 1.5, 2n ** 60n, 'a', new Uint8Array([1])], 'query'), [
    { tag: 'null' },
    { tag: 'null' },
    { tag: 'integer', val: 1n },
    { tag: 'integer', val: 7n },
    { tag: 'real', val: 1.5 },
    { tag: 'integer', val: 2n ** 60n },
    { tag: 'text', val: 'a' },
    { tag: 'blob', val: new Uint8Array([1]) },
  ]);
});

test('params that are no array (named parameters, as other drivers take them) are a TypeError naming the call and what params must be', () => {
  assert.throws(
    () => toValues({ id: 3 } as unknown as SqlParam[], 'query'),
    (error: Error) =>
      error instanceof TypeError &&
      error.message ===
        'db.query(sql, params): params is an object (named parameters are not supported: use ? placeholders and pass their values in order); params must be an array of string, number, bigint, boolean, null or Uint8Array values, one for each ? placeholder in order',
  );
  assert.throws(
    () => toValues('x' as unknown as SqlParam[], 'execute'),
    /^TypeError: db\.execute\(sql, params\): params is a string; params must be an array of/,
  );
});

test('an element that is no parameter is a TypeError naming the call and the element', () => {
  assert.throws(
    () => toValues([1, { id: 3 } as unknown as SqlParam], 'queryRaw'),
    /^TypeError: db\.queryRaw\(sql, params\): params\[1\] is an object \(bind JSON\.stringify\(value\) for JSON\); params must be an array of/,
  );
  assert.throws(
    () => toValues([new Date(0) as unknown as SqlParam], 'transaction', 2),
    /^TypeError: db\.transaction\(statements\): statements\[2\]\.params\[0\] is a Date \(bind date\.toISOString\(\) or date\.getTime\(\)\); params must be/,
  );
  assert.throws(() => toValues([() => 1] as unknown as SqlParam[], 'query'), /params\[0\] is a function; params must be/);
});
