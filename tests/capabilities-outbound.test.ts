import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { test } from 'node:test';
import { brotliCompressSync, deflateSync, gzipSync, zstdCompressSync } from 'node:zlib';
import { WitError } from '../packages/host/src/capabilities/contract.ts';
import { type ArrivingBody, OutboundError, outboundFetch } from '../packages/host/src/capabilities/outbound/fetch.ts';
import outbound from '../packages/host/src/capabilities/outbound/index.ts';
import { checkOutbound, OutboundRefused } from '../packages/host/src/capabilities/outbound/policy.ts';
import wasi from '../packages/host/src/capabilities/wasi/index.ts';
import { Fields, IncomingResponse, OutgoingRequest } from '../packages/host/src/wasi/http-types.ts';
import type { IoError } from '../packages/host/src/wasi/io.ts';
import { configureContext, manifestWith, prepareContext, witError } from './capabilities-support.ts';

/** A 127.0.0.1 server that counts connections, so a test can prove none was made. */
async function localServer(t: { after(fn: () => unknown): void }, handler: Parameters<typeof createServer>[1]) {
  const server: Server = createServer(handler);
  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const port = (server.address() as AddressInfo).port;
  return { port, origin: `http://127.0.0.1:${port}`, connections: () => connections };
}

const LOOPBACK = ['127.0.0.1/32'];

/** Reads a streaming response body to its end, as a guest would; a stream error rejects with its message. */
async function bodyText(body: ArrivingBody): Promise<string> {
  const chunks: Uint8Array[] = [];
  for (;;) {
    let chunk: Uint8Array;
    try {
      chunk = body.read(64 * 1024);
    } catch (error) {
      const { tag, val } = error as { tag: string; val?: IoError };
      if (tag === 'closed') return Buffer.concat(chunks).toString();
      throw new Error(val?.toDebugString() ?? tag);
    }
    if (chunk.byteLength > 0) chunks.push(chunk);
    else await body.arrival().promise;
  }
}

async function refused(work: () => Promise<unknown>, reason: OutboundRefused['reason'], pattern?: RegExp) {
  await assert.rejects(work, (error: unknown) => {
    assert.ok(error instanceof OutboundRefused, String(error));
    assert.equal(error.reason, reason, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

test('an allowed origin on an explicitly allowed loopback address works, with the body both ways', async (t) => {
  const server = await localServer(t, (request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      response.setHeader('x-seen', `${request.method} ${request.url} ${request.headers.host} ${body}`);
      response.end('pong');
    });
  });
  const result = await outboundFetch(
    { method: 'POST', url: `${server.origin}/ping?x=1`, headers: [['x-test', '1']], body: new TextEncoder().encode('hello') },
    { origins: [server.origin], allowAddresses: LOOPBACK },
  );
  assert.equal(result.status, 200);
  assert.equal(await bodyText(result.body), 'pong');
  // The response's length reaches the guest; its framing does not.
  assert.equal(new TextDecoder().decode(result.headers.find(([name]) => name === 'content-length')?.[1]), '4');
  assert.ok(!result.headers.some(([name]) => name === 'transfer-encoding' || name === 'connection'));
  const seen = result.headers.find(([name]) => name === 'x-seen')?.[1];
  assert.equal(new TextDecoder().decode(seen), `POST /ping?x=1 127.0.0.1:${server.port} hello`);
});

test("a request without a User-Agent gets the host's; one with its own keeps it", async (t) => {
  const server = await localServer(t, (request, response) => response.end(String(request.headers['user-agent'])));
  const sent = async (headers: [string, string][]) => {
    const result = await outboundFetch(
      { method: 'GET', url: `${server.origin}/`, headers },
      { origins: [server.origin], allowAddresses: LOOPBACK },
    );
    return bodyText(result.body);
  };
  assert.equal(await sent([]), 'stratum');
  assert.equal(await sent([['User-Agent', 'my-app/2.0']]), 'my-app/2.0');
});

test('compressed responses are asked for and reach the guest decoded, without the headers of the encoded bytes', async (t) => {
  const json = JSON.stringify({ items: Array.from({ length: 200 }, (_, index) => ({ index, name: `item ${index}` })) });
  const encoders: Record<string, (text: string) => Buffer> = {
    gzip: (text) => gzipSync(text),
    deflate: (text) => deflateSync(text),
    br: (text) => brotliCompressSync(text),
    zstd: (text) => zstdCompressSync(text),
  };
  const asked: (string | undefined)[] = [];
  const server = await localServer(t, (request, response) => {
    asked.push(request.headers['accept-encoding']);
    const coding = new URL(request.url ?? '/', 'http://x').searchParams.get('coding') ?? '';
    const encode = encoders[coding];
    if (!encode) {
      response.end(json);
      return;
    }
    const encoded = encode(json);
    response.writeHead(200, { 'content-encoding': coding, 'content-length': encoded.byteLength, 'content-type': 'application/json' });
    response.end(encoded);
  });
  const policy = { origins: [server.origin], allowAddresses: LOOPBACK };
  const header = (result: { headers: [string, Uint8Array][] }, name: string) => {
    const value = result.headers.find(([key]) => key === name)?.[1];
    return value && new TextDecoder().decode(value);
  };
  for (const coding of ['gzip', 'deflate', 'br']) {
    const result = await outboundFetch({ method: 'GET', url: `${server.origin}/?coding=${coding}`, headers: [] }, policy);
    assert.equal(await bodyText(result.body), json, coding);
    assert.equal(header(result, 'content-encoding'), undefined, `${coding}: the guest holds no encoded bytes`);
    assert.equal(header(result, 'content-length'), undefined, `${coding}: the encoded length is not the body's`);
    assert.equal(header(result, 'content-type'), 'application/json');
  }
  assert.deepEqual(asked.splice(0), ['gzip, deflate, br', 'gzip, deflate, br', 'gzip, deflate, br']);

  // Decoded whoever asked for it, as fetch() does everywhere; a guest's own Accept-Encoding is sent as it is.
  const own = await outboundFetch({ method: 'GET', url: `${server.origin}/?coding=gzip`, headers: [['Accept-Encoding', 'gzip']] }, policy);
  assert.equal(await bodyText(own.body), json);
  // A coding the host does not decode reaches the guest as it came, described by its headers.
  const zstd = await outboundFetch({ method: 'GET', url: `${server.origin}/?coding=zstd`, headers: [['accept-encoding', 'zstd']] }, policy);
  assert.equal(header(zstd, 'content-encoding'), 'zstd');
  assert.equal(Number(header(zstd, 'content-length')), zstdCompressSync(json).byteLength);
  // A range would be a slice of the encoded bytes, and a HEAD's length that of a body never sent.
  await outboundFetch({ method: 'GET', url: `${server.origin}/`, headers: [['range', 'bytes=0-9']] }, policy);
  await outboundFetch({ method: 'HEAD', url: `${server.origin}/`, headers: [] }, policy);
  assert.deepEqual(asked, ['gzip', 'zstd', undefined, undefined]);
});

test('a decoded body is held to the response limit, a corrupt one fails, and a compressed stream arrives as it is sent', async (t) => {
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
  const releases: (() => void)[] = [];
  const server = await localServer(t, (request, response) => {
    response.setHeader('content-encoding', 'gzip');
    if (request.url === '/bomb') response.end(bomb);
    else if (request.url === '/corrupt') {
      const broken = gzipSync('a body long enough to have a block after its header, a body long enough');
      broken.fill(0xff, 12, 30);
      response.end(broken);
    } else {
      // Server-sent events, compressed and flushed per event, as a compressing proxy sends them.
      const { createGzip, constants } = process.getBuiltinModule('node:zlib');
      const gzip = createGzip();
      gzip.pipe(response);
      gzip.write('data: one\n\n');
      gzip.flush(constants.Z_SYNC_FLUSH);
      releases.push(() => gzip.end('data: two\n\n'));
    }
  });
  const policy = { origins: [server.origin], allowAddresses: LOOPBACK };
  assert.ok(bomb.byteLength < 100 * 1024, `the bomb is ${bomb.byteLength} bytes on the wire`);
  const limits = { maxResponseBytes: 1024 * 1024, connectTimeoutMs: 5000, timeoutMs: 5000 };
  const big = await outboundFetch({ method: 'GET', url: `${server.origin}/bomb`, headers: [] }, policy, limits);
  await assert.rejects(bodyText(big.body), /is over 1048576 bytes once decoded \(gzip\)/);
  const corrupt = await outboundFetch({ method: 'GET', url: `${server.origin}/corrupt`, headers: [] }, policy, limits);
  await assert.rejects(bodyText(corrupt.body), /is not valid gzip/);

  const events = await outboundFetch({ method: 'GET', url: `${server.origin}/events`, headers: [] }, policy, limits);
  const stream = new IncomingResponse(events.status, events.headers, events.body).consume().stream();
  const first = stream.blockingRead(100n);
  assert.equal(
    new TextDecoder().decode(first instanceof Uint8Array ? first : await first),
    'data: one\n\n',
    'the first event, before the server ends',
  );
  releases.shift()?.();
  const second = stream.blockingRead(100n);
  assert.equal(new TextDecoder().decode(second instanceof Uint8Array ? second : await second), 'data: two\n\n');
});

test('fuzzed compressed bodies from a hostile server decode or fail the body, never otherwise', async (t) => {
  const json = Buffer.from(JSON.stringify({ list: Array.from({ length: 300 }, (_, index) => `item ${index}`) }));
  const encoders: Record<string, (bytes: Buffer) => Buffer> = { gzip: gzipSync, deflate: deflateSync, br: brotliCompressSync };
  let seed = 7;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const bodies = new Map<string, { coding: string; bytes: Buffer }>();
  const server = await localServer(t, (request, response) => {
    const body = bodies.get(request.url ?? '');
    response.writeHead(200, { 'content-encoding': body?.coding ?? 'gzip' });
    response.end(body?.bytes);
  });
  const policy = { origins: [server.origin], allowAddresses: LOOPBACK };
  const limits = { maxResponseBytes: 256 * 1024, connectTimeoutMs: 5000, timeoutMs: 5000 };
  let decoded = 0;
  let failed = 0;
  for (let round = 0; round < 150; round++) {
    const coding = ['gzip', 'deflate', 'br'][round % 3] as string;
    const bytes = Buffer.from((encoders[coding] as (bytes: Buffer) => Buffer)(json));
    // Flipped bytes, a cut, or noise: what a broken or hostile server sends.
    const kind = next(3);
    let mutant = bytes;
    if (kind === 0) {
      for (let flips = 1 + next(4); flips > 0; flips--) {
        const at = next(mutant.length);
        mutant[at] = (mutant[at] ?? 0) ^ (1 << next(8));
      }
    } else if (kind === 1) mutant = bytes.subarray(0, next(bytes.length));
    else mutant = Buffer.from(Array.from({ length: next(2000) }, () => next(256)));
    bodies.set(`/${round}`, { coding, bytes: mutant });
    const result = await outboundFetch({ method: 'GET', url: `${server.origin}/${round}`, headers: [] }, policy, limits);
    try {
      const text = await bodyText(result.body);
      assert.ok(text.length <= limits.maxResponseBytes, `round ${round}: ${text.length} characters`);
      decoded++;
    } catch (error) {
      assert.match(
        String(error),
        new RegExp(`is not valid ${coding}|is over ${limits.maxResponseBytes} bytes once decoded`),
        `round ${round}`,
      );
      failed++;
    }
  }
  assert.ok(decoded > 0 && failed > 0, `both outcomes were met: ${decoded} decoded, ${failed} failed`);
});

test('header values that are not ASCII cross both ways byte for byte', async (t) => {
  // UTF-8 for "€" and a latin1 "é": Node.js reads and writes header values one byte a character.
  const wire = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xe2, 0x82, 0xac]);
  let received: Buffer | undefined;
  const server = await localServer(t, (request, response) => {
    const at = request.rawHeaders.findIndex((name) => name.toLowerCase() === 'x-name');
    received = Buffer.from(request.rawHeaders[at + 1] ?? '', 'latin1');
    response.setHeader('x-back', wire.toString('latin1'));
    response.end();
  });
  const result = await outboundFetch(
    { method: 'GET', url: `${server.origin}/`, headers: [['x-name', new Uint8Array(wire)]] },
    { origins: [server.origin], allowAddresses: LOOPBACK },
  );
  assert.deepEqual(received && [...received], [...wire], 'the request header the server received');
  const back = result.headers.find(([name]) => name === 'x-back')?.[1];
  assert.deepEqual(back && [...back], [...wire], 'the response header the capsule receives');
});

test('other origins, and loopback without an explicit allow, are refused before any connection', async (t) => {
  const server = await localServer(t, (_request, response) => response.end('should not be reached'));
  await refused(
    () =>
      outboundFetch(
        { method: 'GET', url: `${server.origin}/`, headers: [] },
        { origins: ['https://api.example.com'], allowAddresses: LOOPBACK },
      ),
    'origin',
    /not one of the manifest's outbound origins/,
  );
  await refused(
    () => outboundFetch({ method: 'GET', url: `${server.origin}/`, headers: [] }, { origins: [server.origin] }),
    'address',
    /loopback, private or special/,
  );
  await refused(
    () =>
      outboundFetch(
        { method: 'GET', url: `http://localhost:${server.port}/`, headers: [] },
        { origins: [`http://localhost:${server.port}`] },
      ),
    'address',
  );
  assert.equal(server.connections(), 0);
});

test('every resolved address is checked, special ranges are refused, and the checked address is the one used', async (t) => {
  const server = await localServer(t, (request, response) => response.end(request.headers.host));
  const resolveTo =
    (...addresses: string[]) =>
    async () =>
      addresses.map((address) => ({ address, family: address.includes(':') ? (6 as const) : (4 as const) }));
  const origin = `http://api.test:${server.port}`;
  const url = new URL(`${origin}/`);
  for (const address of [
    '10.0.0.5',
    '172.16.3.4',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    'fe80::1',
    'fd00::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '64:ff9b::a00:1',
    // IPv4-compatible, SIIT and local-use NAT64 forms, which a translating network routes to the
    // IPv4 address inside.
    '::7f00:1',
    '::ffff:0:7f00:1',
    '64:ff9b:1::a00:1',
    '224.0.0.1',
    '192.0.2.2',
    '198.51.100.7',
    '203.0.113.9',
    '2001:0:4136:e378::1',
    '2002:7f00:1::1',
  ]) {
    await refused(
      () => checkOutbound(url, { origins: [origin], resolve: resolveTo(address) }),
      'address',
      new RegExp(address.replace(/[.:]/g, '\\$&')),
    );
  }
  // One public and one private answer: refused, since a later connection could use either.
  await refused(() => checkOutbound(url, { origins: [origin], resolve: resolveTo('93.184.216.34', '10.0.0.1') }), 'address', /10\.0\.0\.1/);
  assert.deepEqual((await checkOutbound(url, { origins: [origin], resolve: resolveTo('93.184.216.34') })).address, '93.184.216.34');
  assert.deepEqual((await checkOutbound(url, { origins: [origin], resolve: resolveTo('2606:4700::1111') })).address, '2606:4700::1111');
  // The host's own address, public as it may be: through it a capsule reached the host's ingress
  // and whatever else listens on all its addresses.
  await refused(
    () => checkOutbound(url, { origins: [origin], resolve: resolveTo('93.184.216.34'), ownAddresses: ['93.184.216.34'] }),
    'address',
    /93\.184\.216\.34, a loopback, private or special address, or the host's own/,
  );
  for (const entry of Object.values(networkInterfaces()).flat()) {
    if (entry && !entry.address.includes('%'))
      await refused(() => checkOutbound(url, { origins: [origin], resolve: resolveTo(entry.address) }), 'address');
  }
  await refused(
    () =>
      checkOutbound(url, { origins: [origin], resolve: async () => Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' })) }),
    'dns',
    /ENOTFOUND/,
  );
  await refused(() => checkOutbound(new URL('ftp://api.test/'), { origins: [origin] }), 'scheme');
  await refused(() => checkOutbound(new URL(`http://user:pw@api.test:${server.port}/`), { origins: [origin] }), 'origin', /credentials/);
  assert.equal(server.connections(), 0);

  // The name resolves (through the injected resolver) to the allowed loopback: the request goes
  // to that address, never re-resolved, and keeps its own Host.
  const result = await outboundFetch(
    { method: 'GET', url: `${origin}/`, headers: [] },
    { origins: [origin], allowAddresses: LOOPBACK, resolve: resolveTo('127.0.0.1') },
  );
  assert.equal(await bodyText(result.body), `api.test:${server.port}`);
});

test('an any-host origin reaches any name on its port, and the address checks still hold for it', async (t) => {
  const server = await localServer(t, (request, response) => response.end(request.headers.host));
  const resolveTo = (address: string) => async () => [{ address, family: address.includes(':') ? (6 as const) : (4 as const) }];
  // Any name, any port: a link checker's grant. Loopback here only because the host allows it.
  const anyPort = { origins: ['http://*:*'], allowAddresses: LOOPBACK };
  const direct = await outboundFetch({ method: 'GET', url: `${server.origin}/`, headers: [] }, anyPort);
  assert.equal(await bodyText(direct.body), `127.0.0.1:${server.port}`);
  const named = await outboundFetch(
    { method: 'GET', url: `http://links.test:${server.port}/a`, headers: [] },
    { ...anyPort, resolve: resolveTo('127.0.0.1') },
  );
  assert.equal(await bodyText(named.body), `links.test:${server.port}`);
  assert.equal(server.connections(), 2);

  // The grant opens names, not addresses: loopback the host does not allow, private and special
  // ranges, and the host's own public address stay refused, before any connection.
  await refused(() => outboundFetch({ method: 'GET', url: `${server.origin}/`, headers: [] }, { origins: ['http://*:*'] }), 'address');
  const url = new URL(`http://links.test:${server.port}/`);
  for (const address of ['10.0.0.5', '169.254.169.254', '::1', 'fd00::1']) {
    await refused(() => checkOutbound(url, { origins: ['http://*:*'], resolve: resolveTo(address) }), 'address');
  }
  await refused(
    () => checkOutbound(url, { origins: ['http://*:*'], resolve: resolveTo('93.184.216.34'), ownAddresses: ['93.184.216.34'] }),
    'address',
    /the host's own/,
  );
  // Without :* the scheme's port only, and the scheme is the origin's.
  await refused(
    () => outboundFetch({ method: 'GET', url: `${server.origin}/`, headers: [] }, { origins: ['http://*'], allowAddresses: LOOPBACK }),
    'origin',
    /not one of the manifest's outbound origins \(http:\/\/\*\)/,
  );
  await refused(() => checkOutbound(new URL('http://links.test/'), { origins: ['https://*:*'] }), 'origin');
  assert.equal(
    (await checkOutbound(new URL('http://links.test/'), { origins: ['http://*'], resolve: resolveTo('93.184.216.34') })).address,
    '93.184.216.34',
  );
  assert.equal(server.connections(), 2);

  // A wildcard port does not cover a port browsers never fetch from; an origin naming it does.
  await refused(
    () => checkOutbound(new URL('http://mail.test:25/'), { origins: ['http://*:*'], resolve: resolveTo('93.184.216.34') }),
    'origin',
    /port 25 is one browsers never fetch from .* a wildcard port \(:\*\) does not cover/,
  );
  const named25 = await checkOutbound(new URL('http://mail.test:25/'), {
    origins: ['http://*:*', 'http://mail.test:25'],
    resolve: resolveTo('93.184.216.34'),
  });
  assert.equal(named25.address, '93.184.216.34');
});

test('redirects are handed back, not followed; oversized responses are cut off', async (t) => {
  let hits = 0;
  const server = await localServer(t, (request, response) => {
    hits++;
    if (request.url === '/big') {
      response.end(Buffer.alloc(5000));
      return;
    }
    response.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
    response.end();
  });
  const policy = { origins: [server.origin], allowAddresses: LOOPBACK };
  const result = await outboundFetch({ method: 'GET', url: `${server.origin}/go`, headers: [] }, policy);
  assert.equal(result.status, 302);
  assert.equal(hits, 1);
  await refused(() => outboundFetch({ method: 'GET', url: 'http://169.254.169.254/latest/meta-data/', headers: [] }, policy), 'origin');
  // The head is in, so the body's reader meets the failure where the limit is passed.
  const big = await outboundFetch({ method: 'GET', url: `${server.origin}/big`, headers: [] }, policy, {
    maxResponseBytes: 1000,
    connectTimeoutMs: 5000,
    timeoutMs: 5000,
  });
  assert.equal(big.status, 200);
  await assert.rejects(bodyText(big.body), /is over 1000 bytes/);
});

test('the outbound capability: grants checked, wasi:http/outgoing-handler served, refusals as HTTP-request-denied', async (t) => {
  const server = await localServer(t, (_request, response) => response.end('ok'));
  const imports = ['wasi:http/outgoing-handler@0.2.10'];
  // No origins: linked (JS toolchains always import the handler) but every request is refused, without JSPI.
  const closed = await outbound.configure(configureContext({ imports }));
  assert.equal(closed.asyncImports, undefined);
  const closedLines: string[] = [];
  const closedHandler = (await outbound.prepare(prepareContext(closed.settings, 'closed', closedLines))).imports[
    'wasi:http/outgoing-handler'
  ] as {
    handle(...args: unknown[]): unknown;
  };
  assert.throws(
    () => closedHandler.handle(undefined, undefined),
    (error: unknown) => error instanceof WitError && (error.payload as { tag: string }).tag === 'HTTP-request-denied',
  );
  assert.match(closedLines.join('\n'), /allows no outbound origin/);
  assert.throws(
    () => outbound.configure(configureContext({ imports, hostConfig: { allow_adresses: [] } })),
    (error: Error & { details?: string[] }) => /did you mean "allow_addresses"/.test(error.details?.join('\n') ?? ''),
  );
  const manifest = manifestWith({ outbound: [server.origin] });
  const plan = await outbound.configure(configureContext({ imports, manifest, hostConfig: { allow_addresses: LOOPBACK } }));
  // handle answers at once; the guest waits in wasi:io/poll, and for the body in the blocking
  // reads, which wasi's capability makes JSPI imports for a capsule that may fetch (and only for one).
  assert.equal(plan.asyncImports, undefined);
  const pollImports = ['wasi:io/poll@0.2.12', 'wasi:io/streams@0.2.12'];
  assert.deepEqual((await wasi.configure(configureContext({ imports: pollImports, manifest }))).asyncImports, [
    'wasi:io/poll@0.2.12#poll',
    'wasi:io/poll@0.2.12#[method]pollable.block',
    'wasi:io/streams@0.2.12#[method]input-stream.blocking-read',
    'wasi:io/streams@0.2.12#[method]input-stream.blocking-skip',
    'wasi:io/streams@0.2.12#[method]output-stream.blocking-splice',
  ]);
  assert.equal((await wasi.configure(configureContext({ imports: pollImports }))).asyncImports, undefined);
  const lines: string[] = [];
  const context = prepareContext(plan.settings, 'outbound', lines);
  const prepared = await outbound.prepare(context);
  type Future = { get(): { tag: string; val: { tag: string; val: { status(): number } } } | undefined; subscribe(): { block(): unknown } };
  const handler = prepared.imports['wasi:http/outgoing-handler'] as { handle(request: OutgoingRequest, options: unknown): Future };
  const request = (authority: string) => {
    const outgoing = new OutgoingRequest(new Fields());
    outgoing.setScheme({ tag: 'HTTP' });
    outgoing.setAuthority(authority);
    outgoing.setPathWithQuery('/');
    return outgoing;
  };
  // The future is pending when handle returns, and its pollable waits without blocking.
  const future = handler.handle(request(`127.0.0.1:${server.port}`), undefined);
  assert.equal(future.get(), undefined);
  await future.subscribe().block();
  const settled = future.get();
  assert.equal(settled?.val.tag, 'ok');
  assert.equal(settled?.val.val.status(), 200);
  // A refusal (the origin is checked with the address, after DNS) settles the future with it.
  const refusedFuture = handler.handle(request('example.com'), undefined);
  await refusedFuture.subscribe().block();
  assert.deepEqual(refusedFuture.get(), { tag: 'ok', val: { tag: 'err', val: { tag: 'HTTP-request-denied' } } });
  assert.match(lines.join('\n'), /warn request refused: http:\/\/example\.com is not one of the manifest's outbound origins/);
  context.currentRequest = () => ({ requestId: 'r', domain: 'demo.test', outboundRemaining: 0, atEnd: () => {} });
  assert.deepEqual(await witError(() => handler.handle(request(`127.0.0.1:${server.port}`), undefined)), { tag: 'HTTP-request-denied' });
  assert.match(lines.join('\n'), /used up its outbound requests/);
  assert.equal(server.connections(), 1);
});

test('a server slower to answer than the connect timeout is waited for up to the overall timeout; one that never answers hits that', async (t) => {
  const server = await localServer(t, (request, response) => {
    if (request.url === '/never') return;
    // Accepted at once; the answer starts after the connect timeout below, and pauses as long within.
    setTimeout(() => response.write('slow '), 300);
    setTimeout(() => response.end('answer'), 600);
  });
  const policy = { origins: [server.origin], allowAddresses: LOOPBACK };
  const limits = { maxResponseBytes: 1000, connectTimeoutMs: 200, timeoutMs: 3000 };
  const result = await outboundFetch({ method: 'GET', url: `${server.origin}/slow`, headers: [] }, policy, limits);
  assert.equal(await bodyText(result.body), 'slow answer');
  await assert.rejects(
    () => outboundFetch({ method: 'GET', url: `${server.origin}/never`, headers: [] }, policy, { ...limits, timeoutMs: 700 }),
    (error: unknown) =>
      error instanceof OutboundError && error.failure === 'connection-timeout' && /did not answer within 700 ms/.test(error.message),
  );
});

test("a streaming body's reads wait asynchronously, and a body dropped before its end closes the connection", async (t) => {
  let closedEarly: Promise<void> | undefined;
  const releases: (() => void)[] = [];
  const server = await localServer(t, (request, response) => {
    response.write('one;');
    if (request.url === '/forever') {
      closedEarly = new Promise((resolve) => response.on('close', () => resolve()));
      return;
    }
    releases.push(() => response.end('two'));
  });
  const policy = { origins: [server.origin], allowAddresses: LOOPBACK };
  const result = await outboundFetch({ method: 'GET', url: `${server.origin}/`, headers: [] }, policy);
  const stream = new IncomingResponse(result.status, result.headers, result.body).consume().stream();
  // A native guest's blocking read: a promise (the import suspends the guest) until bytes come.
  const first = stream.blockingRead(100n);
  assert.equal(new TextDecoder().decode(first instanceof Uint8Array ? first : await first), 'one;');
  const pollable = stream.subscribe();
  assert.equal(pollable.ready(), false);
  const second = stream.blockingRead(100n);
  assert.ok(second instanceof Promise, 'nothing has come yet, so the read waits');
  releases.shift()?.();
  assert.equal(new TextDecoder().decode(await second), 'two');
  assert.equal(pollable.ready(), true);
  await assert.rejects(
    async () => stream.blockingRead(100n),
    (error: { tag?: string }) => error.tag === 'closed',
  );

  const endless = await outboundFetch({ method: 'GET', url: `${server.origin}/forever`, headers: [] }, policy);
  const response = new IncomingResponse(endless.status, endless.headers, endless.body);
  const dropped = response.consume().stream();
  assert.equal(new TextDecoder().decode(await dropped.blockingRead(100n)), 'one;');
  dropped[Symbol.dispose]();
  await closedEarly;
});

test('a request body the guest streams goes chunked, or held to the length it declared; one dropped unfinished fails the request', async (t) => {
  const server = await localServer(t, (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () =>
      response.end(`${request.headers['content-length'] ?? request.headers['transfer-encoding']}:${Buffer.concat(chunks)}`),
    );
  });
  const policy = { origins: [server.origin], allowAddresses: LOOPBACK };
  /** A body written after the request starts, as a guest writes it, in parts a few milliseconds apart. */
  const streamed = (parts: string[], ending: 'end' | 'abandoned' = 'end') => ({
    whole: () => undefined,
    stream(sink: { write(chunk: Uint8Array): void; end(): void; abandoned(): void }) {
      void (async () => {
        for (const part of parts) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          sink.write(new TextEncoder().encode(part));
        }
        sink[ending]();
      })();
    },
  });
  const post = (body: ReturnType<typeof streamed>, headers: [string, string][] = []) =>
    outboundFetch({ method: 'POST', url: `${server.origin}/`, headers, body }, policy);
  assert.equal(await bodyText((await post(streamed(['one ', 'two']))).body), 'chunked:one two');
  assert.equal(await bodyText((await post(streamed(['one ', 'two']), [['Content-Length', '7']])).body), '7:one two');
  await assert.rejects(post(streamed(['one'], 'end'), [['Content-Length', '7']]), /declared a request body of 7 bytes and wrote 3/);
  await assert.rejects(
    // In one write: the server, given its 7 bytes, would answer before a later one.
    post(streamed(['one two three']), [['Content-Length', '7']]),
    /declared a request body of 7 bytes and wrote more/,
  );
  await assert.rejects(post(streamed(['one'], 'abandoned')), /dropped the request body before it finished it/);
});
