import { createHash } from 'node:crypto';
import {
  decodeBase64,
  importSnapshot,
  members,
  SNAPSHOT_VERSION,
  type SnapshotSource,
  snapshotInvalid,
  storing,
} from '../snapshot-lines.ts';
import type { SqlDatabase, SqlImport, SqlValue } from './types.ts';

/**
 * A database as a portable snapshot (spec/snapshot.md): JSON Lines with a header; per table
 * its SQLite-dialect definition, its rows and then its indexes; and a trailer with the record
 * count and the SHA-256 of every line before it. Any backend exports it and any imports it.
 */
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

/** A value as `row` holds it; exactly one of the forms spec/snapshot.md section 4 lists. */
export function decodeValue(encoded: unknown, line: number): SqlValue {
  if (encoded === null) return { tag: 'null' };
  const shown = () => JSON.stringify(encoded).slice(0, 80);
  if (typeof encoded !== 'object' || Array.isArray(encoded) || Object.keys(encoded).length !== 1)
    throw invalid(`not a value: ${shown()}`, line);
  const value = encoded as Record<string, unknown>;
  if ('integer' in value) {
    if (typeof value.integer !== 'string' || !/^(0|-?[1-9][0-9]*)$/.test(value.integer))
      throw invalid(`not a decimal integer: ${shown()}`, line);
    const integer = BigInt(value.integer);
    if (integer < S64_MIN || integer > S64_MAX) throw invalid(`an integer outside 64 bits: ${shown()}`, line);
    return { tag: 'integer', val: integer };
  }
  if ('real' in value) {
    if (typeof value.real === 'number') return { tag: 'real', val: value.real };
    if (value.real === 'Infinity' || value.real === '-Infinity' || value.real === 'NaN') return { tag: 'real', val: Number(value.real) };
    throw invalid(`not a real: ${shown()}`, line);
  }
  if ('text' in value && typeof value.text === 'string') return { tag: 'text', val: value.text };
  if ('blob' in value) return { tag: 'blob', val: new Uint8Array(decodeBase64(value.blob, 'a blob', line, invalid)) };
  throw invalid(`not a value: ${shown()}`, line);
}

const S64_MIN = -(2n ** 63n);
const S64_MAX = 2n ** 63n - 1n;

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

const FORMAT = { capability: 'sql', kind: 'SQL' } as const;
const invalid = (message: string, line: number) => snapshotInvalid(FORMAT.kind, message, line);

/**
 * Replaces the database's tables with the snapshot's. The whole snapshot is checked before the
 * database is touched (`source` may be read twice, `importSnapshot`); then the clearing and every
 * write run in one transaction (`SqlDatabase.beginImport`), so that a definition or row the
 * database refuses leaves it as it was. Definitions go through the capsule's own path (so
 * PostgreSQL gets them translated and sandboxed like any capsule statement), and rows are
 * inserted in batches.
 */
export async function importSql(db: SqlDatabase, source: SnapshotSource): Promise<{ records: number; skipped: number }> {
  let session: SqlImport | undefined;
  let committed = false;
  try {
    const { records } = await importSnapshot(
      source,
      FORMAT,
      (write) => {
        const tables = new Set<string>();
        let table: { name: string; columns: string[]; indexed: boolean } | undefined;
        let batch: SqlValue[][] = [];
        let batchStart = 0;
        let batchEnd = 0;
        const target = () => session as SqlImport;
        const flush = async () => {
          const into = table;
          const rows = batch;
          batch = [];
          if (into && rows.length > 0)
            await storing(FORMAT.kind, batchStart, () => target().insertRows(into.name, into.columns, rows), batchEnd);
        };
        const execute = async (definition: string, line: number) => {
          if (!write) return;
          await flush();
          await storing(FORMAT.kind, line, () => target().execute(definition));
        };
        return {
          async record(record, line) {
            const [kind, ...more] = Object.keys(record);
            if (kind === undefined || more.length > 0 || !['table', 'row', 'index'].includes(kind))
              throw invalid('not a record: one of "table", "row" or "index", alone', line);
            if (kind === 'table') {
              const next = object(record.table, 'a table', line);
              members(next, ['name', 'sql', 'columns'], ['name', 'sql', 'columns'], 'a table', line, invalid);
              const { name, sql, columns } = next;
              if (typeof name !== 'string') throw invalid('a table\'s "name" is not a string', line);
              if (tables.has(name)) throw invalid(`table ${JSON.stringify(name.slice(0, 64))} again; each table appears once`, line);
              if (typeof sql !== 'string') throw invalid('a table\'s "sql" is not a string', line);
              if (!Array.isArray(columns) || columns.length === 0 || !columns.every((column) => typeof column === 'string'))
                throw invalid('a table\'s "columns" is not a list of column names', line);
              if (new Set(columns).size !== columns.length) throw invalid('a table names a column twice in "columns"', line);
              await execute(sql, line);
              tables.add(name);
              table = { name, columns: columns as string[], indexed: false };
            } else if (kind === 'row') {
              if (!table) throw invalid('a row before any table', line);
              if (table.indexed) throw invalid(`a row of table ${JSON.stringify(table.name.slice(0, 64))} after its indexes`, line);
              if (!Array.isArray(record.row) || record.row.length !== table.columns.length)
                throw invalid(
                  `a row that does not fit table ${JSON.stringify(table.name.slice(0, 64))}: ${table.columns.length} values`,
                  line,
                );
              const row = record.row.map((value) => decodeValue(value, line));
              if (!write) return;
              if (batch.length === 0) batchStart = line;
              batch.push(row);
              batchEnd = line;
              if (batch.length >= IMPORT_BATCH) await flush();
            } else {
              if (!table) throw invalid('an index before any table', line);
              const index = object(record.index, 'an index', line);
              members(index, ['sql'], ['sql'], 'an index', line, invalid);
              if (typeof index.sql !== 'string') throw invalid('an index\'s "sql" is not a string', line);
              await execute(index.sql, line);
              table.indexed = true;
            }
          },
          async end(line) {
            await flush();
            if (!write) return;
            // Foreign keys deferred to the end (SQLite) are checked here: named by the trailer's line.
            await storing(FORMAT.kind, line, () => target().commit());
            committed = true;
          },
        };
      },
      async () => {
        session = await db.beginImport();
        await session.clear();
      },
    );
    return { records, skipped: 0 };
  } finally {
    if (session && !committed) {
      try {
        await session.rollback();
      } catch {
        // Only while an error is on its way, which says more than a failed rollback would.
      }
    }
  }
}

function object(value: unknown, what: string, line: number): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`${what} is not an object`, line);
  return value as Record<string, unknown>;
}
