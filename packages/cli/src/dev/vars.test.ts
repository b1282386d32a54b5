import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isStratumError } from '@stratum/core';
import { parseVarFile, parseVarFlag, readProjectVarFile, varSources, varsFor } from './vars.ts';

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

test('a --var-file reads values as dotenv does: a ` #` comment after an unquoted value, a double-quoted value over several lines with its escapes, a single-quoted one as written', () => {
  const text = [
    'region=eu # where it runs',
    'hash=a#b',
    'key="-----BEGIN KEY-----',
    'MIIB\\nabc',
    '-----END KEY-----" # a PEM key',
    "raw='two",
    "lines \\n'",
    'quote="say \\"hi\\""',
    'after=1',
  ].join('\n');
  assert.deepEqual(parseVarFile(text, '.env'), [
    { name: 'region', value: 'eu', from: '.env:1' },
    { name: 'hash', value: 'a#b', from: '.env:2' },
    { name: 'key', value: '-----BEGIN KEY-----\nMIIB\nabc\n-----END KEY-----', from: '.env:3' },
    { name: 'raw', value: 'two\nlines \\n', from: '.env:6' },
    { name: 'quote', value: 'say "hi"', from: '.env:8' },
    { name: 'after', value: '1', from: '.env:9' },
  ]);
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

test("a project's .env is read as a --var-file, and a bad line says that dev read it without being asked, and how to read another", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-vars-'));
  try {
    assert.equal(await readProjectVarFile(join(dir, '.env'), 'app/.env'), undefined);
    await writeFile(join(dir, '.env'), 'token=x\nNODE_ENV=development\n');
    const error = await readProjectVarFile(join(dir, '.env'), 'app/.env').catch((caught: unknown) => caught);
    assert.ok(isStratumError(error));
    assert.equal(error.message, 'app/.env:2: "NODE_ENV" is not a config variable\'s name');
    assert.match(
      error.hint ?? '',
      /stratum dev reads app\/\.env for config values when no --var-file is given; to read another file instead, give --var-file <file>\.$/,
    );
    await writeFile(join(dir, '.env'), 'token=x\n');
    assert.deepEqual(await readProjectVarFile(join(dir, '.env'), 'app/.env'), [{ name: 'token', value: 'x', from: 'app/.env:1' }]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('where each value came from: the file a line was in, or --var, as varsFor picks them', () => {
  const flags = [...parseVarFile('greeting=a\ntoken=b\n', 'dev.vars'), parseVarFlag('greeting=c'), parseVarFlag('notes:token=d')];
  assert.deepEqual(varSources('counter', flags), { greeting: '--var', token: 'dev.vars' });
  assert.deepEqual(varSources('notes', flags), { greeting: '--var', token: '--var' });
  assert.deepEqual(varSources('counter', flags, ['token']), { token: 'dev.vars' });
});
