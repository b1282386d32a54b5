// Quotas end to end: a capsule over its keyvalue quota gets the interface's error (never a trap),
// the host counts it as a limit hit, and metering bills it with the request.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { test } from 'node:test';
import type { RequestRecord } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { usageOf } from '../packages/host/src/metering/ledger.ts';
import { startHarness } from './fixtures/hostile/harness.ts';
import { buildExample, exampleDir } from './support/examples.ts';

test('a keyvalue quota refusal reaches the guest as an error, and is counted and metered', async (t) => {
  const host = await startHarness(t, { capabilityConfig: { keyvalue: { default: { type: 'sqlite', max_keys: 1 } } } });
  const path = `${exampleDir('counter')}/stratum.toml`;
  const { manifest } = parseManifest(await readFile(path, 'utf8'), path);
  await host.runtime.install({
    manifest,
    baseDir: dirname(path),
    component: new Uint8Array(await readFile(await buildExample('counter'))),
    domains: ['counter.test'],
  });
  await host.runtime.start('counter');
  const records: RequestRecord[] = [];
  host.runtime.onRequest((record) => records.push(record));

  assert.deepEqual(JSON.parse((await host.get('counter.test', '/a')).body.toString()), { path: '/a', count: 1 });
  // A second key is over the quota of one: counter's increment fails inside the guest.
  const refused = await host.get('counter.test', '/b');
  assert.equal(refused.status, 500);
  assert.deepEqual(JSON.parse((await host.get('counter.test', '/a')).body.toString()), { path: '/a', count: 2 });

  const [first, second, third] = records;
  assert.equal(first?.quotaHits, undefined);
  assert.deepEqual(second?.quotaHits, { keyvalue: 1 });
  assert.equal(second?.limit, undefined, 'a quota does not end the request the way a limit does');
  assert.equal(third?.quotaHits, undefined);
  assert.deepEqual(host.runtime.status()[0]?.limitHits, { 'quota:keyvalue': 1 });
  assert.deepEqual(second ? usageOf(second).limitHits : undefined, { 'quota:keyvalue': 1 });
  // An error result, not a trap: the one instance served all three requests.
  assert.equal(host.runtime.stats().workersStarted, 1);
});
