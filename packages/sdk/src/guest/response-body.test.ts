import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { type BodySink, pipeBody } from './response-body.ts';

/** A sink that records what reached it; `accept` says what `write` does with each chunk. */
function recordingSink(accept: (bytes: Uint8Array) => boolean = () => true) {
  const written: string[] = [];
  const calls: string[] = [];
  const sink: BodySink = {
    write(bytes) {
      written.push(new TextDecoder().decode(bytes));
      return accept(bytes);
    },
    finish: () => calls.push('finish'),
    abandon: () => calls.push('abandon'),
  };
  return { sink, written, calls };
}

/** What the code under test logs with console.error. */
function errorLog(t: TestContext): string[] {
  const lines: string[] = [];
  t.mock.method(console, 'error', (...data: unknown[]) => lines.push(data.join(' ')));
  return lines;
}

const encoder = new TextEncoder();

const noClose = () => assert.fail('the body was not closed by the host');

/** Three parts, then `after` on the fourth pull; `cancel` is the source's. */
function threeParts(
  after: (controller: ReadableStreamDefaultController<Uint8Array>) => void | Promise<void>,
  cancel = (_reason: unknown) => {},
) {
  let part = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      part++;
      if (part > 3) return after(controller);
      controller.enqueue(encoder.encode(`part ${part}\n`));
    },
    cancel,
  });
}

test('a whole body is written in order and finished', async (t) => {
  const log = errorLog(t);
  const { sink, written, calls } = recordingSink();
  await pipeBody(
    threeParts((controller) => controller.close()),
    sink,
    noClose,
  );
  assert.deepEqual(written, ['part 1\n', 'part 2\n', 'part 3\n']);
  assert.deepEqual(calls, ['finish']);
  assert.deepEqual(log, []);
});

test('a stream that fails cuts the response off after what it gave and logs the error; the pipe itself never rejects', async (t) => {
  for (const [fail, message] of [
    [(controller: ReadableStreamDefaultController<Uint8Array>) => controller.error(new Error('stream broke')), 'Error: stream broke'],
    [
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        throw new RangeError('async pull broke');
      },
      'RangeError: async pull broke',
    ],
  ] as const) {
    const log = errorLog(t);
    const { sink, written, calls } = recordingSink();
    await pipeBody(threeParts(fail), sink, noClose);
    assert.deepEqual(written, ['part 1\n', 'part 2\n', 'part 3\n']);
    // Not finished: the host must not end the response as if it were whole.
    assert.deepEqual(calls, ['abandon']);
    assert.equal(log.length, 1);
    assert.ok(log[0]!.startsWith(`the response body's stream failed, so the response was cut off: ${message}\n`), log[0]);
    t.mock.restoreAll();
  }
});

test('a chunk that is not bytes cuts the response off with a TypeError; other buffer sources are written as their bytes', async (t) => {
  const log = errorLog(t);
  const cancelled: unknown[] = [];
  const { sink, written, calls } = recordingSink();
  const chunks: unknown[] = [new DataView(encoder.encode('xview').buffer, 1), encoder.encode('buffer').buffer, 'text'];
  await pipeBody(
    threeParts(
      (controller) => controller.enqueue(chunks.shift() as Uint8Array),
      (reason) => cancelled.push(reason),
    ),
    sink,
    noClose,
  );
  assert.deepEqual(written, ['part 1\n', 'part 2\n', 'part 3\n', 'view', 'buffer']);
  assert.deepEqual(calls, ['abandon']);
  assert.deepEqual(log, ["the response was cut off: TypeError: the response body's stream gave a string, not bytes (a Uint8Array)"]);
  assert.ok(cancelled[0] instanceof TypeError);
});

test('a write the host failed cuts the response off, says why, and cancels the stream', async (t) => {
  const log = errorLog(t);
  const cancelled: unknown[] = [];
  const { sink, written, calls } = recordingSink((bytes) => {
    if (bytes.length === 7 && written.length === 2) throw new Error('writing the response body failed (last-operation-failed)');
    return true;
  });
  await pipeBody(
    threeParts(
      (controller) => controller.close(),
      (reason) => cancelled.push(reason),
    ),
    sink,
    noClose,
  );
  assert.deepEqual(written, ['part 1\n', 'part 2\n']);
  assert.deepEqual(calls, ['abandon']);
  assert.deepEqual(log, ['the response was cut off: Error: writing the response body failed (last-operation-failed)']);
  assert.equal(cancelled.length, 1);
});

test('a body the host closed says so (the adapter aborts request.signal), then cancels the stream, quietly: the host has said why', async (t) => {
  const log = errorLog(t);
  const events: string[] = [];
  const { sink, written, calls } = recordingSink(() => written.length < 2);
  await pipeBody(
    threeParts(
      (controller) => controller.close(),
      (reason) => events.push(`cancelled: ${reason}`),
    ),
    sink,
    () => events.push('closed'),
  );
  assert.deepEqual(written, ['part 1\n', 'part 2\n']);
  assert.deepEqual(events, ['closed', 'cancelled: undefined']);
  assert.deepEqual(calls, []);
  assert.deepEqual(log, []);
});

test('a body that was read already cuts the response off with why', async (t) => {
  const log = errorLog(t);
  const { sink, calls } = recordingSink();
  const used = new Response('read');
  await used.text();
  await pipeBody(used.body!, sink, noClose);
  assert.deepEqual(calls, ['abandon']);
  assert.equal(log.length, 1);
  assert.match(log[0]!, /^the response body could not be read, so the response was cut off: TypeError/);
});
