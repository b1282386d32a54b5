// A JS capsule whose heap cannot grow answers 500 itself (its engine catches the error): the host
// counts it as the memory limit's doing, for the operator's log, status and usage, as it counts a
// trap at the limit.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CAPABILITY_MODULES, createHostRuntime, type RequestRecord } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { buildDevCapsule } from '@stratum/sdk/build';
import { DEV_SOURCE_CAPABILITY } from '../packages/cli/src/dev/source-capability.ts';
import { testEngineCacheDir } from './support/dev-engines.ts';
import { removeDir } from './support/temp.ts';

test('a JS capsule that runs out of heap at its memory limit is counted as a memory limit hit, with why in its status, and not backed off for it', async (t) => {
  const project = await mkdtemp(join(tmpdir(), 'stratum-js-memory-'));
  t.after(() => removeDir(project));
  await writeFile(
    join(project, 'stratum.toml'),
    'stratum = 1\n[capsule]\nname = "eater"\nversion = "0.1.0"\n[source]\nwasm = "dist/eater.wasm"\n[build]\nentry = "src/index.js"\n[resources]\nmemory = "64mib"\n',
  );
  await mkdir(join(project, 'src'));
  await writeFile(
    join(project, 'src', 'index.js'),
    "export default { fetch(request) { if (new URL(request.url).pathname === '/eat') { const kept = []; for (;;) kept.push(new Uint8Array(1 << 20).fill(1)); } if (new URL(request.url).pathname === '/fail') return new Response('no', { status: 503 }); return new Response('ok'); } };\n",
  );
  const dev = await buildDevCapsule(project, { engineCacheDir: testEngineCacheDir });
  const bundleFile = join(project, 'bundle.js');
  await writeFile(bundleFile, dev.bundle);
  const dataDir = await mkdtemp(join(tmpdir(), 'stratum-js-memory-data-'));
  const runtime = await createHostRuntime({
    dataDir,
    capabilities: [...CAPABILITY_MODULES, DEV_SOURCE_CAPABILITY],
    capabilityConfig: { dev: { bundleFile } },
  });
  t.after(async () => {
    await runtime.close();
    await removeDir(dataDir);
  });
  const { manifest } = parseManifest(await readFile(join(project, 'stratum.toml'), 'utf8'), 'stratum.toml');
  await runtime.install({ manifest, domains: ['eater.test'], component: await readFile(dev.engine.path) });
  await runtime.start('eater');
  const records: RequestRecord[] = [];
  runtime.onRequest((record) => records.push(record));
  const server = createServer((req, res) => runtime.handleRequest(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;
  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      request({ port, path, headers: { host: 'eater.test' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
        .on('error', reject)
        .end();
    });

  // Its own 503 is its business: no limit.
  assert.equal(await get('/fail'), 503);
  assert.equal(await get('/eat'), 500);
  for (let tries = 0; tries < 500 && records.length < 2; tries++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(
    records.map((record) => [record.status, record.limit]),
    [
      [503, undefined],
      [500, 'memory'],
    ],
  );
  const status = runtime.status().find((capsule) => capsule.name === 'eater');
  assert.equal(status?.limitHits.memory, 1);
  assert.match(
    status?.lastError ?? '',
    /^GET \/eat answered 500 with its memory at the limit \(.* of 64 MiB\): out of memory, most likely$/,
  );
  // Served on, not backed off.
  for (let index = 0; index < 4; index++) assert.equal(await get('/'), 200);
});
