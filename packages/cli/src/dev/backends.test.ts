import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isStratumError } from '@stratum/core';
import { parseManifest } from '@stratum/manifest';
import fc from 'fast-check';
import { capabilityConfigFor, describeBackends, parseBackendFlag, unusedFlags } from './backends.ts';

const manifest = parseManifest(
  'stratum = 1\n[capsule]\nname = "app"\nversion = "1.0.0"\n[source]\nwasm = "app.wasm"\n[capabilities]\nkeyvalue = ["default", "cache"]\nsql = ["default"]\n',
).manifest;

test('the URL scheme picks the backend, and a label may be named', () => {
  assert.deepEqual(parseBackendFlag('keyvalue=redis://127.0.0.1:6379/0'), {
    kind: 'keyvalue',
    backend: { type: 'redis', url: 'redis://127.0.0.1:6379/0' },
    text: 'keyvalue=redis://127.0.0.1:6379/0',
  });
  assert.equal(parseBackendFlag('keyvalue.cache=nats://127.0.0.1:4222').label, 'cache');
  assert.deepEqual(parseBackendFlag('sql=postgresql://postgres@127.0.0.1:5432/test').backend.type, 'postgres');
  assert.deepEqual(parseBackendFlag('bucket=s3://photos/dev?endpoint=http://127.0.0.1:9000&force_path_style=true').backend, {
    type: 's3',
    location: 's3://photos/dev',
    endpoint: 'http://127.0.0.1:9000',
    force_path_style: true,
  });
  assert.deepEqual(parseBackendFlag('bucket=file:///tmp/objects').backend, { type: 'directory', location: 'file:///tmp/objects' });
});

test('a bad --backend names what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['keyvalue', /no "="/],
    ['cache=redis://x', /"cache" is not a store kind/],
    ['keyvalue.Bad=redis://x', /"Bad" is not a store label/],
    ['keyvalue=not a url', /is not a URL/],
    ['keyvalue=mysql://x', /no backend serves mysql:/],
    ['sql=redis://127.0.0.1', /a redis backend cannot serve sql/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseBackendFlag(text),
      (error: unknown) => isStratumError(error) && error.code === 'USAGE' && message.test(error.message),
      text,
    );
  }
});

test('any --backend text either parses or throws a usage error', () => {
  fc.assert(
    fc.property(fc.string(), (text) => {
      try {
        const flag = parseBackendFlag(text);
        assert.ok(['keyvalue', 'sql', 'bucket'].includes(flag.kind));
      } catch (error) {
        assert.ok(isStratumError(error) && error.code === 'USAGE', String(error));
      }
    }),
  );
});

test('a label flag wins over an every-label flag, over the host config; other labels stay embedded', () => {
  const flags = [parseBackendFlag('keyvalue=redis://127.0.0.1:6379/0'), parseBackendFlag('keyvalue.cache=nats://127.0.0.1:4222')];
  const config = capabilityConfigFor(manifest, flags, { sql: { default: { type: 'postgres', url: 'postgres://db/x' } } });
  assert.deepEqual(config, {
    keyvalue: { default: { type: 'redis', url: 'redis://127.0.0.1:6379/0' }, cache: { type: 'nats', url: 'nats://127.0.0.1:4222' } },
    sql: { default: { type: 'postgres', url: 'postgres://db/x' } },
    bucket: {},
  });
  assert.deepEqual(
    describeBackends(manifest, capabilityConfigFor(manifest, [])).map((line) => `${line.grant} ${line.backend}`),
    ['keyvalue:default SQLite (embedded)', 'keyvalue:cache SQLite (embedded)', 'sql:default SQLite (embedded)'],
  );
});

test('flags no capsule uses are reported, and passwords never reach the terminal', () => {
  const flags = [
    parseBackendFlag('keyvalue.nope=redis://x'),
    parseBackendFlag('bucket=file:///tmp/b'),
    parseBackendFlag('sql=postgres://x'),
  ];
  assert.deepEqual(
    unusedFlags(flags, [manifest]).map((flag) => flag.text),
    ['keyvalue.nope=redis://x', 'bucket=file:///tmp/b'],
  );
  const described = describeBackends(manifest, capabilityConfigFor(manifest, [parseBackendFlag('sql=postgres://me:hunter2@db/x')]));
  assert.ok(!JSON.stringify(described).includes('hunter2'));
});
