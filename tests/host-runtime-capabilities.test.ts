// The capability plug-in contract end to end, through a test capability (the probe): grants
// checked at install, a capability's errors reaching the guest as WIT errors (never traps),
// each capsule's data kept apart, and asynchronous backends through JSPI.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { CAPABILITY_MODULES } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { startHarness } from './fixtures/hostile/harness.ts';
import { captureLogger, type LoggedLine } from './support/capture-logger.ts';
import { pipelinedGets } from './support/ingress.ts';
import { buildHostile } from './support/tiny.ts';

const capabilities = [
  ...CAPABILITY_MODULES,
  { name: 'probe', module: new URL('./fixtures/hostile/probe-capability.ts', import.meta.url).href },
];

for (const mode of ['sync', 'jspi'] as const) {
  test(`${mode}: capability errors become the guest's err results, and each capsule's data is its own`, async (t) => {
    const host = await startHarness(t, { capabilities, capabilityConfig: { probe: { grant: ['a', 'b'], async: mode === 'jspi' } } });
    const probe = await buildHostile('probe');
    await host.install('a', probe);
    await host.install('b', probe);
    const cpu: number[] = [];
    host.runtime.onRequest((record) => cpu.push(record.cpuMs));

    assert.equal((await host.get('a.test')).body.toString(), '1 err:denied err:unexpected: backend down\n');
    assert.equal((await host.get('a.test')).body.toString(), '2 err:denied err:unexpected: backend down\n');
    assert.equal((await host.get('b.test')).body.toString(), '1 err:denied err:unexpected: backend down\n');
    // The unexpected error was logged for the operator, with the request id.
    const logs: string[] = [];
    host.runtime.subscribeLogs('a', (entry) => logs.push(`${entry.source} ${entry.requestId ? 'id' : '-'} ${entry.message}`));
    assert.ok(logs.includes('host id probe: stratum-test:probe/values#broken failed: backend down'), logs.join('\n'));

    assert.equal(await readFile(join(host.dataDir, 'capsules', 'a', 'probe', 'counter'), 'utf8'), '2');
    assert.equal(await readFile(join(host.dataDir, 'capsules', 'b', 'probe', 'counter'), 'utf8'), '1');
    assert.deepEqual(
      host.runtime.status().map((capsule) => capsule.limitHits),
      [{}, {}],
    );
    t.diagnostic(`${mode}: CPU per request of 1,003 import calls: ${cpu.map((ms) => ms.toFixed(1)).join(', ')} ms`);
  });
}

test('an import the manifest or host does not grant is refused at install, with the reason', async (t) => {
  const host = await startHarness(t, { capabilities, capabilityConfig: { probe: { grant: ['a'] } } });
  await assert.rejects(host.install('c', await buildHostile('probe')), (error: Error & { code?: string; hint?: string }) => {
    assert.equal(error.code, 'CAPABILITY_NOT_GRANTED');
    assert.match(error.message, /c imports stratum-test:probe/);
    return true;
  });
  assert.deepEqual(host.runtime.status(), []);
});

test("an instance that cannot start fails the capsule's start with the capability's reason, in the host's log too", async (t) => {
  const reason = 'the probe store "default" (probe at probe://127.0.0.1:6390) is unavailable: connect ECONNREFUSED 127.0.0.1:6390';
  const logged: LoggedLine[] = [];
  const host = await startHarness(t, {
    capabilities,
    capabilityConfig: { probe: { grant: ['a'], startFailure: reason } },
    logger: captureLogger(logged),
  });
  await assert.rejects(host.install('a', await buildHostile('probe')), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'INSTANCE_FAILED');
    assert.equal(error.message, `a could not be instantiated: ${reason}`);
    return true;
  });
  assert.ok(
    logged.some(
      (line) => line.level === 'error' && line.message === 'instance failed to start' && String(line.fields.err).includes(reason),
    ),
    JSON.stringify(logged),
  );
});

test("an instance that fails to start for a request says why in the capsule's log, which its registrar reads", async (t) => {
  const reason = 'the probe store "default" (probe) is unavailable: WRONGPASS invalid username-password pair';
  const host = await startHarness(t, { capabilities, capabilityConfig: { probe: { grant: ['a'], startFailure: reason } } });
  const wasm = await buildHostile('probe');
  const { manifest } = parseManifest(`stratum = 1\n[capsule]\nname = "a"\nversion = "0.1.0"\n[source]\nwasm = "${basename(wasm)}"\n`);
  await host.runtime.install({ name: 'a', manifest, baseDir: dirname(wasm), domains: ['a.test'] });
  // Started as a restarted host restores it: its first instance starts for a request.
  await host.runtime.start('a', { onDemand: true });
  const capsuleLog: string[] = [];
  host.runtime.subscribeLogs('a', (entry) => capsuleLog.push(`${entry.level} ${entry.message}`));
  assert.equal((await host.get('a.test')).status, 503);
  assert.ok(capsuleLog.includes(`error a could not be instantiated: ${reason}`), capsuleLog.join('\n'));
});

test("a capability's backend failures reach the host's log, naming the capsule, and not the capsule's log", async (t) => {
  const logged: LoggedLine[] = [];
  const host = await startHarness(t, { capabilities, capabilityConfig: { probe: { grant: ['a'] } }, logger: captureLogger(logged) });
  await host.install('a', await buildHostile('probe'));
  const capsuleLog: string[] = [];
  host.runtime.subscribeLogs('a', (entry) => capsuleLog.push(entry.message));
  assert.match((await host.get('a.test')).body.toString(), /err:unexpected: backend down/);
  const failure = logged.find((line) => line.message === 'probe backend failed');
  assert.ok(failure, JSON.stringify(logged));
  assert.equal(failure.level, 'error');
  assert.deepEqual(
    { capsule: failure.fields.capsule, source: failure.fields.source, err: failure.fields.err, request: typeof failure.fields.requestId },
    { capsule: 'a', source: 'probe', err: 'connect ECONNREFUSED 10.0.0.7:6379', request: 'string' },
  );
  assert.equal(
    capsuleLog.some((line) => line.includes('10.0.0.7')),
    false,
    capsuleLog.join('\n'),
  );
});

test('a capsule on an asynchronous backend serves requests at once in more instances than the host has cores', async (t) => {
  // One instance per core suits a capsule that computes; one that waits on a backend would
  // serve one request per core at a time while the cores sit idle. The probe's barrier answers
  // only once four calls wait at the same time, so each of four requests needs an instance.
  const host = await startHarness(t, {
    capabilities,
    capabilityConfig: { probe: { grant: ['a', 's'], async: true, barrier: 4 } },
    instancesPerCapsule: 1,
  });
  await host.install('a', await buildHostile('probe'));
  const replies = await Promise.all([1, 2, 3, 4].map(() => host.get('a.test')));
  assert.deepEqual(
    replies.map((reply) => reply.body.toString().replace(/^\d+ /, 'N ')),
    Array(4).fill('N err:denied err:unexpected: backend down\n'),
  );
  assert.equal(host.runtime.status()[0]?.instances, 4);
});

for (const method of ['GET', 'POST'] as const) {
  test(`${method}: requests that come once the one running has waited a while still get instances of their own`, async (t) => {
    // They are not posted behind a request that has run over `headAgeMs` (nor ever, with a body),
    // so they wait in the queue; the host must ask whether that request waits on its backend, or
    // they wait for it to end: here, for ever (the barrier needs them), and on a loaded machine
    // in the test above.
    const host = await startHarness(t, {
      capabilities,
      capabilityConfig: { probe: { grant: ['a'], async: true, barrier: 4 } },
      instancesPerCapsule: 1,
    });
    await host.install('a', await buildHostile('probe'));
    const send = () => host.get('a.test', '/', method === 'POST' ? { method, body: Buffer.from('a body') } : {});
    const first = send();
    const barrierDir = join(host.dataDir, 'capsules', 'a', 'probe', 'barrier');
    while ((await readdir(barrierDir).catch(() => [])).length === 0) await setTimeout(10);
    await setTimeout(50);
    const replies = await Promise.all([first, send(), send(), send()]);
    assert.deepEqual(
      replies.map((reply) => reply.body.toString().replace(/^\d+ /, 'N ')),
      Array(4).fill('N err:denied err:unexpected: backend down\n'),
    );
    assert.equal(host.runtime.status()[0]?.instances, 4);
  });
}

test('requests posted behind one that waits on its backend are handed back, whatever request armed the instance timer', async (t) => {
  // The instance's one timer outlives requests: here it was armed for a request that had one
  // behind it and ended at once, and fires while the next request waits on the backend, before
  // that one is due to be asked (`headAgeMs`). The look must be armed again for that question, not
  // only for the CPU check (a fresh instance's warm-up budget: ten seconds away here).
  const host = await startHarness(t, {
    capabilities,
    capabilityConfig: { probe: { grant: ['a'], async: true, delayMs: 1500 } },
    instancesPerCapsule: 1,
    asyncInstancesPerCapsule: 4,
    pipeline: { headAgeMs: 300 },
    warmupCpuMs: 10_000,
  });
  await host.install('a', await buildHostile('probe'), { domains: ['a.test', 'quick.a.test'] });
  await pipelinedGets(host.port, [
    ['quick.a.test', '/p'],
    ['quick.a.test', '/q'],
  ]);
  assert.equal(host.runtime.stats().workersStarted, 1);
  await pipelinedGets(host.port, [
    ['a.test', '/waits'],
    ['quick.a.test', '/f1'],
    ['quick.a.test', '/f2'],
  ]);
  // Handed back while the first waited, they were served by a second instance.
  assert.equal(host.runtime.stats().workersStarted, 2);
});

test('a synchronous capsule keeps to one instance per core (instancesPerCapsule)', async (t) => {
  const host = await startHarness(t, { capabilities, capabilityConfig: { probe: { grant: ['s'] } }, instancesPerCapsule: 1 });
  await host.install('s', await buildHostile('probe'));
  const replies = await Promise.all([1, 2, 3, 4].map(() => host.get('s.test')));
  assert.deepEqual(replies.map((reply) => reply.body.toString().split(' ')[0]).sort(), ['1', '2', '3', '4']);
  assert.equal(host.runtime.status()[0]?.instances, 1);
});
