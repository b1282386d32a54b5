// A capsule learns its client's address from X-Forwarded-For, which the host appends as every
// proxy does: the connection's own address, after what a trusted proxy said, and alone when the
// client's claims were dropped.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { CAPABILITY_MODULES, createHostRuntime } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { buildDevCapsule } from '@stratum/sdk/build';
import { DEV_SOURCE_CAPABILITY } from '../packages/cli/src/dev/source-capability.ts';
import { testEngineCacheDir } from './support/dev-engines.ts';
import { removeDir } from './support/temp.ts';

type Via = 'ipv4' | 'dual-stack over ipv4' | 'dual-stack over ipv6';

async function serve(t: TestContext, trustedProxies?: string[]): Promise<(headers?: Record<string, string>, via?: Via) => Promise<string>> {
  const project = await mkdtemp(join(tmpdir(), 'stratum-client-address-'));
  t.after(() => removeDir(project));
  await writeFile(
    join(project, 'stratum.toml'),
    'stratum = 1\n[capsule]\nname = "who"\nversion = "0.1.0"\n[source]\nwasm = "dist/who.wasm"\n[build]\nentry = "src/index.js"\n',
  );
  await mkdir(join(project, 'src'));
  await writeFile(
    join(project, 'src', 'index.js'),
    "export default { fetch: (request) => new Response(request.headers.get('x-forwarded-for') ?? 'none') };\n",
  );
  const dev = await buildDevCapsule(project, { engineCacheDir: testEngineCacheDir });
  const bundleFile = join(project, 'bundle.js');
  await writeFile(bundleFile, dev.bundle);
  const dataDir = await mkdtemp(join(tmpdir(), 'stratum-client-address-data-'));
  const runtime = await createHostRuntime({
    dataDir,
    capabilities: [...CAPABILITY_MODULES, DEV_SOURCE_CAPABILITY],
    capabilityConfig: { dev: { bundleFile } },
    ...(trustedProxies ? { trustedProxies } : {}),
  });
  t.after(async () => {
    await runtime.close();
    await removeDir(dataDir);
  });
  const { manifest } = parseManifest(await readFile(join(project, 'stratum.toml'), 'utf8'), 'stratum.toml');
  await runtime.install({ manifest, domains: ['who.test'], component: await readFile(dev.engine.path) });
  await runtime.start('who');
  const servers = await Promise.all(
    ['127.0.0.1', '::'].map(async (address) => {
      const server = createServer((req, res) => runtime.handleRequest(req, res));
      await new Promise<void>((resolve) => server.listen(0, address, resolve));
      t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
      return server;
    }),
  );
  return (headers = {}, via = 'ipv4') =>
    new Promise((resolve, reject) => {
      const [ipv4, dualStack] = servers;
      const port = ((via === 'ipv4' ? ipv4 : dualStack)?.address() as AddressInfo | undefined)?.port;
      request(
        { host: via === 'dual-stack over ipv6' ? '::1' : '127.0.0.1', port, path: '/', headers: { host: 'who.test', ...headers } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            body += chunk;
          });
          res.on('end', () => resolve(res.statusCode === 200 ? body : `status ${res.statusCode}: ${body}`));
        },
      )
        .on('error', reject)
        .end();
    });
}

test("a capsule sees its client's address in X-Forwarded-For: the connection's own, a claim dropped, an IPv4 client of a dual-stack listener as IPv4", async (t) => {
  const get = await serve(t);
  assert.equal(await get(), '127.0.0.1');
  assert.equal(await get({ 'x-forwarded-for': '203.0.113.7' }), '127.0.0.1');
  assert.equal(await get({ 'x-real-ip': '203.0.113.7' }), '127.0.0.1');
  // A dual-stack listener, reached over IPv4 (its peer is ::ffff:127.0.0.1) and over IPv6.
  assert.equal(await get({}, 'dual-stack over ipv4'), '127.0.0.1');
  assert.equal(await get({}, 'dual-stack over ipv6'), '::1');
});

test("behind a trusted proxy the host appends the proxy's address after what the proxy said, as each proxy does", async (t) => {
  const get = await serve(t, ['127.0.0.0/8']);
  assert.equal(await get({ 'x-forwarded-for': '203.0.113.7' }), '203.0.113.7, 127.0.0.1');
  assert.equal(await get(), '127.0.0.1');
});
