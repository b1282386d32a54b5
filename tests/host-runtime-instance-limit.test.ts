// `[instances] max`: all capsules together run at most that many instances. At the limit a new
// instance takes the place of the one idle longest, of another capsule; with none idle, requests
// wait for one to end, and are answered 503 once their timeout passes.
import assert from 'node:assert/strict';
import { basename, dirname } from 'node:path';
import { test } from 'node:test';
import { parseManifest } from '@stratum/manifest';
import { type Harness, startHarness } from './fixtures/hostile/harness.ts';
import { buildHostile, buildTiny } from './support/tiny.ts';

/** Installed and started on demand, as a restarted host restores it: no instance until its first request. */
async function installIdle(host: Harness, name: string, wasm: string, resources = ''): Promise<void> {
  const { manifest } = parseManifest(
    `stratum = 1\n[capsule]\nname = "${name}"\nversion = "0.1.0"\n[source]\nwasm = "${basename(wasm)}"\n${resources}`,
  );
  await host.runtime.install({ name, manifest, baseDir: dirname(wasm), domains: [`${name}.test`] });
  await host.runtime.start(name, { onDemand: true });
}

/** Resolves with the order in which the promises settled. */
function settledOrder(named: Record<string, Promise<unknown>>): Promise<string[]> {
  const order: string[] = [];
  return Promise.all(Object.entries(named).map(([name, promise]) => promise.finally(() => order.push(name)))).then(() => order);
}

async function until(check: () => boolean): Promise<void> {
  for (let tries = 0; tries < 1000 && !check(); tries++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(check(), 'never came to pass');
}

const instancesOf = (host: { runtime: { status(): { name: string; instances: number }[] } }, name: string) =>
  host.runtime.status().find((capsule) => capsule.name === name)?.instances;

test('at the host instance limit a new instance ends the one idle longest, of another capsule', async (t) => {
  const host = await startHarness(t, { maxInstances: 2, limits: { idleMs: 0 } });
  const tiny = await buildTiny();
  for (const name of ['one', 'two', 'three']) await installIdle(host, name, tiny);
  assert.equal((await host.get('one.test')).status, 200);
  assert.equal((await host.get('two.test')).status, 200);
  assert.equal(host.runtime.stats().instances, 2);
  // three needs room: one's instance has been idle longest.
  assert.equal((await host.get('three.test')).status, 200);
  assert.equal(instancesOf(host, 'one'), 0);
  assert.equal(instancesOf(host, 'two'), 1);
  assert.equal(instancesOf(host, 'three'), 1);
  assert.equal(host.runtime.stats().instancesEvicted, 1);
  assert.equal(host.runtime.stats().instances, 2);
  // one comes back in two's place, its count started again (a new instance).
  assert.match((await host.get('one.test')).body.toString(), /tiny 1\n$/);
  assert.equal(instancesOf(host, 'two'), 0);
  assert.equal(host.runtime.stats().instancesEvicted, 2);
  assert.equal(host.runtime.stats().instanceWaits, 0);
});

test('at the limit with none idle, a request waits for an instance to end, then is served', async (t) => {
  const host = await startHarness(t, { maxInstances: 1, limits: { idleMs: 0 } });
  await installIdle(host, 'moody', await buildHostile('moody'));
  await installIdle(host, 'tiny', await buildTiny());
  // moody's one instance sleeps 2 s in this request: nothing is idle to end.
  const sleeping = host.get('moody.test', '/wait');
  await until(() => instancesOf(host, 'moody') === 1 && host.runtime.stats().instances === 1);
  const waiting = host.get('tiny.test');
  await until(() => host.runtime.stats().instanceWaits === 1);
  // Served after moody's request ended (its instance went idle and made room), not beside it.
  assert.deepEqual(await settledOrder({ moody: sleeping, tiny: waiting }), ['moody', 'tiny']);
  assert.equal((await sleeping).status, 200);
  const served = await waiting;
  assert.equal(served.status, 200);
  assert.match(served.body.toString(), /tiny 1\n$/);
  assert.equal(host.runtime.stats().instanceWaits, 1);
  assert.equal(host.runtime.stats().instancesEvicted, 1);
  assert.equal(host.runtime.stats().instances, 1);
  assert.equal(instancesOf(host, 'moody'), 0);
});

test('a request waiting for room past its timeout is answered 503', async (t) => {
  const host = await startHarness(t, { maxInstances: 1, limits: { idleMs: 0 } });
  // moody may take 5 s a request; tiny's requests only 1 s, waiting included.
  await installIdle(host, 'moody', await buildHostile('moody'), '[resources]\ntimeout = "5s"\n');
  await installIdle(host, 'tiny', await buildTiny(), '[resources]\ntimeout = "1s"\n');
  const sleeping = host.get('moody.test', '/wait');
  await until(() => instancesOf(host, 'moody') === 1 && host.runtime.stats().instances === 1);
  const refusing = host.get('tiny.test');
  // Answered once its timeout passed, before moody's 2 s sleep ended and made room.
  assert.deepEqual(await settledOrder({ moody: sleeping, tiny: refusing }), ['tiny', 'moody']);
  assert.equal((await refusing).status, 503);
  const tiny = host.runtime.status().find((capsule) => capsule.name === 'tiny');
  assert.equal(tiny?.limitHits.timeout, 1);
  assert.equal((await sleeping).status, 200);
});

test("at the limit a capsule's second instance is ended before another capsule's last one, even one idle longer", async (t) => {
  const host = await startHarness(t, { maxInstances: 3, limits: { idleMs: 0 } });
  await installIdle(host, 'lone', await buildTiny());
  await installIdle(host, 'moody', await buildHostile('moody'));
  await installIdle(host, 'third', await buildTiny());
  assert.equal((await host.get('lone.test')).status, 200);
  // Two sleeping requests at once: moody starts a second instance for the one queued behind.
  const [first, second] = await Promise.all([host.get('moody.test', '/zzz'), host.get('moody.test', '/zzz')]);
  assert.deepEqual([first.status, second.status], [200, 200]);
  assert.equal(instancesOf(host, 'moody'), 2);
  assert.equal(host.runtime.stats().instances, 3);
  // lone's instance has been idle longest, but it is lone's only one.
  assert.equal((await host.get('third.test')).status, 200);
  assert.equal(instancesOf(host, 'lone'), 1);
  assert.equal(instancesOf(host, 'moody'), 1);
  assert.equal(host.runtime.stats().instancesEvicted, 1);
});

test("a capsule whose requests wait holds at most all the host's instances but one: another capsule is served meanwhile", async (t) => {
  const host = await startHarness(t, { maxInstances: 3, asyncInstancesPerCapsule: 8, limits: { idleMs: 0 } });
  await installIdle(host, 'moody', await buildHostile('moody'));
  await installIdle(host, 'tiny', await buildTiny());
  // Six requests that each sleep 2 s: moody grows to two instances, not three.
  const sleeping = Array.from({ length: 6 }, () => host.get('moody.test', '/wait'));
  await until(() => instancesOf(host, 'moody') === 2);
  const served = host.get('tiny.test');
  assert.deepEqual(await settledOrder({ tiny: served, moody: Promise.all(sleeping) }), ['tiny', 'moody']);
  assert.equal((await served).status, 200);
  assert.ok((instancesOf(host, 'moody') ?? 0) <= 2);
  for (const reply of await Promise.all(sleeping)) assert.equal(reply.status, 200);
});
