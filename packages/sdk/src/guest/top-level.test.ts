import assert from 'node:assert/strict';
import { test } from 'node:test';
import { atTopLevel, callerOf, refuseAtTopLevel, requestsBegun } from './top-level.ts';

test("the caller of an SDK entry point is read from SpiderMonkey's frames and V8's", () => {
  assert.deepEqual(callerOf('refuseAtTopLevel@capsule.js:40:15\nopenKeyValue@capsule.js:120:3\n@capsule.js:900:12\n'), {
    file: 'capsule.js',
    line: 900,
    column: 12,
  });
  assert.deepEqual(
    callerOf(
      'Error\n    at refuseAtTopLevel (file:///a/top-level.ts:4:5)\n    at openKeyValue (file:///a/kv.ts:9:3)\n    at file:///a/index.ts:3:12\n',
    ),
    { file: 'file:///a/index.ts', line: 3, column: 12 },
  );
  assert.equal(callerOf('refuseAtTopLevel@capsule.js:40:15\n'), undefined);
});

test("an entry point called by the top-level code throws, naming what was called, the caller's line, why and the fix; once requests begin it does not", () => {
  const openThing = (label: string) =>
    refuseAtTopLevel(`openKeyValue(${JSON.stringify(label)})`, `let kv; … kv ??= openKeyValue("${label}")`);
  assert.equal(atTopLevel(), true);
  assert.throws(
    () => openThing('ratelimit'),
    (error: Error) => {
      assert.match(
        error.message,
        /^openKeyValue\("ratelimit"\) was called by the modules' top-level code at .*top-level\.test\.ts:\d+:\d+, /,
      );
      assert.match(error.message, /runs once while the component is built/);
      assert.match(error.message, /where no key-value store, database, bucket or config exists/);
      assert.match(error.message, /call it inside fetch\(\), or lazily, on first use \(let kv; … kv \?\?= openKeyValue\("ratelimit"\)\)$/);
      return true;
    },
  );
  requestsBegun();
  assert.equal(atTopLevel(), false);
  openThing('ratelimit');
});
