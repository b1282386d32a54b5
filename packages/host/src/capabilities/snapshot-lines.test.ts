import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { importSnapshot, type RecordReader, type SnapshotSource } from './snapshot-lines.ts';

const FORMAT = { capability: 'keyvalue', kind: 'key-value' } as const;

function snapshot(values: string[]): string[] {
  const header = `${JSON.stringify({ 'stratum-snapshot': 1, capability: 'keyvalue', label: 'default', created: '2026-12-07T00:00:00Z' })}\n`;
  const records = values.map((value, index) => `${JSON.stringify({ key: `k${index}`, value })}\n`);
  const hash = createHash('sha256').update(header);
  for (const line of records) hash.update(line);
  return [header, ...records, `${JSON.stringify({ end: { records: records.length, sha256: hash.digest('hex') } })}\n`];
}

/** A store that records what the import did, in order, and how often it read the snapshot. */
function recorder(lines: string[], failWriteAt?: number) {
  const events: string[] = [];
  let reads = 0;
  const source: SnapshotSource = () => {
    reads++;
    return lines;
  };
  const reader = (write: boolean): RecordReader => ({
    record(record, line) {
      if (write && line === failWriteAt) throw new Error('the store failed');
      events.push(`${write ? 'write' : 'check'} ${String(record.key)} line ${line}`);
    },
    end(line) {
      events.push(`${write ? 'write' : 'check'} end line ${line}`);
    },
    async abort() {
      events.push(`${write ? 'write' : 'check'} abort`);
    },
  });
  const clear = () => {
    events.push('clear');
  };
  return { events, reads: () => reads, source, reader, clear };
}

test('a small snapshot is read once: the write takes the records the check parsed, with their line numbers', async () => {
  const store = recorder(snapshot(['YQ==', 'Yg==']));
  assert.deepEqual(await importSnapshot(store.source, FORMAT, store.reader, store.clear), { records: 2 });
  assert.equal(store.reads(), 1);
  assert.deepEqual(store.events, [
    'check k0 line 2',
    'check k1 line 3',
    'check end line 4',
    'clear',
    'write k0 line 2',
    'write k1 line 3',
    'write end line 4',
  ]);
});

test('a snapshot too big to keep parsed is read again for the write', async () => {
  // 17 Mi characters of lines, past the 16 Mi kept.
  const store = recorder(snapshot(['QUFB'.repeat(2 * 1024 * 1024), 'QUFB'.repeat(2 * 1024 * 1024 + 1024), 'Yw==']));
  assert.deepEqual(await importSnapshot(store.source, FORMAT, store.reader, store.clear), { records: 3 });
  assert.equal(store.reads(), 2);
  assert.deepEqual(store.events.slice(3), [
    'check end line 5',
    'clear',
    'write k0 line 2',
    'write k1 line 3',
    'write k2 line 4',
    'write end line 5',
  ]);
});

test('a store that fails while writing kept records is told to give back what it started', async () => {
  const store = recorder(snapshot(['YQ==', 'Yg==']), 3);
  await assert.rejects(importSnapshot(store.source, FORMAT, store.reader, store.clear), /the store failed/);
  assert.deepEqual(store.events.slice(3), ['clear', 'write k0 line 2', 'write abort']);
});

test('a damaged snapshot is refused before the store is cleared', async () => {
  const lines = snapshot(['YQ==', 'Yg==']);
  lines[2] = lines[2]?.replace('Yg==', 'Yw==') ?? '';
  const store = recorder(lines);
  await assert.rejects(importSnapshot(store.source, FORMAT, store.reader, store.clear), /line 4: the checksum does not match/);
  assert.deepEqual(store.events, ['check k0 line 2', 'check k1 line 3', 'check abort']);
});

test('an empty snapshot is refused as empty, naming no line (it has none)', async () => {
  const store = recorder([]);
  await assert.rejects(importSnapshot(store.source, FORMAT, store.reader, store.clear), {
    code: 'SNAPSHOT_INVALID',
    message: 'key-value snapshot: it is empty',
  });
  assert.deepEqual(store.events, ['check abort']);
});
