// What the S3 backend sends, seen through Node.js's HTTP client diagnostics: every request it
// makes runs on the capsule's thread and is charged to the capsule's CPU time, so requests that
// are not needed (a HEAD per listed object, a whole-bucket listing per write, a connection per
// read) are bugs here even though the answers stay right.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { type S3BucketOptions, s3Bucket } from '../packages/host/src/capabilities/bucket/backends/s3.ts';
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
  // A connection of the pool to start from, so that only the parts' own connections count.
  await bucket.head('video');
  const { sent, connections } = await traffic(async () => {
    for (let offset = 0; offset < data.length; offset += 4 * 1024 * 1024)
      await upload.write(data.subarray(offset, offset + 4 * 1024 * 1024));
  });
  await upload.finish();
  const parts = sent.filter((request) => request.method === 'PUT');
  assert.equal(parts.length, 2);
  for (const part of parts) assert.equal(part.headers.expect, undefined);
  assert.equal(connections, 0);
  const read: Uint8Array[] = [];
  for await (const chunk of bucket.stream('video')) read.push(chunk);
  assert.deepEqual(Buffer.concat(read), data);
});
