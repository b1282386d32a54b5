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

test("an uncaught error's frames stop at the SDK adapter's entry: below it are only the bindings and the engine", async () => {
  const spidermonkey = new RangeError('no boom here');
  spidermonkey.stack = [
    'check@capsule.js:12:11',
    'fetch@capsule.js:20:5',
    'stratumHandle@capsule.js:179:40',
    'export_incomingHandler_0_2_10$handle@/tmp/c7e6688d90c7/sources/initializer.js:6572:15',
    '',
  ].join('\n');
  assert.equal(describeError(spidermonkey), 'RangeError: no boom here\ncheck@capsule.js:12:11\nfetch@capsule.js:20:5');
  // After an await, the adapter's frame is an async one.
  const later = new TypeError('gone');
  later.stack = 'fetch@capsule.js:30:9\nasync*stratumHandle@capsule.js:179:40\nhandle@engine.js:33:20\n';
  assert.equal(describeError(later), 'TypeError: gone\nfetch@capsule.js:30:9');
  // V8's frames, cut at the same function.
  const stratumHandle = () => {
    throw new Error('in v8');
  };
  let thrown: unknown;
  try {
    stratumHandle();
  } catch (error) {
    thrown = error;
  }
  assert.match(describeError(thrown), /^Error: in v8$/);
  // An error from elsewhere (a timer's callback) has no such frame: every frame stays.
  const elsewhere = new Error('timer');
  elsewhere.stack = 'tick@capsule.js:5:1\n';
  assert.equal(describeError(elsewhere), 'Error: timer\ntick@capsule.js:5:1');
});
