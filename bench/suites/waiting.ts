// Waiting: a capsule whose every request waits on a slow backend (100 ms) and computes next to
// nothing, under 16 clients at once. What bounds it is how many of its requests the host lets
// wait at the same time: the instances a JSPI capsule may have beyond one per core
// (`asyncInstancesPerCapsule`, packages/host/src/README.md). Against a plain Node.js server that
// waits the same 100 ms before answering (the ceiling: 16 clients / 100 ms = 160 requests/s),
// and the same host held to two instances, one per core on this kind of machine, as every
// capsule was before. Then the same capsule, on a new host each round, and the plain server at
// a steady pace (a request every PACE_MS, whether or not the ones before were answered):
// requests that come once the one running has waited a while are not posted behind it, and
// must still get instances of their own. Last, a capsule that sleeps 100 ms on the clock instead
// (bench/capsules/sleep, as a JS capsule's `setTimeout`): its glue is synchronous and the sleep
// blocks its thread, so the worker itself hands back what was posted behind a sleeping request.
import { readFile } from 'node:fs/promises';
import { setTimeout } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { buildWat } from '../../tests/support/tiny.ts';
import { hostServer, plainServer } from '../lib/components.ts';
import { get } from '../lib/http.ts';
import { measureLoad } from '../lib/load.ts';
import { type ServerProcess, startServer } from '../lib/process.ts';
import { summarise } from '../lib/stats.ts';
import type { BenchRow, Suite } from '../lib/suite.ts';

/** bench/capsules/sleep/sleep.wat sleeps as long: change both together. */
const DELAY_MS = 100;
const CLIENTS = 16;
/** 50 requests/s, five times what one instance answers and twice what two do. */
const PACE_MS = 20;

/**
 * Sends a GET every PACE_MS on a new connection for `seconds`, on time whether or not the ones
 * before have been answered (so a slow server is not sent less), and times each to its whole body.
 */
async function pacedLoad(url: string, host: string | undefined, seconds: number): Promise<{ latencies: number[]; errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  const answers: Promise<void>[] = [];
  const end = performance.now() + seconds * 1000;
  for (let due = performance.now(); due < end; due += PACE_MS) {
    await setTimeout(Math.max(0, due - performance.now()));
    const sent = performance.now();
    answers.push(
      get(url, host).then(
        (reply) => {
          if (reply.status === 200) latencies.push(performance.now() - sent);
          else errors++;
        },
        () => {
          errors++;
        },
      ),
    );
  }
  await Promise.all(answers);
  return { latencies, errors };
}

function percentile(values: number[], share: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * share))] ?? Number.NaN;
}

const capsuleDir = new URL('../capsules/wait/', import.meta.url);
const sleepDir = new URL('../capsules/sleep/', import.meta.url);
const probeWit = fileURLToPath(new URL('../../tests/fixtures/hostile/probe.wit', import.meta.url));
const probeModule = new URL('../../tests/fixtures/hostile/probe-capability.ts', import.meta.url).href;

export const waitingSuite: Suite = {
  name: 'waiting',
  title: `Waiting: a capsule whose backend answers in ${DELAY_MS} ms, ${CLIENTS} clients at once`,
  async run(options) {
    const component = await buildWat(fileURLToPath(new URL('wait.wat', capsuleDir)), await readFile(probeWit, 'utf8'));
    const sleeper = await buildWat(fileURLToPath(new URL('sleep.wat', sleepDir)));
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
        {
          name: `a capsule that sleeps ${DELAY_MS} ms on the clock, via host (synchronous glue)`,
          server: await start([
            hostServer,
            '--manifest',
            fileURLToPath(new URL('stratum.toml', sleepDir)),
            '--component',
            sleeper,
            '--domain',
            'sleep.bench',
          ]),
          host: 'sleep.bench',
        },
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
      // The paced rounds, plain and the capsule with up to 8 instances in turn. The capsule's host
      // is a new one each round, so that the capsule starts from one instance, as one does that
      // has been quiet (idle instances retire), not from the instances the load above left.
      const pacedCases = cases.slice(0, 2);
      const p50 = pacedCases.map(() => [] as number[]);
      const p99 = pacedCases.map(() => [] as number[]);
      const pacedErrors = pacedCases.map(() => 0);
      for (let round = 0; round < options.rounds; round++) {
        for (const [index, item] of pacedCases.entries()) {
          const fresh = item.host ? await startServer(process.execPath, host(), { ready, cpus: options.serverCpus }) : undefined;
          try {
            const server = fresh ?? item.server;
            const result = await pacedLoad(`http://127.0.0.1:${server.ready[1]}/`, item.host, options.seconds);
            pacedErrors[index] = (pacedErrors[index] ?? 0) + result.errors;
            p50[index]?.push(percentile(result.latencies, 0.5));
            p99[index]?.push(percentile(result.latencies, 0.99));
          } finally {
            await fresh?.stop();
          }
        }
        options.log(
          `paced round ${round + 1}: ${pacedCases.map((item, index) => `${item.name} p50 ${p50[index]?.at(-1)?.toFixed(1)} ms`).join(', ')}`,
        );
      }
      const pacedPlain = summarise(p50[0] ?? []);
      for (const [index, item] of pacedCases.entries()) {
        const summary = summarise(p50[index] ?? []);
        rows.push({
          name: `${item.name.replace(/ \(.*\)$/, '')}, one request every ${PACE_MS} ms: p50 latency`,
          unit: 'ms',
          summary,
          extra: { p99: summarise(p99[index] ?? []) },
          ...(index === 0 ? {} : { baseline: 'paced plain', ratio: summary.median / pacedPlain.median }),
        });
      }
      return {
        suite: 'waiting',
        title: this.title,
        rows,
        notes: [
          `Each server is one process pinned to the server CPU; ${CLIENTS} keep-alive connections; the capsule (bench/capsules/wait) calls the probe test capability once a request, configured to answer after ${DELAY_MS} ms; at most ${Math.round((CLIENTS * 1000) / DELAY_MS)} requests/s can be answered.`,
          errors.some((count) => count > 0)
            ? `Errors (wrk's, over all rounds; a request waiting past wrk's 2 s counts as one): ${cases.map((item, index) => `${item.name}: ${errors[index]}`).join('; ')}.`
            : 'No errors in any round.',
          `Paced: a GET every ${PACE_MS} ms on a new connection from the bench's own process, each timed to its whole body; p50 and p99 per round, medians over the rounds. ${
            pacedErrors.some((count) => count > 0)
              ? `Answers other than 200: ${pacedCases.map((item, index) => `${item.name}: ${pacedErrors[index]}`).join('; ')}.`
              : 'Every answer was a 200.'
          }`,
        ],
      };
    } finally {
      for (const server of servers) await server.stop();
    }
  },
};
