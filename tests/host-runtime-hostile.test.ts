// Hostile capsules against one host: each is stopped at its own limit, and the well-behaved
// capsule beside them answers normally before, during and after.
import assert from 'node:assert/strict';
import { basename, dirname } from 'node:path';
import { test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { isStratumError } from '@stratum/core';
import { parseManifest } from '@stratum/manifest';
import { type Harness, startHarness } from './fixtures/hostile/harness.ts';
import { buildHostile, buildTiny } from './support/tiny.ts';

const MiB = 1024 * 1024;

function hits(host: Harness, name: string): Record<string, number> {
  return host.runtime.status().find((capsule) => capsule.name === name)?.limitHits ?? {};
}

async function assertTinyAnswers(host: Harness): Promise<void> {
  const reply = await host.get('tiny.test');
  assert.equal(reply.status, 200);
  assert.match(reply.body.toString(), /^hello from tiny \d+\n$/);
}

test('hostile capsules fail alone; the host and its other capsules carry on', async (t) => {
  const host = await startHarness(t, { limits: { responseBodyBytes: MiB }, backoffAfter: 3, backoffMs: 60_000, warmupCpuMs: 0 });
  await host.install('tiny', await buildTiny());
  await host.install('loop', await buildHostile('loop'), { manifest: '[resources]\ncpu = "micro"\ntimeout = "10s"\n' });
  await host.install('memory', await buildHostile('memory'), { manifest: '[resources]\nmemory = "8mib"\n' });
  await host.install('huge', await buildHostile('huge-body'));
  await host.install('trap', await buildHostile('trap'));
  const logged: string[] = [];
  for (const name of ['loop', 'memory', 'huge', 'trap']) {
    host.runtime.subscribeLogs(name, (entry) => {
      if (entry.message.startsWith('limit hit'))
        logged.push(`${name} ${entry.requestId === undefined ? 'no-id' : 'id'} ${entry.message.split(':')[0]}`);
    });
  }

  await t.test('a capsule that loops forever gets 504 at its CPU limit while tiny answers', async () => {
    const [looped, tiny] = await Promise.all([host.get('loop.test'), host.get('tiny.test')]);
    assert.equal(looped.status, 504);
    assert.equal(tiny.status, 200);
    assert.equal(hits(host, 'loop').cpu, 1);
    // Status says why, as for a trap: the last failure.
    const loop = host.runtime.status().find((capsule) => capsule.name === 'loop');
    assert.match(loop?.lastError ?? '', /^GET \/ was ended: used \d+ ms of CPU, over /);
    await assertTinyAnswers(host);
  });

  await t.test('a capsule that grows memory past its cap fails that request only', async () => {
    const grown = await host.get('memory.test');
    assert.equal(grown.status, 500);
    assert.equal(hits(host, 'memory').memory, 1);
    await assertTinyAnswers(host);
    // A fresh instance serves the next request (and fails the same way, on its own).
    assert.equal((await host.get('memory.test')).status, 500);
    assert.equal(hits(host, 'memory').memory, 2);
  });

  await t.test('a capsule that returns a huge body is cut off at the response limit', async () => {
    const huge = await host.get('huge.test');
    assert.equal(huge.status, 200);
    assert.equal(huge.aborted, true);
    assert.ok(huge.body.length <= MiB, `got ${huge.body.length} bytes`);
    assert.equal(hits(host, 'huge')['response-body'], 1);
    await assertTinyAnswers(host);
  });

  await t.test('a capsule that traps on every request is backed off', async () => {
    for (let attempt = 0; attempt < 3; attempt++) assert.equal((await host.get('trap.test')).status, 500);
    const refused = await host.get('trap.test');
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers['retry-after']) > 0);
    const status = host.runtime.status().find((capsule) => capsule.name === 'trap');
    assert.ok(status?.backedOffUntil, 'backedOffUntil is set');
    assert.deepEqual(status?.limitHits, { trap: 3, backoff: 1 });
    assert.match(status?.lastError ?? '', /unreachable/);
    await assertTinyAnswers(host);
  });

  await t.test('every limit hit was logged with its request id and counted', () => {
    assert.deepEqual(logged.sort(), [
      'huge id limit hit (response-body)',
      'loop id limit hit (cpu)',
      'memory id limit hit (memory)',
      'memory id limit hit (memory)',
      'trap id limit hit (backoff)',
      'trap id limit hit (trap)',
      'trap id limit hit (trap)',
      'trap id limit hit (trap)',
    ]);
    assert.deepEqual(hits(host, 'tiny'), {});
  });
});

test('a capsule that grows a table without end fails that request alone; one that declares a huge table is refused at install', async (t) => {
  // Uncapped, either one aborted the host process (V8 cannot allocate the table in the thread's heap).
  const host = await startHarness(t, { warmupCpuMs: 0 });
  await host.install('tiny', await buildTiny());
  await host.install('table', await buildHostile('table'));
  assert.equal((await host.get('table.test')).status, 500);
  assert.match(host.runtime.status().find((capsule) => capsule.name === 'table')?.lastError ?? '', /unreachable/);
  await assertTinyAnswers(host);
  await assert.rejects(
    host.install('big', await buildHostile('big-table')),
    (error: unknown) =>
      isStratumError(error) &&
      error.code === 'WASM_TABLE_OVER_LIMIT' &&
      error.message === 'table 0 needs 10000000 elements at start, over the limit of 250000',
  );
  await assert.rejects(
    host.install('many', await buildHostile('many-tables')),
    (error: unknown) =>
      isStratumError(error) &&
      error.code === 'WASM_TABLE_OVER_LIMIT' &&
      error.message === "the component's tables may grow to more than 2000000 elements together",
  );
  await assertTinyAnswers(host);
});

test('two drains of a capsule with a request in flight both answer once it ends', async (t) => {
  // The second one took the first one's place, which then never answered (a move found it).
  const host = await startHarness(t, { limits: { timeoutMs: 1000 }, warmupCpuMs: 0 });
  await host.install('loop', await buildHostile('loop'), { manifest: '[resources]\ncpu = "large"\n' });
  const looping = host.get('loop.test');
  while ((host.runtime.status().find((capsule) => capsule.name === 'loop')?.inFlight ?? 0) === 0) await setTimeout(10);
  const [first, second] = await Promise.all([host.runtime.drain('loop'), host.runtime.drain('loop')]);
  assert.deepEqual([first.state, second.state], ['stopped', 'stopped']);
  assert.equal((await looping).status, 504);
});

test('a capsule over its wall-clock timeout gets 504 even when its CPU budget is larger', async (t) => {
  const host = await startHarness(t, { limits: { timeoutMs: 300 }, warmupCpuMs: 0 });
  await host.install('tiny', await buildTiny());
  await host.install('loop', await buildHostile('loop'), { manifest: '[resources]\ncpu = "large"\n' });
  assert.equal((await host.get('loop.test')).status, 504);
  assert.equal(hits(host, 'loop').timeout, 1);
  assert.match(
    host.runtime.status().find((capsule) => capsule.name === 'loop')?.lastError ?? '',
    /was ended: over the 300 ms wall-clock limit/,
  );
  await assertTinyAnswers(host);
});

for (const [warmupCpuMs, expected] of [
  // The first request runs under the warm-up budget: the message names it, beside the manifest's.
  [200, "over the 200 ms allowed to a fresh instance's first 16 requests (the capsule's own limit: 50 ms per request)"],
  [0, "over the capsule's limit of 50 ms per request"],
] as const) {
  test(`a CPU limit hit names the limit that applied (warm-up budget ${warmupCpuMs} ms)`, async (t) => {
    const host = await startHarness(t, { warmupCpuMs });
    await host.install('loop', await buildHostile('loop'), { manifest: '[resources]\ncpu = "micro"\ntimeout = "10s"\n' });
    const logged: string[] = [];
    host.runtime.subscribeLogs('loop', (entry) => {
      if (entry.message.startsWith('limit hit')) logged.push(entry.message);
    });
    assert.equal((await host.get('loop.test')).status, 504);
    assert.equal(logged.length, 1, logged.join('\n'));
    assert.match(logged[0] ?? '', /^limit hit \(cpu\): used \d+ ms of CPU, /);
    assert.ok(logged[0]?.endsWith(expected), logged[0]);
  });
}

test('an instance that replaces one ended for CPU gets no warm-up budget; fresh instances get it again after warmupWithheldMs', async (t) => {
  const host = await startHarness(t, { warmupCpuMs: 200, warmupWithheldMs: 3000, backoffAfter: 10 });
  await host.install('loop', await buildHostile('loop'), { manifest: '[resources]\ncpu = "micro"\ntimeout = "10s"\n' });
  const logged: string[] = [];
  host.runtime.subscribeLogs('loop', (entry) => {
    if (entry.message.startsWith('limit hit')) logged.push(entry.message.replace(/^limit hit \(cpu\): used \d+ ms of CPU, /, ''));
  });
  const warmup = "over the 200 ms allowed to a fresh instance's first 16 requests (the capsule's own limit: 50 ms per request)";
  assert.equal((await host.get('loop.test')).status, 504);
  // The replacement, fresh too, runs its first request under the capsule's own limit.
  assert.equal((await host.get('loop.test')).status, 504);
  await setTimeout(3000);
  assert.equal((await host.get('loop.test')).status, 504);
  assert.deepEqual(logged, [
    warmup,
    "over the capsule's limit of 50 ms per request (a fresh instance's warm-up allowance is not given for 3 s after one was ended for CPU)",
    warmup,
  ]);
});

test('two installations of one component share nothing: each has its own instance state', async (t) => {
  const host = await startHarness(t);
  const tiny = await buildTiny();
  await host.install('a', tiny);
  await host.install('b', tiny);
  assert.equal((await host.get('a.test')).body.toString(), 'hello from tiny 1\n');
  assert.equal((await host.get('a.test')).body.toString(), 'hello from tiny 2\n');
  assert.equal((await host.get('b.test')).body.toString(), 'hello from tiny 1\n');
});

test('an instance whose memory grows near its limit is replaced before a request fails on it', async (t) => {
  const host = await startHarness(t);
  // "/grow" keeps 1 MiB more on every request and traps when the limit refuses it: under 16 MiB
  // the 16th request on one instance would fail.
  await host.install('moody', await buildHostile('moody'), { manifest: '[resources]\nmemory = "16mib"\n' });
  const counts: number[] = [];
  for (let request = 0; request < 40; request++) {
    const reply = await host.get('moody.test', '/grow');
    assert.equal(reply.status, 200, `request ${request + 1} failed`);
    counts.push(Number(/(\d+)\n$/.exec(reply.body.toString())?.[1]));
  }
  assert.deepEqual(hits(host, 'moody'), {});
  const recycled = host.runtime.stats().recycledInstances;
  assert.ok(recycled >= 3, `${recycled} instances replaced`);
  // Each replacement counts from 1 again, and none served as many as the limit allows.
  assert.equal(counts.filter((count) => count === 1).length, recycled + 1);
  assert.ok(Math.max(...counts) < 15, `an instance served ${Math.max(...counts)} requests`);
  // A capsule that starts big and stays there is not replaced: tiny, on the same host.
  await host.install('tiny', await buildTiny(), { manifest: '[resources]\nmemory = "1mib"\n' });
  for (let request = 0; request < 5; request++) assert.equal((await host.get('tiny.test')).status, 200);
  assert.equal(host.runtime.stats().recycledInstances, recycled);
});

test('an instance whose first request fills its memory is replaced too: its growth counts from before that request', async (t) => {
  const host = await startHarness(t, { instancesPerCapsule: 1 });
  await host.install('moody', await buildHostile('moody'), { manifest: '[resources]\nmemory = "16mib"\n' });
  // 14.5 MiB of 16 at once, on a fresh instance: measured from after it, it had not grown at all,
  // and the two 1 MiB growths it then has room for are too little to count.
  assert.equal((await host.get('moody.test', '/fill')).status, 200);
  for (let request = 0; request < 5; request++) {
    assert.equal((await host.get('moody.test', '/grow')).status, 200, `request ${request + 1} after the fill failed`);
  }
  assert.deepEqual(hits(host, 'moody'), {});
  assert.equal(host.runtime.stats().recycledInstances, 1);
});

test('a status that is not a final one (101, which a proxy would take as a tunnel; 799) is a 502, logged, and the instance serves on', async (t) => {
  const host = await startHarness(t);
  await host.install('moody', await buildHostile('moody'));
  const logged: string[] = [];
  host.runtime.subscribeLogs('moody', (entry) => logged.push(entry.message));
  for (const [path, status] of [
    ['/up', 101],
    ['/odd', 799],
  ] as const) {
    const reply = await host.get('moody.test', path);
    assert.equal(reply.status, 502, `${path}: ${reply.status}`);
    assert.ok(
      logged.includes(`invalid response from the capsule: its status ${status} is not a final HTTP status (200 to 599)`),
      logged.join('\n'),
    );
  }
  // The same instance: it counted the two refused answers too.
  assert.equal((await host.get('moody.test', '/')).body.toString(), 'hello from tiny 3\n');
});

test('a new installation asking for more than the host allows is refused, naming each limit; defaults and a restored one are capped', async (t) => {
  const host = await startHarness(t, { limits: { memoryBytes: 64 * MiB, timeoutMs: 1000 } });
  const tiny = await buildTiny();
  const manifest = (name: string, resources: string) =>
    parseManifest(`stratum = 1\n[capsule]\nname = "${name}"\nversion = "0.1.0"\n[source]\nwasm = "${basename(tiny)}"\n${resources}`)
      .manifest;
  const asking = manifest('big', '[resources]\nmemory = "128mib"\ntimeout = "5s"\nconcurrency = 2\n');
  const install = (name: string, wanted: typeof asking, refuseUnmetResources: boolean) =>
    host.runtime.install({ name, manifest: wanted, baseDir: dirname(tiny), domains: [`${name}.test`], refuseUnmetResources });
  await assert.rejects(install('big', asking, true), (error: unknown) => {
    assert.ok(isStratumError(error), String(error));
    assert.equal(error.code, 'RESOURCES_UNAVAILABLE');
    assert.deepEqual(error.details, [
      '[resources] memory asks for 128 MiB; this host allows 64 MiB ([limits] memory)',
      '[resources] timeout asks for 5 s; this host allows 1 s ([limits] timeout)',
    ]);
    return true;
  });
  assert.deepEqual(host.runtime.status(), []);
  // The class's defaults (128 MiB for micro, 30 s) are the host's to cap.
  await install('plain', manifest('plain', ''), true);
  // As a host restoring what it installed before its operator lowered the limits.
  await install('big', asking, false);
  for (const name of ['plain', 'big']) {
    await host.runtime.start(name);
    assert.equal((await host.get(`${name}.test`)).status, 200);
  }
});

test('a request ended at its CPU limit is metered for the CPU it was seen to use, not the limit', async (t) => {
  const host = await startHarness(t, { warmupCpuMs: 0 });
  await host.install('loop', await buildHostile('loop'), { manifest: '[resources]\ncpu = "micro"\n' });
  const records: { cpuMs: number; limit?: string }[] = [];
  host.runtime.onRequest((record) => records.push(record));
  assert.equal((await host.get('loop.test')).status, 504);
  for (let tries = 0; tries < 500 && records.length === 0; tries++) await setTimeout(10);
  const [record] = records;
  assert.equal(record?.limit, 'cpu');
  // Ended only once seen over the limit and its allowance, twice: more than the limit, as the log line says.
  const limit = parseManifest(
    'stratum = 1\n[capsule]\nname = "x"\nversion = "0.1.0"\n[source]\nwasm = "x.wasm"\n[resources]\ncpu = "micro"\n',
    'x.toml',
  ).manifest.resources.cpuMsPerRequest;
  assert.ok((record?.cpuMs ?? 0) > limit, `metered ${record?.cpuMs} ms against a limit of ${limit} ms`);
  const logged = host.runtime.status().find((capsule) => capsule.name === 'loop')?.lastError ?? '';
  assert.match(logged, new RegExp(`used ${Math.round(record?.cpuMs ?? 0)} ms of CPU`));
});

test('a capsule that writes more log lines than the host keeps has the rest dropped and counted, and its CPU limit still holds', async (t) => {
  const host = await startHarness(t, { limits: { logLinesPerSecond: 10 }, warmupCpuMs: 0 });
  await host.install('chatty', await buildHostile('chatty'));
  await host.install('loop', await buildHostile('loop'), { manifest: '[resources]\ncpu = "micro"\n' });
  const lines: { source: string; message: string }[] = [];
  host.runtime.subscribeLogs('chatty', (entry) => lines.push(entry), { backlog: 0 });
  // 1024 lines a request: 40 at once (four seconds' worth), then 10 a second.
  assert.equal((await host.get('chatty.test')).status, 200);
  const note =
    /^(\d+) log lines were dropped here: the capsule wrote more than the host keeps \(40 lines at once, then 10 a second, \[limits\] log_lines in host\.toml\)$/;
  for (let tries = 0; tries < 500 && !lines.some((line) => line.source === 'host' && note.test(line.message)); tries++)
    await setTimeout(10);
  const kept = lines.filter((line) => line.source === 'stdout').length;
  const dropped = Number(note.exec(lines.find((line) => note.test(line.message))?.message ?? '')?.[1]);
  assert.equal(kept + dropped, 1024);
  assert.ok(kept >= 40 && kept < 100, `${kept} lines kept`);
  // The next request's lines come after the note, as many as the rate has refilled.
  assert.equal((await host.get('chatty.test')).status, 200);
  assert.equal((await host.get('loop.test')).status, 504);
  assert.equal(hits(host, 'loop').cpu, 1);
});

test("refusals a client can send at the ingress's rate are all counted, and written to the logs once a while, not once each", async (t) => {
  const host = await startHarness(t, { backoffAfter: 1, backoffMs: 60_000, warmupCpuMs: 0 });
  await host.install('trap', await buildHostile('trap'));
  const lines: string[] = [];
  host.runtime.subscribeLogs('trap', (entry) => {
    if (entry.message.startsWith('limit hit')) lines.push(entry.message);
  });
  assert.equal((await host.get('trap.test')).status, 500);
  for (let index = 0; index < 20; index++) assert.equal((await host.get('trap.test')).status, 503);
  assert.equal(hits(host, 'trap').backoff, 20);
  assert.deepEqual(
    lines.map((line) => line.split(':')[0]),
    ['limit hit (trap)', 'limit hit (backoff)'],
  );
});

test("the ingress's own answers do not name the installation, which is its registrar's business", async (t) => {
  const host = await startHarness(t, { warmupCpuMs: 0 });
  await host.install('acme-internal-7', await buildTiny());
  assert.equal((await host.get('acme-internal-7.test')).status, 200);
  await host.runtime.stop('acme-internal-7');
  const stopped = await host.get('acme-internal-7.test');
  assert.equal(stopped.status, 503);
  assert.equal(stopped.body.toString(), 'the app is out of service\n');
});

test("every answer names its request id, the one its usage record and log lines carry: a capsule's own answer and the host's", async (t) => {
  const host = await startHarness(t, { warmupCpuMs: 0 });
  await host.install('tiny', await buildTiny());
  await host.install('loop', await buildHostile('loop'), { manifest: '[resources]\ncpu = "micro"\n' });
  const records: { requestId: string; capsule: string }[] = [];
  host.runtime.onRequest((record) => records.push(record));
  const served = await host.get('tiny.test');
  const ended = await host.get('loop.test');
  assert.deepEqual([served.status, ended.status], [200, 504]);
  for (let tries = 0; tries < 500 && records.length < 2; tries++) await setTimeout(10);
  assert.deepEqual(
    [served.headers['stratum-request-id'], ended.headers['stratum-request-id']],
    ['tiny', 'loop'].map((name) => records.find((record) => record.capsule === name)?.requestId),
  );
  assert.match(String(served.headers['stratum-request-id']), /^[\w-]{8,}$/);
});
