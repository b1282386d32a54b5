import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseVarFile, parseVarFlag, varsFor } from './vars.ts';

test('--var takes name=value, optionally for one capsule, and keeps = and : in values', () => {
  assert.deepEqual(parseVarFlag('api_url=https://x.example/a=b'), { name: 'api_url', value: 'https://x.example/a=b' });
  assert.deepEqual(parseVarFlag('notes:token='), { capsule: 'notes', name: 'token', value: '' });
  assert.throws(
    () => parseVarFlag('sk-secret'),
    (error: Error) => error.message === '--var takes name=value, and one has no "="',
  );
  // The name is quoted, never the value: it may be a secret.
  assert.throws(
    () => parseVarFlag('API_URL=sk-secret'),
    (error: Error) => error.message === '--var "API_URL" is not a config variable\'s name',
  );
  assert.throws(
    () => parseVarFlag('=sk-secret'),
    (error: Error) => error.message === '--var "" is not a config variable\'s name',
  );
});

test('a --var-file has a name=value a line, as a .env file, and its errors name the line without its value', () => {
  const text = [
    '# the notes capsule',
    '',
    'api_url=https://x.example/a=b',
    'export token = "s3cret with spaces" ',
    'quoted_single=\'a "b"\'',
    'notes:greeting=hi\r',
    'unbalanced="x',
    'api_url=https://y.example',
  ].join('\n');
  assert.deepEqual(parseVarFile(text, 'dev.vars'), [
    { name: 'api_url', value: 'https://x.example/a=b', from: 'dev.vars:3' },
    { name: 'token', value: 's3cret with spaces', from: 'dev.vars:4' },
    { name: 'quoted_single', value: 'a "b"', from: 'dev.vars:5' },
    { capsule: 'notes', name: 'greeting', value: 'hi', from: 'dev.vars:6' },
    { name: 'unbalanced', value: '"x', from: 'dev.vars:7' },
    { name: 'api_url', value: 'https://y.example', from: 'dev.vars:8' },
  ]);
  // The later line wins, as a later --var does.
  assert.deepEqual(varsFor('notes', parseVarFile(text, 'dev.vars')).api_url, 'https://y.example');
  const bad = (file: string) => {
    try {
      parseVarFile(file, 'prod.vars');
    } catch (error) {
      return (error as Error).message;
    }
    return 'no error';
  };
  assert.equal(bad('ok=1\nAPI_KEY=sk-live-123'), 'prod.vars:2: "API_KEY" is not a config variable\'s name');
  assert.equal(bad('ok=1\n\nsk-live-123'), 'prod.vars:3: the line has no "=": each is name=value');
  assert.doesNotMatch(bad('API_KEY=sk-live-123'), /sk-live/);
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
