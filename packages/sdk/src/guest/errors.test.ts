import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeError } from './errors.ts';

test('an uncaught error is described by its name and message before its frames, as SpiderMonkey and V8 give them', () => {
  // SpiderMonkey: the stack holds the frames alone.
  const spidermonkey = new TypeError('no such note');
  spidermonkey.stack = 'fetch@src/index.ts.bundle.js:51:44\nhandle@src/index.ts.bundle.js:179:40\n';
  assert.equal(
    describeError(spidermonkey),
    'TypeError: no such note\nfetch@src/index.ts.bundle.js:51:44\nhandle@src/index.ts.bundle.js:179:40',
  );
  // V8: the stack starts with the heading already.
  const v8 = new Error('boom');
  assert.equal(describeError(v8), v8.stack);
  assert.match(describeError(v8), /^Error: boom\n {4}at /);
  const bare = new RangeError('too far');
  delete (bare as { stack?: string }).stack;
  assert.equal(describeError(bare), 'RangeError: too far');
  assert.equal(describeError('just a string'), 'uncaught "just a string"');
  assert.equal(describeError(42), 'uncaught 42');
  // What SpiderMonkey throws when an allocation cannot grow the instance's memory.
  assert.match(describeError('out of memory'), /^uncaught out of memory: .*\[resources\] memory in stratum\.toml/);
});
