import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CapsuleLogEntry } from '@stratum/host';
import { LogLines, type LogStream } from './log-lines.ts';

const line = (ms: number, message: string): CapsuleLogEntry => ({
  time: new Date(Date.UTC(2026, 10, 25, 12, 0, 0, ms)).toISOString(),
  capsule: 'app',
  level: 'info',
  source: 'stdout',
  message,
});

/** The messages of a stream's lines that are printed: its backlog, `live`, then its new lines. */
function printedOf(stream: LogStream, backlog: CapsuleLogEntry[], after: CapsuleLogEntry[] = []): string[] {
  const printed = backlog.filter((entry) => stream.admit(entry));
  stream.live();
  return [...printed, ...after.filter((entry) => stream.admit(entry))].map((entry) => entry.message);
}

test('one stream prints every line it is sent, the same line in the same millisecond too', () => {
  const lines = new LogLines();
  const frames = [line(1, 'again'), line(1, 'again'), line(1, '    at f (src/index.ts:3)'), line(1, '    at f (src/index.ts:3)')];
  assert.deepEqual(printedOf(lines.stream(), frames.slice(0, 2), frames.slice(2)), [
    'again',
    'again',
    '    at f (src/index.ts:3)',
    '    at f (src/index.ts:3)',
  ]);
});

test('a stream opened again prints only the lines of its backlog that came after those printed, repeated ones too', () => {
  const lines = new LogLines();
  const first = [line(0, 'started'), line(1, 'again'), line(1, 'again')];
  assert.deepEqual(printedOf(lines.stream(), first), ['started', 'again', 'again']);
  // The backlog sent again holds them, then one more "again" of the same millisecond and a later line.
  const second = [...first, line(1, 'again'), line(2, 'later')];
  assert.deepEqual(printedOf(lines.stream(), second), ['again', 'later']);
  // A third stream, from a host that restarted with none of those lines: all of its own are new.
  assert.deepEqual(printedOf(lines.stream(), [line(5, 'again'), line(5, 'again')], [line(6, 'again')]), ['again', 'again', 'again']);
});

test("after a stream's backlog, its new lines are printed whatever their time", () => {
  const lines = new LogLines();
  assert.deepEqual(printedOf(lines.stream(), [line(5, 'a')]), ['a']);
  // The host's clock went back while the stream was cut: its backlog is as before, then a new line.
  assert.deepEqual(printedOf(lines.stream(), [line(5, 'a')], [line(3, 'a'), line(5, 'a')]), ['a', 'a']);
});

test('a stream of a host that gives its lines ids prints every line it is sent, and remembers the last id for the next', () => {
  const lines = new LogLines();
  const admitted = (stream: LogStream, sent: [CapsuleLogEntry, string][]) =>
    sent.filter(([entry, id]) => stream.admit(entry, id)).map(([entry]) => entry.message);
  assert.deepEqual(
    admitted(lines.stream(), [
      [line(0, 'started'), '7-1'],
      [line(1, 'again'), '7-2'],
    ]),
    ['started', 'again'],
  );
  assert.equal(lines.lastId, '7-2');
  // Opened again with Last-Event-ID 7-2, the host sends only the lines after it: the same line of
  // the same millisecond is a new one.
  assert.deepEqual(
    admitted(lines.stream(), [
      [line(1, 'again'), '7-3'],
      [line(2, 'later'), '7-4'],
    ]),
    ['again', 'later'],
  );
  assert.equal(lines.lastId, '7-4');
});
