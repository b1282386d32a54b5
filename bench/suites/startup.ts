// Start-up: time to the first response (a) from a fresh host process whose transpile cache is
// already on disk, against a plain Node.js process started the same way (the floor: Node.js's
// own start-up); (b) for a capsule installed into a host that is already warm.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createHostRuntime } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { type BenchComponent, exampleComponent, hostServer, plainServer, tinyComponent } from '../lib/components.ts';
import { get } from '../lib/http.ts';
import { startServer } from '../lib/process.ts';
import { summarise } from '../lib/stats.ts';
import type { BenchRow, Suite } from '../lib/suite.ts';

const ready = /listening on (\d+)/;

async function firstResponseMs(args: string[], cpus: string, host?: string): Promise<number> {
  const started = performance.now();
  const server = await startServer(process.execPath, args, { ready, cpus });
  try {
    const { status } = await get(`http://127.0.0.1:${server.ready[1]}/`, host);
    if (status !== 200) throw new Error(`first response was ${status}`);
    return performance.now() - started;
  } finally {
    await server.stop();
  }
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
    const dataDirs = new Map<string, string>();
    try {
      for (const component of components) {
        const dataDir = await mkdtemp(join(tmpdir(), `stratum-bench-cold-${component.name}-`));
        dataDirs.set(component.name, dataDir);
        // Fill the transpile cache once, as a host that ran before would have.
        await firstResponseMs(
          [hostServer, '--manifest', component.manifest, '--component', component.component, '--data', dataDir],
          cpus,
          'bench.localhost',
        );
      }
      const plain: number[] = [];
      const cold = new Map<string, number[]>(components.map((component) => [component.name, []]));
      for (let round = 0; round < options.rounds * 2; round++) {
        plain.push(await firstResponseMs([plainServer], cpus));
        for (const component of components) {
          const dataDir = dataDirs.get(component.name) ?? '';
          const ms = await firstResponseMs(
            [hostServer, '--manifest', component.manifest, '--component', component.component, '--data', dataDir],
            cpus,
            'bench.localhost',
          );
          cold.get(component.name)?.push(ms);
        }
      }
      const floor = summarise(plain);
      rows.push({ name: 'plain Node.js process, first response', unit: 'ms', summary: floor });
      for (const component of components) {
        const summary = summarise(cold.get(component.name) ?? []);
        const row: BenchRow = {
          name: `fresh host process, ${component.name}, cache on disk`,
          unit: 'ms',
          summary,
          baseline: 'plain process',
          ratio: summary.median / floor.median,
        };
        if (component.name === 'hello') row.target = { text: '< 300 ms for a JS capsule', met: summary.median < 300 };
        rows.push(row);
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
          'Cold: from spawning `node bench/servers/host.ts` (pinned) to the first 200, transpile cache already on disk.',
          "Warm: a new installation of an already-transpiled component in a host that has been up a moment, in the bench's own process: install, start (a new instance in the runtime's spare worker thread: the capsule's capabilities, jco's glue loaded in that thread, the core modules instantiated), then the first request on a new connection, against a plain Node.js server's first response in the same round.",
        ],
      };
    } finally {
      for (const dir of dataDirs.values()) await rm(dir, { recursive: true, force: true });
    }
  },
};
