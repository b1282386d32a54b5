import assert from 'node:assert/strict';
import { createHash, createPrivateKey, sign as cryptoSign, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, StratumError, writeKeyFile } from '@stratum/core';
import { parseHostConfig } from '../packages/host/src/config/parse.ts';
import { bodyHash, signControlRequest } from '../packages/host/src/control/auth.ts';
import { ControlApiError, createControlClient } from '../packages/host/src/control/client.ts';
import { type RunningHost, type RuntimeFactory, startHost } from '../packages/host/src/control/host.ts';
import { verifyLedgerFile } from '../packages/host/src/metering/ledger.ts';
import type {
  CapsuleLogEntry,
  CapsuleStatus,
  HostRuntime,
  InstallRequest,
  LogSubscribeOptions,
  RequestRecord,
} from '../packages/host/src/runtime-types.ts';
import { captureLogger, type LoggedLine } from './support/capture-logger.ts';
import { testHostToml } from './support/host-dir.ts';
import { testDir } from './support/temp.ts';

/**
 * The control API against an in-memory runtime: what is tested here is the API (signing,
 * refusals, persistence, metering), not the runtime, which host-control-e2e.test.ts exercises.
 */
class FakeRuntime implements HostRuntime {
  readonly installs: InstallRequest[] = [];
  /** Components whose instances fail to start, by digest. */
  readonly failingDigests = new Set<string>();
  readonly capsules = new Map<string, CapsuleStatus>();
  readonly #listeners = new Set<(record: RequestRecord) => void>();
  readonly #logs = new Map<string, Set<(entry: CapsuleLogEntry, id: string) => void>>();
  /** Each log subscription's `after`: its stream's Last-Event-ID. */
  readonly logsAfter: (string | undefined)[] = [];
  #logLines = 0;
  closed = false;

  async install(request: InstallRequest): Promise<CapsuleStatus> {
    this.installs.push(request);
    const name = request.name ?? request.manifest.capsule.name;
    const digest =
      request.storedComponent?.digest ??
      `sha256:${createHash('sha256')
        .update(request.component ?? new Uint8Array())
        .digest('hex')}`;
    const status: CapsuleStatus = {
      name,
      domains: request.domains,
      state: 'installed',
      version: request.manifest.capsule.version,
      digest,
      instances: 0,
      inFlight: 0,
      limitHits: {},
    };
    this.capsules.set(name, status);
    return { ...status };
  }
  async start(name: string) {
    if (this.failingDigests.has(this.capsules.get(name)?.digest ?? '')) {
      this.#set(name, 'failed');
      throw new StratumError('INSTANCE_FAILED', `${name} could not be instantiated: its initialisation trapped`, { user: false });
    }
    return this.#set(name, 'running');
  }
  /** Holds drains, as requests in flight do. */
  drainsWait: Promise<void> | undefined;
  /** As the real runtime: `draining` while requests are in flight, `stopped` once it answers. */
  async drain(name: string) {
    this.#set(name, 'draining');
    await this.drainsWait;
    return this.#set(name, 'stopped');
  }
  async stop(name: string) {
    return this.#set(name, 'stopped');
  }
  async uninstall(name: string) {
    this.capsules.delete(name);
  }
  status() {
    return [...this.capsules.values()].map((status) => ({ ...status }));
  }
  handleRequest(request: IncomingMessage, response: ServerResponse) {
    const domain = (request.headers.host ?? '').replace(/:\d+$/, '');
    const capsule = [...this.capsules.values()].find((status) => status.domains.includes(domain) && status.state === 'running');
    if (!capsule) {
      response.writeHead(404).end('no capsule here');
      return;
    }
    const body = `hello from ${capsule.name}`;
    response.writeHead(200).end(body);
    const record: RequestRecord = {
      capsule: capsule.name,
      domain,
      requestId: 'r',
      method: request.method ?? 'GET',
      path: request.url ?? '/',
      status: 200,
      cpuMs: 1.5,
      wallMs: 2,
      memoryBytes: 1_000_000,
      bytesIn: 0,
      bytesOut: body.length,
    };
    for (const listener of this.#listeners) listener(record);
    this.log(capsule.name, `served ${record.path}`);
  }
  onRequest(listener: (record: RequestRecord) => void) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  subscribeLogs(name: string, listener: (entry: CapsuleLogEntry, id: string) => void, options: LogSubscribeOptions = {}) {
    this.logsAfter.push(options.after);
    const set = this.#logs.get(name) ?? new Set();
    this.#logs.set(name, set);
    set.add(listener);
    listener(
      { time: new Date().toISOString(), capsule: name, level: 'info', source: 'host', message: 'backlog line' },
      `1-${++this.#logLines}`,
    );
    return () => set.delete(listener);
  }
  log(name: string, message: string) {
    const id = `1-${++this.#logLines}`;
    for (const listener of this.#logs.get(name) ?? [])
      listener({ time: new Date().toISOString(), capsule: name, level: 'info', source: 'stdout', message }, id);
  }
  async close() {
    this.closed = true;
  }
  #set(name: string, state: CapsuleStatus['state']) {
    const status = this.capsules.get(name);
    if (!status) throw new StratumError('CAPSULE_NOT_FOUND', `no capsule ${name}`);
    status.state = state;
    return { ...status };
  }
}

const MANIFEST = `stratum = 1
[capsule]
name = "hello"
version = "1.0.0"
[source]
wasm = "hello.wasm"
[capabilities.config.greeting]
[capabilities.config.secret]
secret = true
`;
const COMPONENT = new TextEncoder().encode('not really a component, the fake runtime does not care');

/**
 * A host on a fake runtime. `into`: the test's own `testDir`, for a test that starts another host
 * there afterwards; both are closed before the directory goes.
 */
async function setup(
  t: TestContext,
  runtimes: FakeRuntime[] = [],
  into?: Awaited<ReturnType<typeof testDir>>,
  options: { control?: string; tables?: string } = {},
) {
  const { dir: base, closing } = into ?? (await testDir(t, 'stratum-control-'));
  const registrar = await generateEd25519KeyPair();
  if (!into) await writeKeyFile(join(base, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const config = parseHostConfig(
    testHostToml({
      registrar: registrar.publicJwk.x,
      operator: true,
      control: `max_body = "1mib"\n${options.control ?? ''}`,
      tables: `[metering]\nflush_interval = "1h"\n${options.tables ?? ''}`,
    }),
    join(base, 'host.toml'),
  );
  const lines: LoggedLine[] = [];
  const createRuntime: RuntimeFactory = () => {
    const runtime = new FakeRuntime();
    runtimes.push(runtime);
    return runtime;
  };
  const host = closing(await startHost(config, { createRuntime, logger: captureLogger(lines), pullComponent: false }));
  const client = createControlClient({ url: host.controlUrl, key: registrar.privateJwk, audience: 'host1.example.net' });
  return { base, host, client, registrar, lines, runtimes };
}

/** fetch() will not send a Host header of our choosing; node:http will. */
function ingress(host: RunningHost, domain: string, path = '/'): Promise<{ status: number; text(): Promise<string> }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(new URL(path, host.ingressUrl), { headers: { host: domain } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        resolve({ status: response.statusCode ?? 0, text: async () => body });
      });
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}

test('a registrar installs, drives and uninstalls a capsule over the signed API', async (t) => {
  const { host, client, runtimes } = await setup(t);
  const installed = await client.install({
    domains: ['hello.example'],
    manifest: MANIFEST,
    component: COMPONENT,
    config: { greeting: 'hi' },
  });
  assert.equal(installed.name, 'hello');
  assert.equal(installed.state, 'running');
  const runtime = runtimes[0] as FakeRuntime;
  assert.equal(runtime.installs[0]?.manifest.capsule.name, 'hello');
  assert.equal(runtime.installs[0]?.storedComponent?.digest, `sha256:${createHash('sha256').update(COMPONENT).digest('hex')}`);
  assert.deepEqual(Buffer.from((await runtime.installs[0]?.storedComponent?.read()) ?? []), Buffer.from(COMPONENT));
  assert.deepEqual(runtime.installs[0]?.config, { greeting: 'hi' });
  // A new installation asking for more than the host's limits is refused, not capped.
  assert.equal(runtime.installs[0]?.refuseUnmetResources, true);

  // The answer about one installation says what a move must carry: its app, stores and the
  // config variables given values, never a value.
  const described = await client.capsule('hello');
  assert.equal(described.app, 'hello');
  assert.deepEqual(described.stores, { keyvalue: [], sql: [], bucket: [] });
  assert.deepEqual(described.config, ['greeting']);
  assert.doesNotMatch(JSON.stringify(described), /"hi"/);

  const served = await ingress(host, 'hello.example');
  assert.equal(served.status, 200);
  assert.equal(await served.text(), 'hello from hello');
  assert.equal((await ingress(host, 'nobody.example')).status, 404);

  const status = await client.status();
  assert.equal(status.host.name, 'host1.example.net');
  assert.deepEqual(
    status.capsules.map((capsule) => [capsule.name, capsule.state]),
    [['hello', 'running']],
  );
  assert.equal((await client.drain('hello')).state, 'stopped');
  assert.equal((await client.stop('hello')).state, 'stopped');
  assert.equal((await client.start('hello')).state, 'running');
  assert.equal((await client.capsule('hello')).domains[0], 'hello.example');

  await client.uninstall('hello');
  assert.deepEqual((await client.status()).capsules, []);
  await assert.rejects(client.capsule('hello'), (error: unknown) => error instanceof ControlApiError && error.status === 404);
});

test('a host whose host.toml marks no key operator says so as it starts, and what to add', async (t) => {
  const { dir: base } = await testDir(t, 'stratum-control-no-operator-');
  await writeKeyFile(join(base, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const started = async (operator: boolean) => {
    const lines: LoggedLine[] = [];
    const toml = testHostToml({
      registrar: (await generateEd25519KeyPair()).publicJwk.x,
      operator,
      tables: '[metering]\nflush_interval = "1h"\n',
    });
    const host = await startHost(parseHostConfig(toml, join(base, 'host.toml')), {
      createRuntime: () => new FakeRuntime(),
      logger: captureLogger(lines),
      pullComponent: false,
    });
    await host.close();
    return lines.filter((line) => line.level === 'warn' && /operator = true/.test(line.message ?? ''));
  };
  const warned = await started(false);
  assert.equal(warned.length, 1);
  assert.match(warned[0]?.message ?? '', /^no registrar in host\.toml is marked operator = true: no key reads the usage ledger/);
  assert.deepEqual(warned[0]?.fields.registrars, ['test']);
  assert.deepEqual(await started(true), []);
});

test('usage comes from the hash-chained ledger', async (t) => {
  const { host, client, lines } = await setup(t);
  await client.install({ domains: ['hello.example'], manifest: MANIFEST, component: COMPONENT });
  for (let i = 0; i < 3; i++) await (await ingress(host, 'hello.example')).text();
  // Each request is a line of the access log at debug, its query (where tokens travel) left out.
  await (await ingress(host, 'hello.example', '/p?token=secret')).text();
  const logged = lines.filter((line) => line.message === 'request');
  assert.equal(logged.length, 4);
  assert.deepEqual(
    { ...logged[3]?.fields, level: logged[3]?.level },
    {
      capsule: 'hello',
      domain: 'hello.example',
      requestId: 'r',
      method: 'GET',
      path: '/p',
      status: 200,
      ms: 2,
      cpuMs: 1.5,
      bytesIn: 0,
      bytesOut: 16,
      level: 'debug',
    },
  );
  const usage = await client.usage();
  assert.equal(usage.capsules.hello?.requests, 4);
  assert.equal(usage.capsules.hello?.cpuMs, 6);
  assert.equal(usage.capsules.hello?.bytesOut, 4 * 'hello from hello'.length);
  assert.equal(usage.ledger.entries, 1);
  const verified = await verifyLedgerFile(host.ledger.path);
  assert.deepEqual(verified, { ok: true, entries: 1, head: usage.ledger.hash });
  const { entries } = await client.ledger();
  assert.equal(entries[0]?.hash, usage.ledger.hash);
  assert.deepEqual(await client.usage({ since: new Date(Date.now() + 3_600_000) }), { capsules: {}, ledger: usage.ledger });
});

test('a registrar sees and drives only the capsules it installed; an operator key every one, without taking them over', async (t) => {
  const [acmeKey, bravoKey] = [await generateEd25519KeyPair(), await generateEd25519KeyPair()];
  const { host, client: operator } = await setup(t, [], undefined, {
    tables: `[registrars.acme]\nkey = "${acmeKey.publicJwk.x}"\n[registrars.bravo]\nkey = "${bravoKey.publicJwk.x}"\n`,
  });
  const connect = (key: typeof acmeKey) =>
    createControlClient({ url: host.controlUrl, key: key.privateJwk, audience: 'host1.example.net' });
  const [acme, bravo] = [connect(acmeKey), connect(bravoKey)];
  await acme.install({ name: 'shop', domains: ['shop.example'], manifest: MANIFEST, component: COMPONENT });
  await bravo.install({ name: 'blog', domains: ['blog.example'], manifest: MANIFEST, component: COMPONENT });
  await (await ingress(host, 'shop.example')).text();
  const names = (capsules: CapsuleStatus[]) => capsules.map((capsule) => capsule.name).sort();
  const listed = async (client: typeof acme) => {
    const response = await client.request('GET', '/capsules');
    return names(((await response.json()) as { capsules: CapsuleStatus[] }).capsules);
  };
  assert.deepEqual(names((await bravo.status()).capsules), ['blog']);
  assert.deepEqual(await listed(bravo), ['blog']);
  assert.deepEqual(names((await operator.status()).capsules), ['blog', 'shop']);
  // Whose each is, for the operator's `host status`.
  assert.deepEqual((await operator.status()).capsules.map((capsule) => [capsule.name, capsule.registrar]).sort(), [
    ['blog', 'bravo'],
    ['shop', 'acme'],
  ]);
  assert.equal((await bravo.capsule('blog')).registrar, 'bravo');

  const hidden = async (promise: Promise<unknown>, status = 404, code = 'CAPSULE_NOT_FOUND') => {
    await assert.rejects(promise, (error: unknown) => {
      assert.ok(error instanceof ControlApiError, String(error));
      assert.equal(`${error.status} ${error.code}`, `${status} ${code}`);
      return true;
    });
  };
  // Another registrar's capsule is answered as one that is not there, whatever is asked of it.
  await hidden(bravo.capsule('shop'));
  await hidden(bravo.stop('shop'));
  await hidden(bravo.drain('shop'));
  await hidden(bravo.start('shop'));
  await hidden(bravo.uninstall('shop'));
  await hidden(bravo.logs('shop', () => {}, { backlog: 1 }));
  await hidden(bravo.exportState('shop', 'keyvalue', 'default'));
  await hidden(bravo.install({ name: 'shop', domains: ['blog.example'], manifest: MANIFEST, component: COMPONENT }), 409, 'NAME_TAKEN');
  await assert.rejects(
    bravo.install({ name: 'other', domains: ['shop.example'], manifest: MANIFEST, component: COMPONENT }),
    (error: unknown) => {
      assert.ok(error instanceof ControlApiError);
      // Not the name of the capsule that serves it, nor how to uninstall it.
      assert.deepEqual(
        [error.status, error.code, error.message],
        [409, 'DOMAIN_TAKEN', "shop.example is served on this host by another registrar's capsule"],
      );
      return true;
    },
  );
  await hidden(bravo.ledger(), 403, 'OPERATOR_ONLY');
  assert.deepEqual(Object.keys((await bravo.usage()).capsules), []);
  assert.equal((await acme.usage()).capsules.shop?.requests, 1);
  assert.equal((await acme.capsule('shop')).state, 'running');
  assert.equal(await (await ingress(host, 'shop.example')).text(), 'hello from shop');

  // The operator drives it and replaces it; it stays acme's.
  assert.equal((await operator.stop('shop')).state, 'stopped');
  assert.equal((await operator.start('shop')).state, 'running');
  await operator.install({ name: 'shop', domains: ['shop.example'], manifest: MANIFEST.replace('1.0.0', '1.1.0'), component: COMPONENT });
  assert.equal((await acme.capsule('shop')).version, '1.1.0');
  await hidden(bravo.capsule('shop'));
  assert.ok((await operator.ledger()).entries.length > 0);
  await acme.uninstall('shop');
  assert.deepEqual(await listed(operator), ['blog']);
  // Its usage stays acme's, installed or not: each ledger entry names the registrar.
  assert.equal((await acme.usage()).capsules.shop?.requests, 2);
  // The name still holds acme's stored data: another registrar's capsule of that name would read
  // it. The operator may take it over; its usage from then on is the operator's.
  await hidden(bravo.install({ name: 'shop', domains: ['shop.example'], manifest: MANIFEST, component: COMPONENT }), 409, 'NAME_TAKEN');
  const takenOver = await operator.install({ name: 'shop', domains: ['shop.example'], manifest: MANIFEST, component: COMPONENT });
  assert.match(takenOver.keptData?.uninstalledAt ?? 'none', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  await hidden(acme.capsule('shop'));
  await (await ingress(host, 'shop.example')).text();
  assert.equal((await acme.usage()).capsules.shop?.requests, 2);
  assert.equal((await operator.usage()).capsules.shop?.requests, 3);
  const shops = (await operator.ledger()).entries.filter((entry) => entry.capsule === 'shop');
  assert.deepEqual([...new Set(shops.map((entry) => entry.registrar))], ['acme', 'test']);
  // A registrar installs its own uninstalled name again, its data with it.
  await bravo.uninstall('blog');
  assert.ok((await bravo.install({ name: 'blog', domains: ['blog.example'], manifest: MANIFEST, component: COMPONENT })).keptData);
  // Once installed again, the data is the installation's: replacing it finds nothing kept.
  const replaced = await bravo.install({ name: 'blog', domains: ['blog.example'], manifest: MANIFEST, component: COMPONENT });
  assert.equal(replaced.keptData, undefined);
  await hidden(acme.install({ name: 'blog', domains: ['other.example'], manifest: MANIFEST, component: COMPONENT }), 409, 'NAME_TAKEN');
});

test('logs stream as server-sent events, each line with its id; a stream opened again asks for the lines after the last', async (t) => {
  const { host, client, runtimes } = await setup(t);
  await client.install({ domains: ['hello.example'], manifest: MANIFEST, component: COMPONENT });
  const controller = new AbortController();
  const seen: [string, string | undefined][] = [];
  const done = client.logs(
    'hello',
    (entry, id) => {
      seen.push([entry.message, id]);
      if (seen.length === 1) void ingress(host, 'hello.example').then((response) => response.text());
      if (seen.length === 2) controller.abort();
    },
    { signal: controller.signal },
  );
  await done;
  assert.deepEqual(seen, [
    ['backlog line', '1-1'],
    ['served /', '1-2'],
  ]);
  // The runtime is asked for the lines after the one whose id the client sends as Last-Event-ID.
  const again = new AbortController();
  await client.logs('hello', () => {}, { lastEventId: '1-2', signal: again.signal, onLive: () => again.abort() });
  assert.deepEqual(runtimes[0]?.logsAfter, [undefined, '1-2']);
});

test('install refusals: bad manifest, missing component, digest mismatch, registry source, bad body', async (t) => {
  const { client } = await setup(t);
  const refused = async (promise: Promise<unknown>, status: number, code: string, detail?: RegExp) => {
    await assert.rejects(promise, (error: unknown) => {
      assert.ok(error instanceof ControlApiError, String(error));
      assert.equal(error.status, status);
      assert.equal(error.code, code);
      if (detail) assert.match([error.message, ...error.details].join('\n'), detail);
      return true;
    });
  };
  await refused(
    client.install({ domains: ['a.example'], manifest: 'stratum = 1\n[capsule]\nnmae = "x"\n', component: COMPONENT }),
    400,
    'MANIFEST_INVALID',
    /did you mean "name"/,
  );
  await refused(client.install({ domains: ['a.example'], manifest: MANIFEST }), 400, 'COMPONENT_MISSING');
  await refused(
    client.install({
      domains: ['a.example'],
      manifest: MANIFEST.replace('wasm = "hello.wasm"', `wasm = "hello.wasm"\ndigest = "sha256:${'0'.repeat(64)}"`),
      component: COMPONENT,
    }),
    400,
    'DIGEST_MISMATCH',
  );
  const registry = MANIFEST.replace(
    'wasm = "hello.wasm"',
    `registry = "oci://127.0.0.1:5000/acme/hello:1.0"\ndigest = "sha256:${'0'.repeat(64)}"`,
  );
  await refused(client.install({ domains: ['a.example'], manifest: registry }), 400, 'REGISTRY_SOURCE_UNSUPPORTED');
  await refused(
    client.install({ domains: ['Not A Host'], manifest: MANIFEST, component: COMPONENT }),
    400,
    'INVALID_REQUEST',
    /domains\/0/,
  );
  // No domain: a capsule no request would reach.
  await refused(client.install({ domains: [], manifest: MANIFEST, component: COMPONENT }), 400, 'INVALID_REQUEST', /domains: at least one/);
  await refused(
    client.request('POST', '/capsules', { domains: ['a.example'], manifest: MANIFEST, extra: 1 }).then(expectJson),
    400,
    'INVALID_REQUEST',
    /unknown member/,
  );
  await refused(client.request('POST', '/capsules/nobody/start').then(expectJson), 404, 'CAPSULE_NOT_FOUND');
  await refused(client.request('PUT', '/status').then(expectJson), 405, 'METHOD_NOT_ALLOWED');
});

test('a body over [control] max_body is refused with 413 before it is read whole, and paths outside the base are 404', async (t) => {
  const { client, host } = await setup(t);
  const big = { domains: ['a.example'], manifest: MANIFEST, component: { base64: Buffer.alloc(1024 * 1024).toString('base64') } };
  const response = await client.request('POST', '/capsules', big);
  assert.equal(response.status, 413);
  assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'BODY_TOO_LARGE');
  const outside = await fetch(new URL('/status', host.controlUrl));
  assert.equal(outside.status, 404);
});

test('a client still sending a body over [control] max_body reads the 413 even if it reads it late', async (t) => {
  const { host } = await setup(t);
  const control = new URL(host.controlUrl);
  const socket = connect(Number(control.port), control.hostname);
  t.after(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  // Busy writing, as a client uploading is: the answer waits unread in the kernel, where a
  // connection reset would discard it.
  socket.pause();
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(`POST ${control.pathname}/capsules HTTP/1.1\r\nhost: ${control.host}\r\ncontent-length: ${100 * 1024 * 1024}\r\n\r\n`);
  // Less than the host drains of a refused body, sent on after the answer, as a client busy writing does.
  for (let sent = 0; sent < 512 * 1024 && !socket.destroyed; sent += 32 * 1024) {
    socket.write(Buffer.alloc(32 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  let answer = '';
  socket.on('data', (chunk: Buffer) => {
    answer += chunk.toString('latin1');
  });
  socket.resume();
  await closed;
  assert.match(answer, /^HTTP\/1\.1 413 /);
  assert.match(answer, /\r\nconnection: close\r\n/i);
  assert.match(answer, /"code":"BODY_TOO_LARGE"/);
});

test('a request without a valid token is refused before its body is read: a client without a key cannot make the host hold one', async (t) => {
  const { host } = await setup(t);
  const control = new URL(host.controlUrl);
  for (const authorization of ['', 'authorization: Stratum-JWS e30.e30.AAAA\r\n']) {
    const socket = connect(Number(control.port), control.hostname);
    t.after(() => socket.destroy());
    socket.on('error', () => {});
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    // A body that never comes whole: answered only if the token is looked at first.
    socket.write(
      `POST ${control.pathname}/capsules HTTP/1.1\r\nhost: ${control.host}\r\n${authorization}content-length: 4096\r\n\r\n{"domains":`,
    );
    for (let tries = 0; tries < 500 && !answer.includes('\r\n\r\n'); tries++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.match(
      answer,
      /^HTTP\/1\.1 401 /,
      `no answer to a request without a valid token while its body was still coming: ${JSON.stringify(answer)}`,
    );
    assert.match(answer, authorization === '' ? /"code":"AUTH_MISSING"/ : /"code":"AUTH_MALFORMED"/);
  }
});

test('a 405 says in Allow which methods the endpoint has', async (t) => {
  const { client, host } = await setup(t);
  const response = await client.request('PUT', '/status');
  assert.equal(response.status, 405);
  assert.equal(response.headers.get('allow'), 'GET');
  assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'METHOD_NOT_ALLOWED');
  const capsules = await client.request('DELETE', '/capsules');
  assert.equal(capsules.headers.get('allow'), 'GET, POST');
  const identity = await fetch(`${host.controlUrl}/identity`, { method: 'POST' });
  assert.equal(identity.status, 405);
  assert.equal(identity.headers.get('allow'), 'GET');
});

test('usage periods are RFC 3339 date-times, since before until: a bare date, a + sent unencoded or an inverted period is refused with 400, as is a backlog over 10000', async (t) => {
  const { client } = await setup(t);
  const code = async (path: string) => {
    const response = await client.request('GET', path);
    const value = (await response.json()) as { error?: { code: string; hint?: string } };
    return [response.status, value.error?.code, value.error?.hint];
  };
  assert.equal((await code('/usage?since=2026-12-01T00:00:00Z'))[0], 200);
  assert.equal((await code('/usage?since=2026-12-01T00:00:00%2B01:00&until=2026-12-02t00:00:00.5z'))[0], 200);
  for (const since of ['2026-12-01', 'yesterday', '2026-02-30T00:00:00Z', '2026-12-01T00:00:00', 'Dec%201%202026']) {
    assert.deepEqual((await code(`/usage?since=${since}`)).slice(0, 2), [400, 'INVALID_REQUEST'], since);
  }
  const [status, , hint] = await code('/usage?since=2026-12-01T00:00:00+00:00');
  assert.equal(status, 400);
  assert.match(String(hint), /percent-encoded \(%2B00:00\)/);
  // A period that ends before it starts is refused, not answered "no usage".
  assert.deepEqual((await code('/usage?since=2026-12-08T00:00:00Z&until=2026-12-01T00:00:00Z')).slice(0, 2), [400, 'INVALID_REQUEST']);
  await client.install({ domains: ['hello.example'], manifest: MANIFEST, component: COMPONENT });
  assert.deepEqual((await code('/capsules/hello/logs?backlog=20000')).slice(0, 2), [400, 'INVALID_REQUEST']);
});

/** A keyvalue snapshot (spec/snapshot.md) of `records` keys, each holding `valueBytes` bytes of `fill`. */
function keyValueSnapshot(records: number, valueBytes: number, fill = 'v'): string {
  const value = Buffer.alloc(valueBytes, fill).toString('base64');
  const lines = [JSON.stringify({ 'stratum-snapshot': 1, capability: 'keyvalue', label: 'default', created: new Date().toISOString() })];
  for (let index = 0; index < records; index++) lines.push(JSON.stringify({ key: `k${String(index).padStart(6, '0')}`, value }));
  const body = `${lines.join('\n')}\n`;
  return `${body}${JSON.stringify({ end: { records, sha256: createHash('sha256').update(body).digest('hex') } })}\n`;
}

test('a state snapshot larger than [control] max_body is imported through a file; a forged, unsigned or oversized one imports nothing', async (t) => {
  const { client, host, base, registrar } = await setup(t, [], undefined, { control: 'max_state_body = "3mib"' });
  const manifest = MANIFEST.replace(
    '[capabilities.config.greeting]',
    '[capabilities]\nkeyvalue = ["default"]\n[capabilities.config.greeting]',
  );
  await client.install({ name: 'kv', domains: ['kv.example'], manifest, component: COMPONENT, start: false });
  const storedValues = async () => {
    const text = await new Response(await client.exportState('kv', 'keyvalue', 'default')).text();
    return text.split('\n').filter((line) => line.startsWith('{"key"'));
  };
  const uploads = join(base, 'data', 'runtime', 'state-uploads');
  const spooled = async () => (await readdir(uploads).catch(() => [])).length;

  // About 2 MiB: twice max_body, which held every control request whole before.
  const snapshot = keyValueSnapshot(1500, 1000);
  assert.ok(snapshot.length > 2 * 1024 * 1024 - 100_000);
  assert.deepEqual(await client.importState('kv', 'keyvalue', 'default', new Blob([snapshot])), {
    capability: 'keyvalue',
    label: 'default',
    records: 1500,
    skipped: 0,
  });
  const imported = await storedValues();
  assert.equal(imported.length, 1500);
  assert.deepEqual(
    imported,
    snapshot.split('\n').filter((line) => line.startsWith('{"key"')),
  );
  assert.equal(await spooled(), 0, 'the spooled snapshot is removed once imported');

  // Signed for one snapshot, sent with another of the same size: refused once its hash is known.
  const other = keyValueSnapshot(1500, 1000, 'w');
  const path = '/capsules/kv/state/keyvalue/default';
  const authorization = await signControlRequest({
    key: registrar.privateJwk,
    audience: 'host1.example.net',
    method: 'PUT',
    path,
    bodyHash: bodyHash(snapshot),
  });
  const forged = await fetch(`${host.controlUrl}${path}`, { method: 'PUT', headers: { authorization }, body: other });
  assert.equal(forged.status, 401);
  assert.equal(((await forged.json()) as { error: { code: string } }).error.code, 'AUTH_BODY_MISMATCH');
  // Unsigned: refused before its body is read.
  const unsigned = await fetch(`${host.controlUrl}${path}`, { method: 'PUT', body: other });
  assert.equal(unsigned.status, 401);
  assert.equal(((await unsigned.json()) as { error: { code: string } }).error.code, 'AUTH_MISSING');
  // Over max_state_body (3 MiB).
  await assert.rejects(
    client.importState('kv', 'keyvalue', 'default', keyValueSnapshot(3000, 1000)),
    (error: unknown) => error instanceof ControlApiError && error.status === 413 && error.code === 'BODY_TOO_LARGE',
  );
  assert.deepEqual(await storedValues(), imported, 'a refused snapshot changed the stored state');
  assert.equal(await spooled(), 0, 'a refused snapshot was left on disk');
});

test('an unsigned state upload is answered 401 and its connection closed, without the host reading it', async (t) => {
  const { host } = await setup(t);
  const control = new URL(host.controlUrl);
  const socket = connect(Number(control.port), control.hostname);
  t.after(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const declared = 200 * 1024 * 1024;
  socket.write(
    `PUT ${control.pathname}/capsules/kv/state/keyvalue/default HTTP/1.1\r\nhost: ${control.host}\r\ncontent-length: ${declared}\r\n\r\n`,
  );
  let answer = '';
  socket.on('data', (chunk: Buffer) => {
    answer += chunk.toString('latin1');
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {});
  // Keeps sending until the host closes the connection (or all of it went, which fails below).
  let sent = 0;
  const piece = Buffer.alloc(64 * 1024);
  while (sent < declared && !socket.destroyed && socket.writable) {
    sent += piece.byteLength;
    if (!socket.write(piece)) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed]);
  }
  await closed;
  assert.match(answer, /^HTTP\/1\.1 401 /);
  assert.match(answer, /"code":"AUTH_MISSING"/);
  assert.ok(sent < declared / 4, `the host read ${sent} of ${declared} bytes of an unsigned upload`);
});

async function expectJson(response: Response): Promise<unknown> {
  const value = (await response.json()) as { error?: { code: string; message: string; details?: string[] } };
  if (!response.ok)
    throw new ControlApiError(response.status, value.error?.code ?? '', value.error?.message ?? '', value.error?.details ?? []);
  return value;
}

test('the identity endpoint answers without a signature', async (t) => {
  const { client, host } = await setup(t);
  const identity = await client.identity();
  assert.equal(identity.name, 'host1.example.net');
  assert.equal(identity.api, 'v1');
  assert.equal(typeof identity.key.x, 'string');
  assert.equal((await fetch(`${host.controlUrl}/status`)).status, 401);
});

// --- Every refused kind of control request: a 401 with its code, and a log line saying why. ---

async function refusal(
  t: TestContext,
  prepare: (
    context: Awaited<ReturnType<typeof setup>>,
  ) => Promise<{ path?: string; method?: string; authorization?: string; body?: string }>,
  code: string,
  message?: RegExp,
) {
  const context = await setup(t);
  const { path = '/status', method = 'GET', authorization, body } = await prepare(context);
  const response = await fetch(`${context.host.controlUrl}${path}`, {
    method,
    headers: authorization === undefined ? {} : { authorization },
    ...(body === undefined ? {} : { body }),
  });
  assert.equal(response.status, 401);
  assert.match(response.headers.get('www-authenticate') ?? '', new RegExp(code));
  const value = (await response.json()) as { error: { code: string; message: string } };
  assert.equal(value.error.code, code);
  if (message) assert.match(value.error.message, message);
  const logged = context.lines.find((line) => line.message === 'control request refused');
  assert.equal(logged?.level, 'warn');
  assert.equal(logged?.fields.reason, code);
  assert.equal(logged?.fields.path, `/v1${path}`);
  return context;
}

const sign = (context: Awaited<ReturnType<typeof setup>>, overrides: Partial<Parameters<typeof signControlRequest>[0]> = {}) =>
  signControlRequest({ key: context.registrar.privateJwk, audience: 'host1.example.net', method: 'GET', path: '/status', ...overrides });

test('refused: no Authorization header', async (t) => {
  await refusal(t, async () => ({}), 'AUTH_MISSING');
});

test('refused: not a JWS', async (t) => {
  await refusal(t, async () => ({ authorization: 'Stratum-JWS not.a.jws' }), 'AUTH_MALFORMED');
});

test('refused: signed by a key the host does not trust', async (t) => {
  await refusal(
    t,
    async () => {
      const stranger = await generateEd25519KeyPair();
      return {
        authorization: await signControlRequest({
          key: stranger.privateJwk,
          audience: 'host1.example.net',
          method: 'GET',
          path: '/status',
        }),
      };
    },
    'AUTH_UNKNOWN_KEY',
  );
});

test('refused: a trusted kid on a token signed by another key (forged signature)', async (t) => {
  await refusal(
    t,
    async (context) => {
      const stranger = await generateEd25519KeyPair();
      const kid = context.registrar.privateJwk.kid as string;
      return {
        authorization: await signControlRequest({
          key: { ...stranger.privateJwk, kid },
          audience: 'host1.example.net',
          method: 'GET',
          path: '/status',
        }),
      };
    },
    'AUTH_BAD_SIGNATURE',
  );
});

test('refused: tampered claims (payload edited after signing)', async (t) => {
  await refusal(
    t,
    async (context) => {
      const [scheme, token] = (await sign(context, { path: '/capsules/hello/start', method: 'POST' })).split(' ');
      const [header, payload, signature] = (token as string).split('.');
      const claims = JSON.parse(Buffer.from(payload as string, 'base64url').toString()) as Record<string, unknown>;
      claims.htu = '/capsules/hello';
      claims.htm = 'DELETE';
      const edited = Buffer.from(JSON.stringify(claims)).toString('base64url');
      return { method: 'DELETE', path: '/capsules/hello', authorization: `${scheme} ${header}.${edited}.${signature}` };
    },
    'AUTH_BAD_SIGNATURE',
  );
});

test('refused: tampered body (signed for another body)', async (t) => {
  const context = await refusal(
    t,
    async (context) => {
      const signedBody = JSON.stringify({
        domains: ['hello.example'],
        manifest: MANIFEST,
        component: { base64: Buffer.from(COMPONENT).toString('base64') },
      });
      const authorization = await sign(context, { method: 'POST', path: '/capsules', body: signedBody });
      return { method: 'POST', path: '/capsules', authorization, body: signedBody.replace('hello.example', 'evil.example') };
    },
    'AUTH_BODY_MISMATCH',
  );
  assert.equal(context.runtimes[0]?.installs.length, 0);
  assert.notEqual(bodyHash('a'), bodyHash('b'));
});

test('refused: expired', async (t) => {
  await refusal(
    t,
    async (context) => ({ authorization: await sign(context, { now: Math.floor(Date.now() / 1000) - 600, lifetimeSeconds: 60 }) }),
    'AUTH_EXPIRED',
  );
});

test('refused: issued in the future', async (t) => {
  await refusal(
    t,
    async (context) => ({ authorization: await sign(context, { now: Math.floor(Date.now() / 1000) + 600 }) }),
    'AUTH_NOT_YET_VALID',
  );
});

test('refused: a lifetime longer than the host accepts', async (t) => {
  await refusal(t, async (context) => ({ authorization: await sign(context, { lifetimeSeconds: 3600 }) }), 'AUTH_LIFETIME');
});

test('refused: addressed to another host (wrong audience)', async (t) => {
  await refusal(
    t,
    async (context) => ({ authorization: await sign(context, { audience: 'host2.example.net' }) }),
    'AUTH_WRONG_AUDIENCE',
    /^the token is addressed to host2\.example\.net, not to this host \(host1\.example\.net\)$/,
  );
});

test('refused: signed for another request (method or path)', async (t) => {
  await refusal(t, async (context) => ({ path: '/usage', authorization: await sign(context, { path: '/status' }) }), 'AUTH_WRONG_REQUEST');
});

test('refused: a replay of an accepted request', async (t) => {
  await refusal(
    t,
    async (context) => {
      const authorization = await sign(context);
      const first = await fetch(`${context.host.controlUrl}/status`, { headers: { authorization } });
      assert.equal(first.status, 200);
      return { authorization };
    },
    'AUTH_REPLAY',
  );
});

/**
 * A token made by hand, as an independent client might make it: the header and claims of a
 * valid one, changed by `header` and `claims` (a member set to undefined is left out).
 */
function handmade(
  context: Awaited<ReturnType<typeof setup>>,
  header: Record<string, unknown> = {},
  claims: Record<string, unknown> = {},
): string {
  const now = Math.floor(Date.now() / 1000);
  const segment = (value: Record<string, unknown>) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${segment({ alg: 'EdDSA', typ: 'stratum-control+jwt', kid: context.registrar.privateJwk.kid, ...header })}.${segment(
    {
      aud: 'host1.example.net',
      iat: now,
      exp: now + 60,
      jti: randomBytes(16).toString('base64url'),
      htm: 'GET',
      htu: '/status',
      bh: bodyHash(''),
      ...claims,
    },
  )}`;
  const key = createPrivateKey({ key: { ...context.registrar.privateJwk }, format: 'jwk' });
  return `Stratum-JWS ${signingInput}.${cryptoSign(null, Buffer.from(signingInput), key).toString('base64url')}`;
}

/** What the host answers a GET /status signed so: its status and, for a refusal, its code and message. */
async function answerTo(context: Awaited<ReturnType<typeof setup>>, authorization: string) {
  const response = await fetch(`${context.host.controlUrl}/status`, { headers: { authorization } });
  const value = (await response.json()) as { error?: { code: string; message: string } };
  return { status: response.status, code: value.error?.code, message: value.error?.message };
}

test('refused: a JOSE header member other than alg, typ and kid, named in the answer', async (t) => {
  const context = await setup(t);
  assert.equal((await answerTo(context, handmade(context))).status, 200);
  for (const [member, value] of Object.entries({
    foo: 'bar',
    b64: false,
    crit: ['b64'],
    jku: 'https://evil.example/keys',
    jwk: { kty: 'OKP', crv: 'Ed25519', x: context.registrar.publicJwk.x },
    x5u: 'https://evil.example/cert',
    x5c: ['MIIB'],
    cty: 'JWT',
  })) {
    const answer = await answerTo(context, handmade(context, { [member]: value }));
    assert.equal(answer.code, 'AUTH_MALFORMED', member);
    assert.match(answer.message ?? '', new RegExp(`member "${member}"; only alg, typ, kid are allowed`));
  }
});

test('typ is stratum-control+jwt, with or without application/ before it; any other or none is refused', async (t) => {
  const context = await setup(t);
  assert.equal((await answerTo(context, handmade(context, { typ: 'application/stratum-control+jwt' }))).status, 200);
  for (const typ of ['JWT', 'STRATUM-CONTROL+JWT', undefined]) {
    assert.equal((await answerTo(context, handmade(context, { typ }))).code, 'AUTH_MALFORMED', String(typ));
  }
});

test('refused as malformed: a claim of the wrong JSON type (an aud array, a fractional or string iat, a string nbf)', async (t) => {
  const context = await setup(t);
  const now = Math.floor(Date.now() / 1000);
  for (const claims of [
    { aud: ['host1.example.net'] },
    { iat: now + 0.5 },
    { iat: String(now) },
    { exp: `${now + 60}` },
    { exp: now + 60.5 },
    { jti: 1234567890123456 },
    { nbf: String(now) },
    { bh: undefined },
  ]) {
    const answer = await answerTo(context, handmade(context, {}, claims));
    assert.equal(answer.code, 'AUTH_MALFORMED', JSON.stringify(claims));
  }
});

test('nbf, when a token has one, is checked with the clock tolerance; other unknown claims are ignored', async (t) => {
  const context = await setup(t);
  const now = Math.floor(Date.now() / 1000);
  const future = await answerTo(context, handmade(context, {}, { nbf: now + 120 }));
  assert.equal(future.code, 'AUTH_NOT_YET_VALID');
  assert.match(future.message ?? '', /nbf is in the future/);
  assert.equal((await answerTo(context, handmade(context, {}, { nbf: now + 20 }))).status, 200);
  assert.equal((await answerTo(context, handmade(context, {}, { nbf: now - 10, iss: 'acme', sub: 'x' }))).status, 200);
});

test('refused: a token that expires before it was issued', async (t) => {
  const context = await setup(t);
  const now = Math.floor(Date.now() / 1000);
  const answer = await answerTo(context, handmade(context, {}, { iat: now + 20, exp: now + 10 }));
  assert.equal(answer.code, 'AUTH_LIFETIME');
  assert.match(answer.message ?? '', /exp < iat/);
});

test("the checks go in the spec's order: an expired token for another host is refused as expired", async (t) => {
  const context = await setup(t);
  const now = Math.floor(Date.now() / 1000);
  const answer = await answerTo(context, handmade(context, {}, { aud: 'host2.example.net', iat: now - 600, exp: now - 540 }));
  assert.equal(answer.code, 'AUTH_EXPIRED');
});

test('a replay is refused after the host restarts, too', async (t) => {
  const test = await testDir(t, 'stratum-control-');
  const { dir: base, closing } = test;
  const hostKey = await generateEd25519KeyPair();
  await writeKeyFile(join(base, 'host.key'), hostKey.privateJwk);
  const first = await setup(t, [], test);
  const authorization = await sign(first);
  assert.equal((await fetch(`${first.host.controlUrl}/status`, { headers: { authorization } })).status, 200);
  await first.host.close();
  // The same config: the same registrar is trusted and the same data directory holds the nonces.
  const again = closing(await startHost(first.host.config, { createRuntime: () => new FakeRuntime() }));
  const replay = await fetch(`${again.controlUrl}/status`, { headers: { authorization } });
  assert.equal(replay.status, 401);
  assert.equal(((await replay.json()) as { error: { code: string } }).error.code, 'AUTH_REPLAY');
});

test('installations survive a restart: the new runtime gets each one back, started as it was', async (t) => {
  const test = await testDir(t, 'stratum-control-');
  const { dir: base, closing } = test;
  await writeKeyFile(join(base, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const first = await setup(t, [], test);
  await first.client.install({ domains: ['hello.example'], manifest: MANIFEST, component: COMPONENT, config: { secret: 's3cret' } });
  await first.client.install({ name: 'other', domains: ['other.example'], manifest: MANIFEST, component: COMPONENT });
  await first.client.drain('other');
  await first.host.close();

  const runtimes: FakeRuntime[] = [];
  const again = closing(
    await startHost(first.host.config, {
      createRuntime: () => {
        const runtime = new FakeRuntime();
        runtimes.push(runtime);
        return runtime;
      },
    }),
  );
  const runtime = runtimes[0] as FakeRuntime;
  assert.deepEqual(
    runtime.installs.map((install) => [install.name, install.domains, install.config]),
    [
      ['hello', ['hello.example'], { secret: 's3cret' }],
      ['other', ['other.example'], {}],
    ],
  );
  // Restored from the store by digest; its bytes byte for byte, read only if the runtime asks.
  const stored = runtime.installs[0]?.storedComponent;
  assert.equal(runtime.installs[0]?.component, undefined);
  assert.equal(stored?.digest, `sha256:${createHash('sha256').update(COMPONENT).digest('hex')}`);
  assert.deepEqual(Buffer.from((await stored?.read()) ?? []), Buffer.from(COMPONENT));
  assert.deepEqual(
    runtime.status().map((capsule) => [capsule.name, capsule.state]),
    [
      ['hello', 'running'],
      ['other', 'stopped'],
    ],
  );
  const served = await ingress(again, 'hello.example');
  assert.equal(await served.text(), 'hello from hello');
});

test('a restarted host brings each capsule back in the state it was left in: installed, running or stopped', async (t) => {
  const test = await testDir(t, 'stratum-control-');
  await writeKeyFile(join(test.dir, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const first = await setup(t, [], test);
  const install = (name: string, start = true) =>
    first.client.install({ name, domains: [`${name}.example`], manifest: MANIFEST, component: COMPONENT, start });
  await install('never', false);
  await install('serving');
  await install('stopped');
  await first.client.stop('stopped');
  await install('drained');
  await first.client.drain('drained');
  await install('restarted');
  await first.client.stop('restarted');
  await first.client.start('restarted');
  const before = (await first.client.status()).capsules.map((capsule) => [capsule.name, capsule.state]);
  assert.deepEqual(before, [
    ['never', 'installed'],
    ['serving', 'running'],
    ['stopped', 'stopped'],
    ['drained', 'stopped'],
    ['restarted', 'running'],
  ]);
  await first.host.close();
  const again = test.closing(await startHost(first.host.config, { createRuntime: () => new FakeRuntime() }));
  const client = createControlClient({ url: again.controlUrl, key: first.registrar.privateJwk, audience: 'host1.example.net' });
  const after = (await client.status()).capsules.map((capsule) => [capsule.name, capsule.state]);
  assert.deepEqual(after.sort(), [...before].sort());
});

test('a drain is recorded before it waits for the requests in flight, so that a restart meanwhile keeps the capsule out of service', async (t) => {
  const { client, base, runtimes } = await setup(t);
  await client.install({ domains: ['hello.example'], manifest: MANIFEST, component: COMPONENT });
  const runtime = runtimes[0] as FakeRuntime;
  let release = () => {};
  runtime.drainsWait = new Promise((resolve) => (release = resolve));
  const drained = client.drain('hello');
  const file = join(base, 'data', 'installations', 'hello.json');
  const desired = async () => (JSON.parse(await readFile(file, 'utf8')) as { desired: string }).desired;
  for (let tries = 0; (await client.capsule('hello')).state !== 'draining'; tries++) assert.ok(tries < 100, 'the drain never began');
  assert.equal(await desired(), 'stopped');
  release();
  assert.equal((await drained).state, 'stopped');
});

test('install, start, drain and stop answer the same status object as GET /capsules/{name}, registrar included', async (t) => {
  const { client } = await setup(t);
  const installed = await client.install({ domains: ['hello.example'], manifest: MANIFEST, component: COMPONENT, start: false });
  assert.deepEqual(installed, await client.capsule('hello'));
  assert.equal(installed.registrar, 'test');
  for (const action of ['start', 'drain', 'start', 'stop'] as const) {
    const answered = await client[action]('hello');
    assert.equal(answered.registrar, 'test', action);
    assert.deepEqual(answered, await client.capsule('hello'), action);
  }
});

test('an install whose instance cannot start is refused with 422 and changes nothing, in the runtime or on disk', async (t) => {
  const runtimes: FakeRuntime[] = [];
  const test = await testDir(t, 'stratum-control-');
  const { dir: base, closing } = test;
  await writeKeyFile(join(base, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const { client, host } = await setup(t, runtimes, test);
  const runtime = runtimes[0] as FakeRuntime;
  const digestOf = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const broken = new TextEncoder().encode('a component whose initialisation traps');
  runtime.failingDigests.add(digestOf(broken));
  const refused = (error: unknown) => {
    assert.ok(error instanceof ControlApiError);
    assert.equal(error.status, 422);
    assert.equal(error.code, 'INSTANCE_FAILED');
    assert.match(error.message, /initialisation trapped/);
    return true;
  };

  // Under a new name: nothing of it stays.
  await assert.rejects(client.install({ name: 'fresh', domains: ['fresh.example'], manifest: MANIFEST, component: broken }), refused);
  assert.deepEqual(runtime.status(), []);
  // Over an installation that is not serving: that one comes back, as it was.
  await client.install({ domains: ['hello.example'], manifest: MANIFEST, component: COMPONENT, start: false });
  await assert.rejects(client.install({ domains: ['hello.example'], manifest: MANIFEST, component: broken }), refused);
  assert.deepEqual(
    runtime.status().map((capsule) => [capsule.name, capsule.digest, capsule.state]),
    [['hello', digestOf(COMPONENT), 'installed']],
  );
  // The disk agrees: a restarted host brings back that one alone, and the refused bytes are gone.
  await host.close();
  const again = closing(await startHost(host.config, { createRuntime: () => new FakeRuntime() }));
  assert.deepEqual(
    again.runtime.status().map((capsule) => [capsule.name, capsule.digest, capsule.state]),
    [['hello', digestOf(COMPONENT), 'installed']],
  );
  assert.deepEqual(await readdir(join(base, 'data', 'components', 'sha256')), [`${digestOf(COMPONENT).slice('sha256:'.length)}.wasm`]);
});

test('an install with keepConfig keeps the values the installation had for the variables the new manifest declares, checks required ones after that, and names what it kept and dropped', async (t) => {
  const test = await testDir(t, 'stratum-control-');
  await writeKeyFile(join(test.dir, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const [acmeKey, bravoKey] = [await generateEd25519KeyPair(), await generateEd25519KeyPair()];
  const first = await setup(t, [], test, {
    tables: `[registrars.acme]\nkey = "${acmeKey.publicJwk.x}"\n[registrars.bravo]\nkey = "${bravoKey.publicJwk.x}"\n`,
  });
  const connect = (key: typeof acmeKey) =>
    createControlClient({ url: first.host.controlUrl, key: key.privateJwk, audience: 'host1.example.net' });
  const [acme, bravo] = [connect(acmeKey), connect(bravoKey)];
  const v1 =
    'stratum = 1\n[capsule]\nname = "site"\nversion = "0.1.0"\n[source]\nwasm = "site.wasm"\n' +
    '[capabilities.config.site_name]\ndefault = "My Site"\n[capabilities.config.api_key]\nsecret = true\nrequired = true\n[capabilities.config.theme]\n' +
    // Named as a member every object inherits, which must not pass for one given or declared.
    '[capabilities.config.constructor]\n';
  // 0.2.0 drops theme and adds colour.
  const v2 = v1.replace('0.1.0', '0.2.0').replace('[capabilities.config.theme]\n', '[capabilities.config.colour]\ndefault = "blue"\n');
  const site = { domains: ['site.example'], component: COMPONENT };
  const runtime = first.runtimes[0] as FakeRuntime;
  const lastConfig = () => runtime.installs.at(-1)?.config;
  const refused = async (promise: Promise<unknown>, status: number, code: string, detail?: RegExp) => {
    await assert.rejects(promise, (error: unknown) => {
      assert.ok(error instanceof ControlApiError, String(error));
      assert.equal(`${error.status} ${error.code}`, `${status} ${code}`);
      if (detail) assert.match([error.message, ...error.details].join('\n'), detail);
      return true;
    });
  };
  await acme.install({ ...site, manifest: v1, config: { site_name: 'Prod', api_key: 'k1', theme: 'dark', constructor: 'c' } });

  // Without keepConfig a replacement runs with what it is given: the required secret is missing.
  await refused(
    acme.install({ ...site, manifest: v2, config: { site_name: 'Prod' } }),
    400,
    'CONFIG_INVALID',
    /config variable "api_key" is required and has no value \(a secret\)/,
  );
  const upgraded = await acme.install({ ...site, manifest: v2, config: { colour: 'red' }, keepConfig: true });
  assert.deepEqual(
    [upgraded.version, upgraded.keptConfig, upgraded.droppedConfig, upgraded.config],
    ['0.2.0', ['api_key', 'constructor', 'site_name'], ['theme'], ['api_key', 'colour', 'constructor', 'site_name']],
  );
  assert.deepEqual(lastConfig(), { api_key: 'k1', colour: 'red', constructor: 'c', site_name: 'Prod' });
  // A value given wins over the one kept.
  const renamed = await acme.install({ ...site, manifest: v2, config: { site_name: 'Staging' }, keepConfig: true });
  assert.deepEqual([renamed.keptConfig, renamed.droppedConfig], [['api_key', 'colour', 'constructor'], []]);
  assert.deepEqual(lastConfig(), { api_key: 'k1', colour: 'red', constructor: 'c', site_name: 'Staging' });
  // The operator's upgrade keeps the values of the registrar's installation too.
  assert.deepEqual((await first.client.install({ ...site, manifest: v2, keepConfig: true })).keptConfig, [
    'api_key',
    'colour',
    'constructor',
    'site_name',
  ]);

  // Another registrar's installation lends it nothing: its install is refused as without keepConfig.
  await refused(bravo.install({ ...site, manifest: v2, keepConfig: true }), 400, 'CONFIG_INVALID', /"api_key" is required/);
  await refused(bravo.install({ ...site, manifest: v2, config: { api_key: 'b' }, keepConfig: true }), 409, 'NAME_TAKEN');
  // Over a name not installed there is nothing to keep, and the answer says so.
  const fresh = await bravo.install({
    ...site,
    name: 'blog',
    domains: ['blog.example'],
    manifest: v2,
    config: { api_key: 'b' },
    keepConfig: true,
  });
  assert.deepEqual([fresh.keptConfig, fresh.droppedConfig, fresh.config], [[], [], ['api_key']]);
  await refused(
    first.client.request('POST', '/capsules', { ...site, component: undefined, manifest: v2, keepConfig: 'yes' }).then(expectJson),
    400,
    'INVALID_REQUEST',
    /\/keepConfig: must be true or false/,
  );
  // Without keepConfig the answer carries neither member: a registrar tells an older host by its refusal of the member.
  const reset = await acme.install({ ...site, manifest: v2, config: { api_key: 'k2' } });
  assert.deepEqual([reset.keptConfig, reset.droppedConfig, reset.config], [undefined, undefined, ['api_key']]);
  assert.deepEqual(lastConfig(), { api_key: 'k2' });

  // What was kept is the installation's: a restarted host brings it back with those values.
  await acme.install({ ...site, manifest: v2, config: { site_name: 'Prod' }, keepConfig: true });
  await first.host.close();
  const runtimes: FakeRuntime[] = [];
  test.closing(
    await startHost(first.host.config, {
      createRuntime: () => {
        const again = new FakeRuntime();
        runtimes.push(again);
        return again;
      },
    }),
  );
  assert.deepEqual(
    runtimes[0]?.installs.filter((install) => install.name === 'site').map((install) => install.config),
    [{ api_key: 'k2', site_name: 'Prod' }],
  );
});

test('answers match the OpenAPI document', async (t) => {
  const { Ajv2020 } = await import('ajv/dist/2020.js');
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addFormat('date-time', (value: string) => !Number.isNaN(Date.parse(value)));
  const document = JSON.parse(await readFile(new URL('../spec/host-api.openapi.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  ajv.addSchema(document, 'openapi');
  const check = (schema: string, value: unknown) => {
    const validate = ajv.getSchema(`openapi#/components/schemas/${schema}`);
    assert.ok(validate, schema);
    assert.ok(validate(value), `${schema}: ${JSON.stringify(validate.errors)}\n${JSON.stringify(value)}`);
  };

  const { host, client } = await setup(t);
  check('HostIdentity', await client.identity());
  const installed = await client.install({ domains: ['hello.example'], manifest: MANIFEST, component: COMPONENT });
  check('CapsuleStatus', installed);
  await ingress(host, 'hello.example');
  const status = await client.status();
  for (const capsule of status.capsules) check('CapsuleStatus', capsule);
  const statusSchema = ajv.getSchema('openapi#/paths/~1status/get/responses/200/content/application~1json/schema');
  assert.ok(statusSchema?.(status), JSON.stringify(statusSchema?.errors));
  assert.deepEqual(status.metering, { ledger: 'ok' });
  const usage = await client.usage();
  for (const item of Object.values(usage.capsules)) check('Usage', item);
  check('LedgerHead', usage.ledger);
  for (const entry of (await client.ledger()).entries) check('LedgerEntry', entry);
  const refused = await fetch(`${host.controlUrl}/status`);
  check('Error', await refused.json());
  check('LinkCheck', await client.links(['hello.example'], installed.digest));
  // As a host whose host.toml gives the key a domain answers (tests/host-domain-links.test.ts).
  check('LinkCheck', { checked: true, problems: [], registrar: 'registrar.example.org' });
  // An upgrade that no longer grants a store the installation had: its status names that store.
  const stored = { name: 'stored', domains: ['stored.example'], component: COMPONENT, start: false };
  await client.install({
    ...stored,
    manifest: MANIFEST.replace('[capabilities.config', '[capabilities]\nkeyvalue = ["default"]\n[capabilities.config'),
  });
  const upgraded = await client.install({ ...stored, manifest: MANIFEST });
  assert.deepEqual(upgraded.retainedStores, { keyvalue: ['default'], sql: [], bucket: [] });
  check('CapsuleStatus', upgraded);
  // An upgrade that keeps config values: the request as the document has it, and its answer.
  const keeping = { ...stored, component: { base64: Buffer.from(COMPONENT).toString('base64') }, manifest: MANIFEST, keepConfig: true };
  check('InstallRequest', keeping);
  const kept = await client.request('POST', '/capsules', keeping);
  assert.equal(kept.status, 201);
  const installSchema = ajv.getSchema('openapi#/paths/~1capsules/post/responses/201/content/application~1json/schema');
  const keptAnswer = await kept.json();
  assert.ok(installSchema?.(keptAnswer), JSON.stringify(installSchema?.errors));
  assert.deepEqual((keptAnswer as { keptConfig?: string[] }).keptConfig, []);
  const paths = Object.keys(document.paths as Record<string, unknown>);
  assert.deepEqual(paths.sort(), [
    '/capsules',
    '/capsules/{name}',
    '/capsules/{name}/drain',
    '/capsules/{name}/logs',
    '/capsules/{name}/start',
    '/capsules/{name}/state/{capability}/{label}',
    '/capsules/{name}/stop',
    '/identity',
    '/links',
    '/status',
    '/usage',
    '/usage/ledger',
    '/usage/report',
  ]);
});
