// The acceptance path of the control API with the real runtime: a host comes up, a registrar
// installs examples/hello over the signed API, and the ingress serves it by its Host header.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readdir, readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateEd25519KeyPair, StratumError } from '@stratum/core';
import { ControlApiError, createControlClient, parseHostConfig, startHost, verifyLedgerFile } from '@stratum/host';
import { pushCapsule } from '@stratum/registry';
import { Redis } from 'ioredis';
import { signControlRequest } from '../packages/host/src/control/auth.ts';
import { MAX_FOLLOWER_UNSENT } from '../packages/host/src/control/server.ts';
import { buildExample, exampleDir } from './support/examples.ts';
import { testHostToml, writeTestHost } from './support/host-dir.ts';
import { ingressGet as get } from './support/ingress.ts';
import { registryOrSkip } from './support/registry.ts';
import { requireService } from './support/services.ts';
import { testDir } from './support/temp.ts';
import { buildHostile } from './support/tiny.ts';

/**
 * A stratum-host in a new temporary directory on loopback ports, trusting one registrar; its
 * control client signs as that registrar. `pull`: the host pulls registry sources. After the
 * test the host stops, then its directory goes (`testDir`).
 */
async function startE2eHost(t: TestContext, options: { pull?: boolean; tables?: string } = {}) {
  const { dir, closing } = await testDir(t, 'stratum-e2e-');
  const registrar = await generateEd25519KeyPair();
  const { path, text } = await writeTestHost(dir, {
    registrar: registrar.publicJwk.x,
    ...(options.tables ? { tables: options.tables } : {}),
  });
  const config = parseHostConfig(text, path);
  const host = closing(await startHost(config, options.pull ? {} : { pullComponent: false }));
  const client = createControlClient({ url: host.controlUrl, key: registrar.privateJwk, audience: 'host1.example.net' });
  return { host, client, dir, registrar };
}

test('a host installs examples/hello over the signed control API and serves it by Host header', async (t) => {
  const wasm = await buildExample('hello');
  const { host, client } = await startE2eHost(t);

  const installed = await client.install({
    domains: ['hello.example'],
    manifest: await readFile(join(exampleDir('hello'), 'stratum.toml'), 'utf8'),
    component: new Uint8Array(await readFile(wasm)),
  });
  assert.equal(installed.name, 'hello');
  assert.equal(installed.state, 'running');

  const hello = await get(host.ingressUrl, 'hello.example', '/greet?name=ada');
  assert.equal(hello.status, 200);
  assert.deepEqual(JSON.parse(hello.body), { message: 'hello, ada', path: '/greet', served: 1 });
  const withPort = await get(host.ingressUrl, 'Hello.Example:8080', '/');
  assert.equal(withPort.status, 200);
  assert.equal((JSON.parse(withPort.body) as { message: string }).message, 'hello, world');
  assert.equal((await get(host.ingressUrl, 'unknown.example', '/')).status, 404);

  // The capsule's log, from the backlog: the runtime's own line about the install.
  const controller = new AbortController();
  const lines: string[] = [];
  await client.logs(
    'hello',
    (entry) => {
      lines.push(`${entry.source} ${entry.message}`);
      if (entry.message.startsWith('installed hello@')) controller.abort();
    },
    { backlog: 50, signal: controller.signal },
  );
  assert.ok(
    lines.some((line) => line.startsWith('host installed hello@0.1.0')),
    lines.join('\n'),
  );

  const usage = await client.usage({ capsule: 'hello' });
  assert.equal(usage.capsules.hello?.requests, 2);
  assert.ok((usage.capsules.hello?.bytesOut ?? 0) > 0);
  assert.deepEqual(await verifyLedgerFile(host.ledger.path), { ok: true, entries: usage.ledger.entries, head: usage.ledger.hash });

  await client.stop('hello');
  assert.notEqual((await get(host.ingressUrl, 'hello.example', '/')).status, 200);
  await client.uninstall('hello');
  assert.equal((await get(host.ingressUrl, 'hello.example', '/')).status, 404);
  assert.deepEqual((await client.status()).capsules, []);
});

test("a log follower that reads nothing holds at most 1 MiB of the host's memory: new lines past it are dropped, and counted to it once it reads", {
  timeout: 60_000,
}, async (t) => {
  const wasm = await buildHostile('chatty');
  // Up to 64 MiB of lines at once, far past what a host keeps of a capsule's log by default.
  const { host, client, registrar } = await startE2eHost(t, { tables: '[limits]\nlog_lines = 1000000\n' });
  await client.install({
    domains: ['chatty.example'],
    manifest: 'stratum = 1\n[capsule]\nname = "chatty"\nversion = "0.1.0"\n[source]\nwasm = "chatty.wasm"\n',
    component: new Uint8Array(await readFile(wasm)),
  });

  // The host's side of the stream, to read how much of it waits unsent.
  let served: ServerResponse | undefined;
  const onRequest = (message: unknown) => {
    const { request, response } = message as { request: IncomingMessage; response: ServerResponse };
    if (request.url?.includes('/logs')) served = response;
  };
  subscribe('http.server.request.start', onRequest);
  t.after(() => unsubscribe('http.server.request.start', onRequest));

  const path = '/capsules/chatty/logs?backlog=0';
  const authorization = await signControlRequest({ key: registrar.privateJwk, audience: 'host1.example.net', method: 'GET', path });
  const follower = await new Promise<IncomingMessage>((resolve, reject) => {
    const outgoing = httpRequest(new URL(`${host.controlUrl}${path}`), { headers: { authorization }, agent: false }, resolve);
    outgoing.on('error', reject);
    outgoing.end();
  });
  t.after(() => follower.destroy());
  assert.equal(follower.statusCode, 200);
  // Not read: node:http stops reading the socket once the response's own buffer is full.
  follower.pause();
  while (!served?.headersSent) await sleep(10);
  const response = served;

  let logged = 0;
  let mostUnsent = 0;
  host.runtime.subscribeLogs(
    'chatty',
    (entry) => {
      if (entry.source !== 'stdout') return;
      logged++;
      mostUnsent = Math.max(mostUnsent, response.writableLength);
    },
    { backlog: 0 },
  );
  // A MiB of lines a request.
  const round = async () => {
    const before = logged;
    assert.equal((await get(host.ingressUrl, 'chatty.example', '/')).status, 200);
    while (logged < before + 1024) await sleep(10);
  };
  // Until the sockets' buffers on both ends are full (how much the kernel takes varies) and the
  // stream holds more than its limit, then once more.
  const flood = async () => {
    for (let rounds = 0; rounds < 64 && response.writableLength <= MAX_FOLLOWER_UNSENT; rounds++) await round();
    await round();
    // At most the limit and one line's event over it.
    assert.ok(mostUnsent <= MAX_FOLLOWER_UNSENT + 2048, `${mostUnsent} bytes waited unsent`);
  };
  await flood();

  let text = '';
  let received = 0;
  let dropped = 0;
  const notes: string[] = [];
  let lastEvent = '';
  let uninstallReceived = false;
  // Every line's id, and each note's (the last line it counts), increases along the stream.
  let lastId = 0;
  follower.setEncoding('utf8');
  follower.on('data', (chunk: string) => {
    const events = (text + chunk).split('\n\n');
    text = events.pop() ?? '';
    for (const event of events) {
      if (!event.startsWith('event: log\n')) continue;
      lastEvent = event;
      const [, data = '', n = ''] =
        /^event: log\ndata: (.*)\nid: \d+-(\d+)$/.exec(event) ?? assert.fail(`an event without an id: ${event}`);
      assert.ok(Number(n) > lastId, `id ${n} after ${lastId}`);
      lastId = Number(n);
      const entry = JSON.parse(data) as { source: string; level: string; message: string };
      if (entry.source === 'stdout') received++;
      if (entry.source === 'host' && entry.message === 'uninstalled') uninstallReceived = true;
      const note = /^(\d+) log lines were dropped here: this stream's reader read too slowly$/.exec(entry.message);
      if (note && entry.source === 'host' && entry.level === 'warn') {
        dropped += Number(note[1]);
        notes.push(entry.message);
      }
    }
  });
  follower.resume();
  while (received + dropped < logged) await sleep(10);
  assert.ok(dropped > 0 && notes.length > 0, `${received} lines received`);
  assert.equal(received + dropped, logged, 'every line was sent or counted as dropped');

  // Caught up, the reader gets every line again.
  const [receivedBefore, droppedBefore] = [received, dropped];
  await round();
  while (received + dropped < logged) await sleep(10);
  assert.deepEqual([received - receivedBefore, dropped - droppedBefore], [1024, 0]);

  // Stalled again when the capsule is uninstalled: the stream ends, and lines dropped since its
  // last gap are counted in a note at its end.
  follower.pause();
  await flood();
  const ended = new Promise((resolve) => follower.once('end', resolve));
  await client.uninstall('chatty');
  follower.resume();
  await ended;
  // The stream may have drained and filled again while it was flooded (the kernel's and the
  // client's buffers grow), each gap with its own note, and may even have drained just before the
  // uninstall's own line: every line, that one too, was then sent or counted.
  assert.equal(received + dropped + (uninstallReceived ? 1 : 0), logged + 1, 'every line was sent or counted as dropped');
  if (uninstallReceived) assert.match(lastEvent, /"message":"uninstalled"/);
  else assert.match(lastEvent, /dropped here: this stream's reader read too slowly/);
});

test('an install whose instance never starts is refused with 422 and leaves nothing behind', async (t) => {
  const wasm = await buildHostile('init-loop');
  const { host, client } = await startE2eHost(t);
  const install = client.install({
    domains: ['loop.example'],
    manifest:
      'stratum = 1\n[capsule]\nname = "init-loop"\nversion = "0.1.0"\n[source]\nwasm = "init-loop.wasm"\n[resources]\ntimeout = "1s"\n',
    component: new Uint8Array(await readFile(wasm)),
  });
  await assert.rejects(install, (error: unknown) => {
    assert.ok(error instanceof ControlApiError);
    assert.equal(error.status, 422);
    assert.equal(error.code, 'INSTANCE_FAILED');
    assert.match(error.message, /did not start within/);
    return true;
  });
  assert.deepEqual((await client.status()).capsules, []);
  assert.equal((await get(host.ingressUrl, 'loop.example', '/')).status, 404);
});

test('an install whose manifest names a registry source is pulled by the host and verified', async (t) => {
  const registry = await registryOrSkip(t);
  if (!registry) return;
  const wasm = await buildExample('hello');
  const { host, client, dir } = await startE2eHost(t, { pull: true });
  const reference = `oci://${registry.host}/examples/hello:0.1.0`;
  const pushed = await pushCapsule({ reference, wasm: { path: wasm }, cacheDir: join(dir, 'push-cache') });
  const original = await readFile(join(exampleDir('hello'), 'stratum.toml'), 'utf8');
  // What `stratum push --pin` leaves: the source pinned in the registry, and no [build] (it has nowhere to write).
  const pinned = original
    .replace(/^wasm = .*$/m, `registry = "${reference}"\ndigest = "${pushed.digest}"`)
    .replace(/^\[build\]\nentry = .*\n/m, '');
  assert.notEqual(pinned, original);

  const installed = await client.install({ domains: ['hello.example'], manifest: pinned });
  assert.equal(installed.digest, pushed.digest);
  // The host keeps the component in its installation store, not a second copy in the pull cache.
  const pulledBlobs = await readdir(join(dir, 'data', 'registry', 'blobs', 'sha256')).catch(() => [] as string[]);
  assert.ok(!pulledBlobs.includes(pushed.digest.slice('sha256:'.length)), 'the pulled component stayed in the registry cache');
  assert.ok((await readdir(join(dir, 'data', 'components', 'sha256'))).includes(`${pushed.digest.slice('sha256:'.length)}.wasm`));
  const hello = await get(host.ingressUrl, 'hello.example', '/?name=registry');
  assert.equal(hello.status, 200);
  assert.equal((JSON.parse(hello.body) as { message: string }).message, 'hello, registry');

  const wrong = pinned.replace(pushed.digest, `sha256:${'1'.repeat(64)}`);
  await assert.rejects(client.install({ name: 'other', domains: ['other.example'], manifest: wrong }), (error: unknown) => {
    assert.ok(error instanceof ControlApiError);
    assert.equal(error.status >= 400 && error.status < 500, true, `${error.status} ${error.code}`);
    return true;
  });
  assert.deepEqual(
    (await client.status()).capsules.map((capsule) => capsule.name),
    ['hello'],
  );
});

test("host.toml's [keyvalue.<label>] table reaches the keyvalue capability (redis), and a bad one stops the host", async (t) => {
  const redisUrl = await requireService(t, 'redis');
  if (!redisUrl) return;
  const wasm = await buildExample('counter');
  const { dir, closing } = await testDir(t, 'stratum-e2e-');
  const registrar = await generateEd25519KeyPair();
  await writeTestHost(dir, { registrar: registrar.publicJwk.x });
  const hostToml = (backend: string) =>
    parseHostConfig(testHostToml({ registrar: registrar.publicJwk.x, tables: `[keyvalue.default]\n${backend}\n` }), join(dir, 'host.toml'));
  const manifest = await readFile(join(exampleDir('counter'), 'stratum.toml'), 'utf8');
  const component = new Uint8Array(await readFile(wasm));
  const name = `counter-${randomBytes(6).toString('hex')}`;

  const host = closing(await startHost(hostToml(`type = "redis"\nurl = "${redisUrl}"`), { pullComponent: false }));
  const client = createControlClient({ url: host.controlUrl, key: registrar.privateJwk, audience: 'host1.example.net' });
  await client.install({ name, domains: ['counter.example'], manifest, component });
  assert.equal(JSON.parse((await get(host.ingressUrl, 'counter.example', '/a')).body).count, 1);
  assert.equal(JSON.parse((await get(host.ingressUrl, 'counter.example', '/a')).body).count, 2);

  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const keys = await redis.keys(`stratum:kv:{${name}/default}:*`);
  t.after(async () => {
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });
  assert.ok(keys.length > 0, 'the counts live in Redis under the installation name');

  // A mistyped backend stops the host before it starts, naming the key.
  await assert.rejects(startHost(hostToml('type = "rdis"'), { pullComponent: false }), (error: unknown) => {
    assert.ok(error instanceof StratumError);
    assert.equal(error.code, 'HOST_CONFIG_INVALID');
    assert.match(error.details.join('\n'), /\[keyvalue\.default\] type = "rdis" is not a key-value backend \(did you mean "redis"\?\)/);
    return true;
  });
});

test("a capsule's state moves to another installation: export, install stopped, import, start", async (t) => {
  const wasm = await buildExample('counter');
  const { host, client } = await startE2eHost(t);
  const manifest = await readFile(join(exampleDir('counter'), 'stratum.toml'), 'utf8');
  const component = new Uint8Array(await readFile(wasm));

  await client.install({ name: 'old', domains: ['old.example'], manifest, component });
  for (let i = 0; i < 2; i++) await get(host.ingressUrl, 'old.example', '/a');
  const snapshot = await new Response(await client.exportState('old', 'keyvalue', 'default')).text();
  const [header] = snapshot.split('\n');
  assert.equal((JSON.parse(header as string) as { capability: string }).capability, 'keyvalue');
  assert.match(snapshot, /"end":\{"records":1,/);

  await client.install({ name: 'new', domains: ['new.example'], manifest, component, start: false });
  const imported = await client.importState('new', 'keyvalue', 'default', snapshot);
  assert.deepEqual(imported, { capability: 'keyvalue', label: 'default', records: 1, skipped: 0 });
  await client.start('new');
  assert.equal(JSON.parse((await get(host.ingressUrl, 'new.example', '/a')).body).count, 3);

  const refused = async (promise: Promise<unknown>, status: number, code: string) =>
    assert.rejects(promise, (error: unknown) => error instanceof ControlApiError && error.status === status && error.code === code);
  await refused(client.importState('old', 'keyvalue', 'default', snapshot), 409, 'CAPSULE_RUNNING');
  await refused(client.exportState('old', 'keyvalue', 'other'), 404, 'STATE_NOT_FOUND');
  await refused(client.exportState('old', 'sql', 'default'), 404, 'STATE_NOT_FOUND');
  await client.stop('new');
  await refused(client.importState('new', 'keyvalue', 'default', snapshot.replace('"records":1', '"records":2')), 400, 'SNAPSHOT_INVALID');
});
