// A Stratum host in its own process for the benchmarks: the full path a request takes in
// production (ingress, Host-header routing, capsule worker, instance, response).
// Usage: node bench/servers/host.ts --manifest <stratum.toml> --component <file.wasm> [--domain <name>] [--data <dir>]
//        [--capability-config <json>] [--capability <name>=<module URL> ...] [--async-instances N]
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { enableCompileCache } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

// As the host does (packages/host/src/control/host.ts): an ES module import of node:http loads undici.
const { createServer } = process.getBuiltinModule('node:http');

// As the `stratum` launcher does for `stratum host start`: a code cache for the modules loaded
// after this line, which is why Stratum's own are imported dynamically.
enableCompileCache();
const { CAPABILITY_MODULES, createHostRuntime } = await import('@stratum/host');
const { parseManifest } = await import('@stratum/manifest');

const { values } = parseArgs({
  options: {
    manifest: { type: 'string' },
    component: { type: 'string' },
    domain: { type: 'string', default: 'bench.localhost' },
    data: { type: 'string' },
    // Each capability's host.toml section as JSON, e.g. '{"keyvalue":{"default":{"type":"redis","url":"redis://127.0.0.1:6379/0"}}}'.
    'capability-config': { type: 'string' },
    // A capability module beyond the host's own, as name=URL (a test capability, say).
    capability: { type: 'string', multiple: true },
    // The runtime's asyncInstancesPerCapsule.
    'async-instances': { type: 'string' },
  },
});
if (!values.manifest || !values.component) {
  console.error('usage: host.ts --manifest <stratum.toml> --component <file.wasm> [--domain <name>] [--data <dir>]');
  process.exit(2);
}

const dataDir = values.data ?? (await mkdtemp(join(tmpdir(), 'stratum-bench-host-')));
const { manifest } = parseManifest(await readFile(values.manifest, 'utf8'), values.manifest);
const capabilityConfig = values['capability-config'] ? (JSON.parse(values['capability-config']) as Record<string, unknown>) : undefined;
const extraCapabilities = (values.capability ?? []).map((entry) => {
  const at = entry.indexOf('=');
  return { name: entry.slice(0, at), module: entry.slice(at + 1) };
});
const runtime = await createHostRuntime({
  dataDir,
  ...(capabilityConfig ? { capabilityConfig } : {}),
  ...(extraCapabilities.length > 0 ? { capabilities: [...CAPABILITY_MODULES, ...extraCapabilities] } : {}),
  ...(values['async-instances'] ? { asyncInstancesPerCapsule: Number(values['async-instances']) } : {}),
});
const started = performance.now();
await runtime.install({
  name: manifest.capsule.name,
  domains: [values.domain],
  manifest,
  baseDir: dirname(values.manifest),
  component: await readFile(values.component),
});
await runtime.start(manifest.capsule.name);
const installMs = performance.now() - started;

const server = createServer((request, response) => runtime.handleRequest(request, response));
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (typeof address === 'object' && address) console.log(`listening on ${address.port} (installed in ${installMs.toFixed(1)} ms)`);
});

const shutdown = async () => {
  server.close();
  await runtime.close();
  if (!values.data) await rm(dataDir, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
