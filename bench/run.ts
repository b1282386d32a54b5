// `npm run bench [-- --quick] [-- --only overhead,startup]`: runs the benchmark suites, prints a
// table per suite and writes bench/results/<time>.json (and latest.json). Each suite runs its
// baseline in the same run, interleaved with what it measures, and reports medians.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { canPin, hasWrk } from './lib/load.ts';
import { formatNumber } from './lib/stats.ts';
import type { BenchOptions, SuiteResult } from './lib/suite.ts';
import { renderTable } from './lib/table.ts';
import { suites } from './suites/index.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log(`Usage: npm run bench [-- --quick] [-- --only <suite,...>]

Suites: ${suites.map((suite) => suite.name).join(', ')}
Writes bench/results/<timestamp>.json and bench/results/latest.json.`);
  process.exit(0);
}

const quick = values.quick === true;
const selected = values.only ? values.only.split(',') : suites.map((suite) => suite.name);
const unknown = selected.filter((name) => !suites.some((suite) => suite.name === name));
if (unknown.length > 0) {
  console.error(`error: unknown suite ${unknown.join(', ')}; suites: ${suites.map((suite) => suite.name).join(', ')}`);
  process.exit(2);
}

const cpuCount = cpus().length;
const options: BenchOptions = {
  quick,
  rounds: quick ? 3 : 5,
  seconds: quick ? 3 : 8,
  serverCpus: '0',
  loadCpus: cpuCount > 1 ? '1' : '0',
  log: (line) => console.log(`  ${line}`),
};

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpuCount,
  memoryGiB: Math.round(totalmem() / 1024 ** 3),
  node: process.version,
  loadGenerator: hasWrk ? 'wrk (1 thread)' : 'autocannon',
  pinning: canPin ? `server on CPU ${options.serverCpus}, load generator on CPU ${options.loadCpus} (taskset)` : 'none (taskset not found)',
};

console.log(
  `Stratum benchmarks${quick ? ' (quick)' : ''}: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node.js ${machine.node}`,
);
console.log(`load: ${machine.loadGenerator}; pinning: ${machine.pinning}; ${options.rounds} rounds of ${options.seconds}s\n`);

const results: SuiteResult[] = [];
for (const suite of suites.filter((candidate) => selected.includes(candidate.name))) {
  console.log(`## ${suite.title}`);
  const started = performance.now();
  const result = await suite.run(options);
  results.push(result);
  const show = (value: number) => (Math.abs(value) < 1 ? value.toPrecision(2) : formatNumber(value, value < 100 ? 2 : 0));
  const rows = result.rows.map((row) => [
    row.name,
    `${show(row.summary.median)} ${row.unit}`,
    `${show(row.summary.min)} - ${show(row.summary.max)}`,
    Object.entries(row.extra ?? {})
      .map(([name, summary]) => `${name} ${show(summary.median)}`)
      .join(', '),
    row.ratio !== undefined && row.baseline ? `${formatNumber(row.ratio * 100, 0)}% of ${row.baseline}` : '',
    row.target ? `${row.target.met ? 'met' : 'MISSED'}: ${row.target.text}` : '',
  ]);
  console.log(renderTable(['case', 'median', 'min - max', 'details (medians)', 'vs baseline', 'target'], rows));
  for (const note of result.notes) console.log(`- ${note}`);
  console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
}

const resultsDir = new URL('./results/', import.meta.url);
await mkdir(resultsDir, { recursive: true });
const report = { time: new Date().toISOString(), quick, machine, options: { rounds: options.rounds, seconds: options.seconds }, results };
const stamp = report.time.replace(/[:.]/g, '-');
await writeFile(new URL(`${stamp}.json`, resultsDir), `${JSON.stringify(report, null, 2)}\n`);
await writeFile(new URL('latest.json', resultsDir), `${JSON.stringify(report, null, 2)}\n`);
console.log(`wrote bench/results/${stamp}.json`);
