// Start-up: time to the first response (a) from a freshly started host, `stratum host start`
// as a provider runs it, bringing back a capsule installed before (its transpile cache on disk),
// against a plain Node.js process started the same way (the floor: Node.js's own start-up);
// (b) for a capsule installed into a host that is already warm.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import { createControlClient, createHostRuntime, RECOMMENDED_HOST_ENV } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { type BenchComponent, exampleComponent, plainServer, stratumCli, tinyComponent } from '../lib/components.ts';
import { get } from '../lib/http.ts';
import { startServer } from '../lib/process.ts';
import { summarise } from '../lib/stats.ts';
import type { BenchRow, Suite } from '../lib/suite.ts';

const DOMAIN = 'bench.localhost';
const plainReady = /listening on (\d+)/;
const hostReady = /ingress\s+http:\/\/127\.0\.0\.1:(\d+)\//;

async function firstResponseMs(args: string[], ready: RegExp, cpus: string, host?: string, env?: NodeJS.ProcessEnv): Promise<number> {
  const started = performance.now();
  const server = await startServer(process.execPath, args, { ready, cpus, ...(env ? { env } : {}) });
  try {
    const { status } = await get(`http://127.0.0.1:${server.ready[1]}/`, host);
    if (status !== 200) throw new Error(`first response was ${status}`);
    return performance.now() - started;
  } finally {
    await server.stop();
  }
}

function hostStartArgs(config: string): string[] {
  return [stratumCli, 'host', 'start', '--config', config, '--log-format', 'json', '--log-level', 'warn'];
}

/**
 * A host directory with `component` installed over the signed control API and served once, as a
 * host that ran before leaves it: the installation in its store, the transpile cache and
 * Node.js's code cache filled. Returns its host.toml.
 */
async function installedHost(component: BenchComponent, dir: string): Promise<string> {
  const registrar = await generateEd25519KeyPair();
  await writeKeyFile(join(dir, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const config = join(dir, 'host.toml');
  await writeFile(
    config,
    [
      'stratum = 1',
      '[host]',
      'name = "bench.example"',
      'key = "host.key"',
      'data = "data"',
      '[ingress]',
      'listen = "127.0.0.1:0"',
      '[control]',
      'listen = "127.0.0.1:0"',
      '[registrars.bench]',
      `key = "${registrar.publicJwk.x}"`,
      '',
    ].join('\n'),
  );
  const host = await startServer(process.execPath, hostStartArgs(config), { ready: /control API\s+(\S+)/ });
  try {
    const ingress = hostReady.exec(host.ready.input)?.[1];
    const control = host.ready[1];
    if (!ingress || !control) throw new Error(`stratum host start printed no addresses:\n${host.ready.input}`);
    const client = createControlClient({ url: new URL(control), key: registrar.privateJwk, audience: 'bench.example' });
    await client.install({
      name: component.name,
      domains: [DOMAIN],
      manifest: await readFile(component.manifest, 'utf8'),
      component: new Uint8Array(await readFile(component.component)),
    });
    const { status } = await get(`http://127.0.0.1:${ingress}/`, DOMAIN);
    if (status !== 200) throw new Error(`${component.name} answered ${status} after its install`);
  } finally {
    await host.stop();
  }
  return config;
}

interface WarmRounds {
  /** `install`: digest, manifest checks, transpile cache hit, compile cache hit. */
  install: number[];
  /** `start`: a new instance, from the call to the instance saying it is ready. */
  start: number[];
  /** The instance's first response, on a new connection. */
  first: number[];
  /** A plain Node.js server's first response on a new connection, in the same process and round. */
  plainFirst: number[];
  total: number[];
}

async function listenLocal(server: ReturnType<typeof createServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

async function warmInstall(component: BenchComponent, rounds: number): Promise<WarmRounds> {
  const dataDir = await mkdtemp(join(tmpdir(), 'stratum-bench-warm-'));
  const runtime = await createHostRuntime({ dataDir });
  const server = createServer((request, response) => runtime.handleRequest(request, response));
  const port = await listenLocal(server);
  const plain = createServer((_request, response) => response.end('hello\n'));
  const plainPort = await listenLocal(plain);
  const { manifest } = parseManifest(await readFile(component.manifest, 'utf8'), component.manifest);
  const bytes = await readFile(component.component);
  const out: WarmRounds = { install: [], start: [], first: [], plainFirst: [], total: [] };
  try {
    // Round 0 warms the host: transpile, compile, first worker; it is not counted.
    for (let round = 0; round <= rounds; round++) {
      const name = `${component.name}-${round}`;
      // A warm host is one that has been up a moment: its spare worker is started (the rounds one
      // after another without a pause measure a host installing in bulk instead).
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const plainStarted = performance.now();
      await get(`http://127.0.0.1:${plainPort}/`);
      const plainMs = performance.now() - plainStarted;
      const started = performance.now();
      await runtime.install({ name, domains: [`${name}.bench`], manifest, baseDir: dirname(component.manifest), component: bytes });
      const installed = performance.now();
      await runtime.start(name);
      const ready = performance.now();
      const { status } = await get(`http://127.0.0.1:${port}/`, `${name}.bench`);
      const answered = performance.now();
      if (status !== 200) throw new Error(`${name} answered ${status}`);
      if (round === 0) continue;
      out.install.push(installed - started);
      out.start.push(ready - installed);
      out.first.push(answered - ready);
      out.plainFirst.push(plainMs);
      out.total.push(answered - started);
    }
  } finally {
    server.close();
    plain.close();
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  return out;
}

export const startupSuite: Suite = {
  name: 'startup',
  title: 'Start-up: time to the first response',
  async run(options) {
    const components = [await tinyComponent(), await exampleComponent('hello')];
    const cpus = options.serverCpus;
    const rows: BenchRow[] = [];
    const dirs: string[] = [];
    try {
      const configs = new Map<string, string>();
      for (const component of components) {
        const dir = await mkdtemp(join(tmpdir(), `stratum-bench-cold-${component.name}-`));
        dirs.push(dir);
        configs.set(component.name, await installedHost(component, dir));
      }
      // Each start twice a round: as Node.js starts by default, and in the environment README.md
      // recommends for a host (the baseline too, since it changes Node.js's own start as well).
      const settings = [
        { label: '', env: undefined },
        { label: ', recommended environment', env: RECOMMENDED_HOST_ENV },
      ].map((setting) => ({ ...setting, plain: [] as number[], cold: new Map<string, number[]>(components.map((one) => [one.name, []])) }));
      for (let round = 0; round < options.rounds * 2; round++) {
        for (const { env, plain, cold } of settings) {
          plain.push(await firstResponseMs([plainServer], plainReady, cpus, undefined, env));
          for (const component of components) {
            const ms = await firstResponseMs(hostStartArgs(configs.get(component.name) ?? ''), hostReady, cpus, DOMAIN, env);
            cold.get(component.name)?.push(ms);
          }
        }
      }
      for (const { label, plain, cold } of settings) {
        const floor = summarise(plain);
        rows.push({ name: `plain Node.js process, first response${label}`, unit: 'ms', summary: floor });
        for (const component of components) {
          const summary = summarise(cold.get(component.name) ?? []);
          const row: BenchRow = {
            name: `fresh host process (stratum host start), ${component.name} restored, cache on disk${label}`,
            unit: 'ms',
            summary,
            baseline: `plain process${label}`,
            ratio: summary.median / floor.median,
          };
          if (component.name === 'hello') row.target = { text: '< 300 ms for a JS capsule', met: summary.median < 300 };
          rows.push(row);
        }
      }
      for (const component of components) {
        const warm = await warmInstall(component, options.rounds * 2);
        const start = summarise(warm.start);
        rows.push({
          name: `new instance in a warm host, ${component.name} (start: spare thread, glue, instantiate)`,
          unit: 'ms',
          summary: start,
          target:
            component.name === 'hello'
              ? { text: '< 25 ms new JS instance', met: start.median < 25 }
              : { text: '< 1 ms new instance', met: start.median < 1 },
        });
        const plainFirst = summarise(warm.plainFirst);
        const first = summarise(warm.first);
        rows.push({
          name: `its first response on a new connection, ${component.name}`,
          unit: 'ms',
          summary: first,
          baseline: 'plain Node.js, same process',
          ratio: first.median / plainFirst.median,
        });
        rows.push({ name: `plain Node.js first response on a new connection (${component.name} rounds)`, unit: 'ms', summary: plainFirst });
        rows.push({ name: `install, same component, ${component.name}`, unit: 'ms', summary: summarise(warm.install) });
        rows.push({ name: `install + new instance + first response, ${component.name}`, unit: 'ms', summary: summarise(warm.total) });
      }
      return {
        suite: 'startup',
        title: this.title,
        rows,
        notes: [
          'Cold: from spawning `stratum host start` (pinned) on a host directory holding the capsule, installed over the control API and served once by an earlier run, to its first 200: the installation restored from the store, the transpile cache and the code cache on disk. The plain baseline is a JavaScript entry started the same way.',
          `"Recommended environment": the processes started with ${Object.entries(RECOMMENDED_HOST_ENV)
            .map(([key, value]) => `${key}=${value}`)
            .join(' ')}, as README.md's "Run a host" recommends (glibc's arenas capped, malloc's memory in transparent huge pages).`,
          "Warm: a new installation of an already-transpiled component in a host that has been up a moment, in the bench's own process: install, start (a new instance in the runtime's spare worker thread: the capsule's capabilities, jco's glue loaded in that thread, the core modules instantiated), then the first request on a new connection, against a plain Node.js server's first response in the same round.",
        ],
      };
    } finally {
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    }
  },
};
