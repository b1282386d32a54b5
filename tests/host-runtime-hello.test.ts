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

  // A streamed request body reaches the capsule whole.
  const body = Buffer.from('x'.repeat(200_000));
  const echoed = await new Promise<{ status: number; length: number }>((resolve, reject) => {
    const outgoing = request(
      { host: '127.0.0.1', port: host.port, path: '/echo', method: 'POST', headers: { host: 'hello.example' } },
      (res) => {
        let length = 0;
        res.on('data', (chunk: Buffer) => {
          length += chunk.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, length }));
      },
    );
    outgoing.on('error', reject);
    for (let offset = 0; offset < body.length; offset += 50_000) outgoing.write(body.subarray(offset, offset + 50_000));
    outgoing.end();
  });
  assert.equal(echoed.status, 200);
  assert.equal(echoed.length, body.length);
});
