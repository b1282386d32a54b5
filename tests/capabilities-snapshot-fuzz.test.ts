/**
 * State snapshots arrive from another host, through a registrar: untrusted input. Their
 * checksum is not a signature (anyone can compute it), so each mutant here is sealed again with
 * a correct count and hash as often as not, and the importer must then judge the content
 * itself. Every mutant must import, or be refused as SNAPSHOT_INVALID naming its line: never
 * a backend's own error, a TypeError, a crash or a hang. The embedded backends, which a host
 * runs by default; tests/capabilities-snapshot.test.ts covers the others with valid snapshots.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isStratumError } from '@stratum/core';
import { directoryBucket } from '../packages/host/src/capabilities/bucket/backends/directory.ts';
import { exportBucket, importBucket } from '../packages/host/src/capabilities/bucket/snapshot.ts';
import { sqliteKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/sqlite.ts';
import { uniqueCapsule } from '../packages/host/src/capabilities/keyvalue/conformance.ts';
import { exportKeyValue, importKeyValue } from '../packages/host/src/capabilities/keyvalue/snapshot.ts';
import { snapshotLines } from '../packages/host/src/capabilities/snapshot-lines.ts';
import { sqliteSql } from '../packages/host/src/capabilities/sql/backends/sqlite.ts';
import { blob, int, real, txt } from '../packages/host/src/capabilities/sql/conformance.ts';
import { exportSql, importSql } from '../packages/host/src/capabilities/sql/snapshot.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'stratum-snapshot-fuzz-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

const MUTANTS = 150;

/** mulberry32: the same mutants on every run, so a failure names a seed that reproduces it. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 2 ** 32;
  };
}

const STRANGE_VALUES: unknown[] = [
  null,
  true,
  -1,
  0.5,
  2 ** 53 + 2,
  1e308,
  '',
  '../../outside',
  '/etc/passwd',
  'a\u0000b',
  'é'.repeat(300),
  'x'.repeat(70_000),
  [],
  [1, 'two'],
  {},
  { integer: '1' },
  { blob: '!!!not base64' },
  { real: 'NaN' },
];

/** SQL a forged snapshot may carry as a table's or an index's definition. */
const HOSTILE_SQL = [
  "ATTACH DATABASE '/tmp/stratum-fuzz-attached.db' AS other",
  "CREATE TABLE t2 AS SELECT load_extension('/tmp/x.so')",
  'PRAGMA writable_schema = 1',
  'CREATE TABLE t3 (a) ; DROP TABLE notes',
  'CREATE VIRTUAL TABLE v USING fts5(x)',
  'CREATE TRIGGER tr AFTER INSERT ON notes BEGIN DELETE FROM notes; END',
  'DELETE FROM notes',
  `CREATE TABLE "${'n'.repeat(5000)}" (a)`,
  'VACUUM',
  'CREATE TABLE',
];

type Mutant = { description: string; lines: string[] };

/** One mutation of the records between the header and the trailer; sealed again half the time. */
function mutate(original: string[], next: () => number, capability: string): Mutant {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const header = original[0] as string;
  const records = original.slice(1, -1);
  const at = Math.floor(next() * records.length);
  const line = records[at] as string;
  let description: string;
  const kind = pick(['flip', 'value', 'drop-field', 'duplicate', 'swap', 'delete', 'cut', 'hostile-sql', 'header'] as const);
  switch (kind) {
    case 'flip': {
      const position = Math.floor(next() * (line.length - 1));
      const character = pick(['{', '}', '[', ']', '"', ':', ',', '0', '9', '-', 'a', '\\', ' ', '\u0000', 'é', '=']);
      records[at] = line.slice(0, position) + character + line.slice(position + 1);
      description = `line ${at + 2}: character ${position} -> ${JSON.stringify(character)}`;
      break;
    }
    case 'value':
    case 'drop-field':
    case 'hostile-sql': {
      const record = JSON.parse(line) as Record<string, unknown>;
      const [outer] = Object.keys(record);
      const target = outer !== undefined && typeof record[outer] === 'object' && record[outer] !== null ? record[outer] : record;
      const fields = target as Record<string, unknown>;
      const field = pick(Object.keys(fields).length > 0 ? Object.keys(fields) : ['x']);
      if (kind === 'drop-field') delete fields[field];
      else if (kind === 'hostile-sql' && capability === 'sql' && 'sql' in fields) fields.sql = pick(HOSTILE_SQL);
      else if (Array.isArray(fields) && fields.length > 0) fields[Math.floor(next() * fields.length)] = pick(STRANGE_VALUES);
      else fields[field] = pick(STRANGE_VALUES);
      records[at] = `${JSON.stringify(record)}\n`;
      description = `line ${at + 2}: ${kind} ${field} -> ${records[at]?.slice(0, 120).trimEnd()}`;
      break;
    }
    case 'duplicate':
      records.splice(at, 0, line);
      description = `line ${at + 2} twice`;
      break;
    case 'swap': {
      const other = Math.floor(next() * records.length);
      [records[at], records[other]] = [records[other] as string, line];
      description = `lines ${at + 2} and ${other + 2} swapped`;
      break;
    }
    case 'delete':
      records.splice(at, 1);
      description = `line ${at + 2} deleted`;
      break;
    case 'cut':
      records[at] = `${line.slice(0, Math.floor(line.length / 2))}\n`;
      description = `line ${at + 2} cut in half`;
      break;
    case 'header': {
      const parsed = JSON.parse(header) as Record<string, unknown>;
      parsed[pick(['stratum-snapshot', 'capability', 'label'])] = pick(STRANGE_VALUES);
      description = `header -> ${JSON.stringify(parsed).slice(0, 120)}`;
      return { description, lines: seal(`${JSON.stringify(parsed)}\n`, records) };
    }
  }
  if (next() < 0.5) return { description: `${description} (not sealed)`, lines: [header, ...records, original.at(-1) as string] };
  return { description, lines: seal(header, records) };
}

/** A trailer that counts and hashes the records as they now are. */
function seal(header: string, records: string[]): string[] {
  const hash = createHash('sha256').update(header);
  for (const record of records) hash.update(record);
  return [header, ...records, `${JSON.stringify({ end: { records: records.length, sha256: hash.digest('hex') } })}\n`];
}

interface Target {
  import(lines: string[]): Promise<unknown>;
  drop(): Promise<void>;
}

async function fuzz(capability: string, original: string[], seed: number, open: () => Promise<Target>): Promise<void> {
  const next = random(seed);
  const failures: string[] = [];
  let imported = 0;
  for (let index = 0; index < MUTANTS; index++) {
    const mutant = mutate([...original], next, capability);
    const target = await open();
    try {
      await target.import(mutant.lines);
      imported++;
    } catch (error) {
      if (!isStratumError(error) || error.code !== 'SNAPSHOT_INVALID' || !/ snapshot( line \d+)?: /.test(error.message)) {
        failures.push(
          `seed ${seed} mutant ${index} (${mutant.description}): ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
        );
      }
    } finally {
      await target.drop();
    }
  }
  assert.deepEqual(failures, [], `${failures.length} of ${MUTANTS} mutants were not refused as SNAPSHOT_INVALID:\n${failures.join('\n')}`);
  // Some mutants are harmless (a value a column takes anyway): the importer is not refusing all.
  assert.ok(imported > 0 && imported < MUTANTS, `${imported} of ${MUTANTS} imported`);
}

test('keyvalue snapshots: every mutant imports or is refused with its line (SQLite)', async (t) => {
  const backend = sqliteKeyValue({ dataDir });
  t.after(() => backend.close());
  const source = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  await source.set('plain', new TextEncoder().encode('value'));
  await source.set('binary', new Uint8Array([0, 1, 2, 255]));
  await source.restore([{ key: 'timed', value: new Uint8Array([7]), expiresAt: Date.now() + 3_600_000 }]);
  const original: string[] = [];
  for await (const line of exportKeyValue(source, 'default')) original.push(line);
  await fuzz('keyvalue', original, 1, async () => {
    const store = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
    return { import: (lines) => importKeyValue(store, () => lines), drop: async () => store.drop() };
  });
});

test('SQL snapshots: every mutant imports or is refused with its line, hostile definitions included (SQLite)', async (t) => {
  const backend = sqliteSql({ dataDir });
  t.after(() => backend.close());
  const source = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  await source.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE, score REAL, body BLOB)', []);
  await source.execute('CREATE INDEX notes_score ON notes (score)', []);
  await source.execute('INSERT INTO notes (title, score, body) VALUES (?, ?, ?)', [txt('first'), real(0.5), blob(new Uint8Array([1, 2]))]);
  await source.execute('INSERT INTO notes (title, score, body) VALUES (?, ?, ?)', [txt('second'), real(-2), blob(new Uint8Array())]);
  await source.execute('CREATE TABLE tags (note INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (note, tag))', []);
  await source.execute('INSERT INTO tags (note, tag) VALUES (?, ?)', [int(1), txt('a')]);
  const original: string[] = [];
  for await (const line of exportSql(source, 'default')) original.push(line);
  await fuzz('sql', original, 2, async () => {
    const db = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
    return { import: (lines) => importSql(db, () => lines), drop: async () => db.drop() };
  });
  // Nothing outside the capsule's own database was made (ATTACH, extensions).
  assert.ok(!readdirSync('/tmp').includes('stratum-fuzz-attached.db'));
});

test('bucket snapshots: every mutant imports or is refused with its line, object names included (directory)', async (t) => {
  const around = join(dataDir, 'bucket-case');
  const root = join(around, 'buckets');
  const backend = directoryBucket({ root });
  t.after(() => backend.close());
  const source = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  await source.put('photos/cat.jpg', new TextEncoder().encode('meow'), 'image/jpeg');
  await source.put('empty', new Uint8Array());
  await source.put('notes/a.txt', new TextEncoder().encode('x'.repeat(1000)));
  const original: string[] = [];
  for await (const line of exportBucket(source, 'default')) original.push(line);
  await fuzz('bucket', original, 3, async () => {
    const bucket = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
    return { import: (lines) => importBucket(bucket, () => lines), drop: async () => bucket.drop() };
  });
  // Names such as "../../outside" stayed inside the buckets' root.
  assert.deepEqual(readdirSync(around), ['buckets']);
});

test('snapshot lines: split however the stream is chunked, and a line past the limit is refused with its number', async () => {
  const text = '{"a":1}\n{"b":"' + 'x'.repeat(5000) + '"}\n{"c":é}\n{"d":4}';
  const bytes = new TextEncoder().encode(text);
  const expected = ['{"a":1}\n', `{"b":"${'x'.repeat(5000)}"}\n`, '{"c":é}\n', '{"d":4}'];
  const next = random(4);
  for (let round = 0; round < 50; round++) {
    // Random cut points, through multi-byte characters too.
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; ) {
      const size = 1 + Math.floor(next() * 700);
      chunks.push(bytes.subarray(at, at + size));
      at += size;
    }
    const lines: string[] = [];
    for await (const line of snapshotLines(chunks, 'test')) lines.push(line);
    assert.deepEqual(lines, expected);
  }
  const endless = async function* () {
    yield '{"a":1}\n{"b":';
    for (;;) yield 'x'.repeat(1000);
  };
  await assert.rejects(async () => {
    for await (const _ of snapshotLines(endless(), 'test', 100_000));
  }, /^StratumError: test snapshot line 2: longer than 100000 bytes/);
});

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** Byte-level damage of the kind text tools and hand edits do, which the framing rules of spec/snapshot.md section 2 catch. */
function damageBytes(original: Buffer, next: () => number): { description: string; bytes: Buffer } {
  const at = Math.floor(next() * original.byteLength);
  const lineEnds = [...original.entries()].filter(([, byte]) => byte === 0x0a).map(([index]) => index);
  const lineEnd = lineEnds[Math.floor(next() * lineEnds.length)] as number;
  const splice = (index: number, remove: number, insert: Buffer | string) =>
    Buffer.concat([original.subarray(0, index), Buffer.from(insert), original.subarray(index + remove)]);
  switch (Math.floor(next() * 9)) {
    case 0:
      return { description: 'a byte-order mark first', bytes: splice(0, 0, '\uFEFF') };
    case 1:
      return { description: `CR before the line feed at ${lineEnd}`, bytes: splice(lineEnd, 0, '\r') };
    case 2:
      return { description: `a blank line after ${lineEnd}`, bytes: splice(lineEnd + 1, 0, '\n') };
    case 3:
      return { description: 'no final line feed', bytes: original.subarray(0, -1) };
    case 4:
      return { description: 'a record after the trailer', bytes: Buffer.concat([original, Buffer.from('{"key":"zzz","value":"AA=="}\n')]) };
    case 5:
      return { description: `byte ${at} not UTF-8`, bytes: splice(at, 1, Buffer.from([0xff])) };
    case 6:
      return { description: `byte ${at} -> space`, bytes: splice(at, 1, ' ') };
    case 7:
      return { description: `byte ${at} removed`, bytes: splice(at, 1, '') };
    default:
      return { description: 'unchanged', bytes: original };
  }
}

test('keyvalue snapshots: byte-level damage in any chunking imports exactly or is refused with its line, never hangs', async (t) => {
  const backend = sqliteKeyValue({ dataDir });
  t.after(() => backend.close());
  const source = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  await source.set('a', new TextEncoder().encode('é'));
  await source.set('b', new Uint8Array([0, 255]));
  await source.set('c', new Uint8Array());
  const original = Buffer.from((await collect(exportKeyValue(source, 'default'))).join(''));
  const next = random(5);
  const failures: string[] = [];
  const outcomes = { imported: 0, refused: 0 };
  for (let index = 0; index < MUTANTS; index++) {
    const { description, bytes } = damageBytes(original, next);
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < bytes.byteLength; ) {
      const size = 1 + Math.floor(next() * 40);
      chunks.push(new Uint8Array(bytes.subarray(at, at + size)));
      at += size;
    }
    const store = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
    await store.set('before', new Uint8Array([1]));
    const entries = async () => (await collect(store.entries())).map((entry) => [entry.key, Buffer.from(entry.value).toString('base64')]);
    let timer: NodeJS.Timeout | undefined;
    try {
      const hang = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer in 10 s')), 10_000);
      });
      await Promise.race([importKeyValue(store, () => chunks), hang]);
      outcomes.imported++;
      // Imported exactly: what the (possibly damaged) snapshot's records say, and nothing else.
      const text = bytes.toString('utf8');
      const expected = text
        .split('\n')
        .slice(1, -2)
        .map((line) => JSON.parse(line) as { key: string; value: string })
        .map((record) => [record.key, record.value]);
      assert.deepEqual(await entries(), expected, `seed 5 mutant ${index} (${description})`);
    } catch (error) {
      outcomes.refused++;
      if (!isStratumError(error) || error.code !== 'SNAPSHOT_INVALID' || !/ snapshot( line \d+)?: /.test(error.message)) {
        failures.push(
          `seed 5 mutant ${index} (${description}): ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
        );
      } else if (JSON.stringify(await entries()) !== JSON.stringify([['before', 'AQ==']])) {
        failures.push(`seed 5 mutant ${index} (${description}): refused, but the store changed`);
      }
    } finally {
      clearTimeout(timer);
      await store.drop();
    }
  }
  assert.deepEqual(failures, [], failures.join('\n'));
  assert.ok(outcomes.imported > 0 && outcomes.refused > 0, JSON.stringify(outcomes));
});
