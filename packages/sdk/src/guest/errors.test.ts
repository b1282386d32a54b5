import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeError, toCapabilityError } from './errors.ts';

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

test("an Error of another global (a binding's TypeError for an argument of the wrong type) keeps its name, message and the capsule's frames", async () => {
  const { runInNewContext } = await import('node:vm');
  const foreign = runInNewContext(
    "new TypeError('wasi:logging/logging@0.1.0-draft log, argument 3: expected a string, received an object')",
  ) as Error;
  assert.equal(foreign instanceof Error, false);
  foreign.stack = [
    '_utf8AllocateAndEncode@/tmp/34f9dfe80637/sources/initializer.js:134:11',
    'import_wasi_logging_logging_0_1_0_draft$log@/tmp/34f9dfe80637/sources/initializer.js:202:41',
    'fetch@capsule.js:908:11',
    'stratumHandle@capsule.js:1292:38',
    'export_incomingHandler_0_2_10$handle@/tmp/34f9dfe80637/sources/initializer.js:5569:15',
    '',
  ].join('\n');
  assert.equal(
    describeError(foreign),
    'TypeError: wasi:logging/logging@0.1.0-draft log, argument 3: expected a string, received an object\nfetch@capsule.js:908:11',
  );
});

test("a binding's error of another global becomes the capsule's own, of the same kind, where the SDK catches it", async () => {
  const { runInNewContext } = await import('node:vm');
  const foreign = runInNewContext("new TypeError('expected a string')") as Error;
  const own = toCapabilityError('keyvalue', 'get', foreign);
  assert.ok(own instanceof TypeError, String(own));
  assert.equal(own.message, 'expected a string');
  const range = toCapabilityError('keyvalue', 'get', runInNewContext("new RangeError('too big')"));
  assert.ok(range instanceof RangeError);
});
