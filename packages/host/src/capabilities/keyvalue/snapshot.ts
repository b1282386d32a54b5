import { createHash } from 'node:crypto';
import { snapshotInvalid, snapshotLines, storing } from '../snapshot-lines.ts';
import type { KeyValueEntry, KeyValueStore } from './types.ts';

/**
 * A key-value store as a portable snapshot (spec/snapshot.md): JSON Lines with a header, one
 * record per key, and a trailer holding the record count and the SHA-256 of every line before
 * it. Any backend exports it and any backend imports it.
 *
 * @example
 * await pipeline(Readable.from(exportKeyValue(store, 'default')), createWriteStream('kv.jsonl'));
 * await importKeyValue(otherStore, createReadStream('kv.jsonl'));
 */
export const SNAPSHOT_VERSION = 1;

interface Header {
  'stratum-snapshot': number;
  capability: string;
  label: string;
  created: string;
}

export async function* exportKeyValue(store: KeyValueStore, label: string): AsyncIterable<string> {
  const hash = createHash('sha256');
  let records = 0;
  const line = (value: unknown) => {
    const text = `${JSON.stringify(value)}\n`;
    hash.update(text);
    return text;
  };
  const header: Header = { 'stratum-snapshot': SNAPSHOT_VERSION, capability: 'keyvalue', label, created: new Date().toISOString() };
  yield line(header);
  for await (const entry of store.entries()) {
    records++;
    const record: Record<string, unknown> = { key: entry.key, value: Buffer.from(entry.value).toString('base64') };
    if (entry.expiresAt !== undefined) record.expiresAt = entry.expiresAt;
    yield line(record);
  }
  yield `${JSON.stringify({ end: { records, sha256: hash.digest('hex') } })}\n`;
}

const invalid = (message: string, line: number) => snapshotInvalid('key-value', message, line);

/** Entries handed to the store at once: a transaction each on SQLite. */
const RESTORE_BATCH = 500;

/**
 * Replaces the store's contents with the snapshot's. The snapshot is checked as it is read, and
 * the store is cleared first, so a damaged snapshot leaves a partly imported store: import into
 * a fresh installation and switch over only after this resolves.
 */
export async function importKeyValue(
  store: KeyValueStore,
  input: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>,
): Promise<{ label: string; records: number }> {
  const hash = createHash('sha256');
  let lineNumber = 0;
  let header: Header | undefined;
  let records = 0;
  let batch: KeyValueEntry[] = [];
  let batchStart = 0;
  const flush = async () => {
    const entries = batch;
    batch = [];
    if (entries.length > 0) await storing('key-value', batchStart, () => store.restore(entries), batchStart + entries.length - 1);
  };
  for await (const text of snapshotLines(input, 'key-value')) {
    lineNumber++;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw invalid('not JSON', lineNumber);
    }
    if (typeof parsed !== 'object' || parsed === null) throw invalid('not a JSON object', lineNumber);
    const record = parsed as Record<string, unknown>;
    if (!header) {
      if (record['stratum-snapshot'] !== SNAPSHOT_VERSION || record.capability !== 'keyvalue' || typeof record.label !== 'string') {
        throw invalid(`not a version ${SNAPSHOT_VERSION} key-value snapshot header`, lineNumber);
      }
      header = record as unknown as Header;
      hash.update(text);
      await store.clear();
      continue;
    }
    if ('end' in record) {
      await flush();
      const end = record.end as { records?: unknown; sha256?: unknown } | null;
      if (end?.records !== records)
        throw invalid(`the trailer counts ${String(end?.records)} records, the snapshot has ${records}`, lineNumber);
      if (end.sha256 !== hash.digest('hex')) throw invalid('the checksum does not match: the snapshot was changed or cut', lineNumber);
      return { label: header.label, records };
    }
    hash.update(text);
    if (batch.length === 0) batchStart = lineNumber;
    batch.push(toEntry(record, lineNumber));
    if (batch.length === RESTORE_BATCH) await flush();
    records++;
  }
  throw invalid(header ? 'the trailer is missing: the snapshot was cut short' : 'empty snapshot', lineNumber);
}

function toEntry(record: Record<string, unknown>, line: number): KeyValueEntry {
  const { key, value, expiresAt } = record;
  if (typeof key !== 'string' || typeof value !== 'string') throw invalid('a record needs a string "key" and a base64 "value"', line);
  if (expiresAt !== undefined && !Number.isSafeInteger(expiresAt)) throw invalid('"expiresAt" must be milliseconds since the epoch', line);
  const bytes = new Uint8Array(Buffer.from(value, 'base64'));
  return expiresAt === undefined ? { key, value: bytes } : { key, value: bytes, expiresAt: expiresAt as number };
}
