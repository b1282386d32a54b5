/**
 * A header value as wasi:http carries it (bytes) and as Node.js's HTTP server and client carry it
 * (a string of one character per byte: Node.js reads and writes header values as latin1). These
 * are the conversions that keep the bytes on the wire; UTF-8 would turn every byte over 0x7f into
 * two, so a value that was not ASCII reached a capsule altered and went back out altered again.
 */

/**
 * A value from Node.js as the bytes that were on the wire (Node.js makes these strings from
 * bytes, so every character is below 0x100). A short one is cut from Node.js's shared pool
 * rather than given an ArrayBuffer of its own (see `GuestMemory.passingBytes`).
 */
export function headerValueBytes(text: string): Uint8Array {
  return Buffer.from(text, 'latin1');
}

/** Bytes to go on the wire as the string Node.js writes byte for byte. */
export function headerValueText(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
