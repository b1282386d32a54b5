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

/**
 * Where one memory's maximum sits in a prepared module (see `prepareMemoryCaps`), with the limits
 * the module itself declared. `offset` is absent for an imported memory without a maximum: an
 * import without one accepts any memory, and the module that defines the memory carries the cap.
 */
export interface MemoryCapSlot {
  where: string;
  min: number;
  max?: number;
  offset?: number;
}

/** A maximum's width in a prepared module: u32 LEB128 padded to its longest, patched in place. */
const MAX_WIDTH = 5;
/** What a prepared module's memories declare until they are capped: the most a 32-bit memory can be. */
const PREPARED_MAX_PAGES = 65536;

function writePaddedU32(value: number, out: Uint8Array | number[], at: number): void {
  let rest = value;
  for (let index = 0; index < MAX_WIDTH; index++) {
    out[at + index] = (rest & 0x7f) | (index < MAX_WIDTH - 1 ? 0x80 : 0);
    rest = Math.floor(rest / 128);
  }
}

/** Reads limits at the reader and writes them to `out` with a maximum of `MAX_WIDTH` bytes; returns its slot. */
function prepareLimits(reader: Reader, out: number[], where: string, imported: boolean): MemoryCapSlot {
  const flags = reader.bytes[reader.at++];
  if (flags === undefined) throw new Error('unexpected end of module');
  if (flags & 0x08) {
    throw new StratumError('WASM_MEMORY_UNSUPPORTED', `${where} uses custom page sizes, which the host does not run`);
  }
  const hasMax = (flags & 0x01) !== 0;
  const min = readU32(reader);
  const max = hasMax ? readU32(reader) : undefined;
  const slot: MemoryCapSlot = { where, min };
  if (max !== undefined) slot.max = max;
  if (imported && !hasMax) {
    out.push(flags);
    writeU32(min, out);
    return slot;
  }
  out.push(flags | 0x01);
  writeU32(min, out);
  slot.offset = out.length;
  for (let index = 0; index < MAX_WIDTH; index++) out.push(0);
  // A 64-bit memory may declare more; the cap written over it is always less.
  writePaddedU32(Math.min(max ?? PREPARED_MAX_PAGES, PREPARED_MAX_PAGES), out, slot.offset);
  return slot;
}

function copy(reader: Reader, end: number, out: number[]): void {
  for (let index = reader.at; index < end; index++) out.push(reader.bytes[index] as number);
  reader.at = end;
}

function rewriteImports(reader: Reader, end: number, slots: MemoryCapSlot[]): number[] {
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
        slots.push(prepareLimits(reader, out, 'an imported memory', true));
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

function rewriteMemories(reader: Reader, end: number, slots: MemoryCapSlot[]): number[] {
  const out: number[] = [];
  const count = readU32(reader);
  writeU32(count, out);
  for (let entry = 0; entry < count; entry++) slots.push(prepareLimits(reader, out, `memory ${entry}`, false));
  if (reader.at !== end) throw new Error('memory section size mismatch');
  return out;
}

/**
 * Rewrites a core module once so that every memory's maximum can later be capped in place: each
 * maximum becomes `MAX_WIDTH` bytes wide (LEB128 may be padded), and its offset is returned with
 * the limits the module declared. The loader does this when it transpiles a component and keeps
 * the slots beside the module on disk: capping a 12 MB module per host start then writes a few
 * bytes instead of copying all of it (about 40 ms of page faults on a small VM, see loader.ts).
 * Throws `WASM_INVALID` for bytes that are not a module it can read.
 */
export function prepareMemoryCaps(module: Uint8Array): { bytes: Uint8Array; slots: MemoryCapSlot[] } {
  const reader: Reader = { bytes: module, at: 8 };
  if (module[0] !== 0x00 || module[1] !== 0x61 || module[2] !== 0x73 || module[3] !== 0x6d) {
    throw new StratumError('WASM_INVALID', 'not a WebAssembly module (bad magic number)');
  }
  const parts: Uint8Array[] = [module.subarray(0, 8)];
  const slots: MemoryCapSlot[] = [];
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
        const sectionSlots: MemoryCapSlot[] = [];
        const content = id === 2 ? rewriteImports(reader, end, sectionSlots) : rewriteMemories(reader, end, sectionSlots);
        const header: number[] = [id];
        writeU32(content.length, header);
        const section = new Uint8Array(header.length + content.length);
        section.set(header);
        section.set(content, header.length);
        for (const slot of sectionSlots) {
          if (slot.offset !== undefined) slot.offset += length + header.length;
          slots.push(slot);
        }
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
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return { bytes, slots };
}

/**
 * Caps, in place, every memory of a module made by `prepareMemoryCaps` at `maxBytes` (rounded
 * down to whole 64 KiB pages); a lower maximum the module declared is kept. Throws
 * `MEMORY_OVER_LIMIT` when a memory's initial size is already over the cap.
 */
export function applyMemoryCaps(prepared: Uint8Array, slots: readonly MemoryCapSlot[], maxBytes: number): void {
  const capPages = Math.floor(maxBytes / WASM_PAGE);
  for (const slot of slots) {
    if (slot.min > capPages) {
      throw new StratumError(
        'MEMORY_OVER_LIMIT',
        `${slot.where} needs ${slot.min * WASM_PAGE} bytes of memory at start, over its limit of ${capPages * WASM_PAGE}`,
        {
          hint: 'Raise `[resources] memory` in stratum.toml (within the host limit), or make the module start smaller.',
        },
      );
    }
  }
  for (const slot of slots) {
    if (slot.offset === undefined) continue;
    writePaddedU32(Math.min(slot.max ?? capPages, capPages), prepared, slot.offset);
  }
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
  const { bytes, slots } = prepareMemoryCaps(module);
  applyMemoryCaps(bytes, slots, maxBytes);
  return bytes;
}
