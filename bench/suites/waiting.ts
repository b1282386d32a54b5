// Waiting: a capsule whose every request waits on a slow backend (100 ms) and computes next to
// nothing, under 16 clients at once. What bounds it is how many of its requests the host lets
// wait at the same time: the instances a JSPI capsule may have beyond one per core
// (`asyncInstancesPerCapsule`, packages/host/src/README.md). Against a plain Node.js server that
// waits the same 100 ms before answering (the ceiling: 16 clients / 100 ms = 160 requests/s),
// and the same host held to two instances, one per core on this kind of machine, as every
// capsule was before.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { buildWat } from '../../tests/support/tiny.ts';
import { hostServer, plainServer } from '../lib/components.ts';
import { measureLoad } from '../lib/load.ts';
import { type ServerProcess, startServer } from '../lib/process.ts';
import { summarise } from '../lib/stats.ts';
import type { BenchRow, Suite } from '../lib/suite.ts';

const DELAY_MS = 100;
const CLIENTS = 16;
const capsuleDir = new URL('../capsules/wait/', import.meta.url);
const probeWit = fileURLToPath(new URL('../../tests/fixtures/hostile/probe.wit', import.meta.url));
const probeModule = new URL('../../tests/fixtures/hostile/probe-capability.ts', import.meta.url).href;

export const waitingSuite: Suite = {
  name: 'waiting',
  title: `Waiting: a capsule whose backend answers in ${DELAY_MS} ms, ${CLIENTS} clients at once`,
  async run(options) {
    const component = await buildWat(fileURLToPath(new URL('wait.wat', capsuleDir)), await readFile(probeWit, 'utf8'));
    const ready = /listening on (\d+)/;
    const config = JSON.stringify({ probe: { grant: ['wait'], async: true, delayMs: DELAY_MS } });
    const host = (asyncInstances?: number) => [
      hostServer,
      '--manifest',
      fileURLToPath(new URL('stratum.toml', capsuleDir)),
      '--component',
      component,
      '--domain',
      'wait.bench',
      '--capability',
      `probe=${probeModule}`,
      '--capability-config',
      config,
      ...(asyncInstances ? ['--async-instances', String(asyncInstances)] : []),
    ];
    const servers: ServerProcess[] = [];
    try {
      const start = async (args: string[]) => {
        const server = await startServer(process.execPath, args, { ready, cpus: options.serverCpus });
        servers.push(server);
        return server;
      };
      const cases = [
        { name: `plain Node.js http, answering after ${DELAY_MS} ms`, server: await start([plainServer, '--delay-ms', String(DELAY_MS)]) },
        { name: 'the capsule via host (instances up to asyncInstancesPerCapsule, 8)', server: await start(host()), host: 'wait.bench' },
        { name: 'the capsule via host held to 2 instances (one per core here)', server: await start(host(2)), host: 'wait.bench' },
      ];
      const rps = cases.map(() => [] as number[]);
      const errors = cases.map(() => 0);
      const load = (item: (typeof cases)[number], seconds: number) =>
        measureLoad({
          url: `http://127.0.0.1:${item.server.ready[1]}/`,
          ...(item.host ? { host: item.host } : {}),
          seconds,
          connections: CLIENTS,
          cpus: options.loadCpus,
        });
      // Warm-up: the instances start (one at a time) while the first requests wait.
      for (const item of cases) await load(item, 3);
      for (let round = 0; round < options.rounds; round++) {
        for (const [index, item] of cases.entries()) {
          const result = await load(item, options.seconds);
          errors[index] = (errors[index] ?? 0) + result.errors;
          rps[index]?.push(result.requestsPerSecond);
        }
        options.log(`round ${round + 1}: ${cases.map((item, index) => `${item.name} ${rps[index]?.at(-1)?.toFixed(1)}/s`).join(', ')}`);
      }
      const plain = summarise(rps[0] ?? []);
      const rows: BenchRow[] = cases.map((item, index) => {
        const summary = summarise(rps[index] ?? []);
        return index === 0
          ? { name: item.name, unit: 'req/s', summary }
          : { name: item.name, unit: 'req/s', summary, baseline: 'plain', ratio: summary.median / plain.median };
      });
      return {
        suite: 'waiting',
        title: this.title,
        rows,
        notes: [
          `Each server is one process pinned to the server CPU; ${CLIENTS} keep-alive connections; the capsule (bench/capsules/wait) calls the probe test capability once a request, configured to answer after ${DELAY_MS} ms; at most ${Math.round((CLIENTS * 1000) / DELAY_MS)} requests/s can be answered.`,
          errors.some((count) => count > 0)
            ? `Errors (wrk's, over all rounds; a request waiting past wrk's 2 s counts as one): ${cases.map((item, index) => `${item.name}: ${errors[index]}`).join('; ')}.`
            : 'No errors in any round.',
        ],
      };
    } finally {
      for (const server of servers) await server.stop();
    }
  },
};
