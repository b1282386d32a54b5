// The checks the key-value store makes on its number arguments before they cross to the host:
// a TTL or a delta that is no whole number would otherwise become a 1 ms TTL (a negative one was
// rounded up to the least the host takes) or BigInt's own RangeError, which names neither the
// call nor the option.
import { isBytes } from './binding-arrays.ts';
import { kindOf } from './errors.ts';

const encoder = new TextEncoder();

/** `ttlMs` as the host takes it: whole milliseconds, at least 1. */
export function ttlArgument(call: string, ttlMs: number): bigint {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs < 1) {
    throw new RangeError(`${call}: ttlMs must be a number of milliseconds, at least 1 (got ${String(ttlMs)})`);
  }
  // A fraction of a millisecond is kept rather than cut: the key lives at least that long.
  return BigInt(Math.ceil(ttlMs));
}

/** An increment's `delta`: a whole number a signed 64-bit counter can add. */
export function deltaArgument(call: string, delta: number): bigint {
  if (typeof delta !== 'number' || !Number.isSafeInteger(delta)) {
    throw new RangeError(`${call}: delta must be a whole number within ±${Number.MAX_SAFE_INTEGER} (got ${String(delta)})`);
  }
  return BigInt(delta);
}

/**
 * A value to store as the host takes it: a string's UTF-8, or the bytes given. The bindings took
 * anything, and a number or an object (`kv.set('k', { a: 1 })`) was stored as no bytes at all.
 * `call` is the method, named in the TypeError (`set`), built into a message only on a failure.
 */
export function valueArgument(method: string, key: string, value: unknown): Uint8Array {
  if (typeof value === 'string') return encoder.encode(value);
  if (isBytes(value)) return value;
  throw new TypeError(
    `kv.${method}(${JSON.stringify(key)}, value): value must be a string or a Uint8Array, not ${kindOf(value)} (setJson stores any JSON value)`,
  );
}

/** The TypeError for a key that is no string, which the bindings said only as "expected a string, received [number]". */
export function keyError(method: string, key: unknown): TypeError | undefined {
  return typeof key === 'string' ? undefined : new TypeError(`kv.${method}(key): key must be a string, not ${kindOf(key)}`);
}
