import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { type TestContext, test } from 'node:test';
import { type BucketBackend, BucketError, type BucketLimits, type ObjectBucket } from './types.ts';

/**
 * The bucket conformance suite: every backend runs exactly these tests. `makeBackend` returns a
 * new backend instance over the same storage as every other one it returns, or undefined
 * (after `t.skip`) when its service is not available.
 *
 * @example
 * bucketConformance('directory', async (t, limits) => directoryBucket({ root, limits }));
 */
export type MakeBucketBackend = (t: TestContext, limits?: Partial<BucketLimits>) => Promise<BucketBackend | undefined>;

export function uniqueCapsule(): string {
  return `t${randomBytes(6).toString('hex')}`;
}

const bytes = (text: string) => new TextEncoder().encode(text);
const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

export async function rejectsWith(work: () => unknown, kind: BucketError['kind'], pattern?: RegExp): Promise<void> {
  await assert.rejects(
    async () => work(),
    (error: unknown) => {
      assert.ok(error instanceof BucketError, `expected a BucketError, got ${String(error)}`);
      assert.equal(error.kind, kind, error.message);
      if (pattern) assert.match(error.message, pattern);
      return true;
    },
  );
}

async function readAll(bucket: ObjectBucket, name: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of bucket.stream(name)) chunks.push(chunk);
  return new Uint8Array(Buffer.concat(chunks));
}

export function bucketConformance(name: string, makeBackend: MakeBucketBackend): void {
  async function open(t: TestContext, limits?: Partial<BucketLimits>, capsule = uniqueCapsule()) {
    const backend = await makeBackend(t, limits);
    if (!backend) return undefined;
    const bucket = await backend.open({ capsule, label: 'default' });
    t.after(async () => {
      await bucket.drop();
      await backend.close();
    });
    return { backend, bucket, capsule };
  }

  test(`${name}: put, get, head and delete, with and without a content type`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { bucket } = opened;
    assert.equal(await bucket.get('missing'), undefined);
    assert.equal(await bucket.head('missing'), undefined);
    const before = Date.now() - 5_000;
    const info = await bucket.put('photos/cat.jpg', bytes('meow'), 'image/jpeg');
    assert.equal(info.name, 'photos/cat.jpg');
    assert.equal(info.size, 4);
    assert.equal(info.contentType, 'image/jpeg');
    assert.match(info.etag, /^"[^"]+"$/);
    assert.ok(info.modifiedMs >= before && info.modifiedMs <= Date.now() + 5_000);
    const got = await bucket.get('photos/cat.jpg');
    assert.deepEqual(got?.data, bytes('meow'));
    assert.deepEqual(got?.info, info);
    assert.deepEqual(await bucket.head('photos/cat.jpg'), info);

    const plain = await bucket.put('plain', new Uint8Array([0, 255]));
    assert.equal(plain.contentType, undefined);
    assert.equal((await bucket.head('plain'))?.contentType, undefined);
    const replaced = await bucket.put('photos/cat.jpg', bytes('purr!'), 'image/png');
    assert.notEqual(replaced.etag, info.etag);
    assert.deepEqual((await bucket.get('photos/cat.jpg'))?.data, bytes('purr!'));
    await bucket.delete('photos/cat.jpg');
    await bucket.delete('photos/cat.jpg');
    assert.equal(await bucket.head('photos/cat.jpg'), undefined);
    await bucket.put('empty', new Uint8Array());
    assert.deepEqual((await bucket.get('empty'))?.data, new Uint8Array());
  });

  test(`${name}: byte ranges, and reads capped at the chunk limit`, async (t) => {
    const opened = await open(t, { maxChunkBytes: 1000 });
    if (!opened) return;
    const { bucket } = opened;
    const data = randomBytes(2500);
    const upload = await bucket.startUpload('big');
    for (let offset = 0; offset < data.length; offset += 1000) await upload.write(data.subarray(offset, offset + 1000));
    await upload.finish();
    assert.deepEqual((await bucket.get('big', { offset: 10, length: 5 }))?.data, new Uint8Array(data.subarray(10, 15)));
    assert.deepEqual((await bucket.get('big', { offset: 2400 }))?.data, new Uint8Array(data.subarray(2400)));
    assert.deepEqual((await bucket.get('big', { offset: 2490, length: 100 }))?.data, new Uint8Array(data.subarray(2490)));
    const first = await bucket.get('big');
    assert.equal(first?.data.byteLength, 1000, 'a read returns at most the chunk limit');
    assert.equal(first?.info.size, 2500, 'with the whole object size, so the guest reads on');
    const parts: Uint8Array[] = [];
    for (let offset = 0; offset < 2500; ) {
      const part = await bucket.get('big', { offset });
      assert.ok(part);
      parts.push(part.data);
      offset += part.data.byteLength;
    }
    assert.equal(sha(Buffer.concat(parts)), sha(data));
    await rejectsWith(() => bucket.get('big', { offset: 2500 }), 'invalid-range');
    await rejectsWith(() => bucket.get('big', { offset: 9999, length: 1 }), 'invalid-range');
    await rejectsWith(() => bucket.put('too-big', new Uint8Array(1001)), 'limit-exceeded', /chunk limit/);
  });

  test(`${name}: an upload is invisible until finished, and abort discards it`, async (t) => {
    const opened = await open(t, { maxChunkBytes: 2 * 1024 * 1024 });
    if (!opened) return;
    const { bucket } = opened;
    // Large enough to take S3's multipart path (parts of at least 5 MiB but the last).
    const data = randomBytes(7 * 1024 * 1024);
    const upload = await bucket.startUpload('video.mp4', 'video/mp4');
    for (let offset = 0; offset < data.length; offset += 1024 * 1024) await upload.write(data.subarray(offset, offset + 1024 * 1024));
    assert.equal(await bucket.head('video.mp4'), undefined, 'not visible before finish');
    const info = await upload.finish();
    assert.equal(info.size, data.length);
    assert.equal(info.contentType, 'video/mp4');
    assert.equal(sha(await readAll(bucket, 'video.mp4')), sha(data));
    await rejectsWith(() => upload.write(bytes('late')), 'other', /already finished/);

    const dropped = await bucket.startUpload('dropped');
    await dropped.write(bytes('half'));
    await dropped.abort();
    await dropped.abort();
    assert.equal(await bucket.head('dropped'), undefined);
    await rejectsWith(() => dropped.finish(), 'other', /already aborted/);
  });

  test(`${name}: list pages in byte order, by prefix`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { bucket } = opened;
    // s3rver, the test double, walks a directory tree and so lists a name out of S3's byte
    // order when it is also a "directory" of another (`a`, `a/1`) or holds a byte below `/`.
    const names = ['b', 'a/2', 'a/1', 'aa', 'Z', 'é', 'a/3/x'];
    for (const object of names) await bucket.put(object, bytes(object));
    const byteOrder = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await bucket.list(undefined, cursor, 3);
      seen.push(...page.objects.map((object) => object.name));
      cursor = page.cursor;
      pages++;
    } while (cursor !== undefined);
    assert.deepEqual(seen, byteOrder);
    assert.equal(pages, 3);
    const prefixed = await bucket.list('a/', undefined, undefined);
    assert.deepEqual(
      prefixed.objects.map((object) => [object.name, object.size]),
      [
        ['a/1', 3],
        ['a/2', 3],
        ['a/3/x', 5],
      ],
    );
    assert.equal(prefixed.cursor, undefined);
    assert.deepEqual((await bucket.list('nothing/')).objects, []);
  });

  test(`${name}: bad names are refused with invalid-name`, async (t) => {
    const opened = await open(t);
    if (!opened) return;
    const { bucket } = opened;
    for (const bad of ['', '..', '../escape', 'a/../../b', 'a/..', 'nul\0byte', 'x'.repeat(1025)]) {
      await rejectsWith(() => bucket.put(bad, bytes('x')), 'invalid-name');
      await rejectsWith(() => bucket.get(bad), 'invalid-name');
    }
    // Names with an empty segment (`/leading`, `a//b`) are fine on S3 but break s3rver, the test double.
    for (const fine of ['..hidden', 'a..b', 'sp ace', 'a\\b', 'ü/ß 🙂']) {
      await bucket.put(fine, bytes(fine));
      assert.deepEqual((await bucket.get(fine))?.data, bytes(fine), fine);
    }
  });

  test(`${name}: quotas: bucket bytes, object size and chunk size return limit-exceeded`, async (t) => {
    const opened = await open(t, { maxBucketBytes: 10_000, maxObjectBytes: 8_000, maxChunkBytes: 7_000 });
    if (!opened) return;
    const { bucket } = opened;
    await bucket.put('one', new Uint8Array(6_000));
    await rejectsWith(() => bucket.put('two', new Uint8Array(6_000)), 'limit-exceeded', /quota/);
    assert.equal(await bucket.head('two'), undefined);
    await bucket.put('one', new Uint8Array(7_000));
    await bucket.put('two', new Uint8Array(3_000));
    const upload = await bucket.startUpload('three');
    await upload.write(new Uint8Array(10));
    await rejectsWith(() => upload.finish(), 'limit-exceeded', /quota/);
    assert.equal(await bucket.head('three'), undefined);
    await bucket.delete('one');
    const large = await bucket.startUpload('large');
    await large.write(new Uint8Array(7_000));
    await rejectsWith(() => large.write(new Uint8Array(1_001)), 'limit-exceeded', /8000/);
    assert.equal(await bucket.head('large'), undefined);
    assert.deepEqual(await bucket.usage(), { objects: 1, bytes: 3_000 });
  });

  test(`${name}: an upload is refused at the write that takes it past the bucket's whole quota`, async (t) => {
    const opened = await open(t, { maxBucketBytes: 2_500, maxObjectBytes: 10_000, maxChunkBytes: 1_000 });
    if (!opened) return;
    const { bucket } = opened;
    const upload = await bucket.startUpload('too-big');
    for (let i = 0; i < 2; i++) await upload.write(new Uint8Array(1_000));
    await rejectsWith(() => upload.write(new Uint8Array(1_000)), 'limit-exceeded', /quota of 2500/);
    await rejectsWith(() => upload.finish(), 'other', /already aborted/);
    assert.equal(await bucket.head('too-big'), undefined);
    await rejectsWith(() => bucket.put('also-too-big', new Uint8Array(2_501)), 'limit-exceeded');
    assert.deepEqual(await bucket.usage(), { objects: 0, bytes: 0 });
  });

  test(`${name}: capsules and labels never reach each other's objects`, async (t) => {
    const first = await open(t);
    if (!first) return;
    const other = await first.backend.open({ capsule: uniqueCapsule(), label: 'default' });
    const otherLabel = await first.backend.open({ capsule: first.capsule, label: 'other' });
    await first.bucket.put('secret.txt', bytes('mine'));
    for (const bucket of [other, otherLabel]) {
      assert.equal(await bucket.head('secret.txt'), undefined);
      assert.equal(await bucket.get('secret.txt'), undefined);
      assert.deepEqual((await bucket.list()).objects, []);
      await bucket.delete('secret.txt');
      await rejectsWith(() => bucket.get(`../${first.capsule}/default/secret.txt`), 'invalid-name');
      await bucket.put('secret.txt', bytes('theirs'));
    }
    assert.deepEqual((await first.bucket.get('secret.txt'))?.data, bytes('mine'));
    await other.drop();
    await otherLabel.drop();
  });

  test(`${name}: concurrent writers through separate connections never mix objects`, async (t) => {
    const first = await open(t);
    if (!first) return;
    const secondBackend = await makeBackend(t);
    if (!secondBackend) return;
    t.after(() => secondBackend.close());
    const second = await secondBackend.open({ capsule: first.capsule, label: 'default' });
    const contents = Array.from({ length: 8 }, (_, i) => new Uint8Array(20_000).fill(i));
    await Promise.all(
      contents.map(async (content, i) => {
        const bucket = i % 2 === 0 ? first.bucket : second;
        await bucket.put('contended', content);
        await bucket.put(`own-${i}`, content);
      }),
    );
    const final = await readAll(first.bucket, 'contended');
    assert.ok(
      contents.some((content) => sha(content) === sha(final)),
      'the contended object is exactly one of the writes',
    );
    assert.equal((await second.list('own-')).objects.length, 8);
    assert.deepEqual(await first.bucket.usage(), { objects: 9, bytes: 9 * 20_000 });
  });
}
