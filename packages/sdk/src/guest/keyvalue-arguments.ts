// The checks the key-value store makes on its number arguments before they cross to the host:
// a TTL or a delta that is no whole number would otherwise become a 1 ms TTL (a negative one was
// rounded up to the least the host takes) or BigInt's own RangeError, which names neither the
// call nor the option.

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
