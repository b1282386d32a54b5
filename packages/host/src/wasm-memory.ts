import { StratumError } from '@stratum/core';

/**
 * Caps every linear memory of a core Wasm module by rewriting its declared maximum. Worker
 * threads' `resourceLimits` bound the JS heap only, not Wasm memories (checked: a worker with
 * `maxOldGenerationSizeMb: 16` grows a Wasm memory to 1 GiB), so the binary itself must say how
 * far `memory.grow` may go. `memory.grow` past the maximum returns -1, which the guest turns into
 * its own out-of-memory error or trap: that request fails, the host does not.
 */

export const WASM_PAGE = 65536;

interface Reader {
  bytes: Uint8Array;
  at: number;
}

function readU32(reader: Reader): number {
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

function writeU32(value: number, out: number[]): void {
  let rest = value;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest !== 0) byte |= 0x80;
    out.push(byte);
  } while (rest !== 0);
}

function skipName(reader: Reader): void {
  const length = readU32(reader);
  reader.at += length;
}

/** Reads limits at the reader and writes them capped to `out`. */
function capLimits(reader: Reader, out: number[], capPages: number, where: string, imported: boolean): void {
  const flags = reader.bytes[reader.at++];
  if (flags === undefined) throw new Error('unexpected end of module');
  if (flags & 0x08) {
    throw new StratumError('WASM_MEMORY_UNSUPPORTED', `${where} uses custom page sizes, which the host does not run`);
  }
  const hasMax = (flags & 0x01) !== 0;
  const min = readU32(reader);
  const max = hasMax ? readU32(reader) : undefined;
  if (min > capPages) {
    throw new StratumError(
      'MEMORY_OVER_LIMIT',
      `${where} needs ${min * WASM_PAGE} bytes of memory at start, over its limit of ${capPages * WASM_PAGE}`,
      {
        hint: 'Raise `[resources] memory` in stratum.toml (within the host limit), or make the module start smaller.',
      },
    );
  }
  // An imported memory without a maximum accepts any memory; the defining module carries the cap.
  if (imported && !hasMax) {
    out.push(flags);
    writeU32(min, out);
    return;
  }
  const capped = max === undefined ? capPages : Math.min(max, capPages);
  out.push(flags | 0x01);
  writeU32(min, out);
  writeU32(capped, out);
}

function copy(reader: Reader, end: number, out: number[]): void {
  for (let index = reader.at; index < end; index++) out.push(reader.bytes[index] as number);
  reader.at = end;
}

function rewriteImports(reader: Reader, end: number, capPages: number): number[] {
  const out: number[] = [];
  const count = readU32(reader);
  writeU32(count, out);
  for (let entry = 0; entry < count; entry++) {
    const start = reader.at;
    skipName(reader);
    skipName(reader);
    const kind = reader.bytes[reader.at++];
    copy({ bytes: reader.bytes, at: start }, reader.at, out);
    switch (kind) {
      case 0x00:
        copy(reader, skipU32(reader), out);
        break;
      case 0x01: {
        const tableStart = reader.at;
        reader.at++;
        const flags = reader.bytes[reader.at++] as number;
        readU32(reader);
        if (flags & 0x01) readU32(reader);
        copy({ bytes: reader.bytes, at: tableStart }, reader.at, out);
        break;
      }
      case 0x02:
        capLimits(reader, out, capPages, 'an imported memory', true);
        break;
      case 0x03: {
        const globalStart = reader.at;
        reader.at += 2;
        copy({ bytes: reader.bytes, at: globalStart }, reader.at, out);
        break;
      }
      case 0x04: {
        const tagStart = reader.at;
        reader.at++;
        readU32(reader);
        copy({ bytes: reader.bytes, at: tagStart }, reader.at, out);
        break;
      }
      default:
        throw new Error(`unknown import kind ${kind}`);
    }
  }
  if (reader.at !== end) throw new Error('import section size mismatch');
  return out;
}

function skipU32(reader: Reader): number {
  const start = reader.at;
  readU32(reader);
  const end = reader.at;
  reader.at = start;
  return end;
}

function rewriteMemories(reader: Reader, end: number, capPages: number): number[] {
  const out: number[] = [];
  const count = readU32(reader);
  writeU32(count, out);
  for (let entry = 0; entry < count; entry++) capLimits(reader, out, capPages, `memory ${entry}`, false);
  if (reader.at !== end) throw new Error('memory section size mismatch');
  return out;
}

/**
 * Returns a copy of `module` (a core module's bytes) in which no memory may grow past
 * `maxBytes` (rounded down to whole 64 KiB pages). Throws `MEMORY_OVER_LIMIT` when a memory's
 * initial size is already over it.
 *
 * @example
 * const capped = capMemory(coreBytes, 128 * 1024 * 1024);
 * const module = await WebAssembly.compile(capped);
 */
export function capMemory(module: Uint8Array, maxBytes: number): Uint8Array {
  const capPages = Math.floor(maxBytes / WASM_PAGE);
  const reader: Reader = { bytes: module, at: 8 };
  if (module[0] !== 0x00 || module[1] !== 0x61 || module[2] !== 0x73 || module[3] !== 0x6d) {
    throw new StratumError('WASM_INVALID', 'not a WebAssembly module (bad magic number)');
  }
  const parts: Uint8Array[] = [module.subarray(0, 8)];
  let length = 8;
  try {
    while (reader.at < module.length) {
      const sectionStart = reader.at;
      const id = module[reader.at++] as number;
      const size = readU32(reader);
      const contentStart = reader.at;
      const end = contentStart + size;
      if (end > module.length) throw new Error('section runs past the end of the module');
      if (id === 2 || id === 5) {
        const content = id === 2 ? rewriteImports(reader, end, capPages) : rewriteMemories(reader, end, capPages);
        const header: number[] = [id];
        writeU32(content.length, header);
        const section = new Uint8Array(header.length + content.length);
        section.set(header);
        section.set(content, header.length);
        parts.push(section);
        length += section.length;
      } else {
        parts.push(module.subarray(sectionStart, end));
        length += end - sectionStart;
      }
      reader.at = end;
    }
  } catch (error) {
    if (error instanceof StratumError) throw error;
    throw new StratumError('WASM_INVALID', `cannot read the core module: ${(error as Error).message}`);
  }
  const result = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    result.set(part, offset);
    offset += part.length;
  }
  return result;
}
