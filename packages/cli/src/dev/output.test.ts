import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { StratumError } from '@stratum/core';
import type { RequestRecord } from '@stratum/host';
import { DevOutput } from './output.ts';

function capture(isTTY: boolean) {
  let text = '';
  const stream = Object.assign(
    new Writable({
      write(chunk, _encoding, done) {
        text += String(chunk);
        done();
      },
    }),
    { isTTY },
  );
  return { stream, text: () => text };
}

const record: RequestRecord = {
  capsule: 'counter',
  domain: 'counter.localhost',
  requestId: 'r1',
  method: 'GET',
  path: '/hits',
  status: 504,
  cpuMs: 11,
  wallMs: 12,
  memoryBytes: 0,
  bytesIn: 0,
  bytesOut: 10,
  limit: 'cpu',
};

/** Runs `body` with NO_COLOR set as given, restoring it after. */
function withNoColor(value: string | undefined, body: () => void): void {
  const saved = process.env.NO_COLOR;
  if (value === undefined) delete process.env.NO_COLOR;
  else process.env.NO_COLOR = value;
  try {
    body();
  } finally {
    if (saved === undefined) delete process.env.NO_COLOR;
    else process.env.NO_COLOR = saved;
  }
}

test('request lines carry method, path, status, time and capsule; a limit hit stands out', () =>
  withNoColor(undefined, () => {
    const plain = capture(false);
    new DevOutput(plain.stream, { json: false }).request(record);
    assert.match(plain.text(), /^\d\d:\d\d:\d\d counter\s+GET\s+\/hits 504 12 ms {2}limit: cpu \n$/);
    assert.ok(!plain.text().includes('\x1b['), 'no colour off a terminal');

    const tty = capture(true);
    new DevOutput(tty.stream, { json: false }).request(record);
    assert.ok(tty.text().includes('\x1b[41m limit: cpu \x1b[0m'), JSON.stringify(tty.text()));
  }));

test("a request's wait for an instance is shown beside its time, from 10 ms", () =>
  withNoColor(undefined, () => {
    const { limit: _limit, ...served } = record;
    const waited = capture(false);
    new DevOutput(waited.stream, { json: false }).request({ ...served, status: 200, queuedMs: 2540 });
    assert.match(waited.text(), / 200 12 ms \(waited 2\.54 s for an instance\)\n$/);
    const brief = capture(false);
    new DevOutput(brief.stream, { json: false }).request({ ...served, status: 200, queuedMs: 3 });
    assert.match(brief.text(), / 200 12 ms\n$/);
  }));

test('NO_COLOR turns colour off on a terminal too', () =>
  withNoColor('1', () => {
    const tty = capture(true);
    new DevOutput(tty.stream, { json: false }).request({ ...record, status: 200 });
    assert.ok(!tty.text().includes('\x1b['));
  }));

test('--json prints one object per line; errors keep their code, details and hint', () => {
  const out = capture(false);
  const output = new DevOutput(out.stream, { json: true });
  output.request(record);
  output.failed(
    'counter',
    new StratumError('MANIFEST_INVALID', 'stratum.toml is not valid', { details: ['stratum.toml:3:1: bad'], hint: 'fix it' }),
    '0.1.0',
  );
  output.log({ time: new Date().toISOString(), capsule: 'counter', level: 'warn', source: 'stderr', message: 'careful' });
  const events = out
    .text()
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(
    events.map((event) => event.type),
    ['request', 'error', 'log'],
  );
  assert.equal(events[0]?.limit, 'cpu');
  assert.deepEqual(
    [events[1]?.code, events[1]?.details, events[1]?.hint, events[1]?.serving],
    ['MANIFEST_INVALID', ['stratum.toml:3:1: bad'], 'fix it', '0.1.0'],
  );
  assert.equal(events[2]?.message, 'careful');
});

test('a failed build says what went wrong, the details, the fix, and what still serves', () => {
  const out = capture(false);
  new DevOutput(out.stream, { json: false }).failed(
    'counter',
    new StratumError('BUILD_BUNDLE_FAILED', 'cannot bundle src/index.ts', {
      details: ['src/index.ts:3:7: Expected ";"'],
      hint: 'Fix the code.',
    }),
    '0.1.0, sha256:abc',
  );
  const lines = out.text().split('\n');
  assert.match(lines[0] ?? '', /✗ error: cannot bundle src\/index\.ts$/);
  assert.equal(lines[1], '    src/index.ts:3:7: Expected ";"');
  assert.equal(lines[2], '    hint: Fix the code.');
  assert.match(lines[3] ?? '', /still serving the last good version \(0\.1\.0, sha256:abc\)/);
});

test('a first build that fails says to save to retry when watching, and to run again with --no-watch', () => {
  const error = new StratumError('BUILD_BUNDLE_FAILED', 'cannot bundle src/index.ts');
  const watching = capture(false);
  new DevOutput(watching.stream, { json: false }).failed('counter', error, undefined);
  assert.match(watching.text(), /\n {4}nothing is served yet; fix it and save to retry\n$/);
  const once = capture(false);
  new DevOutput(once.stream, { json: false, watching: false }).failed('counter', error, undefined);
  assert.match(once.text(), /\n {4}nothing is served; fix it and run stratum dev again\n$/);
});

test('a reload says how it was built and how long the rebuild took', () =>
  withNoColor(undefined, () => {
    const out = capture(false);
    const output = new DevOutput(out.stream, { json: false });
    const common = { version: '0.1.0', digest: `sha256:${'e'.repeat(64)}`, swapMs: 310, first: false };
    output.swapped('counter', { ...common, bundle: `sha256:${'b'.repeat(64)}`, engine: 'keyvalue', build: 'bundle', buildMs: 412 });
    output.swapped('counter', {
      ...common,
      bundle: `sha256:${'c'.repeat(64)}`,
      engine: 'keyvalue, logging',
      build: 'engine',
      buildMs: 21_300,
    });
    output.swapped('counter', { ...common, build: 'component', buildMs: 19_800 });
    const lines = out.text().trim().split('\n');
    assert.match(
      lines[0] ?? '',
      /✓ reloaded 0\.1\.0 \(rebuilt in 412 ms: bundle only, dev engine for keyvalue reused; swapped in 310 ms; bundle b{12}\)$/,
    );
    assert.match(
      lines[1] ?? '',
      /\(rebuilt in 21\.3 s: bundle and a new dev engine for keyvalue, logging; swapped in 310 ms; bundle c{12}\)$/,
    );
    assert.match(lines[2] ?? '', /\(rebuilt in 19\.8 s: full build; swapped in 310 ms; sha256:e{12}\)$/);
  }));

test("a capsule's log line reaches the terminal with its colours, and every other escape shown, not acted on", () =>
  withNoColor(undefined, () => {
    // Hono's logger colours its status; the rest writes the clipboard (OSC 52), clears the
    // screen, and reverses the text after it (a bidi override).
    const message = 'GET / \x1b[32m200\x1b[0m \x1b]52;c;ZXZpbA==\x07\x1b[2J tab\tkept \u202Eevil';
    const entry = { time: new Date().toISOString(), capsule: 'counter', level: 'info' as const, source: 'stdout', message };
    const tty = capture(true);
    new DevOutput(tty.stream, { json: false }).log(entry);
    assert.ok(
      tty.text().includes('GET / \x1b[32m200\x1b[0m \\x1b]52;c;ZXZpbA==\\x07\\x1b[2J tab\tkept \\u202eevil'),
      JSON.stringify(tty.text()),
    );
    const plain = capture(false);
    new DevOutput(plain.stream, { json: false }).log(entry);
    assert.ok(plain.text().includes('GET / 200 \\x1b]52;c;ZXZpbA==\\x07\\x1b[2J tab\tkept \\u202eevil'), JSON.stringify(plain.text()));
    // --json keeps the message as it was: JSON escapes it.
    const json = capture(false);
    new DevOutput(json.stream, { json: true }).log(entry);
    assert.equal((JSON.parse(json.text()) as { message: string }).message, message);
  }));

test("a log message of several lines (an uncaught error and its frames) is a terminal line each, each with the capsule's prefix, and one JSON event", () =>
  withNoColor('1', () => {
    const entry = {
      time: '2026-12-07T10:00:00.000Z',
      capsule: 'counter',
      level: 'error' as const,
      source: 'stderr',
      message: 'TypeError: no boom here\nfetch@src/index.ts:3:11\ncaused by: \x1b]0;title\x07',
    };
    const plain = capture(false);
    new DevOutput(plain.stream, { json: false }).log(entry);
    const lines = plain.text().trimEnd().split('\n');
    assert.equal(lines.length, 3, plain.text());
    for (const line of lines) assert.match(line, /^\d\d:\d\d:\d\d counter\s+│ stderr /);
    assert.match(lines[1] ?? '', /│ stderr fetch@src\/index\.ts:3:11$/);
    // Each line still has its control characters shown, not run.
    assert.match(lines[2] ?? '', /caused by: \\x1b\]0;title\\x07$/);
    const json = capture(false);
    new DevOutput(json.stream, { json: true }).log(entry);
    assert.equal(json.text().trimEnd().split('\n').length, 1);
    assert.equal((JSON.parse(json.text()) as { message: string }).message, entry.message);
  }));

test('a wasi:logging line shows its level and the category the capsule gave, as `host logs` shows it', () =>
  withNoColor('1', () => {
    const at = { time: '2026-12-07T10:00:00.000Z', capsule: 'pastes', level: 'info' as const };
    const out = capture(false);
    const output = new DevOutput(out.stream, { json: false });
    output.log({ ...at, source: 'wasi:logging pastes', message: 'paste created' });
    output.log({ ...at, source: 'wasi:logging', message: 'no category' });
    output.log({ ...at, source: 'wasi:logging \x1b[2J', message: 'escaped' });
    const lines = out.text().trimEnd().split('\n');
    assert.match(lines[0] ?? '', /│ info pastes: paste created$/);
    assert.match(lines[1] ?? '', /│ info no category$/);
    assert.match(lines[2] ?? '', /│ info \\x1b\[2J: escaped$/);
  }));

test('the banner lists config variables and which have values, a secret without its value', () =>
  withNoColor('1', () => {
    const out = capture(false);
    new DevOutput(out.stream, { json: false }).ready(
      [
        {
          name: 'notes',
          version: '0.1.0',
          dir: 'notes',
          urls: ['http://notes.localhost:8800/'],
          capabilities: [],
          config: [
            { name: 'api_key', secret: true, value: 'missing' },
            { name: 'signing_key', secret: true, value: 'default' },
            { name: 'title', secret: false, value: 'default', text: 'Notes' },
            { name: 'motd', secret: false, value: 'given', text: 'x'.repeat(50), from: '--var' },
          ],
          stateDir: 'notes/.stratum',
        },
      ],
      { watching: true, port: 8800 },
    );
    const text = out.text();
    assert.match(text, /\n {5}config {8}api_key {6}required, no value \(a secret\)\n/);
    assert.match(text, /\n {19}signing_key {2}secret, default\n/);
    assert.match(text, /\n {19}title {8}"Notes" \(default\)\n/);
    assert.match(text, new RegExp(`\\n {19}motd {9}"${'x'.repeat(40)}…" ← --var\\n`));
    assert.doesNotMatch(text, /values from/);
  }));
