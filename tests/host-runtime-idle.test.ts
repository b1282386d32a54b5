// Idle capsules cost no thread: the last instance is retired after `limits.idleMs`, and a capsule
// started on demand has none until its first request. Either way the next request is served.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { CAPABILITY_MODULES } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { startHarness } from './fixtures/hostile/harness.ts';
import { removeDir } from './support/temp.ts';
import { buildHostile, buildTiny } from './support/tiny.ts';

async function until(check: () => boolean, what: string): Promise<void> {
  for (let tries = 0; tries < 500 && !check(); tries++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(check(), what);
}

test("an idle capsule's last instance is retired, and the next request starts a new one", async (t) => {
  const host = await startHarness(t, { limits: { idleMs: 200 } });
  await host.install('tiny', await buildTiny());
  assert.match((await host.get('tiny.test')).body.toString(), /tiny 1\n$/);
  assert.match((await host.get('tiny.test')).body.toString(), /tiny 2\n$/);
  await until(() => host.runtime.status()[0]?.instances === 0, 'the idle instance was never retired');
  assert.equal(host.runtime.status()[0]?.state, 'running');
  // A new instance: its own count starts again.
  const reply = await host.get('tiny.test');
  assert.equal(reply.status, 200);
  assert.match(reply.body.toString(), /tiny 1\n$/);
  assert.equal(host.runtime.stats().workersStarted, 2);
});

test('a capsule holds compiled code only while it has instances, and the most recently idle sets are kept', async (t) => {
  const host = await startHarness(t, { limits: { idleMs: 200 }, keepIdleCompiled: 1 });
  const tiny = await buildTiny();
  // Another component: tiny with a custom section appended (another digest, the same code).
  const dir = await mkdtemp(join(tmpdir(), 'stratum-compiled-'));
  t.after(() => removeDir(dir));
  const other = join(dir, 'other.wasm');
  await writeFile(other, Buffer.concat([await readFile(tiny), Buffer.from([0x00, 0x06, 0x05, ...Buffer.from('other')])]));
  for (const [name, wasm] of [
    ['one', tiny],
    ['two', tiny],
    ['three', other],
  ] as const) {
    const { manifest } = parseManifest(
      `stratum = 1\n[capsule]\nname = "${name}"\nversion = "0.1.0"\n[source]\nwasm = "${basename(wasm)}"\n`,
    );
    await host.runtime.install({ name, manifest, baseDir: dirname(wasm), domains: [`${name}.test`] });
    await host.runtime.start(name, { onDemand: true });
  }
  const compiled = () => {
    const { compiledModuleSets, compiles } = host.runtime.stats();
    return { ...compiledModuleSets, compiles };
  };
  const idle = (name: string) =>
    until(() => host.runtime.status().find((capsule) => capsule.name === name)?.instances === 0, `${name} was never retired`);
  // Installed (as a restarted host restores them): nothing compiled.
  assert.deepEqual(compiled(), { held: 0, kept: 0, compiles: 0 });
  assert.equal((await host.get('one.test')).status, 200);
  assert.equal((await host.get('two.test')).status, 200);
  assert.deepEqual(compiled(), { held: 1, kept: 0, compiles: 1 }, 'capsules of one component share one compile');
  // Idle: the last instances retire and let go; the set is kept for a capsule that wakes.
  await Promise.all([idle('one'), idle('two')]);
  assert.deepEqual(compiled(), { held: 0, kept: 1, compiles: 1 });
  assert.match((await host.get('one.test')).body.toString(), /tiny 1\n$/);
  assert.deepEqual(compiled(), { held: 1, kept: 0, compiles: 1 }, 'a capsule that woke compiled again');
  await idle('one');
  // Past keepIdleCompiled (1 here) the set let go longest ago is dropped, and compiled again when needed.
  assert.equal((await host.get('three.test')).status, 200);
  await idle('three');
  assert.deepEqual(compiled(), { held: 0, kept: 1, compiles: 2 });
  assert.equal((await host.get('one.test')).status, 200);
  assert.deepEqual(compiled(), { held: 1, kept: 1, compiles: 3 });
});

test('with limits.idleMs 0 the last instance stays', async (t) => {
  const host = await startHarness(t, { limits: { idleMs: 0 }, idleInstanceMs: 50 });
  await host.install('tiny', await buildTiny());
  await host.get('tiny.test');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(host.runtime.status()[0]?.instances, 1);
});

test('a capsule started on demand has no instance until its first request', async (t) => {
  const host = await startHarness(t);
  const name = 'tiny';
  const wasm = await buildTiny();
  const { manifest } = parseManifest(`stratum = 1\n[capsule]\nname = "${name}"\nversion = "0.1.0"\n[source]\nwasm = "${basename(wasm)}"\n`);
  await host.runtime.install({ name, manifest, baseDir: dirname(wasm), domains: ['tiny.test'] });
  const status = await host.runtime.start(name, { onDemand: true });
  assert.equal(status.state, 'running');
  assert.equal(status.instances, 0);
  assert.equal(host.runtime.stats().workersStarted, 0);
  const replies = await Promise.all([host.get('tiny.test'), host.get('tiny.test'), host.get('tiny.test')]);
  assert.deepEqual(
    replies.map((reply) => reply.status),
    [200, 200, 200],
  );
  assert.ok(host.runtime.stats().workersStarted >= 1);
});

test("a new instance starts in the runtime's spare worker, and each capsule gets a spare of its own", async (t) => {
  const host = await startHarness(t);
  // The runtime starts its spare at once; installs take it as the first instance.
  await host.install('one', await buildTiny());
  await host.install('two', await buildTiny());
  assert.equal((await host.get('one.test')).status, 200);
  assert.equal((await host.get('two.test')).status, 200);
  const stats = host.runtime.stats();
  assert.ok(stats.sparesUsed >= 1, 'no instance started in a spare worker');
  // A spare serves one capsule only: two capsules, two workers, however they started.
  assert.equal(stats.workersStarted, 2);
  // Each counts its own requests: nothing is shared between the two.
  assert.match((await host.get('one.test')).body.toString(), /tiny 2\n$/);
  assert.match((await host.get('two.test')).body.toString(), /tiny 2\n$/);
});

test('the next spare starts after a new instance has answered its first request, not while it starts', async (t) => {
  const host = await startHarness(t);
  const moduleOf = (name: string) => CAPABILITY_MODULES.find((entry) => entry.name === name)?.module;
  // The install takes the spare the runtime started with; no other is there while the instance starts.
  await host.install('tiny', await buildTiny());
  assert.deepEqual(host.runtime.stats().sparePreload, [], 'a spare started before the first request');
  assert.equal((await host.get('tiny.test')).status, 200);
  // The spare started once the answer was out knows what tiny uses.
  assert.deepEqual(new Set(host.runtime.stats().sparePreload), new Set([moduleOf('wasi'), moduleOf('http')]));
});

test('the next spare waits for a first request that runs long, and starts once it has ended', async (t) => {
  const host = await startHarness(t);
  const moody = await buildHostile('moody');
  const { manifest } = parseManifest(
    `stratum = 1\n[capsule]\nname = "moody"\nversion = "0.1.0"\n[source]\nwasm = "${basename(moody)}"\n[resources]\ncpu = "medium"\n`,
  );
  await host.runtime.install({ name: 'moody', manifest, baseDir: dirname(moody), domains: ['moody.test'] });
  await host.runtime.start('moody', { onDemand: true });
  // The first request starts the instance (taking the runtime's first spare) and spins for the
  // capsule's second of CPU; it is posted the moment the instance is ready.
  const looping = host.get('moody.test', '/loop');
  await until(() => (host.runtime.status()[0]?.inFlight ?? 0) > 0 && host.runtime.status()[0]?.instances === 1, 'the loop never ran');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(host.runtime.status()[0]?.inFlight, 1, 'the loop ended early');
  assert.deepEqual(host.runtime.stats().sparePreload, [], 'a spare started beside the running first request');
  assert.equal((await looping).status, 504);
  await until(() => host.runtime.stats().sparePreload.length > 0, 'no spare started after the first request');
});

test('a component started twice in a row has its glue loaded by the spare, and its next instance finds it there', async (t) => {
  const host = await startHarness(t);
  const tiny = await buildTiny();
  const waitForSpare = async () => {
    for (let tries = 0; tries < 600 && !host.runtime.stats().sparePreloaded; tries++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(host.runtime.stats().sparePreloaded, 'the spare never finished loading');
  };
  await host.install('one', tiny);
  await waitForSpare();
  // One start is not enough to guess the next: an instance of another component would carry it unused.
  assert.equal(host.runtime.stats().spareGlue, undefined);
  await host.install('two', tiny);
  await waitForSpare();
  const { spareGlue, spareGlueHits } = host.runtime.stats();
  assert.match(spareGlue ?? '', /^file:.*\/capsule\.mjs$/);
  assert.equal(spareGlueHits, 0);
  await host.install('three', tiny);
  assert.equal(host.runtime.stats().spareGlueHits, 1, 'the third instance loaded its glue again');
  // The spare ran jco's set-up as far as the first core module (a jco whose `instantiate` took
  // other arguments, or instantiated before asking for a module, would end it elsewhere).
  assert.equal(host.runtime.stats().spareGlueRehearsals, 1, "the spare did not rehearse the third instance's glue");
  // And its memory: made by the spare, with the page its data segment fills written ahead.
  assert.equal(host.runtime.stats().spareMemoryHits, 1, 'the third instance made its memory again');
  // Each capsule still has an instance of its own.
  for (const name of ['one', 'two', 'three']) assert.match((await host.get(`${name}.test`)).body.toString(), /tiny 1\n$/);
  // Another component taking a spare that holds tiny's glue loads its own and serves.
  await waitForSpare();
  assert.equal(host.runtime.stats().spareGlue, spareGlue);
  await host.install('moody', await buildHostile('moody'));
  assert.equal((await host.get('moody.test')).status, 200);
  assert.equal(host.runtime.stats().spareGlueHits, 1);
  // Nor does it take the memory made for tiny's module.
  assert.equal(host.runtime.stats().spareMemoryHits, 1);
});

test("prepare compiles the capsules named before their first request, and the waiting spare loads the likeliest one's glue", async (t) => {
  const host = await startHarness(t);
  const wasm = await buildTiny();
  for (const name of ['one', 'two']) {
    const { manifest } = parseManifest(
      `stratum = 1\n[capsule]\nname = "${name}"\nversion = "0.1.0"\n[source]\nwasm = "${basename(wasm)}"\n`,
    );
    await host.runtime.install({ name, manifest, baseDir: dirname(wasm), domains: [`${name}.test`] });
    // As a restarted host restores them: no instance until a request comes.
    await host.runtime.start(name, { onDemand: true });
  }
  assert.equal(host.runtime.stats().compiles, 0);
  await host.runtime.prepare?.(['two', 'one', 'not-installed']);
  // One component, so one compile, kept for the first instance of either.
  const prepared = host.runtime.stats();
  assert.equal(prepared.compiles, 1);
  assert.deepEqual(prepared.compiledModuleSets, { held: 0, kept: 1 });
  assert.match(prepared.spareGlue ?? '', /^file:.*\/capsule\.mjs$/);
  for (let tries = 0; tries < 600 && !host.runtime.stats().sparePreloaded; tries++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(host.runtime.stats().sparePreloaded, 'the spare never finished loading');
  assert.equal((await host.get('two.test')).status, 200);
  const served = host.runtime.stats();
  assert.equal(served.compiles, 1, 'the first request compiled again');
  assert.equal(served.spareGlueHits, 1, 'the first instance loaded its glue again');
  assert.equal(served.spareGlueRehearsals, 1, "the spare did not rehearse the first instance's glue");
  assert.equal(served.spareMemoryHits, 1, 'the first instance made its memory again');
});

test('a spare loads only the capability modules that installed capsules use', async (t) => {
  const host = await startHarness(t);
  await host.install('tiny', await buildTiny());
  assert.equal((await host.get('tiny.test')).status, 200);
  // The spare after tiny's instance prepares for what tiny imports (wasi:http and the WASI
  // basics), not for keyvalue, SQL, buckets, config, logs or outbound HTTP.
  const { sparePreload } = host.runtime.stats();
  const moduleOf = (name: string) => CAPABILITY_MODULES.find((entry) => entry.name === name)?.module;
  assert.deepEqual(new Set(sparePreload), new Set([moduleOf('wasi'), moduleOf('http')]));
});

test('a capsule whose instances fail to start on demand is backed off, not started again for every request', async (t) => {
  const host = await startHarness(t, { backoffAfter: 1, backoffMs: 60_000 });
  const wasm = await buildHostile('init-loop');
  const { manifest } = parseManifest(
    `stratum = 1\n[capsule]\nname = "init-loop"\nversion = "0.1.0"\n[source]\nwasm = "${basename(wasm)}"\n[resources]\ntimeout = "1s"\n`,
  );
  await host.runtime.install({ name: 'init-loop', manifest, baseDir: dirname(wasm), domains: ['init-loop.test'] });
  await host.runtime.start('init-loop', { onDemand: true });
  // The first request waits for the instance, which is given up.
  const first = await host.get('init-loop.test');
  assert.equal(first.status, 503);
  assert.match(first.body.toString(), /could not start an instance/);
  // The next is refused at once: no second instance is started for it.
  const second = await host.get('init-loop.test');
  assert.equal(second.status, 503);
  assert.match(second.body.toString(), /backed off/);
  assert.ok(Number(second.headers['retry-after']) > 0);
  assert.equal(host.runtime.stats().workersStarted, 1);
  assert.match(host.runtime.status()[0]?.lastError ?? '', /did not start within/);
});

test('without a spare worker, instances start in workers of their own', async (t) => {
  const host = await startHarness(t, { spareWorker: false });
  await host.install('tiny', await buildTiny());
  assert.equal((await host.get('tiny.test')).status, 200);
  assert.equal(host.runtime.stats().sparesUsed, 0);
});

test('an instance whose initialisation never returns is given up, and start says why', async (t) => {
  const host = await startHarness(t);
  const started = host.install('init-loop', await buildHostile('init-loop'), { manifest: '[resources]\ntimeout = "1s"\n' });
  await assert.rejects(started, (error: Error & { code?: string }) => {
    assert.equal(error.code, 'INSTANCE_FAILED');
    assert.match(error.message, /did not start within 6000 ms/);
    return true;
  });
  const status = host.runtime.status()[0];
  assert.equal(status?.state, 'failed');
  assert.equal(status?.instances, 0);
});
