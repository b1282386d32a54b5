import { createHash } from 'node:crypto';
import { snapshotInvalid, snapshotLines, storing } from '../snapshot-lines.ts';
import type { SqlDatabase, SqlValue } from './types.ts';

/**
 * A database as a portable snapshot (spec/snapshot.md): JSON Lines with a header; per table
 * its SQLite-dialect definition, its rows and then its indexes; and a trailer with the record
 * count and the SHA-256 of every line before it. Any backend exports it and any imports it.
 */
export const SNAPSHOT_VERSION = 1;
const IMPORT_BATCH = 500;

export function encodeValue(value: SqlValue): unknown {
  switch (value.tag) {
    case 'null':
      return null;
    case 'integer':
      return { integer: value.val.toString() };
    case 'real':
      return { real: Number.isFinite(value.val) ? value.val : String(value.val) };
    case 'text':
      return { text: value.val };
    case 'blob':
      return { blob: Buffer.from(value.val).toString('base64') };
  }
}

export function decodeValue(encoded: unknown, line: number): SqlValue {
  if (encoded === null) return { tag: 'null' };
  const value = encoded as Record<string, unknown>;
  if (typeof value.integer === 'string' && /^-?[0-9]+$/.test(value.integer)) return { tag: 'integer', val: BigInt(value.integer) };
  if (typeof value.real === 'number') return { tag: 'real', val: value.real };
  if (value.real === 'Infinity' || value.real === '-Infinity' || value.real === 'NaN') return { tag: 'real', val: Number(value.real) };
  if (typeof value.text === 'string') return { tag: 'text', val: value.text };
  if (typeof value.blob === 'string') return { tag: 'blob', val: new Uint8Array(Buffer.from(value.blob, 'base64')) };
  throw invalid(`not a value: ${JSON.stringify(encoded)}`, line);
}

export async function* exportSql(db: SqlDatabase, label: string): AsyncIterable<string> {
  const hash = createHash('sha256');
  let records = 0;
  const line = (value: unknown) => {
    const text = `${JSON.stringify(value)}\n`;
    hash.update(text);
    return text;
  };
  yield line({ 'stratum-snapshot': SNAPSHOT_VERSION, capability: 'sql', label, created: new Date().toISOString() });
  for await (const table of db.tables()) {
    records++;
    yield line({ table: { name: table.name, sql: table.sql, columns: table.columns } });
    for await (const row of table.rows) {
      records++;
      yield line({ row: row.map(encodeValue) });
    }
    for (const index of table.indexes) {
      records++;
      yield line({ index: { sql: index } });
    }
  }
  yield `${JSON.stringify({ end: { records, sha256: hash.digest('hex') } })}\n`;
}

const invalid = (message: string, line: number) => snapshotInvalid('SQL', message, line);

/**
 * Replaces the database's tables with the snapshot's. Definitions go through the capsule's own
 * path (so PostgreSQL gets them translated and sandboxed like any capsule statement); rows are
 * inserted in batches. A damaged snapshot leaves a partial import: import into a fresh
 * installation and switch over only after this resolves.
 */
export async function importSql(
  db: SqlDatabase,
  input: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>,
): Promise<{ label: string; records: number }> {
  const hash = createHash('sha256');
  let lineNumber = 0;
  let label: string | undefined;
  let records = 0;
  let table: { name: string; columns: string[] } | undefined;
  let batch: SqlValue[][] = [];
  let batchStart = 0;
  const flush = async () => {
    const into = table;
    const rows = batch;
    batch = [];
    if (into && rows.length > 0)
      await storing('SQL', batchStart, () => db.insertRows(into.name, into.columns, rows), batchStart + rows.length - 1);
  };
  for await (const text of snapshotLines(input, 'SQL')) {
    lineNumber++;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw invalid('not JSON', lineNumber);
    }
    if (typeof record !== 'object' || record === null) throw invalid('not a JSON object', lineNumber);
    if (label === undefined) {
      if (record['stratum-snapshot'] !== SNAPSHOT_VERSION || record.capability !== 'sql' || typeof record.label !== 'string') {
        throw invalid(`not a version ${SNAPSHOT_VERSION} SQL snapshot header`, lineNumber);
      }
      label = record.label;
      hash.update(text);
      await db.clear();
      continue;
    }
    if ('end' in record) {
      await flush();
      const end = record.end as { records?: unknown; sha256?: unknown } | null;
      if (end?.records !== records)
        throw invalid(`the trailer counts ${String(end?.records)} records, the snapshot has ${records}`, lineNumber);
      if (end.sha256 !== hash.digest('hex')) throw invalid('the checksum does not match: the snapshot was changed or cut', lineNumber);
      return { label, records };
    }
    hash.update(text);
    records++;
    if ('table' in record) {
      await flush();
      const next = record.table as { name?: unknown; sql?: unknown; columns?: unknown };
      if (typeof next.name !== 'string' || typeof next.sql !== 'string' || !Array.isArray(next.columns)) {
        throw invalid('a table needs "name", "sql" and "columns"', lineNumber);
      }
      const definition = next.sql;
      await storing('SQL', lineNumber, () => db.execute(definition, []));
      table = { name: next.name, columns: next.columns.map(String) };
    } else if ('row' in record) {
      if (!table || !Array.isArray(record.row) || record.row.length !== table.columns.length)
        throw invalid('a row that does not fit its table', lineNumber);
      if (batch.length === 0) batchStart = lineNumber;
      batch.push(record.row.map((value) => decodeValue(value, lineNumber)));
      if (batch.length >= IMPORT_BATCH) await flush();
    } else if ('index' in record) {
      await flush();
      const index = record.index as { sql?: unknown };
      if (typeof index.sql !== 'string') throw invalid('an index needs "sql"', lineNumber);
      const definition = index.sql;
      await storing('SQL', lineNumber, () => db.execute(definition, []));
    } else {
      throw invalid('an unknown record', lineNumber);
    }
  }
  throw invalid(label === undefined ? 'empty snapshot' : 'the trailer is missing: the snapshot was cut short', lineNumber);
}
