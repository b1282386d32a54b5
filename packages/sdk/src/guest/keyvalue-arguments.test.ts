import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deltaArgument, ttlArgument } from './keyvalue-arguments.ts';

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
