/**
 * Serves one component through the host runtime's ingress, for trying a capsule and for rough
 * throughput figures:
 *
 *   node examples/tiny/serve.ts [path/to/stratum.toml] [--port 8080] [--data-dir DIR]
 *   npx autocannon -c 1 -d 10 -H host=tiny.test http://127.0.0.1:8080/
 *
 * The default is the tiny capsule (built first); the domain is `<capsule name>.test`.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createHostRuntime } from '@stratum/host';
import { loadManifest } from '@stratum/manifest';
import { componentFromWat } from './build.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { port: { type: 'string', default: '0' }, 'data-dir': { type: 'string' } },
});
const here = dirname(fileURLToPath(import.meta.url));
const manifestPath = resolve(positionals[0] ?? join(here, 'stratum.toml'));
if (!positionals[0]) {
  const { readFile } = await import('node:fs/promises');
  await writeFile(join(here, 'tiny.wasm'), await componentFromWat(await readFile(join(here, 'tiny.wat'), 'utf8')));
}
const dataDir = values['data-dir'] ?? (await mkdtemp(join(tmpdir(), 'stratum-serve-')));
await mkdir(dataDir, { recursive: true });
const { manifest } = await loadManifest(manifestPath);
const runtime = await createHostRuntime({ dataDir });
const domain = `${manifest.capsule.name}.test`;
let started = performance.now();
await runtime.install({ manifest, baseDir: dirname(manifestPath), domains: [domain] });
const installMs = performance.now() - started;
started = performance.now();
await runtime.start(manifest.capsule.name);
const startMs = performance.now() - started;
runtime.onRequest((record) => {
  if (record.status >= 400)
    process.stderr.write(
      `${record.status} ${record.path} limit=${record.limit ?? '-'} cpu=${record.cpuMs.toFixed(1)}ms wall=${record.wallMs}ms\n`,
    );
});
const server = createServer((request, response) => runtime.handleRequest(request, response));
server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(
    `serving ${manifest.capsule.name} on http://127.0.0.1:${port}/ (Host: ${domain}); install ${Math.round(installMs)} ms, first instance ${Math.round(startMs)} ms; ${JSON.stringify(runtime.stats())}\n`,
  );
});
const stop = () => {
  server.close();
  void runtime.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
