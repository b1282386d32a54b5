import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { frameMapper, SOURCE_MAP_MAX_BYTES } from './source-map.ts';

// Three generated lines, each the first column of a source line: src/a.ts lines 1 and 2, then
// the SDK's file at line 10.
const map = (file: string, sources = ['src/a.ts', '@stratum/sdk/guest/http.ts']) =>
  JSON.stringify({ version: 3, file, sources, names: [], mappings: 'AAAA;AACA;ACQA' });

test("a bundle's frames name the source positions the map gives", () => {
  const frames = frameMapper(map('capsule.js'));
  assert.ok(frames);
  assert.equal(frames('fetch@capsule.js:2:1'), 'fetch@src/a.ts:2:1');
  assert.equal(frames('handle@capsule.js:3:1'), 'handle@@stratum/sdk/guest/http.ts:10:1');
  assert.equal(frames('at capsule.js:1:1 and capsule.js:2:1'), 'at src/a.ts:1:1 and src/a.ts:2:1');
  // Other scripts, and names that only resemble the bundle's, are left alone.
  assert.equal(frames('handle@engine.js:33:20'), 'handle@engine.js:33:20');
  assert.equal(frames('x@capsuleXjs:2:1'), 'x@capsuleXjs:2:1');
  const dev = frameMapper(map('src/a.ts.bundle.js'));
  assert.equal(dev?.('fetch@src/a.ts.bundle.js:2:1'), 'fetch@src/a.ts:2:1');
});

test('a source map is untrusted: no file, bad JSON, too large, or control characters in a source name', () => {
  assert.equal(frameMapper('{not json'), undefined);
  assert.equal(frameMapper(JSON.stringify({ version: 3, sources: [], mappings: '' })), undefined);
  assert.equal(frameMapper(map('capsule.js').padEnd(SOURCE_MAP_MAX_BYTES + 1)), undefined);
  const forged = frameMapper(map('capsule.js', ['src/a.ts\n2026-12-06T00:00:00Z info  host: started', 'x']));
  assert.equal(forged?.('fetch@capsule.js:1:1'), 'fetch@src/a.ts2026-12-06T00:00:00Z info  host: started:1:1');
  // Whatever the map, a line maps to one line and never throws.
  fc.assert(
    fc.property(fc.string(), fc.string({ maxLength: 40 }), fc.nat(50), fc.nat(50), (mappings, source, line, column) => {
      const mapper = frameMapper(JSON.stringify({ version: 3, file: 'capsule.js', sources: [source], names: [], mappings }));
      const out = mapper?.(`f@capsule.js:${line}:${column}`) ?? '';
      assert.ok(!/[\n\r]/.test(out));
    }),
  );
});
