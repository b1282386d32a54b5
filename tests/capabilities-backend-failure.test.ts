// A granted label whose backend cannot be reached fails the instance's start with a message its
// operator can act on: the capability, the label, the backend and where it is (credentials
// masked), and the cause, in the host's log; its status, which the registrar reads, names the
// store alone. The guest's own error for the same failure stays generic (bindings).
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { parseManifest } from '@stratum/manifest';
// @ts-expect-error s3rver ships no type declarations
import S3rver from 's3rver';
import { s3Bucket } from '../packages/host/src/capabilities/bucket/backends/s3.ts';
import { uniqueCapsule } from '../packages/host/src/capabilities/bucket/conformance.ts';
import bucket from '../packages/host/src/capabilities/bucket/index.ts';
import type { Capability } from '../packages/host/src/capabilities/contract.ts';
import keyvalue from '../packages/host/src/capabilities/keyvalue/index.ts';
import { postgresSql } from '../packages/host/src/capabilities/sql/backends/postgres.ts';
import sql from '../packages/host/src/capabilities/sql/index.ts';
import { prepareContext } from './capabilities-support.ts';
import { startHarness } from './fixtures/hostile/harness.ts';
import { captureLogger, type LoggedLine } from './support/capture-logger.ts';
import { buildExample, exampleDir } from './support/examples.ts';
import { ownPrefix } from './support/postgres-prefix.ts';
import { freePort, requireService } from './support/services.ts';
import { testDir } from './support/temp.ts';

const PASSWORD = 'hunter2-secret';

async function startFailure<S>(capability: Capability<S>, settings: S): Promise<string> {
  try {
    await capability.prepare(prepareContext(settings, 'unreachable'));
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await capability.shutdown?.();
  }
  return assert.fail('the instance started although its backend is unreachable');
}

/** Nothing listens on the port (freePort binds it and closes it again): a connection is refused at once. */
for (const [name, capability, settings, expected] of [
  [
    'keyvalue on redis',
    keyvalue,
    async () => ({ labels: { cache: { type: 'redis', url: `redis://:${PASSWORD}@127.0.0.1:${await freePort()}/0`, limits: {} } } }),
    (port: string) =>
      `the keyvalue store "cache" (redis at redis://:***@127.0.0.1:${port}/0) is unavailable: connect ECONNREFUSED 127.0.0.1:${port}`,
  ],
  [
    'keyvalue on nats',
    keyvalue,
    async () => ({ labels: { cache: { type: 'nats', url: `nats://user:${PASSWORD}@127.0.0.1:${await freePort()}`, limits: {} } } }),
    (port: string) => `the keyvalue store "cache" (nats at nats://user:***@127.0.0.1:${port}) is unavailable: `,
  ],
  [
    'sql on postgres',
    sql,
    async () => ({
      labels: { main: { type: 'postgres', url: `postgres://app:${PASSWORD}@127.0.0.1:${await freePort()}/app`, limits: {} } },
    }),
    (port: string) =>
      `the sql database "main" (postgres at postgres://app:***@127.0.0.1:${port}/app) is unavailable: connect ECONNREFUSED 127.0.0.1:${port}`,
  ],
] as const) {
  test(`an unreachable backend fails the start naming label, URL and cause, never the password (${name})`, async () => {
    const made = await settings();
    const url = Object.values(made.labels)[0]?.url ?? '';
    const port = new URL(url).port;
    const message = await startFailure(capability as Capability<unknown>, made);
    assert.ok(message.startsWith(expected(port)), message);
    assert.ok(!message.includes(PASSWORD), message);
  });
}

test("a store that cannot open is shown to the registrar without where the host keeps it; the host's log has that", async (t) => {
  const logged: LoggedLine[] = [];
  const port = await freePort();
  const host = await startHarness(t, {
    capabilityConfig: { keyvalue: { default: { type: 'redis', url: `redis://:${PASSWORD}@127.0.0.1:${port}/0` } } },
    logger: captureLogger(logged),
  });
  const path = `${exampleDir('counter')}/stratum.toml`;
  const { manifest } = parseManifest(await readFile(path, 'utf8'), path);
  const shown = 'the keyvalue store "default" (redis) is unavailable on this host (its operator\'s log names the backend and the cause)';
  await host.runtime.install({
    manifest,
    baseDir: dirname(path),
    component: new Uint8Array(await readFile(await buildExample('counter'))),
    domains: ['counter.test'],
  });
  await assert.rejects(host.runtime.start('counter'), (error: Error) => {
    assert.equal(error.message, `counter could not be instantiated: ${shown}`);
    return true;
  });
  assert.equal(host.runtime.status()[0]?.lastError, `counter could not be instantiated: ${shown}`);
  const detail = logged.find((line) => line.message === 'an instance could not open a store');
  assert.ok(detail, JSON.stringify(logged));
  assert.match(
    String(detail.fields.err),
    new RegExp(`redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}/0\\) is unavailable: connect ECONNREFUSED`),
  );
  assert.ok(!JSON.stringify(logged).includes(PASSWORD));
});

test('an embedded backend that cannot open its files names the label, where it is and why (keyvalue and sql on SQLite, bucket directory)', async (t) => {
  const { dir } = await testDir(t, 'stratum-backend-failure-');
  // A file where the capsule's data directory should be: nothing can be made under it.
  const blocked = join(dir, 'blocked');
  await writeFile(blocked, '');
  await mkdir(join(dir, 'ok'));
  for (const [capability, settings, expected] of [
    [keyvalue, { labels: { default: { type: 'sqlite', limits: {} } } }, 'the keyvalue store "default" (sqlite at '],
    [sql, { labels: { default: { type: 'sqlite', limits: {} } } }, 'the sql database "default" (sqlite at '],
    [
      bucket,
      { labels: { files: { type: 'directory', location: join(blocked, 'files'), limits: {} } } },
      `the bucket "files" (directory at ${blocked}/files) is unavailable: `,
    ],
  ] as const) {
    const context = { ...prepareContext(settings, 'blocked'), dataDir: join(blocked, 'data') };
    let message = '';
    try {
      await (capability as Capability<unknown>).prepare(context);
    } catch (error) {
      message = error instanceof Error ? error.message : String(error);
    } finally {
      await capability.shutdown?.();
    }
    assert.ok(message.startsWith(expected), message);
    assert.match(message, /is unavailable: .*(ENOTDIR|not a directory|unable to open)/i);
  }
});

// A backend that stops answering while capsules use it: one warning naming it (where it is,
// credentials masked) with the cause, one line when it answers again with how long and how many
// calls failed, and nothing per call between, however many stores of the worker share it. The
// capsules' calls fail with the generic error they always got.

/** The outage lines: warnings and errors (a failure logged per call shows up here), and recoveries. */
function outageLines(lines: LoggedLine[]) {
  return {
    warned: lines.filter((line) => line.level === 'warn' || line.level === 'error'),
    recovered: lines.filter((line) => line.message?.endsWith(' answers again')),
  };
}

/** s3rver on `port` over `dir` (kept between runs), taking any secret key for the access key S3RVER. */
async function runS3rver(port: number, dir: string): Promise<{ close(): Promise<void> }> {
  const server = new S3rver({
    port,
    address: '127.0.0.1',
    directory: dir,
    silent: true,
    allowMismatchedSignatures: true,
    configureBuckets: [{ name: 'stratum-test' }],
  }) as { run(): Promise<unknown>; close(): Promise<void> };
  await server.run();
  return server;
}

test('s3: an outage is one warning naming the endpoint, and one line when it answers again, for every store on the backend', async (t) => {
  const { dir } = await testDir(t, 'stratum-s3-outage-');
  const port = await freePort();
  let server: { close(): Promise<void> } | undefined = await runS3rver(port, dir);
  const secretAccessKey = 'outage-secret-key-1234';
  const lines: LoggedLine[] = [];
  const backend = s3Bucket({
    location: 's3://stratum-test/capsules',
    endpoint: `http://127.0.0.1:${port}`,
    accessKeyId: 'S3RVER',
    secretAccessKey,
    logger: captureLogger(lines, { capsule: 'gallery', source: 'bucket' }),
  });
  t.after(async () => {
    await backend.close();
    await server?.close();
  });
  const capsule = uniqueCapsule();
  const photos = await backend.open({ capsule, label: 'photos' });
  const thumbs = await backend.open({ capsule, label: 'thumbs' });
  await photos.put('a', new Uint8Array([1]));
  await thumbs.put('a', new Uint8Array([2]));
  // A missing object is the capsule's to see, and a key the store refuses (s3rver answers `x//y`
  // with a 404) is that request's: neither is the store failing.
  assert.equal(await photos.get('missing'), undefined);
  assert.equal(lines.length, 0, JSON.stringify(lines));
  await assert.rejects(async () => photos.put('x//y', new Uint8Array([1])), { message: 'the object store is unavailable' });
  assert.deepEqual(
    lines.map((line) => line.message),
    [`the s3 bucket backend for s3://stratum-test/capsules at http://127.0.0.1:${port}/ refused a request`],
  );
  lines.length = 0;

  await server.close();
  server = undefined;
  const failing = 4;
  for (let call = 0; call < failing; call++) {
    await assert.rejects(async () => (call % 2 ? thumbs : photos).get('a'), { message: 'the object store is unavailable' });
  }
  const down = outageLines(lines);
  assert.equal(down.warned.length, 1, JSON.stringify(down.warned));
  assert.equal(down.warned[0]?.level, 'warn');
  assert.equal(
    down.warned[0]?.message,
    `the s3 bucket backend for s3://stratum-test/capsules at http://127.0.0.1:${port}/ does not answer: its capsules' calls fail until it does (logged again once it answers)`,
  );
  assert.match(String(down.warned[0]?.fields.err), new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
  assert.equal(down.warned[0]?.fields.capsule, 'gallery');

  server = await runS3rver(port, dir);
  assert.deepEqual((await photos.get('a'))?.data, new Uint8Array([1]));
  await thumbs.get('a');
  const up = outageLines(lines);
  assert.equal(up.recovered.length, 1, JSON.stringify(lines));
  assert.equal(up.recovered[0]?.level, 'info');
  assert.match(
    up.recovered[0]?.message ?? '',
    new RegExp(`^the s3 bucket backend for s3://stratum-test/capsules at http://127\\.0\\.0\\.1:${port}/ answers again$`),
  );
  assert.equal(up.recovered[0]?.fields.failedCalls, failing);
  assert.ok(Number(up.recovered[0]?.fields.downMs) > 0);
  assert.equal(outageLines(lines).warned.length, 1);
  assert.ok(!JSON.stringify(lines).includes(secretAccessKey), JSON.stringify(lines));
});

/** A TCP front to `target` that can stop (refusing connections, cutting those it has) and listen again on its port. */
async function closableFront(t: TestContext, target: URL) {
  const sockets = new Set<Socket>();
  const front = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const port = (front.address() as AddressInfo).port;
  const stop = () => {
    front.close();
    for (const socket of sockets) socket.destroy();
  };
  t.after(stop);
  return { port, stop, listen: () => new Promise<void>((resolve) => front.listen(port, '127.0.0.1', resolve)) };
}

test('postgres: an outage is one warning naming the server, password masked, and one line when it answers again', async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  // Closed before the front stops (hooks run in the order they were added), or its end waits for connections the front cut.
  let backend: ReturnType<typeof postgresSql> | undefined;
  t.after(() => backend?.close());
  const front = await closableFront(t, new URL(url));
  // The test server trusts the host's user: the password is never asked for, only kept out of the log.
  const password = 'outage-password-1234';
  const proxied = new URL(url);
  proxied.port = String(front.port);
  proxied.password = password;
  const lines: LoggedLine[] = [];
  backend = postgresSql({
    url: proxied.toString(),
    schemaPrefix: ownPrefix(t, url, 'outage'),
    logger: captureLogger(lines, { capsule: 'notes', source: 'sql' }),
  });
  const database = await backend.open({ capsule: 'notes', label: 'default' });
  // An open may warn of the database's collation: what follows it is looked at.
  const before = lines.length;
  await database.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)', []);
  await database.execute("INSERT INTO notes (body) VALUES ('one')", []);
  // The capsule's own mistakes are its to see, not the server failing.
  await assert.rejects(async () => database.query('SELEC 1', []), { name: 'SqlError' });
  await assert.rejects(async () => database.execute('INSERT INTO notes (id, body) VALUES (1, ?)', [{ tag: 'text', val: 'x' }]), {
    name: 'SqlError',
  });
  assert.deepEqual(outageLines(lines.slice(before)).warned, []);

  front.stop();
  const failing = 3;
  for (let call = 0; call < failing; call++) {
    await assert.rejects(async () => database.query('SELECT body FROM notes', []), { message: 'the database backend is unavailable' });
  }
  const down = outageLines(lines.slice(before));
  assert.equal(down.warned.length, 1, JSON.stringify(down.warned));
  assert.equal(down.warned[0]?.level, 'warn');
  const named = `the postgres sql backend at postgres://${proxied.username}:***@127.0.0.1:${front.port}${proxied.pathname}`;
  assert.equal(down.warned[0]?.message, `${named} does not answer: its capsules' calls fail until it does (logged again once it answers)`);
  assert.match(String(down.warned[0]?.fields.err), /ECONNREFUSED|CONNECTION_(CLOSED|DESTROYED)|connection/i);
  assert.equal(down.warned[0]?.fields.capsule, 'notes');

  await front.listen();
  const rows = await database.query('SELECT body FROM notes', []);
  assert.deepEqual(rows.rows, [[{ tag: 'text', val: 'one' }]]);
  const up = outageLines(lines.slice(before));
  assert.equal(up.recovered.length, 1, JSON.stringify(lines));
  assert.equal(up.recovered[0]?.level, 'info');
  assert.equal(up.recovered[0]?.message, `${named} answers again`);
  assert.equal(up.recovered[0]?.fields.failedCalls, failing);
  assert.equal(outageLines(lines.slice(before)).warned.length, 1);
  assert.ok(!JSON.stringify(lines).includes(password), JSON.stringify(lines));
});
