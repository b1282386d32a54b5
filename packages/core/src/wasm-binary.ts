/**
 * The framing WebAssembly modules and components share: an 8-byte preamble, then sections, each
 * an id byte and a u32 LEB128 size. Enough to read and add custom sections (id 0: a name, then
 * any bytes), which carry what a component's code does not need to run.
 */

/** A position in a binary being read. */
export interface ByteReader {
  bytes: Uint8Array;
  at: number;
}

/** Reads an unsigned LEB128 number, throwing at the end of the bytes or past 64 bits. */
export function readU32(reader: ByteReader): number {
  let result = 0;
  let shift = 0;
  for (;;) {
    const byte = reader.bytes[reader.at++];
    if (byte === undefined) throw new Error('unexpected end of module');
    result += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return result;
    shift += 7;
    if (shift > 63) throw new Error('LEB128 number too long');
  }
}

export function writeU32(value: number, out: number[]): void {
  let rest = value;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest !== 0) byte |= 0x80;
    out.push(byte);
  } while (rest !== 0);
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const PREAMBLE_BYTES = 8;

/**
 * The custom section a JavaScript capsule's component carries its bundle's source map in
 * (spec/capsule/README.md): hosts map the capsule's stack frames in its logs back to its sources.
 */
export const JS_SOURCE_MAP_SECTION = 'stratum:js-source-map';

/** The binary with a custom section added at its end (allowed anywhere, in modules and components alike). */
export function appendCustomSection(binary: Uint8Array, name: string, payload: Uint8Array): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const header: number[] = [0];
  const nameLength: number[] = [];
  writeU32(nameBytes.length, nameLength);
  writeU32(nameLength.length + nameBytes.length + payload.length, header);
  const out = new Uint8Array(binary.length + header.length + nameLength.length + nameBytes.length + payload.length);
  let at = 0;
  for (const part of [binary, header, nameLength, nameBytes, payload]) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * The payload of the first top-level custom section named `name`, or undefined when there is
 * none or the binary is not a well-framed module or component (this reads untrusted bytes: a
 * section that runs past the end ends the search, it is never read).
 */
export function readCustomSection(binary: Uint8Array, name: string): Uint8Array | undefined {
  if (binary.length < PREAMBLE_BYTES || MAGIC.some((byte, index) => binary[index] !== byte)) return undefined;
  const reader: ByteReader = { bytes: binary, at: PREAMBLE_BYTES };
  const decoder = new TextDecoder();
  try {
    while (reader.at < binary.length) {
      const id = binary[reader.at++];
      const size = readU32(reader);
      const end = reader.at + size;
      if (end > binary.length) return undefined;
      if (id === 0) {
        const nameLength = readU32(reader);
        if (reader.at + nameLength <= end && decoder.decode(binary.subarray(reader.at, reader.at + nameLength)) === name) {
          return binary.subarray(reader.at + nameLength, end);
        }
      }
      reader.at = end;
    }
  } catch {
    return undefined;
  }
  return undefined;
}
