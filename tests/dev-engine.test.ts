// A dev engine (stratum dev's fast path) in the runtime: a host that links the dev-only
// stratum:dev/source capability runs the capsule's bundle on it; a production host, which does
// not, refuses it at install, so a dev engine can never end up serving on a real host.
import assert from 'node:assert/strict';
import { createHash, randomBytes, type webcrypto } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { isStratumError } from '@stratum/core';
import { CAPABILITY_MODULES, createHostRuntime, type HostRuntimeOptions } from '@stratum/host';
import type { Manifest } from '@stratum/manifest';
import { buildDevCapsule } from '@stratum/sdk/build';
import { DEV_SOURCE_CAPABILITY } from '../packages/cli/src/dev/source-capability.ts';
import { testEngineCacheDir } from './support/dev-engines.ts';
import { exampleDir } from './support/examples.ts';
import { removeDir } from './support/temp.ts';

async function runtimeFor(t: TestContext, options: Omit<HostRuntimeOptions, 'dataDir'> = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), 'stratum-dev-engine-'));
  const runtime = await createHostRuntime({ dataDir, ...options });
  t.after(async () => {
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  return { runtime, dataDir };
}

/** A request's status, headers and body, with the method given (HEAD too). */
function exchange(
  port: number,
  path: string,
  { host = 'counter.test', method = 'GET', headers = {} }: { host?: string; method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path, method, headers: { ...headers, host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
      // A body cut short of its content-length ends the connection, not the response.
      res.on('close', () => {
        if (!res.complete) reject(new Error(`${path}: the connection closed after ${Buffer.concat(chunks).length} bytes of the body`));
      });
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

async function get(
  port: number,
  host: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const { status, body } = await exchange(port, path, { host, headers });
  return { status, body };
}

/** A POST whose body goes in two writes 20 ms apart, so that it reaches the capsule as a stream, not whole. */
function postInTwo(
  port: number,
  path: string,
  parts: [string, string],
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { ...headers, host: 'counter.test' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    outgoing.on('error', reject);
    outgoing.write(parts[0]);
    setTimeout(() => outgoing.end(parts[1]), 20);
  });
}

test('a dev engine refuses to install on a plain host runtime, and runs its bundle on dev’s', async (t) => {
  const dev = await buildDevCapsule(exampleDir('counter'), { engineCacheDir: testEngineCacheDir });
  const component = await readFile(dev.engine.path);

  const plain = await runtimeFor(t);
  const refused = await plain.runtime.install({ manifest: dev.manifest, domains: ['counter.test'], component }).catch((e: unknown) => e);
  assert.ok(isStratumError(refused) && refused.code === 'CAPABILITY_UNKNOWN_IMPORT', String(refused));
  assert.deepEqual(refused.details, ['import stratum:dev/source@0.1.0: no capability of this host serves it']);

  const port = await serveDev(t, dev.manifest, component, dev.bundle);
  assert.deepEqual(await get(port, 'counter.test', '/hits'), { status: 200, body: '{"path":"/hits","count":1}' });
  assert.deepEqual(await get(port, 'counter.test', '/hits'), { status: 200, body: '{"path":"/hits","count":2}' });
});

/** An upstream server on 127.0.0.1 for a capsule to fetch from, closed after the test: its origin. */
async function listenForCapsule(t: TestContext, server: ReturnType<typeof createServer>): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // Requests a test holds open end with it.
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The counter's manifest, also granting outbound requests to `origin`. */
const grantOutbound = (origin: string) => (text: string) =>
  text.replace('keyvalue = ["default"]', `keyvalue = ["default"]\noutbound = ["${origin}"]`);

/** host.toml's [outbound] for a test whose upstream is on this machine's loopback. */
const LOOPBACK = { allow_addresses: ['127.0.0.0/8'] };

/** Installs a dev engine with its bundle on a runtime that serves stratum:dev/source, as `stratum dev` does; returns the port. */
async function serveDev(
  t: TestContext,
  manifest: Manifest,
  component: Uint8Array,
  bundle: string,
  logs: string[] = [],
  options: Omit<HostRuntimeOptions, 'dataDir' | 'capabilities' | 'capabilityConfig'> & { capabilityConfig?: Record<string, unknown> } = {},
): Promise<number> {
  const bundleDir = await mkdtemp(join(tmpdir(), 'stratum-dev-bundle-'));
  t.after(() => removeDir(bundleDir));
  const bundleFile = join(bundleDir, 'bundle.js');
  await writeFile(bundleFile, bundle);
  const { runtime } = await runtimeFor(t, {
    capabilities: [...CAPABILITY_MODULES, DEV_SOURCE_CAPABILITY],
    ...options,
    capabilityConfig: { ...options.capabilityConfig, dev: { bundleFile } },
  });
  await runtime.install({ manifest, domains: ['counter.test'], component });
  await runtime.start('counter');
  runtime.subscribeLogs('counter', (entry) => logs.push(entry.message));
  const server = createServer((req, res) => runtime.handleRequest(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

/** The counter example in a new directory, its source (and manifest) edited, built for a dev engine. */
async function counterVariant(
  t: TestContext,
  edit: {
    source: (text: string) => string;
    manifest?: (text: string) => string;
    files?: Record<string, string>;
    /** Paths in the project that link to a directory: a package it imports, say. */
    links?: Record<string, string>;
  },
): Promise<Awaited<ReturnType<typeof buildDevCapsule>>> {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-variant-'));
  t.after(() => removeDir(dir));
  await cp(exampleDir('counter'), dir, { recursive: true, filter: (source) => !/\/(dist|\.stratum)$/.test(source) });
  const source = join(dir, 'src', 'index.ts');
  await writeFile(source, edit.source(await readFile(source, 'utf8')));
  if (edit.manifest) {
    const manifest = join(dir, 'stratum.toml');
    await writeFile(manifest, edit.manifest(await readFile(manifest, 'utf8')));
  }
  for (const [path, text] of Object.entries(edit.files ?? {})) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  for (const [path, target] of Object.entries(edit.links ?? {})) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await symlink(target, join(dir, path));
  }
  return buildDevCapsule(dir, { engineCacheDir: testEngineCacheDir });
}

/** The counter with a SQL grant, answering /hits with `body`, which has `db` (its default database). */
function sqlCounterVariant(t: TestContext, body: string) {
  return counterVariant(t, {
    manifest: (text) => text.replace('keyvalue = ["default"]', 'keyvalue = ["default"]\nsql = ["default"]'),
    source: (text) =>
      `import { openDatabase } from '@stratum/sdk/sql';\n${text.replace('return Response.json({ path, count })', `const db = openDatabase();\n    ${body}`)}`,
  });
}

test("a response streamed past the host's size limit is cut off by the host and logged as that limit, and the instance serves on", async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace(
        'return Response.json({ path, count })',
        "if (path === '/huge') return new Response(new ReadableStream({ pull(controller) { controller.enqueue(new Uint8Array(256 * 1024)); } }));\n    return Response.json({ path, count })",
      ),
  });
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs, {
    limits: { responseBodyBytes: 1024 * 1024 },
  });
  await get(port, 'counter.test', '/huge').catch(() => undefined);
  assert.equal((await get(port, 'counter.test', '/hits')).status, 200);
  assert.ok(
    logs.some((line) => line.startsWith('limit hit (response-body)')),
    logs.join('\n'),
  );
  // The capsule did nothing wrong: no abort, no trap, nothing on its stderr.
  assert.deepEqual(
    logs.filter((line) => /trap|unreachable|abort|object Object/i.test(line)),
    [],
  );
});

test("top-level code that throws fails every request of each instance with what it threw, as the capsule's own error, not a trap", async (t) => {
  const dev = await counterVariant(t, { source: (text) => `${text}\nif (Date.now() > 0) throw new Error('no database URL');\n` });
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs);
  for (let request = 0; request < 2; request++) {
    const answer = await get(port, 'counter.test', '/hits');
    assert.equal(answer.status, 500);
    // What a developer sees in the browser, as wrangler and Spin show it.
    assert.match(answer.body, /top-level code threw: Error: no database URL/);
  }
  // Not the host's doing: no limit, and none of the engine's abort.
  assert.deepEqual(
    logs.filter((line) => /limit|trap|unreachable|abort/i.test(line)),
    [],
  );
  assert.ok(
    logs.some((line) => line.startsWith("stratum dev: the capsule's top-level code threw")),
    logs.join('\n'),
  );
  assert.ok(
    logs.some((line) => line.includes('no database URL')),
    logs.join('\n'),
  );
});

test('from a trusted proxy, X-Forwarded-Proto gives the scheme a capsule sees and the forwarding headers pass; from anyone else they are dropped', async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace(
        'return Response.json({ path, count })',
        "return Response.json({ url: request.url, for: request.headers.get('x-forwarded-for'), forwarded: request.headers.get('forwarded'), realIp: request.headers.get('x-real-ip'), cf: request.headers.get('cf-connecting-ip'), other: request.headers.get('x-other') })",
      ),
  });
  const component = await readFile(dev.engine.path);
  type Seen = { url: string; for: string | null; forwarded: string | null; realIp: string | null; cf: string | null; other: string | null };
  const seen = async (port: number, headers: Record<string, string> = {}) =>
    JSON.parse((await get(port, 'counter.test', '/hits?x=1', headers)).body) as Seen;
  const claims = {
    'x-forwarded-proto': 'https',
    'x-forwarded-for': '203.0.113.7',
    forwarded: 'for=203.0.113.7;proto=https',
    'x-real-ip': '203.0.113.7',
    'cf-connecting-ip': '203.0.113.7',
    'x-other': 'kept',
  };

  const behindProxy = await serveDev(t, dev.manifest, component, dev.bundle, [], { trustedProxies: ['127.0.0.0/8'] });
  // The host appends the address the connection came from, as every proxy does.
  const none = { for: '127.0.0.1', forwarded: null, realIp: null, cf: null };
  assert.deepEqual(await seen(behindProxy), { url: 'http://counter.test/hits?x=1', ...none, other: null });
  assert.deepEqual(await seen(behindProxy, claims), {
    url: 'https://counter.test/hits?x=1',
    for: '203.0.113.7, 127.0.0.1',
    forwarded: 'for=203.0.113.7;proto=https',
    realIp: '203.0.113.7',
    cf: '203.0.113.7',
    other: 'kept',
  });
  // Chained proxies: the first value is the client's.
  assert.equal((await seen(behindProxy, { 'x-forwarded-proto': 'HTTPS, http' })).url, 'https://counter.test/hits?x=1');
  assert.equal((await seen(behindProxy, { 'x-forwarded-proto': 'gopher' })).url, 'http://counter.test/hits?x=1');

  const dropped = { url: 'http://counter.test/hits?x=1', ...none, other: 'kept' };
  const elsewhere = await serveDev(t, dev.manifest, component, dev.bundle, [], { trustedProxies: ['10.0.0.0/8'] });
  assert.deepEqual(await seen(elsewhere, claims), dropped);
  const nobody = await serveDev(t, dev.manifest, component, dev.bundle);
  assert.deepEqual(await seen(nobody, claims), dropped);
  // A client-address header alone, as a client claiming an nginx setup's X-Real-IP sends it.
  assert.deepEqual(await seen(nobody, { 'x-real-ip': '203.0.113.7', 'x-other': 'kept' }), dropped);
});

test('cookies sent in several fields reach a capsule joined as one cookie list; other repeated fields joined as Fetch joins them', async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace(
        'return Response.json({ path, count })',
        "return Response.json({ cookie: request.headers.get('cookie'), accept: request.headers.get('accept') })",
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  // Raw, so that each field goes as its own line: Node.js's client would join cookies itself.
  const seen = async (fields: string[]) => {
    const socket = connect(port, '127.0.0.1');
    socket.write(`GET /hits HTTP/1.1\r\nHost: counter.test\r\nConnection: close\r\n${fields.map((field) => `${field}\r\n`).join('')}\r\n`);
    const chunks: Buffer[] = [];
    for await (const chunk of socket) chunks.push(chunk as Buffer);
    const answer = Buffer.concat(chunks).toString();
    assert.match(answer, /^HTTP\/1\.1 200 /, answer);
    return JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
  };
  assert.deepEqual(await seen(['Cookie: session=abc', 'Accept: text/html', 'cookie: theme=dark; lang=en', 'Accept: application/json']), {
    cookie: 'session=abc; theme=dark; lang=en',
    accept: 'text/html, application/json',
  });
  assert.deepEqual(await seen(['Cookie: one=1']), { cookie: 'one=1', accept: null });
});

test("a request's headers give its Host, as in Workers, though StarlingMonkey's Request drops it; copies of the request do not", async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request) {').replace(
        'return Response.json({ path, count })',
        `const headers = request.headers;
    const seen: string[] = [];
    headers.forEach((_value, name) => seen.push(name));
    const before = { get: headers.get('Host'), has: headers.has('host'), names: [...headers.keys()], forEach: seen, entries: Object.fromEntries(headers) };
    const copy = new Request(request).headers.get('host');
    headers.set('host', 'changed.test');
    const changed = request.headers.get('host');
    headers.delete('HOST');
    return Response.json({ before, copy, changed, after: [headers.get('host'), headers.has('host'), [...headers.keys()]], accept: headers.get('accept') })`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const reply = await get(port, 'counter.test', '/hits', { accept: 'text/html', 'x-late': 'z' });
  assert.equal(reply.status, 200, reply.body);
  assert.deepEqual(JSON.parse(reply.body), {
    before: {
      get: 'counter.test',
      has: true,
      names: ['accept', 'host', 'x-forwarded-for', 'x-late'],
      forEach: ['accept', 'host', 'x-forwarded-for', 'x-late'],
      entries: { accept: 'text/html', host: 'counter.test', 'x-forwarded-for': '127.0.0.1', 'x-late': 'z' },
    },
    copy: null,
    changed: 'changed.test',
    after: [null, false, ['accept', 'x-forwarded-for', 'x-late']],
    accept: 'text/html',
  });
});

test('a JS capsule that allocates past its memory limit fails that request with a log line naming the limit, and the next request is served', async (t) => {
  const dev = await counterVariant(t, {
    manifest: (text) => text.replace('cpu = "micro"', 'cpu = "micro"\nmemory = "64mib"'),
    source: (text) =>
      text.replace(
        'return Response.json({ path, count })',
        "if (path === '/eat') { const kept = []; for (;;) kept.push(new Uint8Array(1 << 20).fill(1)); }\n    return Response.json({ path, count })",
      ),
  });
  assert.equal(dev.manifest.resources.memoryBytes, 64 * 1024 * 1024);
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs);
  assert.equal((await get(port, 'counter.test', '/eat')).status, 500);
  assert.ok(
    logs.some((line) => line.startsWith("uncaught out of memory: the JavaScript heap could not grow within the instance's memory limit")),
    logs.join('\n'),
  );
  assert.equal((await get(port, 'counter.test', '/hits')).status, 200);
});

test("a body that is not UTF-8 reads as text with U+FFFD, as the Fetch standard decodes it, not as StarlingMonkey's TypeError", async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace(
        '  fetch(request) {',
        `  async fetch(request) {
    if (request.method === 'POST') {
      const text = await request.text();
      const bom = await new Response(new Uint8Array([0xef, 0xbb, 0xbf, 0x61])).text();
      const json = await new Response(new Uint8Array([0x22, 0x61, 0xff, 0x22])).json();
      return Response.json({ text, bom, json });
    }`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const outgoing = request(
      { host: '127.0.0.1', port, path: '/hits', method: 'POST', headers: { host: 'counter.test' }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    outgoing.on('error', reject);
    // Latin-1 "café", then a lone continuation byte.
    outgoing.end(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x21, 0x80]));
  });
  assert.equal(reply.status, 200, reply.body);
  assert.deepEqual(JSON.parse(reply.body), { text: 'caf\ufffd!\ufffd', bom: 'a', json: 'a\ufffd' });
});

test('an outbound fetch() the host refuses fails with the URL and a pointer to the reason, which the capsule log has', async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace(
        '  fetch(request) {',
        `  async fetch(request) {
    if (new URL(request.url).pathname === '/out') {
      try {
        await fetch('https://example.com/x');
        return new Response('fetched');
      } catch (error) {
        return Response.json({ message: String(error), cause: String((error as Error).cause) });
      }
    }`,
      ),
  });
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs);
  const reply = await get(port, 'counter.test', '/out');
  assert.equal(reply.status, 200, reply.body);
  assert.deepEqual(JSON.parse(reply.body), {
    message:
      "TypeError: fetch(https://example.com/x) failed: the host refused it or could not complete it; its reason is in the capsule's log",
    cause: 'Error: fetch_https: An error occurred while using the host API.\n',
  });
  assert.ok(logs.includes('request refused: the manifest allows no outbound origin ([capabilities] outbound)'), logs.join('\n'));
});

test("a capsule hashes a password with PBKDF2, decrypts Node.js's AES-GCM, and seals a JWE (A256CBC-HS512 with an HKDF key) that Node.js opens", async (t) => {
  const { jwtDecrypt } = await import('jose');
  const { hkdfSync, pbkdf2Sync, createCipheriv } = await import('node:crypto');
  const salt = 'c2FsdHNhbHRzYWx0c2FsdA';
  const expectedHash = pbkdf2Sync('hunter2', Buffer.from(salt, 'base64url'), 100_000, 32, 'sha256').toString('base64url');
  const aesKey = Buffer.alloc(32, 7);
  const iv = Buffer.alloc(12, 1);
  const cipher = createCipheriv('aes-256-gcm', aesKey, iv);
  const sealed = Buffer.concat([cipher.update('a note for the capsule'), cipher.final(), cipher.getAuthTag()]).toString('base64url');
  const dev = await counterVariant(t, {
    links: { 'node_modules/jose': join(process.cwd(), 'node_modules', 'jose') },
    source: (text) =>
      `import { EncryptJWT } from 'jose';\n${text}`.replace(
        '  fetch(request) {',
        `  async fetch(request) {
    if (new URL(request.url).pathname === '/secrets') {
      const b64 = (text: string) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
      const out = (bytes: ArrayBuffer) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
      const password = await crypto.subtle.importKey('raw', new TextEncoder().encode('hunter2'), 'PBKDF2', false, ['deriveBits']);
      const hash = out(await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: b64('${salt}'), iterations: 100_000 }, password, 256));
      const aes = await crypto.subtle.importKey('raw', new Uint8Array(32).fill(7), 'AES-GCM', false, ['decrypt']);
      const note = new TextDecoder().decode(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: new Uint8Array(12).fill(1) }, aes, b64('${sealed}')));
      const secret = await crypto.subtle.importKey('raw', new TextEncoder().encode('an app secret'), 'HKDF', false, ['deriveBits']);
      const cek = new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(), info: new TextEncoder().encode('session') }, secret, 512));
      const jwe = await new EncryptJWT({ sub: 'user-1' }).setProtectedHeader({ alg: 'dir', enc: 'A256CBC-HS512' }).encrypt(cek);
      return Response.json({ hash, note, jwe });
    }`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const reply = await get(port, 'counter.test', '/secrets');
  assert.equal(reply.status, 200, reply.body);
  const seen = JSON.parse(reply.body) as { hash: string; note: string; jwe: string };
  assert.equal(seen.hash, expectedHash);
  assert.equal(seen.note, 'a note for the capsule');
  const cek = new Uint8Array(hkdfSync('sha256', 'an app secret', new Uint8Array(), 'session', 64));
  assert.equal((await jwtDecrypt(seen.jwe, cek)).payload.sub, 'user-1');
});

test('a capsule signs JWTs with jose: ES256 with a key pair it makes, RS256 with a PKCS#8 key it is given; Node.js verifies both', async (t) => {
  const { jwtVerify, importJWK, exportPKCS8, generateKeyPair } = await import('jose');
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const pkcs8 = await exportPKCS8(rsa.privateKey);
  const dev = await counterVariant(t, {
    links: { 'node_modules/jose': join(process.cwd(), 'node_modules', 'jose') },
    source: (text) =>
      `import { SignJWT, exportJWK, generateKeyPair, importPKCS8 } from 'jose';\n${text}`.replace(
        '  fetch(request) {',
        `  async fetch(request) {
    if (new URL(request.url).pathname === '/sign') {
      const pair = await generateKeyPair('ES256', { extractable: true });
      const es256 = await new SignJWT({ sub: 'made-here' }).setProtectedHeader({ alg: 'ES256' }).sign(pair.privateKey);
      const rs256Key = await importPKCS8(${JSON.stringify(pkcs8)}, 'RS256');
      const rs256 = await new SignJWT({ sub: 'given' }).setProtectedHeader({ alg: 'RS256' }).sign(rs256Key);
      return Response.json({ es256, jwk: await exportJWK(pair.publicKey), rs256 });
    }`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const reply = await get(port, 'counter.test', '/sign');
  assert.equal(reply.status, 200, reply.body);
  const seen = JSON.parse(reply.body) as { es256: string; jwk: Record<string, string>; rs256: string };
  assert.equal((await jwtVerify(seen.es256, await importJWK(seen.jwk, 'ES256'))).payload.sub, 'made-here');
  assert.equal((await jwtVerify(seen.rs256, rsa.publicKey)).payload.sub, 'given');
});

test("a capsule agrees on an ECDH P-256 secret with Node.js's key, given raw as a web push subscription gives it", async (t) => {
  const { createECDH } = await import('node:crypto');
  const subscriber = createECDH('prime256v1');
  const p256dh = subscriber.generateKeys().toString('base64url');
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace(
        '  fetch(request) {',
        `  async fetch(request) {
    if (new URL(request.url).pathname === '/ecdh') {
      const b64 = (text: string) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
      const hex = (bytes: ArrayBuffer) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
      const algorithm = { name: 'ECDH', namedCurve: 'P-256' };
      const mine = (await crypto.subtle.generateKey(algorithm, true, ['deriveBits'])) as CryptoKeyPair;
      const theirs = await crypto.subtle.importKey('raw', b64('${p256dh}'), algorithm, true, []);
      const secret = await crypto.subtle.deriveBits({ name: 'ECDH', public: theirs }, mine.privateKey, 256);
      return Response.json({ publicKey: hex(await crypto.subtle.exportKey('raw', mine.publicKey)), secret: hex(secret) });
    }`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const reply = await get(port, 'counter.test', '/ecdh');
  assert.equal(reply.status, 200, reply.body);
  const seen = JSON.parse(reply.body) as { publicKey: string; secret: string };
  assert.equal(seen.secret, subscriber.computeSecret(Buffer.from(seen.publicKey, 'hex')).toString('hex'));
});

test('a capsule checks JWTs signed with ES256, RS256, PS256 and EdDSA with jose, and an Ed25519 webhook signature with crypto.subtle', async (t) => {
  const { SignJWT, exportJWK, generateKeyPair } = await import('jose');
  const algorithms = ['ES256', 'RS256', 'PS256', 'EdDSA'] as const;
  const tokens: Record<string, { jwk: object; token: string; forged: string }> = {};
  for (const alg of algorithms) {
    const signer = await generateKeyPair(alg, { extractable: true });
    const stranger = await generateKeyPair(alg);
    const claims = new SignJWT({ sub: `user-${alg}` }).setProtectedHeader({ alg }).setIssuedAt().setExpirationTime('5m');
    tokens[alg] = {
      jwk: await exportJWK(signer.publicKey),
      token: await claims.sign(signer.privateKey),
      forged: await claims.sign(stranger.privateKey),
    };
  }
  // A webhook as Discord signs one: Ed25519 over timestamp + body, the key given as hex.
  const webhookKeys = (await crypto.subtle.generateKey('Ed25519', true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const webhookBody = '{"type":1}';
  const webhookSignature = new Uint8Array(
    await crypto.subtle.sign('Ed25519', webhookKeys.privateKey, new TextEncoder().encode(`1700000000${webhookBody}`)),
  );
  const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
  const webhook = {
    key: toHex(new Uint8Array(await crypto.subtle.exportKey('raw', webhookKeys.publicKey))),
    signature: toHex(webhookSignature),
  };
  const privateJwk = await crypto.subtle.exportKey(
    'jwk',
    ((await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])) as webcrypto.CryptoKeyPair).privateKey,
  );
  const dev = await counterVariant(t, {
    links: { 'node_modules/jose': join(process.cwd(), 'node_modules', 'jose') },
    source: (text) =>
      `import { importJWK, jwtVerify } from 'jose';\n${text}`.replace(
        '  fetch(request) {',
        `  async fetch(request) {
    if (new URL(request.url).pathname === '/tokens') {
      const tokens = ${JSON.stringify(tokens)};
      const seen: Record<string, string> = {};
      for (const [alg, { jwk, token, forged }] of Object.entries(tokens)) {
        const key = await importJWK(jwk, alg);
        seen[alg] = String((await jwtVerify(token, key)).payload.sub);
        seen[\`\${alg} forged\`] = await jwtVerify(forged, key).then(() => 'accepted', (error) => error.code);
      }
      const fromHex = (hex: string) => Uint8Array.from(hex.match(/../g) ?? [], (pair) => Number.parseInt(pair, 16));
      const webhookKey = await crypto.subtle.importKey('raw', fromHex('${webhook.key}'), 'Ed25519', false, ['verify']);
      const signed = (body: string) => new TextEncoder().encode(\`1700000000\${body}\`);
      seen.webhook = String(await crypto.subtle.verify('Ed25519', webhookKey, fromHex('${webhook.signature}'), signed(${JSON.stringify(webhookBody)})));
      seen['webhook changed'] = String(await crypto.subtle.verify('Ed25519', webhookKey, fromHex('${webhook.signature}'), signed('{"type":2}')));
      seen.private = await crypto.subtle
        .importKey('jwk', ${JSON.stringify(privateJwk)}, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
        .then(() => 'imported', (error) => \`\${error.name}: \${error.message}\`);
      seen.hmac = await crypto.subtle
        .importKey('raw', new Uint8Array(16), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
        .then(() => 'imported', (error) => String(error));
      return Response.json(seen);
    }`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const reply = await get(port, 'counter.test', '/tokens');
  assert.equal(reply.status, 200, reply.body);
  const seen = JSON.parse(reply.body) as Record<string, string>;
  for (const alg of algorithms) {
    assert.equal(seen[alg], `user-${alg}`);
    assert.equal(seen[`${alg} forged`], 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
  }
  assert.equal(seen.webhook, 'true');
  assert.equal(seen['webhook changed'], 'false');
  // A private key imports too (its signing is the host's, below).
  assert.equal(seen.private, 'imported');
  assert.equal(seen.hmac, 'imported');
});

test('Intl, normalize and the locale-aware methods work in a capsule as in Node.js, with its errors, on en-US and UTC by default', async (t) => {
  const names = ['Zoë', 'ändern', 'apple', 'Äpfel', 'zebra', 'Émile', 'apple', 'Apple', 'banana', '10', '9', '_x'];
  // Made at the top of the module, as code often makes them: checked on first use, since no host
  // answers while a production build runs the modules.
  const topLevel =
    "const euros = new Intl.NumberFormat('de-DE', { style: 'currency', currency: 'EUR' });\nconst noCurrency = new Intl.NumberFormat('en', { style: 'currency' });\nconst ascii = 'plain'.normalize('NFKC');\n";
  const dev = await counterVariant(t, {
    source: (text) =>
      `${topLevel}${text}`.replace(
        '  fetch(request) {',
        `  fetch(request) {
    if (new URL(request.url).pathname === '/intl') {
      const names = ${JSON.stringify(names)};
      const errorOf = (work: () => unknown) => {
        try {
          work();
          return 'none';
        } catch (error) {
          return (error as Error).constructor.name;
        }
      };
      // More formatters than a host keeps: the first is forgotten there, and made again when used.
      const first = new Intl.NumberFormat('en', { minimumFractionDigits: 1 });
      first.format(1);
      for (let i = 0; i < 300; i++) new Intl.NumberFormat('en', { minimumIntegerDigits: (i % 21) + 1, minimumFractionDigits: i % 20, maximumFractionDigits: 20 });
      return Response.json({
        reused: first.format(7),
        price: [1234567.891, -0.5].map(euros.format),
        ascii,
        big: (12345678901234567890n).toLocaleString('en-IN'),
        grouped: (1234567.891).toLocaleString(),
        tokyo: new Intl.DateTimeFormat('en-GB', { dateStyle: 'full', timeStyle: 'long', timeZone: 'Asia/Tokyo' }).format(new Date(0)),
        utc: new Date(0).toLocaleString(),
        zone: new Intl.DateTimeFormat().resolvedOptions().timeZone,
        parts: new Intl.DateTimeFormat('en-US', { month: 'long', day: 'numeric' }).formatToParts(new Date(0)),
        sortedEn: names.slice().sort((a, b) => a.localeCompare(b)),
        sortedSv: names.slice().sort(new Intl.Collator('sv').compare),
        sortedNumeric: names.slice().sort(new Intl.Collator('en', { numeric: true }).compare),
        plural: [0, 1, 2, 5].map((n) => new Intl.PluralRules('ar').select(n)),
        relative: new Intl.RelativeTimeFormat('fr', { numeric: 'auto' }).format(-1, 'day'),
        list: new Intl.ListFormat('en').format(['a', 'b', 'c']),
        region: new Intl.DisplayNames(['de'], { type: 'region' }).of('JP'),
        words: [...new Intl.Segmenter('en', { granularity: 'word' }).segment('Hello, wide world')].filter((s) => s.isWordLike).map((s) => s.segment),
        locale: new Intl.Locale('zh', { region: 'TW' }).maximize().toString(),
        tag: Object.prototype.toString.call(new Intl.NumberFormat()),
        units: Intl.supportedValuesOf('unit').includes('kilometer'),
        nfc: 'e\u0301'.normalize(),
        nfkd: '\ufb01\u00e9'.normalize('NFKD'),
        lone: '\ud800e\u0301\udc00'.normalize('NFC') === '\ud800\u00e9\udc00',
        errors: [
          errorOf(() => new Intl.NumberFormat('not a locale!')),
          errorOf(() => new Intl.NumberFormat('en', { style: 'currency' })),
          errorOf(() => 'x'.normalize('NFX')),
          errorOf(() => new Intl.DateTimeFormat('en').format(new Date(Number.NaN))),
          errorOf(() => new Intl.NumberFormat('en', null as never)),
          errorOf(() => noCurrency.format(1)),
        ],
      });
    }`,
      ),
  });
  assert.deepEqual(
    dev.imports.map((item) => item.name).filter((name) => name.startsWith('stratum:intl')),
    ['stratum:intl/services@0.1.0'],
  );
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const reply = await get(port, 'counter.test', '/intl');
  assert.equal(reply.status, 200, reply.body);
  const seen = JSON.parse(reply.body) as Record<string, unknown>;
  const price = new Intl.NumberFormat('de-DE', { style: 'currency', currency: 'EUR' });
  assert.deepEqual(seen.price, [price.format(1234567.891), price.format(-0.5)]);
  assert.equal(seen.big, '1,23,45,67,89,01,23,45,67,890');
  assert.equal(seen.grouped, '1,234,567.891');
  assert.equal(seen.tokyo, new Intl.DateTimeFormat('en-GB', { dateStyle: 'full', timeStyle: 'long', timeZone: 'Asia/Tokyo' }).format(0));
  assert.equal(seen.utc, '1/1/1970, 12:00:00 AM');
  assert.equal(seen.zone, 'UTC');
  assert.deepEqual(seen.parts, new Intl.DateTimeFormat('en-US', { month: 'long', day: 'numeric', timeZone: 'UTC' }).formatToParts(0));
  assert.deepEqual(seen.sortedEn, names.slice().sort(new Intl.Collator('en-US').compare));
  assert.deepEqual(seen.sortedSv, names.slice().sort(new Intl.Collator('sv').compare));
  assert.deepEqual(seen.sortedNumeric, names.slice().sort(new Intl.Collator('en', { numeric: true }).compare));
  assert.deepEqual(seen.plural, ['zero', 'one', 'two', 'few']);
  assert.equal(seen.relative, 'hier');
  assert.equal(seen.list, 'a, b, and c');
  assert.equal(seen.region, 'Japan');
  assert.deepEqual(seen.words, ['Hello', 'wide', 'world']);
  assert.equal(seen.locale, 'zh-Hant-TW');
  assert.equal(seen.tag, '[object Intl.NumberFormat]');
  assert.equal(seen.units, true);
  assert.equal(seen.nfc, '\u00e9');
  assert.equal(seen.nfkd, 'fie\u0301');
  assert.equal(seen.lone, true);
  assert.equal(seen.ascii, 'plain');
  assert.equal(seen.reused, '7.0');
  assert.deepEqual(seen.errors, ['RangeError', 'TypeError', 'RangeError', 'RangeError', 'TypeError', 'TypeError']);

  // What needs the host at the top of a module fails as a production build would, saying what to do.
  const early = await counterVariant(t, { source: (text) => `${text}\nexport const label = (1234.5).toLocaleString('de-DE');\n` });
  const logs: string[] = [];
  const earlyPort = await serveDev(t, early.manifest, await readFile(early.engine.path), early.bundle, logs);
  assert.equal((await get(earlyPort, 'counter.test', '/hits')).status, 500);
  assert.ok(
    logs.some((line) => line.includes("Intl's format (number-format) is computed by the host") && line.includes('call it from fetch()')),
    logs.join('\n'),
  );
});

test("a response's content-length is the body's when the body is whole, and a streamed body that breaks the one it declared closes the connection: its extra bytes never reach the client", async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace(
        'return Response.json({ path, count })',
        `const slowly = (parts: string[]) => new ReadableStream({
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const part = parts.shift();
        if (part === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(part));
      },
    });
    // StarlingMonkey puts content-length: 6 in these headers; a framework's error path copies them.
    if (path === '/stale') return new Response('Internal Server Error', { status: 500, headers: new Response('cached').headers });
    const injected = 'HTTP/1.1 200 OK\\r\\ncontent-length: 9\\r\\n\\r\\nSMUGGLED!';
    if (path === '/long') return new Response(slowly(['ok', injected]), { headers: { 'content-length': '2' } });
    if (path === '/short') return new Response(slowly(['abc']), { headers: { 'content-length': '10' } });
    if (path === '/exact') return new Response(slowly(['ab', 'c']), { headers: { 'content-length': '3' } });
    if (path === '/invalid') return new Response(slowly(['abc']), { headers: { 'content-length': '3 bytes' } });
    return Response.json({ path, count })`,
      ),
  });
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs);
  assert.deepEqual(await get(port, 'counter.test', '/stale'), { status: 500, body: 'Internal Server Error' });
  assert.deepEqual(await get(port, 'counter.test', '/exact'), { status: 200, body: 'abc' });
  assert.deepEqual(await get(port, 'counter.test', '/invalid'), { status: 502, body: 'the capsule sent an invalid response\n' });
  const wire = async (requests: string[]) => {
    const socket = connect(port, '127.0.0.1');
    socket.write(requests.map((path) => `GET ${path} HTTP/1.1\r\nHost: counter.test\r\n\r\n`).join(''));
    const chunks: Buffer[] = [];
    for await (const chunk of socket) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString();
  };
  // Two requests on one connection, as a proxy that pools its connections to the host sends them.
  const long = await wire(['/long', '/hits']);
  assert.match(long, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(long.endsWith('\r\n\r\nok'), `the connection carried more than the declared body: ${JSON.stringify(long)}`);
  // Shorter than declared: the connection closes (the loop above ends) instead of waiting for the rest.
  const short = await wire(['/short', '/hits']);
  assert.ok(short.endsWith('\r\n\r\nabc') && short.includes('content-length: 10\r\n'), JSON.stringify(short));
  for (const expected of [
    'its content-length header is not one whole number of bytes',
    'its body is longer than the 2 bytes its content-length header says; the connection was closed',
    'its body ended after 3 of the 10 bytes its content-length header says; the connection was closed',
  ]) {
    assert.ok(
      logs.some((line) => line === `invalid response from the capsule: ${expected}`),
      `no log line "${expected}" in:\n${logs.join('\n')}`,
    );
  }
});

test('answers made from a string or Response.json go out with their bytes, headers and status; a header set seen again is cloned from a template, never mixed with another', async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request) {').replace(
        "if (request.method !== 'GET')",
        `const query = new URL(request.url).searchParams;
    if (path === '/text') return new Response(\`h\u00e9llo w\u00f6rld \u{1f600} \${'x'.repeat(9000)}.\`);
    if (path === '/json') return Response.json({ a: 1, b: [true, null] });
    if (path === '/json-init') {
      return Response.json([1], { status: 201, statusText: 'Made', headers: { 'x-a': '1', 'Content-Type': 'application/problem+json' } });
    }
    if (path === '/json-errors') {
      const errors: string[] = [];
      for (const make of [() => Response.json(undefined), () => Response.json({}, { status: 204 }), () => Response.json({ n: 1n })]) {
        try {
          make();
        } catch (error) {
          errors.push((error as Error).name);
        }
      }
      const json = Response.json({ z: 1 }, { headers: new Headers({ 'x-b': '2' }) });
      return Response.json({
        errors,
        headers: [...json.headers],
        instance: json instanceof Response && json.constructor === Response,
        text: await json.text(),
      });
    }
    if (path === '/read-first') {
      const response = new Response('read before it was returned');
      await response.text();
      return response;
    }
    if (path === '/cloned') {
      const response = new Response('cloned and returned', { status: 202 });
      await response.clone().text();
      return response;
    }
    if (path === '/subclass') {
      class Tagged extends Response {
        tag = 'mine';
      }
      const response = new Tagged('from a subclass', { headers: { 'x-tag': 'mine' } });
      return response instanceof Tagged ? response : new Response('not a Tagged', { status: 500 });
    }
    if (path === '/sized') return new Response('y'.repeat(Number(query.get('size'))), { headers: { 'x-sized': 'yes' } });
    if (path === '/set') {
      const n = query.get('n') ?? '';
      return new Response(\`set \${n}\`, { status: Number(query.get('status') ?? 200), headers: { 'x-set': n, 'x-same': 'same' } });
    }
    if (request.method !== 'GET')`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);

  const text = await exchange(port, '/text');
  assert.equal(text.body, `h\u00e9llo w\u00f6rld \u{1f600} ${'x'.repeat(9000)}.`);
  assert.equal(text.headers['content-type'], 'text/plain;charset=UTF-8');
  assert.equal(text.headers['content-length'], String(Buffer.byteLength(text.body)));
  const head = await exchange(port, '/text', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');

  const json = await exchange(port, '/json');
  assert.deepEqual([json.status, json.headers['content-type'], json.body], [200, 'application/json', '{"a":1,"b":[true,null]}']);
  const init = await exchange(port, '/json-init');
  assert.deepEqual(
    [init.status, init.headers['content-type'], init.headers['x-a'], init.body],
    [201, 'application/problem+json', '1', '[1]'],
  );
  assert.deepEqual(JSON.parse((await exchange(port, '/json-errors')).body), {
    errors: ['TypeError', 'TypeError', 'TypeError'],
    headers: [
      ['content-length', '7'],
      ['content-type', 'application/json'],
      ['x-b', '2'],
    ],
    instance: true,
    text: '{"z":1}',
  });

  // A body the capsule read itself is gone, as in Workers; one it read a clone of is whole.
  assert.equal((await exchange(port, '/read-first')).status, 500);
  assert.deepEqual(await get(port, 'counter.test', '/cloned'), { status: 202, body: 'cloned and returned' });
  const subclass = await exchange(port, '/subclass');
  assert.deepEqual([subclass.status, subclass.headers['x-tag'], subclass.body], [200, 'mine', 'from a subclass']);

  // More header sets than are kept as templates, each asked for three times, then the first again.
  for (let n = 0; n < 70; n++) {
    for (let time = 0; time < 3; time++) {
      const status = time === 2 ? 203 : 200;
      const reply = await exchange(port, `/set?n=${n}&status=${status}`);
      assert.deepEqual(
        [reply.status, reply.headers['x-set'], reply.headers['x-same'], reply.body],
        [status, String(n), 'same', `set ${n}`],
        `set ${n}, time ${time}`,
      );
    }
  }
  // Bodies over the 64 KiB the host sends whole go out with the length they declare: the same
  // headers with other lengths, each appended to the template's clone, or one length in a row,
  // kept in the template itself.
  for (const size of [70_000, 70_001, 70_002, 70_002, 70_002, 70_000, 80_000, 5]) {
    const sized = await exchange(port, `/sized?size=${size}`);
    assert.deepEqual(
      [sized.headers['content-length'], sized.headers['transfer-encoding'], sized.headers['x-sized'], sized.body.length],
      [String(size), undefined, 'yes', size],
      `size ${size}`,
    );
  }
  const again = await exchange(port, '/set?n=0');
  assert.deepEqual([again.headers['x-set'], again.body], ['0', 'set 0']);
});

test('Response.clone(), which StarlingMonkey lacks, gives two readable bodies, streamed ones too, and the original can still be returned; bytes() reads a body', async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request) {').replace(
        "if (request.method !== 'GET')",
        `if (path === '/clones') {
      const original = new Response(request.body, { status: 201, headers: { 'x-kind': 'posted' } });
      const first = original.clone();
      const second = first.clone();
      first.headers.set('x-kind', 'changed');
      const texts = [await first.text(), await second.text()];
      let again = '';
      try {
        first.clone();
      } catch (error) {
        again = String(error);
      }
      const original2 = new Response('kept');
      await original2.clone().bytes();
      if (request.headers.get('x-return') === 'original') return original;
      return Response.json({
        texts,
        status: second.status,
        kind: original.headers.get('x-kind'),
        again,
        used: [original.bodyUsed, first.bodyUsed],
        bytes: [...(await new Request('http://counter.test/', { method: 'POST', body: 'hi' }).bytes())],
        kept: await original2.text(),
        empty: new Response(null, { status: 204 }).clone().body,
      });
    }
    if (request.method !== 'GET')`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const post = (headers: Record<string, string>) => postInTwo(port, '/clones', ['posted ', 'body'], headers);
  const reply = await post({});
  assert.equal(reply.status, 200, reply.body);
  assert.deepEqual(JSON.parse(reply.body), {
    texts: ['posted body', 'posted body'],
    status: 201,
    kind: 'posted',
    again: 'TypeError: Response.clone: the body has already been read',
    used: [false, true],
    bytes: [104, 105],
    kept: 'kept',
    empty: null,
  });
  // The original, cloned twice over, is still whole when the capsule returns it.
  assert.deepEqual(await post({ 'x-return': 'original' }), { status: 201, body: 'posted body' });
});

/** A POST of `body` with `headers`: the status, headers and the body's bytes. */
function postBytes(
  port: number,
  path: string,
  body: Uint8Array,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      { host: '127.0.0.1', port, path, method: 'POST', headers: { ...headers, host: 'counter.test' }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

test("a multipart body's files reach a capsule with their exact bytes, and a FormData it serialises keeps them; StarlingMonkey's parser gave each byte's decimal digits", async (t) => {
  const dev = await counterVariant(t, {
    // Hashing about 1 MB, and a 300 KB FormData made, sent and read back twice, take more than
    // micro's 50 ms on a fresh instance.
    manifest: (text) => text.replace('cpu = "micro"', 'cpu = "large"'),
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request) {').replace(
        "if (request.method !== 'GET')",
        `if (path === '/form') {
      const sha256 = async (blob) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()))].map((byte) => byte.toString(16).padStart(2, '0')).join('');
      const describe = async (form) => {
        const entries = [];
        for (const [name, value] of form) entries.push(typeof value === 'string' ? { name, value } : { name, file: value.name, type: value.type, size: value.size, sha256: await sha256(value) });
        return entries;
      };
      const posted = await describe(await request.formData());
      const bytes = new Uint8Array(300001);
      for (let i = 0; i < 256; i++) bytes[i] = i;
      for (let n = 256; n < bytes.length; n *= 2) bytes.copyWithin(n, 0, n);
      const made = new FormData();
      made.append('note', 'café ✓');
      made.append('blob', new Blob([bytes]));
      made.append('file', new File([bytes.subarray(0, 256)], 'bytes.bin', { type: 'application/octet-stream' }));
      if (request.headers.get('x-answer') === 'serialised') return new Response(made);
      const parsed = await describe(await new Request('http://counter.test/', { method: 'POST', body: made }).formData());
      const answered = await describe(await new Response(made).formData());
      return Response.json({ posted, parsed, answered });
    }
    if (request.method !== 'GET')`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

  // Every byte value, then a line that starts like the delimiter but is not it; then 400 KB at random.
  const boundary = 'stratum-boundary-7Hq2';
  const binary = Buffer.concat([
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    Buffer.from(`\r\n--${boundary.slice(0, 9)}\r\n`),
    Buffer.from([0, 0x80, 0xff]),
  ]);
  const big = randomBytes(400_000);
  const csv = Buffer.from('a,b,c\r\n'.repeat(2000));
  const part = (disposition: string, type: string | undefined, body: Uint8Array) =>
    Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; ${disposition}\r\n${type ? `Content-Type: ${type}\r\n` : ''}\r\n`),
      body,
      Buffer.from('\r\n'),
    ]);
  const body = Buffer.concat([
    part('name="greeting"', undefined, Buffer.from('héllo')),
    part('name="f"; filename="f.txt"', 'text/plain', Buffer.from('file-content\n')),
    part('name="binary"; filename="all.bin"', 'application/octet-stream', binary),
    part('name="big"; filename="big.bin"', undefined, big),
    part('name="empty"; filename=""', 'application/octet-stream', new Uint8Array()),
    part('name="csv"; filename="a.csv"', 'text/csv', csv),
    Buffer.from(`--${boundary}--\r\n`),
  ]);
  const reply = await postBytes(port, '/form', body, { 'content-type': `multipart/form-data; boundary=${boundary}` });
  assert.equal(reply.status, 200, reply.body.toString());

  const made = new Uint8Array(300001).map((_, i) => i & 255);
  const madeEntries = [
    { name: 'note', value: 'café ✓' },
    { name: 'blob', file: 'blob', type: 'application/octet-stream', size: made.length, sha256: sha256(made) },
    { name: 'file', file: 'bytes.bin', type: 'application/octet-stream', size: 256, sha256: sha256(made.subarray(0, 256)) },
  ];
  assert.deepEqual(JSON.parse(reply.body.toString()), {
    posted: [
      { name: 'greeting', value: 'héllo' },
      { name: 'f', file: 'f.txt', type: 'text/plain', size: 13, sha256: sha256(Buffer.from('file-content\n')) },
      { name: 'binary', file: 'all.bin', type: 'application/octet-stream', size: binary.length, sha256: sha256(binary) },
      { name: 'big', file: 'big.bin', type: 'text/plain', size: big.length, sha256: sha256(big) },
      { name: 'empty', file: '', type: 'application/octet-stream', size: 0, sha256: sha256(new Uint8Array()) },
      { name: 'csv', file: 'a.csv', type: 'text/csv', size: csv.length, sha256: sha256(csv) },
    ],
    parsed: madeEntries,
    answered: madeEntries,
  });

  // What the capsule serialises, read by Node.js's own parser.
  const serialised = await postBytes(port, '/form', body, {
    'content-type': `multipart/form-data; boundary=${boundary}`,
    'x-answer': 'serialised',
  });
  assert.equal(serialised.status, 200, serialised.body.toString());
  const form = await new Response(serialised.body, { headers: { 'content-type': String(serialised.headers['content-type']) } }).formData();
  assert.equal(form.get('note'), 'café ✓');
  const [blob, file] = [form.get('blob'), form.get('file')] as File[];
  assert.deepEqual([blob?.name, file?.name, file?.type], ['blob', 'bytes.bin', 'application/octet-stream']);
  assert.equal(sha256(new Uint8Array(await (blob as File).arrayBuffer())), sha256(made));
  assert.equal(sha256(new Uint8Array(await (file as File).arrayBuffer())), sha256(made.subarray(0, 256)));
});

test('an Error given to console is logged with its name, message, frames at the sources and causes, not as StarlingMonkey prints its source', async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace(
        'return Response.json({ path, count })',
        `if (path === '/log') console.error('failed:', new TypeError('outer', { cause: new Error('root') }), 42);
    return Response.json({ path, count })`,
      ),
  });
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs);
  assert.equal((await get(port, 'counter.test', '/log')).status, 200);
  const text = logs.join('\n');
  // The bundle's frames, as this runtime has no source map to take them to src/index.ts.
  assert.match(text, /^failed: TypeError: outer\nfetch@src\/index\.ts\.bundle\.js:\d+:\d+\n/m, text);
  assert.match(text, /^caused by: Error: root\nfetch@src\/index\.ts\.bundle\.js:\d+:\d+ 42$/m, text);
  assert.doesNotMatch(text, /new TypeError\(|engine\.js/, text);
});

test('headers that direct a proxy in front of the host (X-Accel-Redirect, X-Sendfile) are dropped from a response, with one log line', async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace(
        'return Response.json({ path, count })',
        `return new Response('mine', { headers: { 'X-Accel-Redirect': '/internal/other-tenant', 'x-sendfile': '/etc/passwd', 'x-kept': String(count) } })`,
      ),
  });
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs);
  for (const count of ['1', '2']) {
    const headers = await new Promise<Record<string, string | string[] | undefined>>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/a', headers: { host: 'counter.test' }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers));
      })
        .on('error', reject)
        .end();
    });
    assert.equal(headers['x-kept'], count);
    assert.equal(headers['x-accel-redirect'], undefined);
    assert.equal(headers['x-sendfile'], undefined);
  }
  assert.deepEqual(
    logs.filter((line) => line.includes('directs a proxy')),
    ['the x-accel-redirect header of a response was dropped: it directs a proxy, not a client'],
  );
});

test('a library gets its worker or browser build, process.env.NODE_ENV, and a MessageChannel while it loads, as in Workers', async (t) => {
  // A library as React's server renderer is: a Node.js build that a capsule cannot bundle, and a
  // browser build that creates a MessageChannel when it loads.
  const library = {
    'node_modules/lib/package.json': JSON.stringify({
      name: 'lib',
      type: 'module',
      exports: { node: './node.js', worker: './browser.js', browser: './browser.js', default: './node.js' },
    }),
    'node_modules/lib/node.js': "import { createHash } from 'node:crypto';\nexport const build = createHash('sha1') && 'node';\n",
    'node_modules/lib/browser.js': `export const build = 'browser';
export const mode = process.env.NODE_ENV;
export const received = [];
const channel = new MessageChannel();
channel.port1.onmessage = (event) => received.push(event.data);
channel.port2.postMessage({ n: 1 });
channel.port2.postMessage({ n: 2 });
`,
  };
  const dev = await counterVariant(t, {
    files: library,
    source: (text) =>
      `import { build, mode, received } from 'lib';\n${text
        .replace('fetch(request) {', 'async fetch(request) {')
        .replace(
          'return Response.json({ path, count })',
          'await new Promise((resolve) => setTimeout(resolve, 10));\n    return Response.json({ build, mode, received })',
        )}`,
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const reply = await get(port, 'counter.test', '/hits');
  assert.equal(reply.status, 200, reply.body);
  assert.deepEqual(JSON.parse(reply.body), { build: 'browser', mode: 'development', received: [{ n: 1 }, { n: 2 }] });
});

test("top-level await, which stratum dev's script bundle cannot run, is refused with a hint that names --full-build", async (t) => {
  const refused = await counterVariant(t, { source: (text) => `${text}\nexport const started = await Promise.resolve(1);\n` }).catch(
    (error: unknown) => error,
  );
  assert.ok(isStratumError(refused) && refused.code === 'BUILD_BUNDLE_FAILED', String(refused));
  assert.match(refused.details.join('\n'), /\/src\/index\.ts:\d+:\d+: Top-level await/);
  assert.match(refused.hint ?? '', /--full-build/);
});

test('\\p{...} in a regular expression literal works in a capsule, with the u or the v flag (the build lowers it to ranges); a property of strings is refused; in a pattern made at run time it is reported with what it means', async (t) => {
  const literal = await counterVariant(t, {
    source: (text) =>
      text.replace(
        'return Response.json({ path, count })',
        "return Response.json({ word: /^[\\p{L}\\p{N}]+$/u.test('héllo123'), bare: 'a1-b2 ç'.replace(/\\P{L}/gu, ''), greek: /\\p{Script=Greek}+/u.exec('abc αβγ')?.[0], sets: ['A', 'a', 'é', 'Σ', '1'].map((c) => /[\\p{L}--[a-z]]/v.test(c)), upper: 'aΣσB'.replace(/[\\p{Lu}&&\\p{Script=Greek}]/gv, '_') })",
      ),
  });
  assert.doesNotMatch(literal.bundle, /\\p\{/);
  const port = await serveDev(t, literal.manifest, await readFile(literal.engine.path), literal.bundle);
  assert.deepEqual(await get(port, 'counter.test', '/hits'), {
    status: 200,
    body: '{"word":true,"bare":"abç","greek":"αβγ","sets":[true,false,true,true,false],"upper":"a_σB"}',
  });

  // A property of strings has no ranges: the build refuses it, at its line.
  const strings = await counterVariant(t, {
    source: (text) =>
      text.replace('return Response.json({ path, count })', 'return Response.json({ path, count, emoji: /^\\p{RGI_Emoji}$/v.test(path) })'),
  }).catch((error: unknown) => error);
  assert.ok(isStratumError(strings) && strings.code === 'BUILD_BUNDLE_FAILED', String(strings));
  assert.match(
    strings.details.join('\n'),
    /^src\/index\.ts:\d+:\d+: \/\^\\p\{RGI_Emoji\}\$\/v names \\p\{RGI_Emoji\}, a property of strings/,
  );
  assert.match(strings.hint ?? '', /emoji-regex/);

  const made = await counterVariant(t, {
    source: (text) => `(globalThis as { letters?: RegExp }).letters = new RegExp('\\\\p{L}', 'u');\n${text}`,
  });
  const logs: string[] = [];
  const failing = await serveDev(t, made.manifest, await readFile(made.engine.path), made.bundle, logs);
  assert.equal((await get(failing, 'counter.test', '/hits')).status, 500);
  assert.ok(
    logs.some((line) => line.startsWith('StarlingMonkey is built without Unicode data')),
    logs.join('\n'),
  );
});

test("an import of Node.js's built-in modules is refused with a hint that the capsule runs on StarlingMonkey, not Node.js", async (t) => {
  for (const specifier of ['node:buffer', 'crypto']) {
    const refused = await counterVariant(t, {
      source: (text) => `import * as builtin from '${specifier}';\n(globalThis as { builtin?: unknown }).builtin = builtin;\n${text}`,
    }).catch((error: unknown) => error);
    assert.ok(isStratumError(refused) && refused.code === 'BUILD_BUNDLE_FAILED', String(refused));
    assert.match(refused.details.join('\n'), new RegExp(`src/index\\.ts:1:\\d+: Could not resolve "${specifier}"`));
    assert.match(refused.hint ?? '', new RegExp(`not on Node\\.js: "${specifier}"`));
  }
});

test('streams iterate with for await, come from iterables, and decode and encode text as they flow; URL.canParse and URL.parse answer', async (t) => {
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request) {').replace(
        "if (request.method !== 'GET')",
        `if (path === '/streams') {
      let posted = 0;
      if (request.body) for await (const chunk of request.body) posted += chunk.length;
      // 'é' and the emoji split across chunks.
      const bytes = new TextEncoder().encode('héllo 😀');
      let decoded = '';
      for await (const piece of ReadableStream.from([bytes.subarray(0, 2), bytes.subarray(2, 8), bytes.subarray(8)]).pipeThrough(new TextDecoderStream())) decoded += piece;
      const encoded = await new Response(ReadableStream.from(['a', '\\ud83d', '\\ude00']).pipeThrough(new TextEncoderStream())).text();
      let cancelled = false;
      const endless = new ReadableStream({ pull(controller) { controller.enqueue(1); }, cancel() { cancelled = true; } });
      for await (const value of endless) if (value) break;
      return Response.json({ posted, decoded, encoded, cancelled, canParse: [URL.canParse('/a', 'http://b/'), URL.canParse('nope')], parse: URL.parse('nope') });
    }
    if (request.method !== 'GET')`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const reply = await postInTwo(port, '/streams', ['twelve bytes', ' and more']);
  assert.equal(reply.status, 200, reply.body);
  assert.deepEqual(JSON.parse(reply.body), {
    posted: 21,
    decoded: 'héllo 😀',
    encoded: 'a😀',
    cancelled: true,
    canParse: [true, false],
    parse: null,
  });
});

test('ctx.waitUntil, as in Workers, lets work go on after the response is sent; a rejection is logged; env is empty', async (t) => {
  // The background work waits until a key is set, which the test does only once it has the
  // response: had the response waited for the work, it would never have come.
  const dev = await counterVariant(t, {
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request, env, ctx) {').replace(
        "if (request.method === 'DELETE')",
        `if (path === '/go') {
      kv.set('go', 'yes');
      return new Response('set');
    }
    if (path === '/later') {
      ctx.waitUntil((async () => {
        while (!kv.has('go')) await new Promise((resolve) => setTimeout(resolve, 20));
        console.log('background saw go');
      })());
      ctx.waitUntil(Promise.reject(new Error('background failed')));
      return Response.json({ env });
    }
    if (request.method === 'DELETE')`,
      ),
  });
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs);
  assert.deepEqual(await get(port, 'counter.test', '/later'), { status: 200, body: '{"env":{}}' });
  assert.deepEqual(await get(port, 'counter.test', '/go'), { status: 200, body: 'set' });
  for (let tries = 0; tries < 250 && !logs.includes('background saw go'); tries++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(logs.includes('background saw go'), logs.join('\n'));
  assert.ok(
    logs.some((line) => line.startsWith('waitUntil: Error: background failed')),
    logs.join('\n'),
  );
});

test('a SQL parameter the capability cannot bind is refused naming its place and what to bind instead', async (t) => {
  const dev = await sqlCounterVariant(
    t,
    `db.execute('CREATE TABLE IF NOT EXISTS seen (at TEXT, what TEXT)');
    const refused = [new Date(0), { at: 1 }].map((value) => {
      try {
        db.execute('INSERT INTO seen VALUES (?, ?)', ['now', value as never]);
        return 'bound';
      } catch (error) {
        return String(error);
      }
    });
    return Response.json({ refused })`,
  );
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle);
  const reply = await get(port, 'counter.test', '/hits');
  assert.equal(reply.status, 200, reply.body);
  assert.deepEqual(JSON.parse(reply.body), {
    refused: [
      'TypeError: db.execute(sql, params): params[1] is a Date (bind date.toISOString() or date.getTime()); params must be an array of string, number, bigint, boolean, null or Uint8Array values, one for each ? placeholder in order',
      'TypeError: db.execute(sql, params): params[1] is an object (bind JSON.stringify(value) for JSON); params must be an array of string, number, bigint, boolean, null or Uint8Array values, one for each ? placeholder in order',
    ],
  });
});

test('outbound fetches run side by side, and a fetch in waitUntil does not hold the response back', async (t) => {
  // Answers /pair requests only once two have arrived: fetches made one after another would
  // never be answered. Answers /held when the test lets it.
  const waiting: (() => void)[] = [];
  let letGo: (() => void) | undefined;
  const held = new Promise<void>((resolve) => {
    letGo = resolve;
  });
  const api = createServer((req, res) => {
    if (req.url === '/held') {
      void held.then(() => res.end('released'));
      return;
    }
    waiting.push(() => res.end(`pair ${req.url}`));
    if (waiting.length === 2) for (const answer of waiting.splice(0)) answer();
  });
  const origin = await listenForCapsule(t, api);
  const dev = await counterVariant(t, {
    manifest: grantOutbound(origin),
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request, env, ctx) {').replace(
        'return Response.json({ path, count })',
        `if (path === '/both') {
      const texts = await Promise.all(['/pair?a', '/pair?b'].map((where) => fetch('${origin}' + where).then((reply) => reply.text())));
      return Response.json({ texts });
    }
    ctx.waitUntil(fetch('${origin}/held').then((reply) => reply.text()).then((text) => console.log('background got', text)));
    return Response.json({ path, count })`,
      ),
  });
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs, {
    capabilityConfig: { outbound: LOOPBACK },
  });
  assert.deepEqual(await get(port, 'counter.test', '/both'), { status: 200, body: '{"texts":["pair /pair?a","pair /pair?b"]}' });
  // Answered while its background fetch is still held.
  assert.deepEqual(await get(port, 'counter.test', '/hits'), { status: 200, body: '{"path":"/hits","count":1}' });
  assert.ok(!logs.includes('background got released'), logs.join('\n'));
  letGo?.();
  for (let tries = 0; tries < 250 && !logs.includes('background got released'); tries++)
    await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(logs.includes('background got released'), logs.join('\n'));
});

test("an outbound response's body streams through the capsule as it arrives, piped or read chunk by chunk", async (t) => {
  // Sends its first part, and the rest only once the test's client has received that first part
  // through the capsule (or after 15 s, which the test then fails on): a host that buffered the
  // whole upstream body before handing it to the capsule would hold the first part back.
  const releases: (() => void)[] = [];
  // 5 MiB, past what the host holds for a guest that reads slower than the server sends.
  const large = Buffer.alloc(5 * 1024 * 1024, 'abcdefghijklmnopqrstuvwxyz');
  const api = createServer((req, res) => {
    if (req.url === '/large' || req.url === '/huge') {
      res.end(req.url === '/large' ? large : Buffer.concat([large, large]));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first;');
    const timer = setTimeout(() => res.end('late'), 15_000);
    releases.push(() => {
      clearTimeout(timer);
      res.end('second');
    });
  });
  const origin = await listenForCapsule(t, api);
  const dev = await counterVariant(t, {
    manifest: grantOutbound(origin),
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request) {').replace(
        'return Response.json({ path, count })',
        `if (path === '/piped') return fetch('${origin}/stream');
    if (path === '/large') return fetch('${origin}/large');
    if (path === '/huge') {
      try {
        return new Response(String((await (await fetch('${origin}/huge')).arrayBuffer()).byteLength));
      } catch (error) {
        return new Response(\`failed: \${error}\`, { status: 502 });
      }
    }
    if (path === '/read') {
      const reader = (await fetch('${origin}/stream')).body.getReader();
      const encoder = new TextEncoder();
      const decoder = new TextDecoder();
      return new Response(new ReadableStream({
        async pull(controller) {
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(encoder.encode(decoder.decode(value).toUpperCase()));
        },
      }));
    }
    return Response.json({ path, count })`,
      ),
  });
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs, {
    capabilityConfig: { outbound: { ...LOOPBACK, max_response_size: '8mb' } },
  });
  const streamed = (path: string, firstPart: string) =>
    new Promise<string>((resolve, reject) => {
      const outgoing = request({ host: '127.0.0.1', port, path, headers: { host: 'counter.test' }, agent: false }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => {
          body += chunk.toString();
          if (body === firstPart) releases.shift()?.();
        });
        res.on('end', () => resolve(body));
      });
      outgoing.on('error', reject);
      outgoing.end();
    });
  assert.equal(await streamed('/piped', 'first;'), 'first;second');
  assert.equal(await streamed('/read', 'FIRST;'), 'FIRST;SECOND');
  const whole = await new Promise<Buffer>((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path: '/large', headers: { host: 'counter.test' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(Buffer.concat(chunks)));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
  assert.ok(whole.equals(large), `${whole.length} bytes came through, of ${large.length}`);
  // Over the host's max_response_size: the head came, so the capsule's read of the body fails.
  const huge = await get(port, 'counter.test', '/huge');
  assert.equal(huge.status, 502, huge.body);
  assert.match(
    huge.body,
    /^failed: TypeError: reading the body of http:\/\/127\.0\.0\.1:\d+\/huge failed: IO error reading from incoming response body; the reason is in the capsule's log$/,
  );
  assert.ok(
    logs.some((line) => /response body failed: the response from http:\/\/127\.0\.0\.1:\d+ is over 8000000 bytes/.test(line)),
    logs.join('\n'),
  );
});

test('a fetch goes on while the capsule waits for the rest of its request body', async (t) => {
  // The client sends the second part of its body only once the capsule's fetch has reached this
  // server (or after 10 s, which fails the test): a capsule thread blocked waiting for the body
  // would never send the fetch.
  let seen: () => void = () => {};
  const fetchArrived = new Promise<'fetch'>((resolve) => {
    seen = () => resolve('fetch');
  });
  const api = createServer((_req, res) => {
    seen();
    res.end('upstream');
  });
  const origin = await listenForCapsule(t, api);
  const dev = await counterVariant(t, {
    manifest: grantOutbound(origin),
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request) {').replace(
        "if (request.method !== 'GET')",
        `if (path === '/upload') {
      const upstream = fetch('${origin}/').then((reply) => reply.text());
      const body = await request.text();
      return Response.json({ body, upstream: await upstream });
    }
    if (request.method !== 'GET')`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, [], {
    capabilityConfig: { outbound: LOOPBACK },
  });
  let secondSentAfter: string | undefined;
  const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path: '/upload', method: 'POST', headers: { host: 'counter.test' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    outgoing.on('error', reject);
    outgoing.write('part one, ');
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000).unref());
    void Promise.race([fetchArrived, timeout]).then((which) => {
      secondSentAfter = which;
      outgoing.end('part two');
    });
  });
  assert.deepEqual(reply, { status: 200, body: '{"body":"part one, part two","upstream":"upstream"}' });
  assert.equal(secondSentAfter, 'fetch', 'the fetch reached the server only after the whole body was in');
});

test("a fetch the capsule aborted is ended on the host when the request ends, before or after its response's head", async (t) => {
  // Each request here is held open by the server; the test waits for the host to close it (or
  // 10 s, which fails the test: the host's own outbound timeout is 60 s).
  const closed: Record<string, Promise<'closed'>> = {};
  const api = createServer((req, res) => {
    closed[req.url ?? ''] = new Promise((resolve) => res.on('close', () => resolve('closed')));
    if (req.url === '/head') res.write('part of a body');
  });
  const origin = await listenForCapsule(t, api);
  const dev = await counterVariant(t, {
    manifest: grantOutbound(origin),
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request) {').replace(
        'return Response.json({ path, count })',
        `if (path === '/before' || path === '/head') {
      try {
        const reply = await fetch('${origin}' + path, { signal: AbortSignal.timeout(200) });
        await reply.text();
        return new Response('not aborted');
      } catch (error) {
        return new Response(String(error));
      }
    }
    return Response.json({ path, count })`,
      ),
  });
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs, {
    capabilityConfig: { outbound: { ...LOOPBACK, timeout: '60s' } },
  });
  for (const path of ['/before', '/head']) {
    const reply = await get(port, 'counter.test', path);
    assert.match(reply.body, /abort|timed out|timeout/i, `${path}: ${reply.body}`);
    const outcome = await Promise.race([closed[path], new Promise((resolve) => setTimeout(() => resolve('still open'), 10_000).unref())]);
    assert.equal(outcome, 'closed', `${path}: the host kept the aborted request open`);
  }
  assert.ok(!logs.some((line) => line.includes('request failed')), logs.join('\n'));
});

test("an outbound request's body reaches the server: a string with its length, a stream as it is written", async (t) => {
  // The server answers with what it received. The capsule's POST bodies are written after
  // wasi:http's `handle` (StarlingMonkey sends the head first), which a host must wait for.
  const api = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () =>
      res.end(
        JSON.stringify({
          body: Buffer.concat(chunks).toString(),
          length: req.headers['content-length'] ?? req.headers['transfer-encoding'],
        }),
      ),
    );
  });
  const origin = await listenForCapsule(t, api);
  const dev = await counterVariant(t, {
    manifest: grantOutbound(origin),
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request) {').replace(
        "if (request.method !== 'GET')",
        `if (path === '/json') return fetch('${origin}/', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ hello: 'wörld' }) });
    if (path === '/piped') return fetch('${origin}/', { method: 'PUT', body: request.body, duplex: 'half' });
    if (path === '/made') {
      let part = 0;
      const body = new ReadableStream({
        async pull(controller) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          if (part++ < 3) controller.enqueue(new TextEncoder().encode('part' + part + ';'));
          else controller.close();
        },
      });
      return fetch('${origin}/', { method: 'POST', body, duplex: 'half' });
    }
    if (request.method !== 'GET')`,
      ),
  });
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, [], {
    capabilityConfig: { outbound: LOOPBACK },
  });
  const json = '{"hello":"wörld"}';
  assert.deepEqual(JSON.parse((await postInTwo(port, '/json', ['', ''])).body), { body: json, length: String(Buffer.byteLength(json)) });
  assert.deepEqual(JSON.parse((await postInTwo(port, '/piped', ['posted ', 'in two'])).body), { body: 'posted in two', length: 'chunked' });
  assert.deepEqual(JSON.parse((await postInTwo(port, '/made', ['', ''])).body), { body: 'part1;part2;part3;', length: 'chunked' });
});

test("fetch() follows redirects as the Fetch standard does, each hop checked against the manifest's origins", async (t) => {
  const seen: string[] = [];
  const api = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${body} ${req.headers.authorization ?? '-'}`);
      const [, kind, rest] = /^\/(\w+)(.*)$/.exec(req.url ?? '') ?? [];
      const to = (status: number, location: string) => {
        res.writeHead(status, { location });
        res.end('moved');
      };
      if (kind === 'chain') to(302, '/hop');
      else if (kind === 'hop') to(301, `${rest || '/final'}`);
      else if (kind === 'see') to(303, '/final');
      else if (kind === 'keep') to(307, '/final');
      else if (kind === 'loop') to(302, '/loop');
      else if (kind === 'away') to(302, 'http://169.254.169.254/latest/meta-data/');
      else res.end(`final ${req.method} ${body}`);
    });
  });
  const origin = await listenForCapsule(t, api);
  const dev = await counterVariant(t, {
    manifest: grantOutbound(origin),
    source: (text) =>
      text.replace('fetch(request) {', 'async fetch(request) {').replace(
        "if (request.method !== 'GET')",
        `if (path.startsWith('/try/')) {
      const [, , kind, method, mode] = path.split('/');
      try {
        const reply = await fetch('${origin}/' + kind, {
          method,
          redirect: mode || 'follow',
          headers: { authorization: 'Bearer secret' },
          ...(method === 'GET' ? {} : { body: 'payload' }),
        });
        return Response.json({ status: reply.status, url: reply.url.replace('${origin}', ''), redirected: reply.redirected, text: await reply.text() });
      } catch (error) {
        return Response.json({ error: String(error).replace('${origin}', '') });
      }
    }
    if (request.method !== 'GET')`,
      ),
  });
  const logs: string[] = [];
  const port = await serveDev(t, dev.manifest, await readFile(dev.engine.path), dev.bundle, logs, {
    capabilityConfig: { outbound: LOOPBACK },
    // More than the 20 hops a fetch follows.
    limits: { outboundRequests: 40 },
  });
  const attempt = async (path: string) => JSON.parse((await get(port, 'counter.test', path)).body) as Record<string, unknown>;

  assert.deepEqual(await attempt('/try/chain/GET'), { status: 200, url: '/final', redirected: true, text: 'final GET ' });
  assert.deepEqual(seen.splice(0), ['GET /chain  Bearer secret', 'GET /hop  Bearer secret', 'GET /final  Bearer secret']);
  // 303, and 301/302 after a POST, become a GET without the body; 307 repeats the method and body.
  assert.deepEqual(await attempt('/try/see/PUT'), { status: 200, url: '/final', redirected: true, text: 'final GET ' });
  assert.deepEqual(await attempt('/try/chain/POST'), { status: 200, url: '/final', redirected: true, text: 'final GET ' });
  assert.deepEqual(await attempt('/try/keep/POST'), { status: 200, url: '/final', redirected: true, text: 'final POST payload' });
  seen.splice(0);
  assert.deepEqual(await attempt('/try/chain/GET/manual'), { status: 302, url: '/chain', redirected: false, text: 'moved' });
  assert.match(
    String((await attempt('/try/chain/GET/error')).error),
    /^TypeError: fetch\(\/chain\) was redirected to \/hop, and its redirect mode is "error"$/,
  );
  assert.match(String((await attempt('/try/loop/GET')).error), /^TypeError: fetch\(\/loop\) was redirected more than 20 times$/);
  // A hop to an origin the manifest does not grant is refused by the host, named.
  assert.match(
    String((await attempt('/try/away/GET')).error),
    /^TypeError: fetch\(http:\/\/169\.254\.169\.254\/latest\/meta-data\/\) failed: the host refused it/,
  );
  assert.ok(
    logs.some((line) => /request refused: http:\/\/169\.254\.169\.254 is not one of the manifest's outbound origins/.test(line)),
    logs.join('\n'),
  );
});
