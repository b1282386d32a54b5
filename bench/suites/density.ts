// Density: what one warm capsule instance costs in resident memory, and so how many fit in 4 GiB.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RECOMMENDED_HOST_ENV } from '@stratum/host';
import { type BenchComponent, exampleComponent, tinyComponent } from '../lib/components.ts';
import { canPin } from '../lib/load.ts';
import { summarise } from '../lib/stats.ts';
import type { BenchRow, Suite } from '../lib/suite.ts';

const run = promisify(execFile);
const densityScript = new URL('../servers/density.ts', import.meta.url).pathname;
const BUDGET = 4 * 1024 ** 3;

interface Point {
  capsules: number;
  rss: number;
}

interface InstalledPoint extends Point {
  phase: 'empty' | 'installed' | 'warm' | 'evicted';
  warm: number;
  installMs?: number;
}

async function runDensity<T>(component: BenchComponent, cpus: string, extra: string[], env?: NodeJS.ProcessEnv): Promise<T[]> {
  const args = ['--expose-gc', densityScript, '--manifest', component.manifest, '--component', component.component, ...extra];
  const options = { maxBuffer: 1 << 20, env: { ...process.env, ...env } };
  const { stdout } = canPin
    ? await run('taskset', ['-c', cpus, process.execPath, ...args], options)
    : await run(process.execPath, args, options);
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as T);
}

function measure(component: BenchComponent, count: number, step: number, cpus: string, env?: NodeJS.ProcessEnv): Promise<Point[]> {
  return runDensity<Point>(component, cpus, ['--count', String(count), '--step', String(step)], env);
}

/** Rows for `count` warm capsules, `step` at a time: RSS per instance, and how many fit in 4 GiB. */
async function warmRows(
  component: BenchComponent,
  count: number,
  step: number,
  cpus: string,
  env?: NodeJS.ProcessEnv,
): Promise<{ rows: BenchRow[]; note: string }> {
  const points = await measure(component, count, step, cpus, env);
  const setting = env
    ? `, ${Object.entries(env)
        .map(([key, value]) => `${key}=${value}`)
        .join(' ')}`
    : '';
  const base = points[0]?.rss ?? 0;
  // Each step's slope: the memory that `step` more warm capsules took, per capsule.
  const slopes = points
    .slice(1)
    .map((point, index) => (point.rss - (points[index]?.rss ?? base)) / (point.capsules - (points[index]?.capsules ?? 0)));
  const last = points.at(-1);
  // The fit uses the mean over the whole run (first to last point), not the median step,
  // so that no step's growth is left out.
  const mean = last && last.capsules > 0 ? (last.rss - base) / last.capsules : Number.NaN;
  const fit = (BUDGET - base) / mean;
  return {
    rows: [
      {
        name: `${component.name}: RSS per warm capsule instance${setting}`,
        unit: 'MiB',
        summary: summarise(slopes.map((bytes) => bytes / 1024 / 1024)),
      },
      {
        name: `${component.name}: warm capsules in 4 GiB${setting} (mean ${(mean / 1024 / 1024).toFixed(1)} MiB each)`,
        unit: 'capsules',
        summary: summarise([fit]),
        ...(component.name === 'hello' ? { target: { text: '>= 100 warm JS instances', met: fit >= 100 } } : {}),
      },
    ],
    note: `${component.name}${setting}: host RSS ${(base / 1024 / 1024) | 0} MiB empty, ${last ? (last.rss / 1024 / 1024) | 0 : '-'} MiB with ${last?.capsules ?? 0} warm capsules (each installed, started and requested once).`,
  };
}

/**
 * Installed, not warm: `count` copies started on demand, `warm` of them requested once, then left
 * to be retired as idle. The transpile cache is made first by another process, as a restarted
 * host has it: the one-off transpile (jco's thread and what it leaves in the allocator) is not an
 * installed capsule's cost.
 */
async function measureInstalled(
  component: BenchComponent,
  count: number,
  warm: number,
  cpus: string,
  distinct = false,
): Promise<InstalledPoint[]> {
  const data = await mkdtemp(join(tmpdir(), 'stratum-bench-installed-'));
  const variants = distinct ? ['--distinct'] : [];
  try {
    // Distinct components are each transpiled once here (seconds each for a JS capsule).
    await runDensity(component, cpus, [
      '--mode',
      'installed',
      '--count',
      distinct ? String(count) : '1',
      '--warm',
      '0',
      '--data',
      data,
      ...variants,
    ]);
    return await runDensity<InstalledPoint>(component, cpus, [
      '--mode',
      'installed',
      '--count',
      String(count),
      '--warm',
      String(warm),
      '--data',
      data,
      ...variants,
    ]);
  } finally {
    await rm(data, { recursive: true, force: true });
  }
}

export const densitySuite: Suite = {
  name: 'density',
  title: 'Density: resident memory per warm capsule instance, and capsules per 4 GiB',
  async run(options) {
    const count = options.quick ? 20 : 60;
    const step = options.quick ? 5 : 10;
    const rows: BenchRow[] = [];
    const notes: string[] = [];
    for (const component of [await tinyComponent(), await exampleComponent('hello')]) {
      // Measured again in the environment README.md recommends for a host (glibc's arenas capped,
      // huge pages for malloc).
      for (const env of [undefined, RECOMMENDED_HOST_ENV]) {
        const warm = await warmRows(component, count, step, options.serverCpus, env);
        rows.push(...warm.rows);
        notes.push(warm.note);
      }

      const installedCount = options.quick ? 200 : 1000;
      const warmCount = options.quick ? 10 : 20;
      const phases = await measureInstalled(component, installedCount, warmCount, options.serverCpus);
      const at = (phase: InstalledPoint['phase']) => phases.find((point) => point.phase === phase);
      const empty = at('empty');
      const installed = at('installed');
      const evicted = at('evicted');
      const warmed = at('warm');
      if (empty && installed) {
        // At least 1 KiB: RSS is counted in pages, and a smaller growth is noise.
        const each = Math.max(1024, (installed.rss - empty.rss) / installedCount);
        rows.push({
          name: `${component.name}: RSS per installed capsule (idle, no instance)`,
          unit: 'KiB',
          summary: summarise([each / 1024]),
        });
        const fit = (BUDGET - empty.rss) / each;
        rows.push({
          name: `${component.name}: installed capsules in 4 GiB`,
          unit: 'capsules',
          summary: summarise([fit]),
          target: { text: '>= 1,000 installed, idle instances evicted', met: fit >= 1000 && (evicted?.warm ?? 1) === 0 },
        });
        notes.push(
          `${component.name}: ${installedCount} installed (started on demand, ${installed.installMs?.toFixed(1) ?? '-'} ms each): RSS ${(empty.rss / 1024 / 1024) | 0} -> ${(installed.rss / 1024 / 1024) | 0} MiB; ${warmed?.warm ?? 0} of ${warmCount} requested still warm: ${warmed ? (warmed.rss / 1024 / 1024) | 0 : '-'} MiB; after idle eviction (${evicted?.warm ?? '-'} instances left): ${evicted ? (evicted.rss / 1024 / 1024) | 0 : '-'} MiB (ended threads' memory stays partly with the allocator).`,
        );
      }

      // Apps are different components: what one more installed, idle app costs when it shares
      // nothing (its own compiled code, were it kept), from a few made distinct.
      const distinctCount = options.quick ? 4 : 8;
      const distinct = await measureInstalled(component, distinctCount, 0, options.serverCpus, true);
      const distinctEmpty = distinct.find((point) => point.phase === 'empty');
      const distinctInstalled = distinct.find((point) => point.phase === 'installed');
      if (distinctEmpty && distinctInstalled) {
        const each = Math.max(1024, (distinctInstalled.rss - distinctEmpty.rss) / distinctCount);
        rows.push({
          name: `${component.name}: RSS per installed capsule, distinct components (idle)`,
          unit: 'KiB',
          summary: summarise([each / 1024]),
        });
        const fit = (BUDGET - distinctEmpty.rss) / each;
        rows.push({
          name: `${component.name}: installed distinct capsules in 4 GiB`,
          unit: 'capsules',
          summary: summarise([fit]),
          target: { text: '>= 1,000 installed', met: fit >= 1000 },
        });
      }
    }
    notes.push(
      'Every warm instance is a worker thread (its own V8 isolate) holding one component instance; a capsule idle for [limits] idle (5 min by default; 5 s here) has its last instance retired, and a capsule restored after a restart starts none until its first request.',
    );
    return { suite: 'density', title: this.title, rows, notes };
  },
};
