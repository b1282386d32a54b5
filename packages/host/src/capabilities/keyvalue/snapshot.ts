import { createHash } from 'node:crypto';
import {
  ascendingNames,
  decodeBase64,
  importSnapshot,
  members,
  SNAPSHOT_VERSION,
  type SnapshotSource,
  snapshotInvalid,
  storing,
} from '../snapshot-lines.ts';
import type { KeyValueEntry, KeyValueStore } from './types.ts';

interface Header {
  'stratum-snapshot': number;
  capability: string;
  label: string;
  created: string;
}

/**
 * A key-value store as a portable snapshot (spec/snapshot.md): JSON Lines with a header, one
 * record per key, and a trailer holding the record count and the SHA-256 of every line before
 * it. Any backend exports it and any backend imports it.
 *
 * @example
 * await pipeline(Readable.from(exportKeyValue(store, 'default')), createWriteStream('kv.jsonl'));
 * await importKeyValue(otherStore, () => createReadStream('kv.jsonl'));
 */
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

const FORMAT = { capability: 'keyvalue', kind: 'key-value' } as const;
const invalid = (message: string, line: number) => snapshotInvalid(FORMAT.kind, message, line);

/** Entries handed to the store at once: a transaction each on SQLite. */
const RESTORE_BATCH = 500;

/**
 * Replaces the store's contents with the snapshot's. The whole snapshot is checked before the
 * store is cleared (`source` may be read twice, `importSnapshot`); only a record the store itself refuses leaves it
 * partly imported. `records` counts the snapshot's records, `skipped` those whose key had
 * expired and so were not stored.
 */
export async function importKeyValue(store: KeyValueStore, source: SnapshotSource): Promise<{ records: number; skipped: number }> {
  let skipped = 0;
  const { records } = await importSnapshot(
    source,
    FORMAT,
    (write) => {
      const inOrder = ascendingNames('key', invalid);
      let batch: KeyValueEntry[] = [];
      let batchStart = 0;
      let batchEnd = 0;
      const flush = async () => {
        const entries = batch;
        batch = [];
        if (entries.length > 0) await storing(FORMAT.kind, batchStart, () => store.restore(entries), batchEnd);
      };
      return {
        async record(record, line) {
          const entry = toEntry(record, line);
          inOrder(entry.key, line);
          if (!write) return;
          // Counted here rather than left to the store, which would drop it unsaid.
          if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
            skipped++;
            return;
          }
          if (batch.length === 0) batchStart = line;
          batch.push(entry);
          batchEnd = line;
          if (batch.length === RESTORE_BATCH) await flush();
        },
        end: flush,
      };
    },
    () => store.clear(),
  );
  return { records, skipped };
}

function toEntry(record: Record<string, unknown>, line: number): KeyValueEntry {
  members(record, ['key', 'value', 'expiresAt'], ['key', 'value'], 'a record', line, invalid);
  const { key, value, expiresAt } = record;
  if (typeof key !== 'string') throw invalid('"key" is not a string', line);
  const bytes = new Uint8Array(decodeBase64(value, '"value"', line, invalid));
  if (expiresAt === undefined) return { key, value: bytes };
  if (!Number.isSafeInteger(expiresAt)) throw invalid('"expiresAt" is not whole milliseconds since the epoch', line);
  return { key, value: bytes, expiresAt: expiresAt as number };
}
