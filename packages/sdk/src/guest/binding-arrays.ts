// The arrays componentize-js's import bindings return (a keyvalue value, a SQL blob, a chunk of
// a bucket object, what stratum:crypto computes) are made with another global's Uint8Array
// than the capsule's, over a buffer that is the capsule's: in a component that `stratum build`
// made, `value instanceof Uint8Array` was false, and a blob read from SQL could not be bound as
// a parameter again. (stratum dev's fast path, whose engine hands the bindings over differently,
// did not show it.) The SDK hands capsule code its own view of the same bytes instead, and its
// own arrays (Array.from) where a binding's list reaches capsule code.

/** The capsule's own Uint8Array over the same bytes: no copy. */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  if (bytes instanceof Uint8Array) return bytes;
  // TypeScript knows one Uint8Array only; at run time this one is another global's.
  const foreign = bytes as { buffer: ArrayBuffer; byteOffset: number; byteLength: number };
  return new Uint8Array(foreign.buffer, foreign.byteOffset, foreign.byteLength);
}

/** Whether a value is a Uint8Array, whichever global made it. */
export function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array || Object.prototype.toString.call(value) === '[object Uint8Array]';
}
