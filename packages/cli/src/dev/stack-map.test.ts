import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bundleFrameMapper } from './stack-map.ts';

// Two generated lines, each the first column of a source line: src/a.ts lines 1 and 2, then the
// SDK's file (outside the project) at line 10.
const map = JSON.stringify({
  version: 3,
  sources: ['src/a.ts', '../sdk/http.ts'],
  names: [],
  mappings: 'AAAA;AACA;ACQA',
});

test("a dev bundle's frames name the source positions; the project's files relative, others whole", () => {
  const frames = bundleFrameMapper('src/a.ts.bundle.js', map, '/home/me/app');
  assert.equal(frames('fetch@src/a.ts.bundle.js:2:1'), 'fetch@src/a.ts:2:1');
  assert.equal(frames('handle@src/a.ts.bundle.js:3:1'), 'handle@/home/me/sdk/http.ts:10:1');
  assert.equal(frames('at src/a.ts.bundle.js:1:1 and src/a.ts.bundle.js:2:1'), 'at src/a.ts:1:1 and src/a.ts:2:1');
  // Other files, and names that only resemble the bundle's, are left alone.
  assert.equal(frames('handle@engine.js:33:20'), 'handle@engine.js:33:20');
  assert.equal(frames('x@src/aXts.bundle.js:2:1'), 'x@src/aXts.bundle.js:2:1');
});

test('a map that does not parse leaves the text as it was', () => {
  const frames = bundleFrameMapper('src/a.ts.bundle.js', '{not json', '/home/me/app');
  assert.equal(frames('fetch@src/a.ts.bundle.js:2:1'), 'fetch@src/a.ts.bundle.js:2:1');
});
