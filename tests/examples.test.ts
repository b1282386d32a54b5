import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatBytes } from '@stratum/core';
import { loadManifest, RESOURCE_CLASSES } from '@stratum/manifest';
import { checkImports, componentInterfaces, INCOMING_HANDLER } from '@stratum/sdk/build';
import { buildExample, EXAMPLES, type ExampleName, exampleDir, runComponent } from './support/examples.ts';

const CHUNK_BYTES = 256 * 1024;

async function manifestOf(name: ExampleName) {
  return (await loadManifest(join(exampleDir(name), 'stratum.toml'))).manifest;
}

async function start(name: ExampleName, t: { after(fn: () => Promise<void>): void; diagnostic(message: string): void }) {
  const manifest = await manifestOf(name);
  const running = await runComponent(await buildExample(name), manifest.capabilities);
  t.after(async () => {
    // Memory after the test's requests: what the [resources] cpu class must leave room for.
    const memory = running.memoryBytes();
    t.diagnostic(`${name}: linear memory ${memory.map(formatBytes).join(' + ')}`);
    const limit = RESOURCE_CLASSES[manifest.resources.cpu].maxMemoryBytes;
    assert.ok(Math.max(...memory) <= Math.min(limit, manifest.resources.memoryBytes), `${name} fits its class`);
    await running.close();
  });
  return running;
}

for (const name of EXAMPLES) {
  test(`examples/${name} builds to a component whose imports and exports match its manifest`, async () => {
    const manifest = await manifestOf(name);
    const { imports, exports } = await componentInterfaces(await readFile(await buildExample(name)));
    assert.deepEqual(exports, [INCOMING_HANDLER]);
    const { checks, unknown } = checkImports(manifest, imports);
    assert.deepEqual(unknown, []);
    assert.deepEqual(
      checks.filter((check) => !check.granted),
      [],
    );
    for (const capability of ['keyvalue', 'sql', 'bucket'] as const) {
      const imported = imports.some((entry) => entry.startsWith(`stratum:${capability}/`));
      assert.equal(imported, manifest.capabilities[capability].length > 0, `${capability} is imported exactly when granted`);
    }
    // The JS engine's own WASI imports, which every host must serve (see spec/wit/README.md).
    assert.ok(imports.includes('wasi:http/types@0.2.10'));
    assert.ok(imports.some((entry) => entry.startsWith('wasi:io/streams@0.2.')));
  });
}

test('hello: one instance serves many requests', async (t) => {
  const hello = await start('hello', t);
  for (let served = 1; served <= 3; served++) {
    const response = await fetch(`${hello.url}/greet?name=ada`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(await response.json(), { message: 'hello, ada', path: '/greet', served });
  }
  const body = 'x'.repeat(100_000);
  const echo = await fetch(`${hello.url}/echo`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
  assert.equal(echo.status, 200);
  assert.equal(await echo.text(), body);
});

test('counter: counts per path through keyvalue', async (t) => {
  const counter = await start('counter', t);
  const hit = async (path: string) => ((await (await fetch(`${counter.url}${path}`)).json()) as { count: number }).count;
  assert.equal(await hit('/a'), 1);
  assert.equal(await hit('/a'), 2);
  assert.equal(await hit('/b'), 1);
  assert.equal(await hit('/c'), 1);
  // The in-memory store pages list-keys two at a time, so this walks the cursor.
  assert.deepEqual(await (await fetch(`${counter.url}/_counts`)).json(), { '/a': 2, '/b': 1, '/c': 1 });
  assert.equal((await fetch(`${counter.url}/a`, { method: 'DELETE' })).status, 204);
  assert.equal(await hit('/a'), 1);
  assert.equal(new TextDecoder().decode(counter.keyvalue.get('default')?.get('hits:/b')), '1');
});

test('notes: a JSON API over sql', async (t) => {
  const notes = await start('notes', t);
  const create = (note: unknown) =>
    fetch(`${notes.url}/notes`, { method: 'POST', body: JSON.stringify(note), headers: { 'content-type': 'application/json' } });
  const first = await create({ title: 'First', body: 'one' });
  assert.equal(first.status, 201);
  const created = (await first.json()) as { id: number; title: string; body: string };
  assert.equal(created.title, 'First');
  assert.equal(first.headers.get('location'), `/notes/${created.id}`);
  await create({ title: '  Second  ' });
  const list = (await (await fetch(`${notes.url}/notes`)).json()) as { title: string }[];
  assert.deepEqual(
    list.map((note) => note.title),
    ['Second', 'First'],
  );
  assert.equal(((await (await fetch(`${notes.url}/notes/${created.id}`)).json()) as { body: string }).body, 'one');
  assert.equal((await create({ title: '' })).status, 400);
  assert.equal((await fetch(`${notes.url}/notes`, { method: 'POST', body: '{not json' })).status, 400);
  assert.equal((await fetch(`${notes.url}/notes/${created.id}`, { method: 'DELETE' })).status, 204);
  assert.equal((await fetch(`${notes.url}/notes/${created.id}`, { method: 'DELETE' })).status, 404);
  assert.equal((await fetch(`${notes.url}/notes/${created.id}`)).status, 404);
  assert.equal((await fetch(`${notes.url}/elsewhere`)).status, 404);
});

test('gallery: uploads and serves images through bucket, in chunks', async (t) => {
  const gallery = await start('gallery', t);
  const image = new Uint8Array(700_000).map((_, index) => (index * 31) % 251);
  const put = await fetch(`${gallery.url}/images/cat.png`, { method: 'PUT', body: image, headers: { 'content-type': 'image/png' } });
  assert.equal(put.status, 201);
  assert.equal(((await put.json()) as { size: number }).size, image.length);
  const images = gallery.buckets.get('images');
  assert.ok(images);
  // The SDK moves large objects in pieces, never the whole object in one call.
  assert.ok(images.largestChunk <= CHUNK_BYTES, `largest chunk ${images.largestChunk}`);

  const got = await fetch(`${gallery.url}/images/cat.png`);
  assert.equal(got.status, 200);
  assert.equal(got.headers.get('content-type'), 'image/png');
  assert.deepEqual(new Uint8Array(await got.arrayBuffer()), image);
  const etag = got.headers.get('etag') ?? '';
  assert.equal((await fetch(`${gallery.url}/images/cat.png`, { headers: { 'if-none-match': etag } })).status, 304);

  const ranged = await fetch(`${gallery.url}/images/cat.png`, { headers: { range: 'bytes=300000-300009' } });
  assert.equal(ranged.status, 206);
  assert.equal(ranged.headers.get('content-range'), `bytes 300000-300009/${image.length}`);
  assert.deepEqual(new Uint8Array(await ranged.arrayBuffer()), image.slice(300_000, 300_010));

  const rejected = await fetch(`${gallery.url}/images/notes.txt`, { method: 'PUT', body: 'hi', headers: { 'content-type': 'text/plain' } });
  assert.equal(rejected.status, 415);
  const listed = (await (await fetch(`${gallery.url}/images`)).json()) as { images: { name: string; size: number }[] };
  assert.deepEqual(listed.images, [{ name: 'cat.png', size: image.length, type: 'image/png', etag }]);
  assert.match(await (await fetch(`${gallery.url}/`)).text(), /<img src="\/images\/cat.png"/);
  assert.equal((await fetch(`${gallery.url}/images/cat.png`, { method: 'DELETE' })).status, 204);
  assert.equal((await fetch(`${gallery.url}/images/cat.png`)).status, 404);
});
