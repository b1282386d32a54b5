import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseVarFlag, varsFor } from './vars.ts';

test('--var takes name=value, optionally for one capsule, and keeps = and : in values', () => {
  assert.deepEqual(parseVarFlag('api_url=https://x.example/a=b'), { name: 'api_url', value: 'https://x.example/a=b' });
  assert.deepEqual(parseVarFlag('notes:token='), { capsule: 'notes', name: 'token', value: '' });
  assert.throws(() => parseVarFlag('no-equals'), /is not name=value/);
  assert.throws(() => parseVarFlag('API_URL=x'), /is not name=value/);
  assert.throws(() => parseVarFlag('=x'), /is not name=value/);
});

test("a capsule's own --var wins over one given to every capsule", () => {
  const flags = [parseVarFlag('greeting=hi'), parseVarFlag('counter:greeting=hello'), parseVarFlag('notes:other=1')];
  assert.deepEqual(varsFor('counter', flags), { greeting: 'hello' });
  assert.deepEqual(varsFor('hello', flags), { greeting: 'hi' });
  assert.deepEqual(varsFor('notes', flags), { greeting: 'hi', other: '1' });
});

test('with several capsules, a --var without a capsule goes only to those that declare it', () => {
  const flags = [parseVarFlag('greeting=hi'), parseVarFlag('notes:other=1')];
  assert.deepEqual(varsFor('counter', flags, []), {});
  assert.deepEqual(varsFor('hello', flags, ['greeting']), { greeting: 'hi' });
  // A capsule's own flag is given as asked: the host says if it declares no such variable.
  assert.deepEqual(varsFor('notes', flags, []), { other: '1' });
});
