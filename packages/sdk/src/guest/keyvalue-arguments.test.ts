import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deltaArgument, keyError, ttlArgument, valueArgument } from './keyvalue-arguments.ts';

test('a TTL is whole milliseconds, at least 1, rounded up; anything else is a RangeError naming the call and the option', () => {
  assert.equal(ttlArgument('set("k")', 60_000), 60_000n);
  assert.equal(ttlArgument('set("k")', 1.2), 2n);
  for (const bad of [0, -5, 0.5, Number.NaN, Number.POSITIVE_INFINITY, '100' as unknown as number]) {
    assert.throws(
      () => ttlArgument('set("k")', bad),
      (error: Error) =>
        error instanceof RangeError && /^set\("k"\): ttlMs must be a number of milliseconds, at least 1/.test(error.message),
      String(bad),
    );
  }
});

test('an increment delta is a whole number; a fraction or a non-number is a RangeError naming the call', () => {
  assert.equal(deltaArgument('increment("n")', -3), -3n);
  assert.equal(deltaArgument('increment("n")', 0), 0n);
  for (const bad of [1.5, Number.NaN, 2 ** 60, '1' as unknown as number]) {
    assert.throws(
      () => deltaArgument('increment("n")', bad),
      (error: Error) => error instanceof RangeError && /^increment\("n"\): delta must be a whole number within ±/.test(error.message),
      String(bad),
    );
  }
});

test('a value to store is a string or bytes; anything else, which the bindings stored as no bytes, is a TypeError naming the call', () => {
  assert.deepEqual(valueArgument('set', 'k', 'hé'), new TextEncoder().encode('hé'));
  const bytes = new Uint8Array([1, 2]);
  assert.equal(valueArgument('set', 'k', bytes), bytes);
  for (const [bad, kind] of [
    [{ a: 1 }, 'an object'],
    [5, 'a number'],
    [[1, 2], 'an array'],
    [null, 'null'],
  ] as const) {
    assert.throws(
      () => valueArgument('setMany', 'k', bad),
      (error: Error) =>
        error instanceof TypeError &&
        error.message === `kv.setMany("k", value): value must be a string or a Uint8Array, not ${kind} (setJson stores any JSON value)`,
      kind,
    );
  }
});

test('a key that is no string is named as such, for the call', () => {
  assert.equal(keyError('get', 'k'), undefined);
  const error = keyError('has', 42);
  assert.ok(error instanceof TypeError);
  assert.equal(error.message, 'kv.has(key): key must be a string, not a number');
});
