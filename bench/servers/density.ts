// Density, in two modes, printing the process's RSS as JSON lines.
// warm (default): installs `count` copies of one component in one host (each under its own name
//   and domain), warms one instance of each with a request, and prints the RSS after every `step`
//   capsules, so the caller can fit the memory each warm instance costs.
// installed: installs `count` copies started on demand, from the transpile cache by digest (as a
//   restarted host restores them),
//   prints the RSS; requests `warm` of them, prints it again; waits until their instances have
//   been retired as idle, and prints it a last time. With --distinct each copy is another
//   component (the same one with a custom section naming it appended), as different apps are.
// Usage: node bench/servers/density.ts --manifest <stratum.toml> --component <file.wasm> --count N
//          [--step S] [--mode warm|installed] [--warm M] [--distinct]
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { createHostRuntime } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { get } from '../lib/http.ts';

// As the host does (packages/host/src/control/host.ts): an ES module import of node:http loads undici.
const { createServer } = process.getBuiltinModule('node:http');

const { values } = parseArgs({
  options: {
    manifest: { type: 'string' },
    component: { type: 'string' },
    count: { type: 'string', default: '50' },
    step: { type: 'string', default: '10' },
    mode: { type: 'string', default: 'warm' },
    warm: { type: 'string', default: '20' },
    // A data directory to keep (its transpile cache, as a restarted host has it); default: a temporary one.
    data: { type: 'string' },
    distinct: { type: 'boolean', default: false },
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

const dataDir = values.data ?? (await mkdtemp(join(tmpdir(), 'stratum-bench-density-')));
const { manifest } = parseManifest(await readFile(values.manifest, 'utf8'), values.manifest);
const bytes = await readFile(values.component);
const IDLE_MS = 5000;
// No host-wide instance limit: this measures how many instances the memory holds, which the
// default limit (one per 32 MiB of the machine's memory) would cut short on a small machine.
const runtime = await createHostRuntime({
  dataDir,
  maxInstances: Number.MAX_SAFE_INTEGER,
  ...(values.mode === 'installed' ? { limits: { idleMs: IDLE_MS } } : {}),
});
const server = createServer((req, res) => runtime.handleRequest(req, res));
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const address = server.address();
const port = typeof address === 'object' && address ? address.port : 0;

const gc = () => (globalThis as { gc?: () => void }).gc?.();

/**
 * The `index`th copy's component as a restarted host's store hands it over: its digest, and its
 * bytes only if the runtime asks (it does not, once the transpile cache holds it). With
 * --distinct each copy is another component (a custom section naming it appended, the same
 * code). Hashing in pieces makes no 12 MB copy per capsule, which the allocator would keep and
 * the RSS would show.
 */
const baseDigest = createHash('sha256').update(bytes).digest('hex');
function storedComponentOf(index: number): { digest: string; read(): Promise<Uint8Array> } {
  if (!values.distinct) return { digest: `sha256:${baseDigest}`, read: async () => bytes };
  const name = Buffer.from(`stratum-bench-${index}`);
  const section = Buffer.concat([Buffer.from([0x00, name.length + 1, name.length]), name]);
  const digest = `sha256:${createHash('sha256').update(bytes).update(section).digest('hex')}`;
  return { digest, read: async () => Buffer.concat([bytes, section]) };
}
const instances = () => runtime.status().reduce((sum, item) => sum + item.instances, 0);

async function warmMode(): Promise<void> {
  console.log(JSON.stringify({ capsules: 0, rss: await rssBytes() }));
  const count = Number(values.count);
  const step = Number(values.step);
  for (let index = 1; index <= count; index++) {
    const name = `${manifest.capsule.name}-${index}`;
    await runtime.install({ name, domains: [`${name}.density`], manifest, baseDir: dirname(values.manifest ?? ''), component: bytes });
    await runtime.start(name);
    const { status } = await get(`http://127.0.0.1:${port}/`, `${name}.density`);
    if (status !== 200) throw new Error(`${name} answered ${status}`);
    if (index % step === 0) {
      gc();
      console.log(JSON.stringify({ capsules: index, rss: await rssBytes(), warm: instances() }));
    }
  }
}

async function installedMode(): Promise<void> {
  const count = Number(values.count);
  const warm = Math.min(count, Number(values.warm));
  // A moment for the runtime's spare worker to start and load the capability modules, so that
  // it is in every figure.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  gc();
  console.log(JSON.stringify({ phase: 'empty', capsules: 0, rss: await rssBytes(), warm: instances() }));
  const started = performance.now();
  for (let index = 1; index <= count; index++) {
    const name = `${manifest.capsule.name}-${index}`;
    const storedComponent = storedComponentOf(index);
    await runtime.install({ name, domains: [`${name}.density`], manifest, baseDir: dirname(values.manifest ?? ''), storedComponent });
    await runtime.start(name, { onDemand: true });
  }
  const installMs = (performance.now() - started) / count;
  gc();
  console.log(JSON.stringify({ phase: 'installed', capsules: count, rss: await rssBytes(), warm: instances(), installMs }));
  for (let index = 1; index <= warm; index++) {
    const name = `${manifest.capsule.name}-${index}`;
    const { status } = await get(`http://127.0.0.1:${port}/`, `${name}.density`);
    if (status !== 200) throw new Error(`${name} answered ${status}`);
  }
  gc();
  console.log(JSON.stringify({ phase: 'warm', capsules: count, rss: await rssBytes(), warm: instances() }));
  for (let tries = 0; instances() > 0 && tries < 100; tries++) await new Promise((resolve) => setTimeout(resolve, 200));
  // Terminated threads give their memory back to the allocator over a moment.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  gc();
  console.log(JSON.stringify({ phase: 'evicted', capsules: count, rss: await rssBytes(), warm: instances() }));
}

try {
  if (values.mode === 'installed') await installedMode();
  else await warmMode();
} finally {
  server.close();
  await runtime.close();
  if (!values.data) await rm(dataDir, { recursive: true, force: true });
}
