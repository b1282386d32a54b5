// What `stratum dev` relies on from the runtime: re-installing a running capsule starts the new
// version first, switches the domains, and lets the old one finish its in-flight requests; a
// new version that cannot start leaves the old one serving.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createHostRuntime } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { removeDir } from './support/temp.ts';
import { buildWat } from './support/tiny.ts';

const tinyWat = fileURLToPath(new URL('../examples/tiny/tiny.wat', import.meta.url));

/** The tiny capsule with another 16-byte greeting, optionally spinning before it answers, or failing to start. */
async function variant(t: TestContext, name: string, options: { greeting: string; spin?: number; brokenStart?: boolean }): Promise<string> {
  assert.equal(options.greeting.length, 16);
  let wat = (await readFile(tinyWat, 'utf8')).replace('"hello from tiny "', JSON.stringify(options.greeting));
  if (options.spin) {
    wat = wat.replace(
      '(local $response i32) (local $body i32) (local $stream i32) (local $len i32)',
      `(local $response i32) (local $body i32) (local $stream i32) (local $len i32) (local $spin i32)
    (local.set $spin (i32.const ${options.spin}))
    (loop $busy (local.set $spin (i32.sub (local.get $spin) (i32.const 1))) (br_if $busy (local.get $spin)))`,
    );
  }
  if (options.brokenStart) wat = wat.replace('(func (export "cm32p2_initialize"))', '(func (export "cm32p2_initialize") unreachable)');
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-variant-'));
  t.after(() => removeDir(dir));
  const path = join(dir, `${name}.wat`);
  await writeFile(path, wat);
  return buildWat(path);
}

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

async function startRuntime(t: TestContext) {
  const dataDir = await mkdtemp(join(tmpdir(), 'stratum-dev-runtime-'));
  const runtime = await createHostRuntime({ dataDir });
  const server = createServer((req, res) => runtime.handleRequest(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const install = async (name: string, wasm: string) => {
    const text = `stratum = 1\n[capsule]\nname = "${name}"\nversion = "0.1.0"\n[source]\nwasm = "${basename(wasm)}"\n[resources]\ncpu = "large"\n`;
    return runtime.install({ name, manifest: parseManifest(text).manifest, baseDir: dirname(wasm), domains: [`${name}.localhost`] });
  };
  return { runtime, port: (server.address() as AddressInfo).port, install };
}

test('re-installing a running capsule lets its in-flight request finish on the old version', async (t) => {
  const [slowOld, fresh] = await Promise.all([
    variant(t, 'old', { greeting: 'hello from old  ', spin: 400_000_000 }),
    variant(t, 'new', { greeting: 'hello from new  ' }),
  ]);
  const { runtime, port, install } = await startRuntime(t);
  await install('app', slowOld);
  await runtime.start('app');
  // Transpile the new version once under another name, so that the swap itself is quick and
  // happens while the old version is still busy with the request below.
  await install('warm', fresh);
  await runtime.uninstall('warm');

  const inFlight = get(port, 'app.localhost');
  for (let tries = 0; tries < 400 && runtime.status()[0]?.inFlight === 0; tries++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(runtime.status()[0]?.inFlight, 1, 'the slow request is in flight');

  const status = await install('app', fresh);
  assert.equal(status.state, 'running');
  assert.deepEqual(await inFlight, { status: 200, body: 'hello from old  1\n' });
  assert.deepEqual(await get(port, 'app.localhost'), { status: 200, body: 'hello from new  1\n' });
  assert.deepEqual(
    runtime.status().map((capsule) => [capsule.name, capsule.state, capsule.instances]),
    [['app', 'running', 1]],
  );
});

test('a new version that cannot start leaves the old one serving', async (t) => {
  const [good, broken] = await Promise.all([
    variant(t, 'good', { greeting: 'hello from good ' }),
    variant(t, 'broken', { greeting: 'hello from bad  ', brokenStart: true }),
  ]);
  const { runtime, port, install } = await startRuntime(t);
  await install('app', good);
  await runtime.start('app');
  assert.equal((await get(port, 'app.localhost')).body, 'hello from good 1\n');

  await assert.rejects(install('app', broken));
  assert.deepEqual(await get(port, 'app.localhost'), { status: 200, body: 'hello from good 2\n' });
  assert.equal(runtime.status()[0]?.state, 'running');
});
