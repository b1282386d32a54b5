import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runInNewContext } from 'node:vm';
import { describeError } from './errors.ts';
import { requestBodyError, streamClosed } from './request-body.ts';

/** What jco's bindings throw for a WIT error value: its class, as the generated glue has it. */
const COMPONENT_ERROR = `
class ComponentError extends Error {
  constructor(value) {
    const enumerable = typeof value !== 'string';
    super(enumerable ? \`\${String(value)} (see error.payload)\` : value);
    Object.defineProperty(this, 'payload', { value, enumerable });
  }
}`;

/** wasi:io's `error` resource, as the guest's bindings give it. */
class IoError {
  toDebugString(): string {
    return 'the request body was not received whole';
  }
}

const thrown = (payload: unknown, realm: 'this' | 'other' = 'this'): Error =>
  realm === 'this'
    ? (new Function('payload', `${COMPONENT_ERROR}\nreturn new ComponentError(payload);`)(payload) as Error)
    : (runInNewContext(`${COMPONENT_ERROR}\nnew ComponentError(payload)`, { payload }) as Error);

test("a request body's read that failed errors its stream with an error saying the body was not received whole, the WIT error its cause", () => {
  // As the host fails it (packages/host/src/body-channel.ts) when the client leaves mid-upload.
  for (const realm of ['this', 'other'] as const) {
    const original = thrown({ tag: 'last-operation-failed', val: new IoError() }, realm);
    assert.equal(streamClosed(original), false);
    const error = requestBodyError(original);
    assert.ok(error instanceof TypeError, realm);
    assert.match(error.message, /^the request body was not received whole: the client closed the connection before its end/);
    assert.equal(error.cause, original);
    // What the capsule's log shows when it lets it go uncaught: no "[object Object]".
    error.stack = 'fetch@capsule.js:3:9\n';
    assert.equal(
      describeError(error),
      `TypeError: ${error.message}\nfetch@capsule.js:3:9\ncaused by: WIT error last-operation-failed: the request body was not received whole`,
    );
    assert.equal(describeError(original), 'uncaught WIT error last-operation-failed: the request body was not received whole');
  }
  // The body's end is no failure; anything but a stream-error goes on as it is.
  assert.equal(streamClosed(thrown({ tag: 'closed' })), true);
  const other = new RangeError('not from the stream');
  assert.equal(requestBodyError(other), other);
});

test("an error of the capsule's own is described by its message, whatever fields it has", () => {
  const own = Object.assign(new Error('quota'), { payload: { tag: 'limit-exceeded' } });
  own.stack = '';
  assert.equal(describeError(own), 'Error: quota');
  const dropped = thrown({
    tag: 'last-operation-failed',
    val: {
      toDebugString() {
        throw new Error('resource dropped');
      },
    },
  });
  assert.equal(describeError(dropped), 'uncaught WIT error last-operation-failed');
});
