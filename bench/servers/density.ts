// Density: installs `count` copies of one component in one host (each under its own name and
// domain), warms one instance of each with a request, and prints the process's RSS after every
// `step` capsules as JSON lines, so the caller can fit the memory each warm instance costs.
// Usage: node bench/servers/density.ts --manifest <stratum.toml> --component <file.wasm> --count N --step S
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { createHostRuntime } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { get } from '../lib/http.ts';

const { values } = parseArgs({
  options: {
    manifest: { type: 'string' },
    component: { type: 'string' },
    count: { type: 'string', default: '50' },
    step: { type: 'string', default: '10' },
  },
});
if (!values.manifest || !values.component) {
  console.error('usage: density.ts --manifest <stratum.toml> --component <file.wasm> [--count N] [--step S]');
  process.exit(2);
}

const rssBytes = async () => {
  const status = await readFile('/proc/self/status', 'utf8');
  return Number(/VmRSS:\s+([0-9]+) kB/.exec(status)?.[1] ?? 0) * 1024;
};

const dataDir = await mkdtemp(join(tmpdir(), 'stratum-bench-density-'));
const { manifest } = parseManifest(await readFile(values.manifest, 'utf8'), values.manifest);
const bytes = new Uint8Array(await readFile(values.component));
const runtime = await createHostRuntime({ dataDir });
const server = createServer((req, res) => runtime.handleRequest(req, res));
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const address = server.address();
const port = typeof address === 'object' && address ? address.port : 0;

try {
  console.log(JSON.stringify({ capsules: 0, rss: await rssBytes() }));
  const count = Number(values.count);
  const step = Number(values.step);
  for (let index = 1; index <= count; index++) {
    const name = `${manifest.capsule.name}-${index}`;
    await runtime.install({ name, domains: [`${name}.density`], manifest, baseDir: dirname(values.manifest), component: bytes });
    await runtime.start(name);
    const { status } = await get(`http://127.0.0.1:${port}/`, `${name}.density`);
    if (status !== 200) throw new Error(`${name} answered ${status}`);
    if (index % step === 0) {
      (globalThis as { gc?: () => void }).gc?.();
      console.log(
        JSON.stringify({ capsules: index, rss: await rssBytes(), warm: runtime.status().reduce((sum, item) => sum + item.instances, 0) }),
      );
    }
  }
} finally {
  server.close();
  await runtime.close();
  await rm(dataDir, { recursive: true, force: true });
}
