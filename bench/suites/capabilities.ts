// Capabilities: keyvalue get/set and a SQL point query per second from inside a capsule, against
// the same backend used directly from Node.js, interleaved round by round. Plus what a JSPI
// (asynchronous) import costs against a synchronous one in V8 itself.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from '@bytecodealliance/jco';
import { buildCapsuleDir } from '../../tests/support/examples.ts';
import { SERVICES } from '../../tests/support/services.ts';
import { hostServer, opsNativeComponent } from '../lib/components.ts';
import { get } from '../lib/http.ts';
import { canPin } from '../lib/load.ts';
import { type ServerProcess, startServer } from '../lib/process.ts';
import { summarise } from '../lib/stats.ts';
import type { BenchOptions, BenchRow, Suite } from '../lib/suite.ts';

const run = promisify(execFile);
const capsuleDir = fileURLToPath(new URL('../capsules/ops/', import.meta.url));
const directScript = fileURLToPath(new URL('../servers/direct.ts', import.meta.url));

interface Backend {
  name: 'sqlite' | 'redis';
  capabilityConfig?: Record<string, unknown>;
  ops: ('get' | 'set' | 'query')[];
}

async function redisUp(): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const socket = connect(SERVICES.redis.port, SERVICES.redis.host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function direct(backend: string, op: string, n: number, cpus: string): Promise<number> {
  const args = [directScript, '--backend', backend, '--op', op, '--n', String(n)];
  const { stdout } = canPin ? await run('taskset', ['-c', cpus, process.execPath, ...args]) : await run(process.execPath, args);
  return (JSON.parse(stdout) as { opsPerSecond: number }).opsPerSecond;
}

const PATHS = {
  get: '/kv/get',
  set: '/kv/set',
  query: '/sql/query',
  format: '/intl/format',
  compare: '/intl/compare',
  'compare-en': '/intl/compare-en',
} as const;
type Op = keyof typeof PATHS;

/** What the Intl rows measure, by op: a call to the host for each, or the SDK's English shortcut. */
const INTL_OPS = {
  format: 'intl NumberFormat.format (de-DE, EUR)',
  compare: 'intl Collator.compare (de, names)',
  'compare-en': 'intl Collator.compare (en, names: 7 in 10 answered in the capsule)',
} as const;

async function throughCapsule(server: ServerProcess, op: Op, n: number): Promise<number> {
  const base = `http://127.0.0.1:${server.ready[1]}${PATHS[op]}`;
  const time = async (count: number) => {
    const started = performance.now();
    const response = await get(`${base}?n=${count}`, 'ops.bench');
    if (response.status !== 200) throw new Error(`${PATHS[op]} answered ${response.status}: ${response.body.slice(0, 300)}`);
    return performance.now() - started;
  };
  // Empty and full requests in turn, five of each: an empty request alone varied from 5 to 25 ms
  // on a shared machine, as much as a thousand operations take.
  const empty: number[] = [];
  const full: number[] = [];
  for (let i = 0; i < 5; i++) {
    empty.push(await time(0));
    full.push(await time(n));
  }
  return (n / Math.max(summarise(full).median - summarise(empty).median, 0.001)) * 1000;
}

async function jspiCost(calls: number): Promise<{ sync: number[]; jspi: number[] }> {
  const wat = `(module (import "env" "f" (func $f (result i32)))
    (func (export "run") (param $n i32) (result i32) (local $acc i32)
      (block $done (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (call $f)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
      (local.get $acc)))`;
  const module = new WebAssembly.Module(await parse(wat));
  const syncRun = new WebAssembly.Instance(module, { env: { f: () => 1 } }).exports.run as (n: number) => number;
  const asyncInstance = new WebAssembly.Instance(module, { env: { f: new WebAssembly.Suspending(async () => 1) } });
  const asyncRun = WebAssembly.promising(asyncInstance.exports.run as (n: number) => number) as (n: number) => Promise<number>;
  const sync: number[] = [];
  const jspi: number[] = [];
  for (let round = 0; round < 6; round++) {
    let started = performance.now();
    syncRun(calls);
    const syncMs = performance.now() - started;
    started = performance.now();
    await asyncRun(calls);
    const jspiMs = performance.now() - started;
    // The first round is warm-up.
    if (round > 0) {
      sync.push((syncMs * 1000) / calls);
      jspi.push((jspiMs * 1000) / calls);
    }
  }
  return { sync, jspi };
}

/**
 * Intl through the JS capsule (stratum:intl, the host's ICU) against Node.js's own Intl in a
 * fresh process, interleaved round by round as the backends are.
 */
async function intlRows(component: string, n: number, options: BenchOptions): Promise<BenchRow[]> {
  const server = await startServer(
    process.execPath,
    [hostServer, '--manifest', `${capsuleDir}stratum.toml`, '--component', component, '--domain', 'ops.bench'],
    { ready: /listening on (\d+)/, cpus: options.serverCpus },
  );
  const rows: BenchRow[] = [];
  try {
    for (const op of Object.keys(INTL_OPS) as (keyof typeof INTL_OPS)[]) await throughCapsule(server, op, 200);
    for (const [op, label] of Object.entries(INTL_OPS) as [keyof typeof INTL_OPS, string][]) {
      const baseline: number[] = [];
      const through: number[] = [];
      for (let round = 0; round < options.rounds; round++) {
        baseline.push(await direct('intl', op, 20_000, options.serverCpus));
        through.push(await throughCapsule(server, op, n));
        options.log(`round ${round + 1}: ${label}: direct ${baseline.at(-1)?.toFixed(0)}/s, JS capsule ${through.at(-1)?.toFixed(0)}/s`);
      }
      const direct_ = summarise(baseline);
      const summary = summarise(through);
      rows.push({ name: `${label}, Node.js direct`, unit: 'ops/s', summary: direct_ });
      rows.push({
        name: `${label}, through a JS capsule`,
        unit: 'ops/s',
        summary,
        baseline: 'direct',
        ratio: summary.median / direct_.median,
      });
    }
  } finally {
    await server.stop();
  }
  return rows;
}

export const capabilitiesSuite: Suite = {
  name: 'capabilities',
  title: 'Capabilities: operations per second through a capsule against the backend used directly',
  async run(options: BenchOptions) {
    const component = await buildCapsuleDir(capsuleDir, 'bench-ops');
    const backends: Backend[] = [{ name: 'sqlite', ops: ['get', 'set', 'query'] }];
    const notes: string[] = [];
    if (await redisUp()) {
      backends.push({
        name: 'redis',
        capabilityConfig: { keyvalue: { default: { type: 'redis', url: SERVICES.redis.url } } },
        ops: ['get', 'set'],
      });
    } else {
      notes.push(`Redis is not running on ${SERVICES.redis.host}:${SERVICES.redis.port}: its rows are missing.`);
    }
    const n = options.quick ? 1000 : 4000;
    // The direct loop runs in a fresh process: on SQLite, 1,000 operations are mostly V8 warming
    // up (one run of the same loop gave 19,000 to 151,000 ops/s), while the capsule is measured warm.
    const directOps = (backend: Backend['name']) => (backend === 'sqlite' ? Math.max(n, 20_000) : n);
    const rows: BenchRow[] = [];
    // The JS capsule is what most capsules are; the native one (a core module) shows the
    // capability's own cost, without StarlingMonkey's bindings (see bench/README.md).
    const native = await opsNativeComponent();
    const capsules = [
      { kind: 'JS capsule', manifest: `${capsuleDir}stratum.toml`, component, ops: ['get', 'set', 'query'] },
      { kind: 'native capsule', manifest: native.manifest, component: native.component, ops: ['get', 'set'] },
    ] as const;
    for (const backend of backends) {
      const servers: ServerProcess[] = [];
      try {
        for (const capsule of capsules) {
          servers.push(
            await startServer(
              process.execPath,
              [
                hostServer,
                '--manifest',
                capsule.manifest,
                '--component',
                capsule.component,
                '--domain',
                'ops.bench',
                ...(backend.capabilityConfig ? ['--capability-config', JSON.stringify(backend.capabilityConfig)] : []),
              ],
              { ready: /listening on (\d+)/, cpus: options.serverCpus },
            ),
          );
        }
        // Warm-up: the instance, the table, the keys /kv/get reads.
        for (const [index, server] of servers.entries()) {
          const ops = capsules[index]?.ops.filter((op) => backend.ops.includes(op)) ?? [];
          for (const op of ['set', ...ops] as const) await throughCapsule(server, op, 1000);
        }
        for (const op of backend.ops) {
          const baseline: number[] = [];
          const through = capsules.map(() => [] as number[]);
          for (let round = 0; round < options.rounds; round++) {
            baseline.push(await direct(backend.name, op, directOps(backend.name), options.serverCpus));
            for (const [index, capsule] of capsules.entries()) {
              const server = servers[index];
              if (server && (capsule.ops as readonly string[]).includes(op)) through[index]?.push(await throughCapsule(server, op, n));
            }
            options.log(
              `round ${round + 1}: ${backend.name} ${op}: direct ${baseline.at(-1)?.toFixed(0)}/s, ${capsules
                .map((capsule, index) => `${capsule.kind} ${through[index]?.at(-1)?.toFixed(0) ?? '-'}/s`)
                .join(', ')}`,
            );
          }
          const label = op === 'query' ? 'sql query' : `keyvalue ${op}`;
          const direct_ = summarise(baseline);
          rows.push({ name: `${backend.name} ${label}, Node.js direct`, unit: 'ops/s', summary: direct_ });
          for (const [index, capsule] of capsules.entries()) {
            const samples = through[index] ?? [];
            if (samples.length === 0) continue;
            const summary = summarise(samples);
            const row: BenchRow = {
              name: `${backend.name} ${label}, through a ${capsule.kind}${backend.name === 'redis' ? ' (JSPI)' : ' (sync)'}`,
              unit: 'ops/s',
              summary,
              baseline: 'direct',
              ratio: summary.median / direct_.median,
            };
            if (op === 'get') row.target = { text: '>= 50% of direct', met: summary.median / direct_.median >= 0.5 };
            rows.push(row);
          }
        }
      } finally {
        for (const server of servers) await server.stop();
      }
    }
    rows.push(...(await intlRows(component, n, options)));
    const calls = options.quick ? 200_000 : 1_000_000;
    const { sync, jspi } = await jspiCost(calls);
    const syncSummary = summarise(sync);
    const jspiSummary = summarise(jspi);
    rows.push({ name: 'V8 Wasm->JS import call, synchronous', unit: 'us/call', summary: syncSummary });
    rows.push({
      name: 'V8 Wasm->JS import call, JSPI Suspending',
      unit: 'us/call',
      summary: jspiSummary,
      baseline: 'sync',
      ratio: jspiSummary.median / syncSummary.median,
    });
    notes.push(
      `Through a capsule: one request runs n=${n} operations in a loop; the time of an n=0 request (HTTP, routing, instance) is subtracted. The JS capsule is bench/capsules/ops (StarlingMonkey); the native capsule is bench/capsules/ops-native (a core module in WAT), whose loop costs next to nothing, so its figure is the capability's own: the canonical ABI, the host's import and the backend.`,
      `Direct: the same loop in a Node.js process on the same pinned CPU, node:sqlite with the same pragmas (WAL, synchronous=NORMAL) or ioredis awaiting each command; ${directOps('sqlite')} operations on SQLite, so that V8's warm-up does not dominate.`,
      'SQLite binds synchronous glue (no JSPI); Redis binds JSPI for the keyvalue imports: the JSPI figure per call is V8 suspending on a resolved promise.',
      "Intl: the JS capsule's formatter and collators are made once, at build time; each format and each German comparison is a call to the host (stratum:intl), 7 in 10 English comparisons of these names are answered in the capsule (the others have a letter outside ASCII). Direct: the same loop with Node.js's Intl, 20,000 operations in a fresh process.",
    );
    return { suite: 'capabilities', title: this.title, rows, notes };
  },
};
