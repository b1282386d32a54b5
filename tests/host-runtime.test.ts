// The runtime through its ingress: Host-header routing, routes, body limits, the bounded queue,
// install-time refusals, and the transpile cache that a restarted host relies on.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { CAPABILITY_MODULES } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { sha256Digest } from '../packages/host/src/loader.ts';
import { startHarness } from './fixtures/hostile/harness.ts';
import { removeDir } from './support/temp.ts';
import { buildHostile, buildTiny } from './support/tiny.ts';

test('the Host header picks the capsule; an unknown host name gets 404', async (t) => {
  const host = await startHarness(t);
  const tiny = await buildTiny();
  await host.install('tiny', tiny, { domains: ['tiny.test', 'www.tiny.test'] });
  await host.install('other', tiny);

  const first = await host.get('tiny.test');
  assert.equal(first.status, 200);
  assert.equal(first.body.toString(), 'hello from tiny 1\n');
  // Port and case do not matter; the same instance serves the second domain.
  assert.equal((await host.get('WWW.Tiny.Test:8080')).body.toString(), 'hello from tiny 2\n');
  assert.equal((await host.get('other.test')).body.toString(), 'hello from tiny 1\n');

  const unknown = await host.get('nobody.test');
  assert.equal(unknown.status, 404);
  assert.match(unknown.body.toString(), /no capsule is installed for nobody\.test/);

  const records: string[] = [];
  host.runtime.onRequest((record) => records.push(`${record.capsule} ${record.domain} ${record.status}`));
  await host.get('tiny.test');
  assert.deepEqual(records, ['tiny tiny.test 200']);
});

test('a response that arrives whole goes out with its content-length; HEAD gets the head only', async (t) => {
  const host = await startHarness(t);
  await host.install('tiny', await buildTiny());
  const whole = await host.get('tiny.test');
  assert.equal(whole.body.toString(), 'hello from tiny 1\n');
  assert.equal(whole.headers['content-length'], String(whole.body.length));
  assert.equal(whole.headers['transfer-encoding'], undefined);
  const head = await host.get('tiny.test', '/', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assert.equal(head.headers['content-length'], undefined, 'a HEAD answer does not claim a length it did not measure');
});

test('paths outside the manifest routes get 404 without reaching the capsule', async (t) => {
  const host = await startHarness(t);
  await host.install('api', await buildTiny(), { manifest: '[http]\nroutes = ["/api/*"]\n' });
  assert.equal((await host.get('api.test', '/api/x?y=1')).status, 200);
  assert.equal((await host.get('api.test', '/elsewhere')).status, 404);
  assert.equal((await host.get('api.test', '/api')).body.toString(), 'hello from tiny 2\n');
});

test('request bodies over the limit get 413, declared or streamed, and the log names the setting', async (t) => {
  const host = await startHarness(t, { limits: { requestBodyBytes: 1000 } });
  await host.install('tiny', await buildTiny());
  const logged: string[] = [];
  host.runtime.subscribeLogs('tiny', (entry) => entry.message.startsWith('limit hit') && logged.push(entry.message));
  assert.equal((await host.get('tiny.test', '/', { method: 'POST', body: Buffer.alloc(1000) })).status, 200);
  const declared = await host.get('tiny.test', '/', { method: 'POST', body: Buffer.alloc(1001) });
  assert.equal(declared.status, 413);
  assert.equal(declared.body.toString(), 'the request body is larger than 1000 bytes, the most this host takes\n');
  assert.equal((await host.get('tiny.test', '/', { method: 'POST', body: Buffer.alloc(5000), chunked: true })).status, 413);
  assert.equal(host.runtime.status().find((capsule) => capsule.name === 'tiny')?.limitHits['request-body'], 2);
  assert.deepEqual(logged, [
    "limit hit (request-body): request body of 1001 bytes over 1000 bytes, the host's limit, host.toml [limits] request_body",
    "limit hit (request-body): request body over 1000 bytes, the host's limit, host.toml [limits] request_body",
  ]);
});

test('the default request body limit is named in MiB', async (t) => {
  const host = await startHarness(t);
  await host.install('tiny', await buildTiny());
  const refused = await host.get('tiny.test', '/', { method: 'POST', body: Buffer.alloc(10 * 1024 * 1024 + 1) });
  assert.equal(refused.status, 413);
  assert.equal(refused.body.toString(), 'the request body is larger than 10 MiB, the most this host takes\n');
});

test('requests over concurrency and queue get 503 at once', async (t) => {
  const host = await startHarness(t, { limits: { queue: 0 }, warmupCpuMs: 0 });
  await host.install('loop', await buildHostile('loop'), { manifest: '[resources]\ncpu = "small"\nconcurrency = 1\n' });
  const running = host.get('loop.test');
  // The first request holds the only slot until its CPU limit ends it.
  for (let tries = 0; tries < 100 && host.runtime.status()[0]?.inFlight === 0; tries++)
    await new Promise((resolve) => setTimeout(resolve, 5));
  const refused = await host.get('loop.test');
  assert.equal(refused.status, 503);
  const ran = await running;
  assert.equal(ran.status, 504, ran.body.toString());
  assert.equal(host.runtime.status()[0]?.limitHits.concurrency, 1);
});

test('a restarted host installs from its transpile cache without transpiling again', async (t) => {
  const tiny = await buildTiny();
  const first = await startHarness(t);
  await first.install('tiny', tiny);
  assert.equal(first.runtime.stats().transpiles, 1);
  assert.equal((await first.get('tiny.test')).status, 200);
  await first.runtime.close();

  const second = await startHarness(t, { dataDir: first.dataDir });
  await second.install('tiny', tiny);
  const { transpiles, inspections, cacheHits, transpileWorkersStarted } = second.runtime.stats();
  assert.deepEqual(
    { transpiles, inspections, cacheHits, transpileWorkersStarted },
    { transpiles: 0, inspections: 0, cacheHits: 1, transpileWorkersStarted: 0 },
  );
  assert.equal((await second.get('tiny.test')).body.toString(), 'hello from tiny 1\n');
  // First's after-hook removes the shared directory, and runs before second's: close second now,
  // so that none of its worker threads writes V8's code cache there while it goes.
  await second.runtime.close();
});

test('a stored component is read only when the cache misses it, and checked against its digest then', async (t) => {
  const tiny = await buildTiny();
  const bytes = await readFile(tiny);
  const digest = sha256Digest(bytes);
  const { manifest } = parseManifest('stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n');
  let reads = 0;
  const stored = (read: () => Uint8Array) => ({
    digest,
    read: async () => {
      reads++;
      return read();
    },
  });

  // A fresh cache: the bytes are read once (inspect and transpile share the read) and checked.
  const first = await startHarness(t);
  await first.runtime.install({ name: 'tiny', manifest, domains: ['tiny.test'], storedComponent: stored(() => bytes) });
  assert.equal(reads, 1);
  await first.runtime.start('tiny');
  assert.equal((await first.get('tiny.test')).status, 200);
  await first.runtime.close();

  // A restart from the same cache never reads them: nothing to hash, whatever their size.
  const second = await startHarness(t, { dataDir: first.dataDir });
  await second.runtime.install({
    name: 'tiny',
    manifest,
    domains: ['tiny.test'],
    storedComponent: stored(() => assert.fail('a cached component must not be read')),
  });
  assert.equal(reads, 1);
  await second.runtime.start('tiny');
  assert.equal((await second.get('tiny.test')).status, 200);
  await second.runtime.close();

  // Without the cache, bytes changed on disk are refused, not transpiled.
  const tampered = Uint8Array.from(bytes);
  tampered[tampered.length - 1] = (tampered.at(-1) ?? 0) ^ 0xff;
  const third = await startHarness(t);
  await assert.rejects(
    third.runtime.install({ name: 'tiny', manifest, domains: ['tiny.test'], storedComponent: stored(() => tampered) }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, 'DIGEST_MISMATCH');
      assert.match(error.message, /was changed on disk/);
      return true;
    },
  );
  assert.equal(third.runtime.stats().transpiles, 0);
  // The manifest's digest still has the last word over the stored one.
  const pinned = parseManifest(
    `stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\ndigest = "sha256:${'0'.repeat(64)}"\n`,
  );
  await assert.rejects(
    third.runtime.install({ name: 'tiny', manifest: pinned.manifest, domains: ['tiny.test'], storedComponent: stored(() => bytes) }),
    { code: 'DIGEST_MISMATCH' },
  );
});

test('install refuses a wrong digest, imports no capability serves, and non-components', async (t) => {
  const tiny = await buildTiny();
  const host = await startHarness(t, { capabilities: CAPABILITY_MODULES.filter((entry) => entry.name !== 'http') });
  const manifest = (extra: string) =>
    parseManifest(`stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "${tiny.split('/').at(-1)}"\n${extra}`)
      .manifest;
  const baseDir = tiny.slice(0, tiny.lastIndexOf('/'));

  await assert.rejects(
    host.runtime.install({ manifest: manifest(`digest = "sha256:${'0'.repeat(64)}"`), baseDir, domains: ['tiny.test'] }),
    {
      code: 'DIGEST_MISMATCH',
    },
  );
  await assert.rejects(
    host.runtime.install({ manifest: manifest(''), baseDir, domains: ['tiny.test'] }),
    (error: Error & { code?: string; details?: string[] }) => {
      assert.equal(error.code, 'CAPABILITY_UNKNOWN_IMPORT');
      assert.deepEqual(error.details, ['import wasi:http/types@0.2.10: no capability of this host serves it']);
      return true;
    },
  );
  const core = await readFile(new URL('../node_modules/@bytecodealliance/jco/lib/wasi_snapshot_preview1.reactor.wasm', import.meta.url));
  await assert.rejects(host.runtime.install({ manifest: manifest(''), component: core, domains: ['tiny.test'] }), {
    code: 'NOT_A_COMPONENT',
  });
  assert.deepEqual(host.runtime.status(), []);
});

test('a domain served by one capsule cannot be taken by another', async (t) => {
  const host = await startHarness(t);
  const tiny = await buildTiny();
  await host.install('one', tiny, { domains: ['shared.test'] });
  await assert.rejects(host.install('two', tiny, { domains: ['shared.test'] }), { code: 'DOMAIN_TAKEN' });
  assert.equal((await host.get('shared.test')).status, 200);
});

test('drain answers in-flight requests, then stops; stop and uninstall free the domain', async (t) => {
  const host = await startHarness(t);
  await host.install('tiny', await buildTiny());
  const drained = await host.runtime.drain('tiny');
  assert.equal(drained.state, 'stopped');
  assert.equal(drained.instances, 0);
  assert.equal((await host.get('tiny.test')).status, 503);
  const started = await host.runtime.start('tiny');
  assert.equal(started.state, 'running');
  assert.equal((await host.get('tiny.test')).status, 200);
  await host.runtime.uninstall('tiny');
  assert.equal((await host.get('tiny.test')).status, 404);
  await assert.rejects(host.runtime.start('tiny'), { code: 'CAPSULE_NOT_FOUND' });
});

test('a log subscription follows the installation across a reinstall, without its backlog again, and an uninstall ends it', async (t) => {
  const host = await startHarness(t);
  await host.install('app', await buildTiny());
  const lines: string[] = [];
  let ended = 0;
  host.runtime.subscribeLogs('app', (entry) => lines.push(`${entry.level} ${entry.message.replace(/\(sha256:\w+\)/, '(digest)')}`), {
    onEnd: () => ended++,
  });
  // A new build, replacing the running one; then a request of the new one's that hits a limit.
  await host.install('app', await buildHostile('trap'));
  assert.equal((await host.get('app.test')).status, 500);
  // And once more with the first build, the old one stopped first (the other way a reinstall goes).
  await host.runtime.stop('app');
  await host.install('app', await buildTiny());
  assert.equal(ended, 0);
  await host.runtime.uninstall('app');
  assert.equal(ended, 1);
  assert.deepEqual(
    lines.map((line) => line.replace(/^(warn limit hit \(trap\)): .*/s, '$1')),
    [
      'info installed app@0.1.0 (digest)',
      'info started',
      'info installed app@0.1.0 (digest)',
      'info started',
      'warn limit hit (trap)',
      'info stopped',
      'info installed app@0.1.0 (digest)',
      'info started',
      'info uninstalled',
    ],
  );
});

test('uninstalling or replacing a capsule trims the transpile cache to what is in use and the eight entries used last', async (t) => {
  const { mkdir, readdir, utimes, writeFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const host = await startHarness(t);
  // Nine entries of components installed before and gone, used a minute apart.
  const transpiled = join(host.dataDir, 'cache', 'transpiled');
  const gone = Array.from({ length: 9 }, (_, index) => `${'b'.repeat(31)}${index}-${'0'.repeat(16)}`);
  for (const [index, entry] of gone.entries()) {
    await mkdir(join(transpiled, entry), { recursive: true });
    await writeFile(join(transpiled, entry, 'meta.json'), '{}');
    const usedAt = new Date(Date.now() - (gone.length - index) * 60_000);
    await utimes(join(transpiled, entry, 'meta.json'), usedAt, usedAt);
  }
  await host.install('tiny', await buildTiny());
  await host.install('trap', await buildHostile('trap'));
  const [tinyKey, trapKey] = (await readdir(transpiled)).filter((entry) => !gone.includes(entry));
  assert.ok(tinyKey && trapKey);
  // Replaced by another component: tiny's entry is no longer in use, but among the eight used last.
  await host.install('tiny', await buildHostile('trap'));
  let entries = await readdir(transpiled);
  assert.ok(entries.includes(tinyKey) && entries.includes(trapKey));
  assert.deepEqual(
    gone.filter((entry) => entries.includes(entry)),
    gone.slice(2),
  );
  // Uninstalled while another capsule uses its component: nothing goes.
  await host.runtime.uninstall('trap');
  assert.deepEqual(await readdir(transpiled), entries);
  // Uninstalled, the last user: its entry joins the unused, and the oldest goes.
  await host.runtime.uninstall('tiny');
  entries = await readdir(transpiled);
  assert.ok(entries.includes(tinyKey) && entries.includes(trapKey));
  assert.deepEqual(
    gone.filter((entry) => entries.includes(entry)),
    gone.slice(3),
  );
});

test('a host killed with SIGKILL comes back from its cache: every capsule, no transpiling', { timeout: 180_000 }, async (t) => {
  const { spawn } = await import('node:child_process');
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dataDir = await mkdtemp(join(tmpdir(), 'stratum-sigkill-'));
  const tiny = await buildTiny();
  const child = spawn(
    process.execPath,
    [
      new URL('./fixtures/hostile/host-process.ts', import.meta.url).pathname,
      dataDir,
      `tiny=${tiny}`,
      `trap=${await buildHostile('trap')}`,
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  t.after(() => child.kill('SIGKILL'));
  const ready = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split('\n').find((candidate) => candidate.startsWith('ready '));
      if (line) resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`the host exited early (${code}): ${output}`)));
  });
  assert.match(ready, /^ready \d+ \{"transpiles":2,/);
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));

  const host = await startHarness(t, { dataDir });
  // After-hooks run in the order they were added: the harness's runtime is closed (its workers no
  // longer write the code cache) before the directory goes.
  t.after(() => removeDir(dataDir));
  await host.install('tiny', tiny);
  await host.install('trap', await buildHostile('trap'));
  assert.equal(host.runtime.stats().transpiles, 0);
  assert.equal(host.runtime.stats().cacheHits, 2);
  assert.equal((await host.get('tiny.test')).body.toString(), 'hello from tiny 1\n');
  // A component the killed host never saw is transpiled as usual.
  await host.install('loop', await buildHostile('loop'));
  assert.equal(host.runtime.stats().transpiles, 1);
});

test('a burst waits for instances started one at a time, never more than the limit', async (t) => {
  const host = await startHarness(t, { instancesPerCapsule: 2 });
  await host.install('tiny', await buildTiny());
  const replies = await Promise.all(Array.from({ length: 12 }, () => host.get('tiny.test')));
  assert.deepEqual(
    replies.map((reply) => reply.status),
    Array(12).fill(200),
  );
  // Each instance numbers its own requests from 1: no more instances served than were started.
  const counts = replies.map((reply) => Number(/(\d+)\n$/.exec(reply.body.toString())?.[1]));
  assert.ok(counts.filter((count) => count === 1).length <= host.runtime.stats().workersStarted);
  assert.ok(host.runtime.stats().workersStarted <= 2);
  assert.ok((host.runtime.status()[0]?.instances ?? 0) <= 2);
});
