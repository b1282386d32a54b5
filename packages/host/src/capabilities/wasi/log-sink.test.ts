import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PrepareContext } from '../contract.ts';
import { logSink, type WasiSettings } from './index.ts';

function sink(secrets: string[] = []) {
  const logged: string[] = [];
  const context = {
    settings: { secrets },
    log: (_level: string, message: string) => logged.push(message),
  } as unknown as PrepareContext<WasiSettings>;
  const out = logSink(context, 'error', 'stderr');
  const write = (...texts: string[]) => {
    for (const text of texts) out.write(new TextEncoder().encode(text));
  };
  return { logged, write, close: () => out.close?.() };
}

test("a message of several lines written as StarlingMonkey's console writes it (the message, then its line feed) is one log line", () => {
  const { logged, write } = sink(['s3cret']);
  const error = 'TypeError: no boom here\nfetch@src/index.ts:3:11\ncaused by: the key s3cret';
  write(error, '\n');
  assert.deepEqual(logged, ['TypeError: no boom here\nfetch@src/index.ts:3:11\ncaused by: the key [secret]']);
  // Lines one a write around it; one begun in an earlier write is a line a line feed.
  write('one\n', 'Error: a\nframe@x.js:1:2', '\n', 'two\n', 'Error: a', 'b\nframe@x.js:1:2', '\n');
  assert.deepEqual(logged.slice(1), ['one', 'Error: a\nframe@x.js:1:2', 'two', 'Error: ab', 'frame@x.js:1:2']);
  // Followed by more than its line feed: written in blocks, not a message.
  write('a\nb', '\nc\nd\nno end');
  assert.deepEqual(logged.slice(6), ['a', 'b', 'c', 'd']);
  write('\n');
  // A message and its line feed in one write, as a dev engine's console writes it.
  write('RangeError: x\nframe@y.js:1:2\n');
  assert.deepEqual(logged.slice(10), ['no end', 'RangeError: x\nframe@y.js:1:2']);
});

test('output written in blocks is a line a line feed, but for a block that ends where a line does; none is lost, and what no line feed ended is logged at the close', () => {
  const { logged, write, close } = sink();
  const text = Array.from({ length: 400 }, (_, index) => `line ${index} ${'x'.repeat(index % 37)}`).join('\n');
  // Blocks of every size from 1 to 61 bytes, so that some begin and some end with a line feed.
  const blocks: string[] = [];
  for (let at = 0, size = 1; at < text.length; at += size, size = (size % 61) + 1) blocks.push(text.slice(at, at + size));
  write(...blocks);
  close();
  assert.equal(logged.join('\n'), text);
  const whole = blocks.filter((block, index) => block.endsWith('\n') && (index === 0 || blocks[index - 1]?.endsWith('\n')));
  assert.ok(logged.length > 300 && logged.length <= 400, String(logged.length));
  // A line each but where a write held several lines and the line feed that ended them.
  for (const line of logged) assert.ok(!line.includes('\n') || whole.includes(`${line}\n`), JSON.stringify(line));
});

test('a held message too long to hold whole is a line a line feed, each cut where a line is', () => {
  const { logged, write } = sink();
  const long = `${'y'.repeat(20_000)}`;
  write(`first\n${long}\nlast`, '\n');
  assert.equal(logged.length, 3, String(logged.map((line) => line.length)));
  assert.equal(logged[0], 'first');
  assert.ok(logged[1]?.endsWith('... (truncated)'));
  assert.equal(logged[2], 'last');
});
