// What the S3 backend sends, seen through Node.js's HTTP client diagnostics: every request it
// makes runs on the capsule's thread and is charged to the capsule's CPU time, so requests that
// are not needed (a HEAD per listed object, a whole-bucket listing per write, a connection per
// read) are bugs here even though the answers stay right.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { type ClientRequest, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { silentLogger } from '@stratum/core';
import { type S3BucketOptions, s3Bucket } from '../packages/host/src/capabilities/bucket/backends/s3.ts';
import { signRead } from '../packages/host/src/capabilities/bucket/backends/s3-reads.ts';
import { rejectsWith, uniqueCapsule } from '../packages/host/src/capabilities/bucket/conformance.ts';
import type { BucketLimits, ObjectBucket } from '../packages/host/src/capabilities/bucket/types.ts';
import { startS3rver, stopS3rver } from './capabilities-s3rver.ts';

after(stopS3rver);

interface Sent {
  method: string;
  path: string;
  headers: Record<string, unknown>;
}

/** The HTTP requests `work` sends, and how many connections it opens. */
async function traffic(work: () => Promise<unknown>): Promise<{ sent: Sent[]; connections: number }> {
  const sent: Sent[] = [];
  let connections = 0;
  const onRequest = (message: unknown) => {
    const request = (message as { request: ClientRequest }).request;
    sent.push({ method: request.method, path: request.path, headers: request.getHeaders() });
  };
  const onSocket = () => {
    connections++;
  };
  subscribe('http.client.request.start', onRequest);
  subscribe('net.client.socket', onSocket);
  try {
    await work();
  } finally {
    unsubscribe('http.client.request.start', onRequest);
    unsubscribe('net.client.socket', onSocket);
  }
  return { sent, connections };
}

const heads = (sent: Sent[]) => sent.filter((request) => request.method === 'HEAD').length;
// ListObjects (version 1): a GET of the bucket with a prefix and no key.
const listings = (sent: Sent[]) =>
  sent.filter((request) => request.method === 'GET' && /^\/[^/?]+\/?\?(.*&)?prefix=/.test(request.path)).length;

async function opened(
  t: TestContext,
  options: Partial<S3BucketOptions> & { limits?: Partial<BucketLimits> } = {},
  capsule = uniqueCapsule(),
) {
  const { options: server } = await startS3rver();
  const backend = s3Bucket({ ...server, ...options });
  const bucket = await backend.open({ capsule, label: 'default' });
  t.after(async () => {
    await bucket.drop();
    await backend.close();
  });
  return { bucket, capsule };
}

function indexDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'stratum-s3-index-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('s3: an object read a chunk at a time takes one ranged GET per chunk, on a kept connection', async (t) => {
  const { bucket } = await opened(t);
  const data = randomBytes(3 * 65_536 + 100);
  await bucket.put('photo', data);
  const chunks: Uint8Array[] = [];
  const { sent, connections } = await traffic(async () => {
    for (let offset = 0; offset < data.length; ) {
      const part = await bucket.get('photo', { offset, length: 65_536 });
      assert.ok(part);
      chunks.push(part.data);
      offset += part.data.byteLength;
    }
  });
  assert.deepEqual(Buffer.concat(chunks), data);
  const gets = sent.filter((request) => request.method === 'GET');
  assert.equal(gets.length, 4);
  // Without a range the first read had the whole object sent, and closed the connection to stop it.
  assert.deepEqual(
    gets.map((request) => request.headers.range),
    ['bytes=0-65535', 'bytes=65536-131071', 'bytes=131072-196607', 'bytes=196608-262143'],
  );
  assert.ok(connections <= 1, `${connections} connections for four reads in a row`);
});

test('s3: an empty object reads as empty from the start, and a range past its end is invalid-range', async (t) => {
  const { bucket } = await opened(t);
  const info = await bucket.put('empty', new Uint8Array(), 'text/plain');
  assert.deepEqual(await bucket.get('empty', { offset: 0, length: 10 }), { info, data: new Uint8Array() });
  await rejectsWith(() => bucket.get('empty', { offset: 1 }), 'invalid-range');
});

test('s3: a listing asks S3 for the content types only of objects the index has not seen as they are', async (t) => {
  const dir = indexDir(t);
  const { bucket, capsule } = await opened(t, { indexDir: dir });
  const types: Record<string, string | undefined> = { a: 'image/png', b: 'text/plain', c: undefined, 'd/e': 'application/json' };
  for (const [name, type] of Object.entries(types)) await bucket.put(name, new TextEncoder().encode(name), type);
  const describe = (page: Awaited<ReturnType<ObjectBucket['list']>>) => page.objects.map((info) => [info.name, info.contentType]);
  const expected = Object.entries(types);

  let page: Awaited<ReturnType<ObjectBucket['list']>> | undefined;
  let seen = await traffic(async () => {
    page = await bucket.list();
  });
  assert.deepEqual(describe(page ?? { objects: [] }), expected);
  assert.equal(heads(seen.sent), 0, 'every object was written through this index');
  // Its objects' info as a HEAD gives it (S3 keeps whole seconds; s3rver lists milliseconds).
  for (const info of page?.objects ?? []) assert.deepEqual(info, await bucket.head(info.name));

  // Another worker of the host, or the host after a restart: the same index file.
  const { options: server } = await startS3rver();
  const sibling = s3Bucket({ ...server, indexDir: dir });
  t.after(() => sibling.close());
  const siblingBucket = await sibling.open({ capsule, label: 'default' });
  seen = await traffic(async () => {
    page = await siblingBucket.list();
  });
  assert.deepEqual(describe(page ?? { objects: [] }), expected);
  assert.equal(heads(seen.sent), 0);

  // Another host (an index of its own) replaces one object: only that one is asked for.
  const other = s3Bucket(server);
  t.after(() => other.close());
  const otherBucket = await other.open({ capsule, label: 'default' });
  await otherBucket.put('b', new TextEncoder().encode('replaced'), 'text/html');
  seen = await traffic(async () => {
    page = await bucket.list();
  });
  assert.deepEqual(describe(page ?? { objects: [] }), [
    ...expected.filter(([name]) => name < 'b'),
    ['b', 'text/html'],
    ...expected.filter(([name]) => name > 'b'),
  ]);
  assert.equal(heads(seen.sent), 1);
  // That host knows none of them, and asks for each once.
  seen = await traffic(async () => {
    page = await otherBucket.list();
  });
  assert.equal(heads(seen.sent), expected.length - 1);
  seen = await traffic(async () => {
    page = await otherBucket.list();
  });
  assert.equal(heads(seen.sent), 0);
  assert.deepEqual(describe(page ?? { objects: [] }), describe(await bucket.list()));
});

test('s3: a write that fits under a recent byte count does not list the bucket; one that may not gets a fresh count', async (t) => {
  const { bucket } = await opened(t, { indexDir: indexDir(t), limits: { maxBucketBytes: 10_000 } });
  let seen = await traffic(async () => bucket.put('a', new Uint8Array(3_000)));
  assert.equal(listings(seen.sent), 1, 'the first write counts');
  seen = await traffic(async () => bucket.put('b', new Uint8Array(3_000)));
  assert.equal(listings(seen.sent), 0, 'the second fits under the count');
  // 6 000 + 5 000 would not fit: counted afresh, and refused on that count.
  seen = await traffic(() => rejectsWith(() => bucket.put('c', new Uint8Array(5_000)), 'limit-exceeded', /quota/));
  assert.equal(listings(seen.sent), 1);
  // Replacing counts only the difference, on a fresh count: 6 000 - 3 000 + 7 000.
  await bucket.put('a', new Uint8Array(7_000));
  assert.deepEqual(await bucket.usage(), { objects: 2, bytes: 10_000 });
  await rejectsWith(() => bucket.put('d', new Uint8Array(1)), 'limit-exceeded', /quota/);
  await bucket.delete('b');
  await bucket.put('d', new Uint8Array(1));
});

test('s3: parts of a large upload go without Expect: 100-continue, on kept connections', async (t) => {
  const { bucket } = await opened(t, { limits: { maxChunkBytes: 4 * 1024 * 1024 } });
  const data = randomBytes(16 * 1024 * 1024);
  const upload = await bucket.startUpload('video');
  const { sent, connections } = await traffic(async () => {
    for (let offset = 0; offset < data.length; offset += 4 * 1024 * 1024)
      await upload.write(data.subarray(offset, offset + 4 * 1024 * 1024));
  });
  await upload.finish();
  const parts = sent.filter((request) => request.method === 'PUT');
  assert.equal(parts.length, 2);
  for (const part of parts) assert.equal(part.headers.expect, undefined);
  // One for the pool at most; with Expect: 100-continue, each part had a connection of its own.
  assert.ok(connections <= 1, `${connections} connections`);
  const read: Uint8Array[] = [];
  for await (const chunk of bucket.stream('video')) read.push(chunk);
  assert.deepEqual(Buffer.concat(read), data);
});

test('s3: reads are signed as AWS documents it (its "GET Object" example)', () => {
  const headers = signRead(
    'GET',
    '/test.txt',
    { host: 'examplebucket.s3.amazonaws.com', range: 'bytes=0-9' },
    { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
    'us-east-1',
    new Date('2013-05-24T00:00:00Z'),
  );
  assert.equal(
    headers.authorization,
    'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
  );
  const withToken = signRead(
    'HEAD',
    '/a',
    { host: 'h' },
    { accessKeyId: 'k', secretAccessKey: 's', sessionToken: 't' },
    'us-east-1',
    new Date(),
  );
  assert.equal(withToken['x-amz-security-token'], 't');
  assert.match(withToken.authorization ?? '', /SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,/);
});

test("s3: reads and heads go past the SDK's pipeline, and every answer is the same", async (t) => {
  const { bucket } = await opened(t);
  const data = randomBytes(100_000);
  const stored = await bucket.put("a b/ü+!*()'~", data, 'image/png');
  await bucket.put('empty', new Uint8Array());
  let got: unknown[] = [];
  const { sent } = await traffic(async () => {
    got = [
      await bucket.head("a b/ü+!*()'~"),
      await bucket.get("a b/ü+!*()'~", { offset: 10, length: 5 }),
      await bucket.get('empty'),
      await bucket.get('missing'),
      await bucket.head('missing'),
    ];
  });
  assert.deepEqual(got, [
    stored,
    { info: stored, data: new Uint8Array(data.subarray(10, 15)) },
    { info: await bucket.head('empty'), data: new Uint8Array() },
    undefined,
    undefined,
  ]);
  // The SDK marks each of its requests; these were sent without it.
  assert.equal(sent.length, 5);
  for (const request of sent) assert.equal(request.headers['amz-sdk-invocation-id'], undefined, `${request.method} ${request.path}`);
  await rejectsWith(() => bucket.get("a b/ü+!*()'~", { offset: 100_000 }), 'invalid-range');
});

test("s3: a store that refuses the host's own signed reads but not the SDK's gets them all through the SDK, once logged", async (t) => {
  const { options: server } = await startS3rver();
  // A store in front of s3rver that takes only requests the SDK made.
  const proxy = createServer((incoming, outgoing) => {
    if (incoming.headers['amz-sdk-invocation-id'] === undefined) {
      outgoing.writeHead(403).end();
      return;
    }
    const upstream = new URL(server.endpoint ?? '');
    const forwarded = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: incoming.method,
        path: incoming.url,
        headers: { ...incoming.headers, 'x-test-forwarded': '1' },
      },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    incoming.pipe(forwarded);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const warnings: string[] = [];
  const logger = { ...silentLogger, warn: (_fields: unknown, message?: string) => warnings.push(message ?? '') } as typeof silentLogger;
  const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const { bucket } = await opened(t, { endpoint, logger });
  // After the bucket is dropped, through the proxy.
  t.after(() => {
    proxy.closeAllConnections();
    proxy.close();
  });
  await bucket.put('photo', new Uint8Array([1, 2, 3]), 'image/png');
  assert.deepEqual((await bucket.get('photo'))?.data, new Uint8Array([1, 2, 3]));
  assert.equal(warnings.filter((message) => /refused/.test(message)).length, 1);
  const { sent } = await traffic(async () => {
    assert.equal((await bucket.head('photo'))?.contentType, 'image/png');
    assert.deepEqual((await bucket.get('photo'))?.data, new Uint8Array([1, 2, 3]));
  });
  // The proxy's own requests to s3rver are seen too.
  const toStore = sent.filter((request) => request.headers['x-test-forwarded'] === undefined);
  assert.equal(toStore.length, 2, 'no more reads of its own');
  for (const request of toStore) assert.notEqual(request.headers['amz-sdk-invocation-id'], undefined);
  assert.equal(warnings.filter((message) => /refused/.test(message)).length, 1);
});
