// Requests are posted to an instance behind the one it runs (runtime.ts, PIPELINE_DEPTH). When
// that instance is ended (CPU limit, trap), what waited behind never started there: it must be
// served by another instance, not lost or failed with it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RequestRecord } from '@stratum/host';
import { startHarness } from './fixtures/hostile/harness.ts';
import { pipelinedGets } from './support/ingress.ts';
import { buildHostile } from './support/tiny.ts';

async function whileRunning(check: () => boolean): Promise<void> {
  for (let tries = 0; tries < 400 && !check(); tries++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(check(), 'the first request never started');
}

for (const [mood, status, limit] of [
  ['loop', 504, 'cpu'],
  ['trap', 500, 'trap'],
  // Its response's head reaches the host with the trap: the client gets a 500, not a closed connection.
  ['half', 500, 'trap'],
] as const) {
  test(`requests waiting behind one that ends its instance (${mood}: ${limit}) are served by the next instance`, async (t) => {
    // Requests go behind one however long it has run, so that they wait on its instance.
    const host = await startHarness(t, { instancesPerCapsule: 1, warmupCpuMs: 0, pipeline: { headAgeMs: 60_000 } });
    await host.install('moody', await buildHostile('moody'), { manifest: '[resources]\ncpu = "small"\n' });
    assert.equal((await host.get('moody.test', '/')).status, 200);
    const bad = host.get('moody.test', `/${mood}`);
    // A loop holds its instance: wait until it runs. A trap is over at once: the others are sent
    // with it, and most of them reach the instance behind it.
    if (mood === 'loop') await whileRunning(() => (host.runtime.status()[0]?.inFlight ?? 0) > 0);
    const waiting = await Promise.all(Array.from({ length: 6 }, (_, index) => host.get('moody.test', `/after-${index}`)));
    const ended = await bad;
    assert.equal(ended.status, status, ended.body.toString());
    assert.deepEqual(
      waiting.map((reply) => reply.status),
      Array(6).fill(200),
    );
    if (mood === 'loop') {
      // The one instance that may run served them all, counting from 1 again: none ran on the old one.
      const counts = waiting.map((reply) => Number(/(\d+)\n$/.exec(reply.body.toString())?.[1])).sort((a, b) => a - b);
      assert.deepEqual(counts, [1, 2, 3, 4, 5, 6]);
    }
    assert.equal(host.runtime.stats().workersStarted, 2);
    assert.equal(host.runtime.status()[0]?.limitHits[limit], 1);
  });
}

test('a burst on one instance is answered in order, every request once', async (t) => {
  const host = await startHarness(t, { instancesPerCapsule: 1 });
  await host.install('moody', await buildHostile('moody'));
  const replies = await Promise.all(Array.from({ length: 40 }, (_, index) => host.get('moody.test', `/n-${index}`)));
  const counts = replies.map((reply) => Number(/(\d+)\n$/.exec(reply.body.toString())?.[1])).sort((a, b) => a - b);
  assert.deepEqual(
    counts,
    Array.from({ length: 40 }, (_, index) => index + 1),
  );
  assert.equal(host.runtime.status()[0]?.inFlight, 0);
});

test('a request that runs long gets nothing queued behind it: another instance serves the rest', async (t) => {
  const host = await startHarness(t, { instancesPerCapsule: 2 });
  await host.install('moody', await buildHostile('moody'), { manifest: '[resources]\ncpu = "small"\n' });
  const looping = host.get('moody.test', '/loop');
  await whileRunning(() => (host.runtime.status()[0]?.inFlight ?? 0) > 0);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const replies = await Promise.all(Array.from({ length: 4 }, (_, index) => host.get('moody.test', `/n-${index}`)));
  // Served while the loop still holds the first instance: by a second one, counting from 1.
  assert.equal(host.runtime.stats().workersStarted, 2);
  const counts = replies.map((reply) => Number(/(\d+)\n$/.exec(reply.body.toString())?.[1])).sort((a, b) => a - b);
  assert.deepEqual(counts, [1, 2, 3, 4]);
  assert.equal((await looping).status, 504);
});

test('each request is metered for its own CPU time, also when requests run back to back', async (t) => {
  // The worker reads the thread's CPU clock once between two requests it runs in a row: the end
  // of one is the start of the next. A quick request right behind a long one must not be charged
  // for it, nor the long one lose its time.
  const host = await startHarness(t, { instancesPerCapsule: 1, pipeline: { headAgeMs: 60_000 } });
  await host.install('moody', await buildHostile('moody'), { manifest: '[resources]\ncpu = "small"\n' });
  assert.equal((await host.get('moody.test', '/')).status, 200);
  const records: { path: string; cpuMs: number }[] = [];
  host.runtime.onRequest((record) => records.push({ path: record.path, cpuMs: record.cpuMs }));
  // Pipelined on one connection, written at once: the ingress takes them in one turn, and the
  // instance gets them in one message, to run one after another.
  const paths = ['/spin', '/after-0', '/spin', '/after-1', '/after-2'];
  await pipelinedGets(
    host.port,
    paths.map((path) => ['moody.test', path] as const),
  );
  // A request's record is made once its response has gone.
  for (let tries = 0; tries < 200 && records.length < paths.length; tries++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(
    records.map((record) => record.path),
    paths,
  );
  const spins = records.filter((record) => record.path === '/spin').map((record) => record.cpuMs);
  const quick = records.filter((record) => record.path !== '/spin').map((record) => record.cpuMs);
  t.diagnostic(`CPU ms: spins ${spins.map((ms) => ms.toFixed(2)).join(', ')}; the others ${quick.map((ms) => ms.toFixed(3)).join(', ')}`);
  // The thread's CPU clock (getrusage) can move in steps of a scheduler tick, a few ms: a quick
  // request may show one. A spin's tens of ms carried into the next would show as much again.
  const halfASpin = Math.min(...spins) / 2;
  for (const ms of quick) assert.ok(ms >= 0 && ms < halfASpin, `a quick request metered ${ms} ms next to spins of ${spins.join(', ')} ms`);
});

// A guest that sleeps (a JS capsule's `setTimeout`) holds its thread for the sleep: plain
// synchronous glue blocks it, and what was posted behind the sleeping request would wait with it.
// The worker hands those back as the sleep begins, and the capsule gets the instances of one
// that waits on a backend (`asyncInstancesPerCapsule`). A capsule that may fetch (JSPI glue)
// sleeps without blocking its thread, and answers the host's `reclaim` meanwhile.
for (const glue of ['synchronous', 'JSPI'] as const) {
  const manifest = glue === 'JSPI' ? '[capabilities]\noutbound = ["https://example.com"]\n' : '';

  test(`requests posted behind a sleeping request are served by another instance (${glue} glue)`, async (t) => {
    const host = await startHarness(t, { instancesPerCapsule: 1, asyncInstancesPerCapsule: 4 });
    await host.install('moody', await buildHostile('moody'), { manifest });
    for (let index = 0; index < 5; index++) assert.equal((await host.get('moody.test', '/')).status, 200);
    // Pipelined on one connection, written at once: the instance gets them in one message, behind the sleep.
    const paths = ['/zzz', '/after-0', '/after-1', '/after-2'];
    const received = await pipelinedGets(
      host.port,
      paths.map((path) => ['moody.test', path] as const),
    );
    const counts = [...received.matchAll(/hello from tiny (\d+)\n/g)].map((match) => Number(match[1]));
    // The first instance had served 5; the sleep is its 6th. Another instance, counting from 1, served the rest.
    assert.equal(counts[0], 6, received);
    for (const count of counts.slice(1))
      assert.ok(count <= 3, `a request behind the sleep waited for it on its instance (counts ${counts.join(', ')})`);
    assert.ok(host.runtime.stats().workersStarted >= 2);
    // Nothing is left in flight (a request's bookkeeping ends just after its response has gone).
    for (let tries = 0; tries < 200 && host.runtime.status()[0]?.inFlight !== 0; tries++)
      await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(host.runtime.status()[0]?.inFlight, 0);
  });

  test(`requests that sleep at once get instances of their own (${glue} glue)`, async (t) => {
    const host = await startHarness(t, { instancesPerCapsule: 1, asyncInstancesPerCapsule: 4 });
    await host.install('moody', await buildHostile('moody'), { manifest });
    const replies = await Promise.all(Array.from({ length: 4 }, (_, index) => host.get('moody.test', `/zzz-${index}`)));
    assert.deepEqual(
      replies.map((reply) => reply.status),
      [200, 200, 200, 200],
    );
    const counts = replies.map((reply) => Number(/(\d+)\n$/.exec(reply.body.toString())?.[1]));
    // One instance would have slept them one after another, counting 1 to 4.
    assert.ok(Math.max(...counts) < 4, `one instance slept them all (counts ${counts.join(', ')})`);
    assert.ok(host.runtime.stats().workersStarted >= 2);
  });
}

test("a request's record says how long it waited for an instance, apart from its own time", async (t) => {
  const host = await startHarness(t, { instancesPerCapsule: 1, asyncInstancesPerCapsule: 1 });
  await host.install('moody', await buildHostile('moody'));
  assert.equal((await host.get('moody.test', '/')).status, 200);
  const records: RequestRecord[] = [];
  host.runtime.onRequest((record) => records.push(record));
  // The one instance sleeps 400 ms; the next request waits for it.
  const sleeping = host.get('moody.test', '/zzz');
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal((await host.get('moody.test', '/after')).status, 200);
  await sleeping;
  const after = records.find((record) => record.path === '/after');
  assert.ok(after, JSON.stringify(records));
  assert.ok((after.queuedMs ?? 0) >= 200, `queued ${after.queuedMs} ms`);
  assert.ok(after.wallMs < (after.queuedMs ?? 0), `ran ${after.wallMs} ms, queued ${after.queuedMs} ms`);
});
