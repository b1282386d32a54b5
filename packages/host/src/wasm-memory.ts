import { type ByteReader, readU32, StratumError, writeU32 } from '@stratum/core';
import { HOST_MEMORY_IMPORT, type HostedMemory, OS_PAGE } from './hosted-memory.ts';

export { HOST_MEMORY_IMPORT, type HostedMemory };

/**
 * Caps every linear memory of a core Wasm module by rewriting its declared maximum. Worker
 * threads' `resourceLimits` bound the JS heap only, not Wasm memories (checked: a worker with
 * `maxOldGenerationSizeMb: 16` grows a Wasm memory to 1 GiB), so the binary itself must say how
 * far `memory.grow` may go. `memory.grow` past the maximum returns -1, which the guest turns into
 * its own out-of-memory error or trap: that request fails, the host does not.
 */

export const WASM_PAGE = 65536;

function skipName(reader: ByteReader): void {
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
  /** Set for the module's own memory made an import from `HOST_MEMORY_IMPORT`: the pages its data segments fill. */
  hosted?: { touch: [number, number][] };
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
function prepareLimits(reader: ByteReader, out: number[], where: string, imported: boolean): MemoryCapSlot {
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

function copy(reader: ByteReader, end: number, out: number[]): void {
  for (let index = reader.at; index < end; index++) out.push(reader.bytes[index] as number);
  reader.at = end;
}

/**
 * The most elements a table may hold. `table.grow` is not bounded by a worker's `resourceLimits`
 * as a JS heap is: growing a table past what the heap can hold aborts the whole host process
 * (V8's "CALL_AND_RETRY_LAST Allocation failed", measured: a worker with the capsule threads'
 * 256 MiB heap survives one table grown to 4 million elements in steps and dies at 6 million,
 * taking the host with it). A component's tables together are kept far below that
 * (`MAX_COMPONENT_TABLE_ELEMENTS`); StarlingMonkey's largest table has about 7,800 elements.
 */
export const MAX_TABLE_ELEMENTS = 250_000;
/** The most elements all of a component's own tables may reach together (see `MAX_TABLE_ELEMENTS`). */
export const MAX_COMPONENT_TABLE_ELEMENTS = 2_000_000;

/** Copies a reference type (`funcref`, `externref`, or a typed `(ref null? ht)`) from the reader to `out`. */
function copyRefType(reader: ByteReader, out: number[]): void {
  const code = reader.bytes[reader.at++];
  if (code === undefined) throw new Error('unexpected end of module');
  out.push(code);
  // (ref ht) and (ref null ht): a heap type follows, an s33 LEB128.
  if (code === 0x63 || code === 0x64) {
    let byte: number;
    do {
      byte = reader.bytes[reader.at++] as number;
      if (byte === undefined) throw new Error('unexpected end of module');
      out.push(byte);
    } while (byte & 0x80);
  }
}

/**
 * Reads a table's limits and writes them with the maximum `MAX_TABLE_ELEMENTS` at most; returns
 * the maximum written, or undefined for an imported table without one (the module that defines
 * the table carries the cap, and an import without a maximum accepts any table).
 */
function capTableLimits(reader: ByteReader, out: number[], where: string, imported: boolean): number | undefined {
  const flags = reader.bytes[reader.at++];
  if (flags === undefined) throw new Error('unexpected end of module');
  if (flags & ~0x01) throw new StratumError('WASM_TABLE_UNSUPPORTED', `${where} is shared or 64-bit, which the host does not run`);
  const min = readU32(reader);
  const max = flags & 0x01 ? readU32(reader) : undefined;
  if (min > MAX_TABLE_ELEMENTS) {
    throw new StratumError('WASM_TABLE_OVER_LIMIT', `${where} needs ${min} elements at start, over the limit of ${MAX_TABLE_ELEMENTS}`, {
      hint: 'A table that large would hold more of the host than any capsule may; make the module declare a smaller one.',
    });
  }
  if (imported && max === undefined) {
    out.push(flags);
    writeU32(min, out);
    return undefined;
  }
  const capped = Math.min(max ?? MAX_TABLE_ELEMENTS, MAX_TABLE_ELEMENTS);
  out.push(0x01);
  writeU32(min, out);
  writeU32(capped, out);
  return capped;
}

/** Skips a table's initialiser: `ref.null ht`, `ref.func f` or `global.get g`, then `end`. */
function skipTableInitialiser(reader: ByteReader): void {
  for (;;) {
    const op = reader.bytes[reader.at++];
    if (op === 0x0b) return;
    if (op === 0xd0) {
      while ((reader.bytes[reader.at++] as number) & 0x80);
    } else if (op === 0xd2 || op === 0x23) {
      readU32(reader);
    } else {
      throw new Error(`unexpected opcode ${op} in a table's initialiser`);
    }
  }
}

function rewriteTables(reader: ByteReader, end: number, tables: { elements: number }): number[] {
  const out: number[] = [];
  const count = readU32(reader);
  writeU32(count, out);
  for (let entry = 0; entry < count; entry++) {
    // `0x40 0x00 reftype limits expr`: a table with an initialiser (function references).
    const initialised = reader.bytes[reader.at] === 0x40;
    if (initialised) {
      out.push(0x40, reader.bytes[reader.at + 1] as number);
      reader.at += 2;
    }
    copyRefType(reader, out);
    tables.elements += capTableLimits(reader, out, `table ${entry}`, false) ?? 0;
    if (initialised) {
      const start = reader.at;
      skipTableInitialiser(reader);
      copy({ bytes: reader.bytes, at: start }, reader.at, out);
    }
  }
  if (reader.at !== end) throw new Error('table section size mismatch');
  return out;
}

/** The module's own memory, to be imported from `HOST_MEMORY_IMPORT` instead (see `hostableMemory`). */
interface MemoryToHost {
  /** Where its limits start in the module. */
  limitsAt: number;
  touch: [number, number][];
}

const HOST_MEMORY_NAMES = [HOST_MEMORY_IMPORT.module, HOST_MEMORY_IMPORT.name].map((name) => new TextEncoder().encode(name));

function appendHostMemoryImport(module: Uint8Array, hosted: MemoryToHost, out: number[], slots: MemoryCapSlot[]): void {
  for (const bytes of HOST_MEMORY_NAMES) {
    writeU32(bytes.length, out);
    out.push(...bytes);
  }
  out.push(0x02);
  // Written with a maximum, as the module's own memory was: the import's maximum is the cap.
  const slot = prepareLimits({ bytes: module, at: hosted.limitsAt }, out, 'memory 0', false);
  slot.hosted = { touch: hosted.touch };
  slots.push(slot);
}

/** Skips an import's descriptor other than a memory's (`kind` read already). */
function skipImportDescriptor(reader: ByteReader, kind: number | undefined): void {
  switch (kind) {
    case 0x00:
      readU32(reader);
      break;
    case 0x01: {
      reader.at++;
      const flags = reader.bytes[reader.at++] as number;
      readU32(reader);
      if (flags & 0x01) readU32(reader);
      break;
    }
    case 0x03:
      reader.at += 2;
      break;
    case 0x04:
      reader.at++;
      readU32(reader);
      break;
    default:
      throw new Error(`unknown import kind ${kind}`);
  }
}

function rewriteImports(reader: ByteReader, end: number, slots: MemoryCapSlot[], hosted?: MemoryToHost): number[] {
  const out: number[] = [];
  const count = readU32(reader);
  writeU32(count + (hosted ? 1 : 0), out);
  for (let entry = 0; entry < count; entry++) {
    const start = reader.at;
    skipName(reader);
    skipName(reader);
    const kind = reader.bytes[reader.at++];
    if (kind === 0x02) {
      copy({ bytes: reader.bytes, at: start }, reader.at, out);
      slots.push(prepareLimits(reader, out, 'an imported memory', true));
    } else if (kind === 0x01) {
      copy({ bytes: reader.bytes, at: start }, reader.at, out);
      copyRefType(reader, out);
      capTableLimits(reader, out, 'an imported table', true);
    } else {
      skipImportDescriptor(reader, kind);
      copy({ bytes: reader.bytes, at: start }, reader.at, out);
    }
  }
  if (reader.at !== end) throw new Error('import section size mismatch');
  if (hosted) appendHostMemoryImport(reader.bytes, hosted, out, slots);
  return out;
}

function rewriteMemories(reader: ByteReader, end: number, slots: MemoryCapSlot[]): number[] {
  const out: number[] = [];
  const count = readU32(reader);
  writeU32(count, out);
  for (let entry = 0; entry < count; entry++) slots.push(prepareLimits(reader, out, `memory ${entry}`, false));
  if (reader.at !== end) throw new Error('memory section size mismatch');
  return out;
}

interface Section {
  id: number;
  start: number;
  contentStart: number;
  end: number;
}

function readSections(module: Uint8Array): Section[] {
  const sections: Section[] = [];
  const reader: ByteReader = { bytes: module, at: 8 };
  while (reader.at < module.length) {
    const start = reader.at;
    const id = module[reader.at++] as number;
    const size = readU32(reader);
    const contentStart = reader.at;
    const end = contentStart + size;
    if (end > module.length) throw new Error('section runs past the end of the module');
    sections.push({ id, start, contentStart, end });
    reader.at = end;
  }
  return sections;
}

/** Skips a constant expression; returns its value when it is a lone `i32.const`, else undefined. */
function readOffset(reader: ByteReader): number | undefined {
  let value: number | undefined;
  let ops = 0;
  for (;;) {
    const op = reader.bytes[reader.at++];
    ops++;
    if (op === 0x0b) return ops === 2 ? value : undefined;
    if (op === 0x41 || op === 0x42) {
      // s32 / s64 LEB128: the value matters only for i32.const, which wasm32 offsets fit.
      let result = 0;
      let shift = 0;
      let byte: number;
      do {
        byte = reader.bytes[reader.at++] as number;
        if (byte === undefined) throw new Error('unexpected end of module');
        if (shift < 32) result |= (byte & 0x7f) << shift;
        shift += 7;
      } while (byte & 0x80);
      if (shift < 32 && byte & 0x40) result |= -1 << shift;
      value = op === 0x41 ? result >>> 0 : undefined;
    } else if (op === 0x23) {
      readU32(reader);
      value = undefined;
    } else if (op === 0x6a || op === 0x6b || op === 0x6c || op === 0x7c || op === 0x7d || op === 0x7e) {
      value = undefined;
    } else {
      throw new Error(`unexpected opcode ${op} in a data segment's offset`);
    }
  }
}

/** The pages active data segments of memory 0 fill, merged, within the first `limitBytes`. */
function dataPages(module: Uint8Array, data: Section | undefined, limitBytes: number): [number, number][] {
  if (!data) return [];
  const reader: ByteReader = { bytes: module, at: data.contentStart };
  const ranges: [number, number][] = [];
  const count = readU32(reader);
  for (let entry = 0; entry < count; entry++) {
    const flags = readU32(reader);
    let offset: number | undefined;
    if (flags === 0 || flags === 2) {
      const memory = flags === 2 ? readU32(reader) : 0;
      offset = readOffset(reader);
      if (memory !== 0) offset = undefined;
    } else if (flags !== 1) {
      throw new Error(`unknown data segment kind ${flags}`);
    }
    const length = readU32(reader);
    reader.at += length;
    if (offset === undefined || length === 0) continue;
    const start = Math.floor(offset / OS_PAGE) * OS_PAGE;
    const end = Math.min(Math.ceil((offset + length) / OS_PAGE) * OS_PAGE, limitBytes);
    if (start < end) ranges.push([start, end]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const range of ranges) {
    const last = merged.at(-1);
    if (last && range[0] <= last[1]) last[1] = Math.max(last[1], range[1]);
    else merged.push([range[0], range[1]]);
  }
  return merged;
}

/**
 * The module's memory, if the host can create it instead: exactly one, its own (none imported),
 * neither shared nor 64-bit, and nothing imported from `HOST_MEMORY_IMPORT.module` already.
 */
function hostableMemory(module: Uint8Array, sections: Section[]): MemoryToHost | undefined {
  const memories = sections.find((section) => section.id === 5);
  if (!memories) return undefined;
  const reader: ByteReader = { bytes: module, at: memories.contentStart };
  if (readU32(reader) !== 1) return undefined;
  const limitsAt = reader.at;
  const flags = module[limitsAt] as number;
  if (flags & 0x06) return undefined;
  reader.at++;
  const min = readU32(reader);
  const imports = sections.find((section) => section.id === 2);
  if (imports) {
    const importReader: ByteReader = { bytes: module, at: imports.contentStart };
    const count = readU32(importReader);
    const taken = HOST_MEMORY_NAMES[0] as Uint8Array;
    for (let entry = 0; entry < count; entry++) {
      const nameLength = readU32(importReader);
      const name = module.subarray(importReader.at, importReader.at + nameLength);
      if (name.length === taken.length && name.every((byte, index) => byte === taken[index])) return undefined;
      importReader.at += nameLength;
      skipName(importReader);
      const kind = module[importReader.at++];
      if (kind === 0x02) return undefined;
      skipImportDescriptor(importReader, kind);
    }
  }
  return {
    limitsAt,
    touch: dataPages(
      module,
      sections.find((section) => section.id === 11),
      min * WASM_PAGE,
    ),
  };
}

function section(id: number, content: number[]): Uint8Array {
  const header: number[] = [id];
  writeU32(content.length, header);
  const bytes = new Uint8Array(header.length + content.length);
  bytes.set(header);
  bytes.set(content, header.length);
  return bytes;
}

/**
 * Rewrites a core module once so that every memory's maximum can later be capped in place, and
 * caps every table at `MAX_TABLE_ELEMENTS` (`tableElements`: the most its own tables may hold
 * together), throwing `WASM_TABLE_OVER_LIMIT` for one that starts larger. For memories, each
 * maximum becomes `MAX_WIDTH` bytes wide (LEB128 may be padded), and its offset is returned with
 * the limits the module declared. The loader does this when it transpiles a component and keeps
 * the slots beside the module on disk: capping a 12 MB module per host start then writes a few
 * bytes instead of copying all of it (about 40 ms of page faults on a small VM, see loader.ts).
 *
 * With `hostMemory`, a module's own memory (one, neither shared nor 64-bit, no memory imported)
 * becomes an import from `HOST_MEMORY_IMPORT`, which the host creates (see `HostedMemory`); its
 * slot says which pages the data segments fill. It keeps index 0: imported memories come first.
 * Throws `WASM_INVALID` for bytes that are not a module it can read.
 */
export function prepareMemoryCaps(
  module: Uint8Array,
  options: { hostMemory?: boolean } = {},
): { bytes: Uint8Array; slots: MemoryCapSlot[]; tableElements: number } {
  if (module[0] !== 0x00 || module[1] !== 0x61 || module[2] !== 0x73 || module[3] !== 0x6d) {
    throw new StratumError('WASM_INVALID', 'not a WebAssembly module (bad magic number)');
  }
  const parts: Uint8Array[] = [module.subarray(0, 8)];
  const slots: MemoryCapSlot[] = [];
  const tables = { elements: 0 };
  let length = 8;
  const add = (bytes: Uint8Array, sectionSlots: MemoryCapSlot[] = [], headerLength = 0) => {
    for (const slot of sectionSlots) {
      if (slot.offset !== undefined) slot.offset += length + headerLength;
      slots.push(slot);
    }
    parts.push(bytes);
    length += bytes.length;
  };
  try {
    const sections = readSections(module);
    const hosted = options.hostMemory ? hostableMemory(module, sections) : undefined;
    let importsWritten = !hosted || sections.some((one) => one.id === 2);
    for (const { id, start, contentStart, end } of sections) {
      // A module without imports gets an import section where one belongs: after the types.
      if (!importsWritten && id !== 0 && id !== 1) {
        const content: number[] = [1];
        const sectionSlots: MemoryCapSlot[] = [];
        appendHostMemoryImport(module, hosted as MemoryToHost, content, sectionSlots);
        const bytes = section(2, content);
        add(bytes, sectionSlots, bytes.length - content.length);
        importsWritten = true;
      }
      if (id === 4) {
        add(section(4, rewriteTables({ bytes: module, at: contentStart }, end, tables)));
      } else if (id === 2 || (id === 5 && !hosted)) {
        const reader: ByteReader = { bytes: module, at: contentStart };
        const sectionSlots: MemoryCapSlot[] = [];
        const content = id === 2 ? rewriteImports(reader, end, sectionSlots, hosted) : rewriteMemories(reader, end, sectionSlots);
        const bytes = section(id, content);
        add(bytes, sectionSlots, bytes.length - content.length);
      } else if (id !== 5) {
        add(module.subarray(start, end));
      }
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
  return { bytes, slots, tableElements: tables.elements };
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
 * The memories the host creates for a component's modules (those `prepareMemoryCaps` made import
 * theirs), capped at `maxBytes` as `applyMemoryCaps` caps the import.
 */
export function hostedMemories(memoryCaps: Record<string, readonly MemoryCapSlot[]>, maxBytes: number): Record<string, HostedMemory> {
  const capPages = Math.floor(maxBytes / WASM_PAGE);
  const memories: Record<string, HostedMemory> = {};
  for (const [name, slots] of Object.entries(memoryCaps)) {
    const slot = slots.find((one) => one.hosted);
    if (slot?.hosted) memories[name] = { initial: slot.min, maximum: Math.min(slot.max ?? capPages, capPages), touch: slot.hosted.touch };
  }
  return memories;
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
