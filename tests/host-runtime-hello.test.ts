// examples/hello, a JS capsule built with componentize-js, through the runtime's ingress: the
// wasi:http bridge and the WASI basics serving a real toolchain's component.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { loadManifest } from '@stratum/manifest';
import { startHarness } from './fixtures/hostile/harness.ts';
import { buildExample, exampleDir } from './support/examples.ts';

test('examples/hello answers through the ingress with the right Host header; an unknown host gets 404', async (t) => {
  const component = await buildExample('hello');
  const host = await startHarness(t);
  const { manifest } = await loadManifest(`${exampleDir('hello')}/stratum.toml`);
  const { readFile } = await import('node:fs/promises');
  await host.runtime.install({ manifest, component: await readFile(component), domains: ['hello.example'] });
  await host.runtime.start('hello');

  const first = await host.get('hello.example', '/greet?x=1');
  assert.equal(first.status, 200);
  assert.match(String(first.headers['content-type']), /^application\/json/);
  assert.deepEqual(JSON.parse(first.body.toString()), { message: 'hello, world', path: '/greet', served: 1 });
  assert.equal(JSON.parse((await host.get('hello.example')).body.toString()).served, 2);
  assert.equal((await host.get('unknown.example')).status, 404);

  // A request body streamed into the capsule reaches it whole.
  // Four times the ring the body streams through, so the upload waits for the capsule to read.
  const body = Buffer.alloc(1024 * 1024, 'abcdefghij');
  const echoed = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const outgoing = request(
      { host: '127.0.0.1', port: host.port, path: '/echo', method: 'POST', headers: { host: 'hello.example' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    outgoing.on('error', reject);
    for (let offset = 0; offset < body.length; offset += 64 * 1024) outgoing.write(body.subarray(offset, offset + 64 * 1024));
    outgoing.end();
  });
  assert.equal(echoed.status, 200);
  assert.equal(echoed.body.length, body.length);
  assert.ok(echoed.body.equals(body), 'the echo differs from what was sent');

  // The capsule echoes the request's content-type: a value that is not ASCII comes back byte for
  // byte (Node.js writes and reads header values one byte a character, latin1), here "€" in UTF-8
  // and a latin1 "é".
  const echoType = (contentType: string) =>
    new Promise<{ status: number; contentType: string | undefined }>((resolve, reject) => {
      const outgoing = request(
        {
          host: '127.0.0.1',
          port: host.port,
          path: '/echo',
          method: 'POST',
          headers: { host: 'hello.example', 'content-type': contentType },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'] }));
        },
      );
      outgoing.on('error', reject);
      // A Buffer: Node.js writes the head and a string body as one UTF-8 string, which would alter the head.
      outgoing.end(Buffer.from('hi'));
    });
  const contentType = Buffer.from([...Buffer.from('text/plain; name='), 0xe2, 0x82, 0xac, 0x3b, 0x20, 0xe9]).toString('latin1');
  // And one longer than the slices the SDK reads a value in (8,192 bytes).
  for (const sent of [contentType, `${contentType}; pad=${'p'.repeat(10_000)}\u00e9`]) {
    const typed = await echoType(sent);
    assert.equal(typed.status, 200);
    assert.deepEqual(
      [...Buffer.from(typed.contentType ?? '', 'latin1')],
      [...Buffer.from(sent, 'latin1')],
      `the content-type of ${sent.length} bytes came back altered`,
    );
  }
});
