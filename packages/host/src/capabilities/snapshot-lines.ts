/**
 * Portable snapshots (spec/snapshot.md) share one framing whatever the capability: JSON Lines
 * with a header, records and a trailer whose count and SHA-256 cover every line before it. One
 * reader enforces that framing for every capability, so a rule the spec states holds for all
 * three, and each capability only judges its own records.
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { isStratumError, StratumError } from '@stratum/core';

export type SnapshotInput = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

/**
 * A snapshot that can be read more than once: an import reads it whole to check it before it
 * touches the store, then again to write it unless it kept the records (`importSnapshot`). A
 * function, so that a one-shot stream cannot be passed where the second read would find it
 * already drained.
 */
export type SnapshotSource = () => SnapshotInput;

export type SnapshotCapability = 'keyvalue' | 'sql' | 'bucket';

export const SNAPSHOT_VERSION = 1;

/**
 * The longest line an importer reads, in bytes: a SQL row holding a blob of about 190 MB, far
 * past any default quota. A stream without line feeds fails here with the line's number, before
 * it holds more, instead of running into V8's largest string (about 512 Mi characters).
 */
export const MAX_SNAPSHOT_LINE = 256 * 1024 * 1024;

const LINE_FEED = 0x0a;

/**
 * Splits a byte or text stream into lines, each with its line feed (the last one without, if the
 * stream does not end in one); `kind` names the snapshot in errors. Split on bytes, so that a
 * line that is not UTF-8 is refused with its own number; a line that spans chunks is kept in
 * pieces until its end comes, so a large record is joined once, not copied again with every chunk.
 */
export async function* snapshotLines(input: SnapshotInput, kind: string, maxLine = MAX_SNAPSHOT_LINE): AsyncIterable<string> {
  let pieces: Buffer[] = [];
  let pending = 0;
  let line = 1;
  const text = (bytes: Buffer) => {
    if (!isUtf8(bytes)) throw snapshotInvalid(kind, 'not UTF-8', line);
    return bytes.toString('utf8');
  };
  for await (const chunk of input) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let from = 0;
    for (let newline = bytes.indexOf(LINE_FEED); newline !== -1; newline = bytes.indexOf(LINE_FEED, from)) {
      if (pending + newline + 1 - from > maxLine) throw tooLong(kind, maxLine, line);
      pieces.push(bytes.subarray(from, newline + 1));
      yield text(pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces));
      pieces = [];
      pending = 0;
      line++;
      from = newline + 1;
    }
    if (from < bytes.byteLength) {
      // Copied: the producer may reuse its chunk's memory once it is handed back.
      pieces.push(Buffer.from(bytes.subarray(from)));
      pending += bytes.byteLength - from;
      if (pending > maxLine) throw tooLong(kind, maxLine, line);
    }
  }
  if (pieces.length > 0) yield text(Buffer.concat(pieces));
}

const tooLong = (kind: string, maxLine: number, line: number) =>
  snapshotInvalid(kind, `longer than ${maxLine} bytes, more than any record`, line);

/**
 * The error for a damaged snapshot: which kind (as people name it, "key-value", "SQL"), which
 * line, what is wrong.
 */
export function snapshotInvalid(kind: string, message: string, line: number, options: { cause?: unknown } = {}): StratumError {
  // An empty snapshot has no line to name.
  const where = line > 0 ? ` line ${line}` : '';
  return new StratumError('SNAPSHOT_INVALID', `${kind.toLowerCase()} snapshot${where}: ${message}`, {
    hint: `The snapshot is damaged or not a Stratum ${kind} snapshot (spec/snapshot.md); export it again.`,
    ...options,
  });
}

/**
 * Hands a snapshot's records to the store. Its checksum is no signature, so a snapshot that
 * verifies may still hold what a store refuses (a table defined twice, a row against its
 * constraints, an object name with "..", text this backend cannot hold): that is the record's
 * fault, said with its line (`lastLine`: the end of a batch that starts at `line`), and the same
 * SNAPSHOT_INVALID as spec/snapshot.md section 2 has it. The snapshot itself is intact, though,
 * so its hint is not a damaged snapshot's. A quota, or the store failing, passes as it is.
 */
export async function storing<T>(kind: string, line: number, work: () => Promise<T> | T, lastLine = line): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!isStratumError(error) || !error.user || error.code.endsWith('_QUOTA')) throw error;
    const where = lastLine > line ? ` (a record of lines ${line} to ${lastLine})` : '';
    throw new StratumError(
      'SNAPSHOT_INVALID',
      `${kind.toLowerCase()} snapshot line ${line}: the store refused it${where}: ${error.message}`,
      {
        hint: "The snapshot is intact, but the target store's backend does not accept that record (a value, name or definition it cannot hold, or one against its constraints). Change the data where the snapshot was exported from and export it again, or import it into a store whose backend accepts it.",
        cause: error,
      },
    );
  }
}

/** What a capability does with its records: only judges them while checking, also writes them while importing. */
export interface RecordReader {
  /** One record line (`length` characters), already known to be a JSON object that is neither header nor trailer. */
  record(record: Record<string, unknown>, line: number, length: number): Promise<void> | void;
  /** Every record was read and the trailer verified; `line` is the trailer's. */
  end(line: number): Promise<void> | void;
  /** The snapshot was refused: give back what was started (an upload). */
  abort?(): Promise<void>;
}

export interface SnapshotFormat {
  capability: SnapshotCapability;
  /** The capability as people name it in messages: "key-value", "SQL", "bucket". */
  kind: string;
}

/**
 * The records of a snapshot up to this many characters of lines are kept, parsed, from the check for
 * the write, which then neither reads, hashes nor parses them again: a move's 50,000 keyvalue
 * records (about 5 MB) were out of service a quarter longer when read twice. Parsed records take
 * a few times their text's size, so a bigger snapshot is read again instead.
 */
const KEPT_FOR_WRITE = 16 * 1024 * 1024;

/**
 * Replaces a store's content with a snapshot's. The snapshot is read through once with a reader
 * that only judges, so that anything the format or the records get wrong is refused before the
 * store is cleared; only then is the store cleared and the records written, from what the check
 * kept or by reading the snapshot again. What the store itself refuses then (a constraint, a
 * quota) still leaves it partly imported, as spec/snapshot.md section 2 says.
 */
export async function importSnapshot(
  source: SnapshotSource,
  format: SnapshotFormat,
  reader: (write: boolean) => RecordReader,
  clear: () => Promise<void> | void,
): Promise<{ records: number }> {
  let kept: { record: Record<string, unknown>; line: number }[] | undefined = [];
  let keptLength = 0;
  let trailerLine = 0;
  const checker = reader(false);
  await readSnapshot(source(), format, {
    record(record, line, length) {
      keptLength += length;
      if (keptLength > KEPT_FOR_WRITE) kept = undefined;
      kept?.push({ record, line });
      return checker.record(record, line, length);
    },
    end(line) {
      trailerLine = line;
      return checker.end(line);
    },
    abort: async () => {
      await checker.abort?.();
    },
  });
  await clear();
  if (!kept) return readSnapshot(source(), format, reader(true));
  const writer = reader(true);
  try {
    for (const { record, line } of kept) await writer.record(record, line, 0);
    await writer.end(trailerLine);
  } catch (error) {
    await writer.abort?.();
    throw error;
  }
  return { records: kept.length };
}

const HEADER_MEMBERS = ['stratum-snapshot', 'capability', 'label', 'created'] as const;
/** RFC 3339 section 5.6 date-time; the calendar is checked by Date below. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Reads one snapshot through, handing its records to `reader`; what spec/snapshot.md section 2 requires of every capability. */
export async function readSnapshot(input: SnapshotInput, format: SnapshotFormat, reader: RecordReader): Promise<{ records: number }> {
  const { capability, kind } = format;
  const invalid = (message: string, line: number) => snapshotInvalid(kind, message, line);
  const hash = createHash('sha256');
  let lineNumber = 0;
  let header = false;
  let records = 0;
  let trailer = false;
  try {
    for await (const text of snapshotLines(input, kind)) {
      lineNumber++;
      if (trailer) throw invalid('after the trailer: a snapshot ends with its trailer line', lineNumber);
      const record = parseLine(text, lineNumber, invalid);
      if (!header) {
        checkHeader(record, capability, kind, lineNumber, invalid);
        header = true;
        hash.update(text);
        continue;
      }
      if ('end' in record) {
        members(record, ['end'], ['end'], 'the trailer', lineNumber, invalid);
        const end = record.end;
        if (typeof end !== 'object' || end === null || Array.isArray(end))
          throw invalid('the trailer\'s "end" is not an object', lineNumber);
        const counts = end as Record<string, unknown>;
        members(counts, ['records', 'sha256'], ['records', 'sha256'], 'the trailer', lineNumber, invalid);
        if (counts.records !== records)
          throw invalid(`the trailer counts ${JSON.stringify(counts.records)} records, the snapshot has ${records}`, lineNumber);
        if (typeof counts.sha256 !== 'string' || !SHA256_HEX.test(counts.sha256))
          throw invalid('the trailer\'s "sha256" is not 64 lowercase hex digits', lineNumber);
        if (counts.sha256 !== hash.digest('hex')) throw invalid('the checksum does not match: the snapshot was changed or cut', lineNumber);
        trailer = true;
        continue;
      }
      hash.update(text);
      records++;
      await reader.record(record, lineNumber, text.length);
    }
    if (!trailer) throw invalid(header ? 'the trailer is missing: the snapshot was cut short' : 'it is empty', lineNumber);
    await reader.end(lineNumber);
    return { records };
  } catch (error) {
    await reader.abort?.();
    throw error;
  }
}

function parseLine(text: string, line: number, invalid: (message: string, line: number) => StratumError): Record<string, unknown> {
  if (line === 1 && text.startsWith('\uFEFF')) throw invalid('begins with a byte-order mark; a snapshot has none', line);
  if (!text.endsWith('\n')) throw invalid('does not end in a line feed; every line does, the last one too', line);
  if (text === '\n') throw invalid('a blank line; a snapshot has none', line);
  if (text.endsWith('\r\n')) throw invalid('ends in CR LF; a line ends in a line feed alone', line);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid('not JSON', line);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid('not a JSON object', line);
  // Whitespace is all JSON allows around the object; a line holds the object alone.
  if (!text.startsWith('{') || !text.endsWith('}\n')) throw invalid('whitespace around the object; a line holds the object alone', line);
  return parsed as Record<string, unknown>;
}

function checkHeader(
  record: Record<string, unknown>,
  capability: SnapshotCapability,
  kind: string,
  line: number,
  invalid: (message: string, line: number) => StratumError,
): void {
  if (!('stratum-snapshot' in record)) throw invalid('not a snapshot header: no "stratum-snapshot"', line);
  if (record['stratum-snapshot'] !== SNAPSHOT_VERSION)
    throw invalid(`a version ${JSON.stringify(record['stratum-snapshot'])} header; this host reads version ${SNAPSHOT_VERSION}`, line);
  members(record, HEADER_MEMBERS, HEADER_MEMBERS, 'the header', line, invalid);
  if (record.capability !== capability)
    throw invalid(`a ${JSON.stringify(record.capability)} snapshot, not a version ${SNAPSHOT_VERSION} ${kind} snapshot`, line);
  if (typeof record.label !== 'string') throw invalid('the header\'s "label" is not a string', line);
  const created = record.created;
  if (typeof created !== 'string' || !RFC3339.test(created) || Number.isNaN(Date.parse(created)))
    throw invalid('the header\'s "created" is not an RFC 3339 date-time', line);
}

/**
 * Refuses an object with a member the spec does not name there, or without one it requires: a
 * record read only in part would lose the rest silently.
 */
export function members(
  object: Record<string, unknown>,
  allowed: readonly string[],
  required: readonly string[],
  what: string,
  line: number,
  invalid: (message: string, line: number) => StratumError,
): void {
  for (const name of Object.keys(object)) {
    if (!allowed.includes(name)) throw invalid(`${what} has a member ${JSON.stringify(name.slice(0, 64))} version 1 does not define`, line);
  }
  for (const name of required) if (!(name in object)) throw invalid(`${what} has no "${name}"`, line);
}

/**
 * Bytes from RFC 4648 section 4 base64 with padding, exactly as an exporter writes it: Node's
 * decoder would skip what is not base64 and take a value without its padding, so a damaged
 * value would import as other bytes.
 */
export function decodeBase64(text: unknown, what: string, line: number, invalid: (message: string, line: number) => StratumError): Buffer {
  if (typeof text !== 'string') throw invalid(`${what} is not a base64 string`, line);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) throw invalid(`${what} is not padded base64 (RFC 4648 section 4)`, line);
  return bytes;
}

/**
 * Names (keys, object names) in strictly ascending byte order of their UTF-8 form: what
 * exporters write, so a name out of order or twice is a damaged or forged snapshot, and one
 * that would otherwise overwrite another silently.
 */
export function ascendingNames(what: string, invalid: (message: string, line: number) => StratumError) {
  let previous: Buffer | undefined;
  let previousLine = 0;
  return (name: string, line: number): void => {
    // A lone surrogate has no UTF-8 form, so no place in the order either.
    if (!name.isWellFormed()) throw invalid(`${what} ${JSON.stringify(name.slice(0, 64))} is not well-formed Unicode`, line);
    const bytes = Buffer.from(name);
    if (previous) {
      const order = Buffer.compare(previous, bytes);
      if (order === 0) throw invalid(`${what} ${JSON.stringify(name.slice(0, 64))} again (line ${previousLine}); each appears once`, line);
      if (order > 0)
        throw invalid(
          `${what} ${JSON.stringify(name.slice(0, 64))} after ${JSON.stringify(previous.toString().slice(0, 64))} (line ${previousLine}): ${what}s are in ascending byte order`,
          line,
        );
    }
    previous = bytes;
    previousLine = line;
  };
}
