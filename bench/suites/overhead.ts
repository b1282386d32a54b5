// Host overhead: what a request costs through Stratum against plain Node.js `http` and against
// jco serve, the existing Node.js component host, all in the same run, interleaved.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../tests/support/services.ts';
import { exampleComponent, helloFloorComponent, hostServer, jcoBin, plainServer, tinyComponent } from '../lib/components.ts';
import { measureLoad } from '../lib/load.ts';
import { type ServerProcess, startServer } from '../lib/process.ts';
import { summarise } from '../lib/stats.ts';
import type { BenchRow, Suite } from '../lib/suite.ts';

interface Case {
  name: string;
  url: string;
  host?: string;
  headers?: [string, string][];
  server: ServerProcess;
}

/**
 * What a browser sends with a page request besides Host. wrk's requests carry Host alone, and
 * every header costs a JavaScript capsule's interpreted code more than the rest of its request.
 */
const BROWSER_HEADERS: [string, string][] = [
  ['User-Agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'],
  ['Accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8'],
  ['Accept-Language', 'en-US,en;q=0.9'],
  ['Accept-Encoding', 'gzip, deflate, br, zstd'],
  ['Cookie', 'session=9f2c4e1a7b3d5f60; theme=dark'],
  ['Referer', 'https://hello.bench/'],
  ['Sec-Fetch-Dest', 'document'],
  ['Sec-Fetch-Mode', 'navigate'],
  ['Sec-Fetch-Site', 'same-origin'],
  ['Upgrade-Insecure-Requests', '1'],
  ['Cache-Control', 'max-age=0'],
];

interface Figures {
  rps: number[];
  p50: number[];
  p99: number[];
  rss: number[];
  errors: number;
}

export const overheadSuite: Suite = {
  name: 'overhead',
  title: 'Host overhead: requests/s and latency for a hello response',
  async run(options) {
    const [tiny, hello] = await Promise.all([tinyComponent(), exampleComponent('hello')]);
    const floor = await helloFloorComponent();
    const ready = /listening on (\d+)/;
    const cpus = options.serverCpus;
    const servers: ServerProcess[] = [];
    let jcoTemp: string | undefined;
    const start = async (args: string[], readyLine = ready, env?: NodeJS.ProcessEnv) => {
      const server = await startServer(process.execPath, args, { ready: readyLine, cpus, ...(env ? { env } : {}) });
      servers.push(server);
      return server;
    };
    try {
      const plain = await start([plainServer]);
      const tinyHost = await start([hostServer, '--manifest', tiny.manifest, '--component', tiny.component, '--domain', 'tiny.bench']);
      const helloHost = await start([hostServer, '--manifest', hello.manifest, '--component', hello.component, '--domain', 'hello.bench']);
      const floorHost = await start([hostServer, '--manifest', floor.manifest, '--component', floor.component, '--domain', 'floor.bench']);
      const jcoPort = await freePort();
      // jco serve transpiles into a directory of the system's temporary one and leaves it (13 MB
      // for hello) when stopped: give it one this suite removes.
      jcoTemp = await mkdtemp(join(tmpdir(), 'stratum-bench-jco-'));
      const jco = await start(
        [jcoBin, 'serve', hello.component, '--port', String(jcoPort), '--host', '127.0.0.1'],
        /listening @ [^\s]*:(\d+)/i,
        { TMPDIR: jcoTemp },
      );
      const url = (server: ServerProcess) => `http://127.0.0.1:${server.ready[1]}/`;
      const cases: Case[] = [
        { name: '(a) plain Node.js http', url: url(plain), server: plain },
        { name: '(b) tiny component via host', url: url(tinyHost), host: 'tiny.bench', server: tinyHost },
        { name: '(c) hello JS capsule via host', url: url(helloHost), host: 'hello.bench', server: helloHost },
        { name: '(d) hello JS under jco serve', url: url(jco), server: jco },
        {
          name: "(c) with a browser's 12 request headers",
          url: url(helloHost),
          host: 'hello.bench',
          headers: BROWSER_HEADERS,
          server: helloHost,
        },
        { name: '(e) JS floor: hello on wasi:http, no Fetch API', url: url(floorHost), host: 'floor.bench', server: floorHost },
      ];
      const figures = new Map<string, Figures>(cases.map((item) => [item.name, { rps: [], p50: [], p99: [], rss: [], errors: 0 }]));
      const load = (item: Case, seconds: number) =>
        measureLoad({
          url: item.url,
          ...(item.host ? { host: item.host } : {}),
          ...(item.headers ? { headers: item.headers } : {}),
          seconds,
          connections: 32,
          cpus: options.loadCpus,
        });
      // Warm-up: JIT, instances, connection pools.
      for (const item of cases) await load(item, 1);
      for (let round = 0; round < options.rounds; round++) {
        for (const item of cases) {
          const result = await load(item, options.seconds);
          const figure = figures.get(item.name);
          if (!figure) continue;
          figure.rps.push(result.requestsPerSecond);
          figure.p50.push(result.p50Ms);
          figure.p99.push(result.p99Ms);
          figure.errors += result.errors;
          figure.rss.push((await item.server.rss()) / 1024 / 1024);
          options.log(
            `round ${round + 1}: ${item.name}: ${result.requestsPerSecond.toFixed(0)} req/s, p99 ${result.p99Ms.toFixed(2)} ms${result.errors ? `, ${result.errors} errors` : ''}`,
          );
        }
      }
      const rows: BenchRow[] = cases.map((item) => {
        const figure = figures.get(item.name) ?? { rps: [], p50: [], p99: [], rss: [], errors: 0 };
        return {
          name: item.name,
          unit: 'req/s',
          summary: summarise(figure.rps),
          extra: { 'p50 ms': summarise(figure.p50), 'p99 ms': summarise(figure.p99), 'RSS MiB': summarise(figure.rss) },
        };
      });
      const [a, b, c, d, browser, floorRow] = rows;
      if (a && b) {
        b.baseline = '(a)';
        b.ratio = b.summary.median / a.summary.median;
        b.target = { text: '>= 50% of (a)', met: b.ratio >= 0.5 };
      }
      if (c && d) {
        c.baseline = '(d)';
        c.ratio = c.summary.median / d.summary.median;
        c.target = { text: '>= 4x (d) and >= 5,000 req/s', met: c.ratio >= 4 && c.summary.median >= 5000 };
      }
      if (d && a) {
        d.baseline = '(a)';
        d.ratio = d.summary.median / a.summary.median;
      }
      if (browser && c) {
        browser.baseline = '(c)';
        browser.ratio = browser.summary.median / c.summary.median;
      }
      if (floorRow && c) {
        floorRow.baseline = '(c)';
        floorRow.ratio = floorRow.summary.median / c.summary.median;
      }
      const errors = [...figures.entries()]
        .filter(([, figure]) => figure.errors > 0)
        .map(([name, figure]) => `${name}: ${figure.errors} errors`);
      return {
        suite: 'overhead',
        title: this.title,
        rows,
        notes: [
          'Each server is one process pinned to the server CPU; 32 keep-alive connections; medians over interleaved rounds.',
          "Requests carry the Host header alone, except (c) with a browser's 12 request headers (User-Agent, Accept, Cookie and the like).",
          "(e) answers as hello does, on wasi:http/types directly (bench/capsules/hello-floor): StarlingMonkey, jco's glue and the host, without the Request, Headers and Response objects that the SDK gives a capsule.",
          ...(errors.length ? [`non-2xx or socket errors: ${errors.join('; ')}`] : ['no errors in any round']),
        ],
      };
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
      if (jcoTemp) await rm(jcoTemp, { recursive: true, force: true });
    }
  },
};
