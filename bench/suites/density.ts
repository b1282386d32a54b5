// Density: what one warm capsule instance costs in resident memory, and so how many fit in 4 GiB.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
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

async function measure(component: BenchComponent, count: number, step: number, cpus: string): Promise<Point[]> {
  const args = [
    '--expose-gc',
    densityScript,
    '--manifest',
    component.manifest,
    '--component',
    component.component,
    '--count',
    String(count),
    '--step',
    String(step),
  ];
  const { stdout } = canPin
    ? await run('taskset', ['-c', cpus, process.execPath, ...args], { maxBuffer: 1 << 20 })
    : await run(process.execPath, args, { maxBuffer: 1 << 20 });
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Point);
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
      const points = await measure(component, count, step, options.serverCpus);
      const base = points[0]?.rss ?? 0;
      // Each step's slope: the memory that `step` more warm capsules took, per capsule.
      const slopes = points
        .slice(1)
        .map((point, index) => (point.rss - (points[index]?.rss ?? base)) / (point.capsules - (points[index]?.capsules ?? 0)));
      const perInstance = summarise(slopes.map((bytes) => bytes / 1024 / 1024));
      const last = points.at(-1);
      rows.push({ name: `${component.name}: RSS per warm capsule instance`, unit: 'MiB', summary: perInstance });
      // The fit uses the mean over the whole run (first to last point), not the median step,
      // so that no step's growth is left out.
      const mean = last && last.capsules > 0 ? (last.rss - base) / last.capsules : Number.NaN;
      const fit = (BUDGET - base) / mean;
      rows.push({
        name: `${component.name}: warm capsules in 4 GiB (mean ${(mean / 1024 / 1024).toFixed(1)} MiB each)`,
        unit: 'capsules',
        summary: summarise([fit]),
        target:
          component.name === 'hello'
            ? { text: '>= 100 warm JS instances', met: fit >= 100 }
            : { text: '>= 1,000 installed', met: fit >= 1000 },
      });
      notes.push(
        `${component.name}: host RSS ${(base / 1024 / 1024) | 0} MiB empty, ${last ? (last.rss / 1024 / 1024) | 0 : '-'} MiB with ${last?.capsules ?? 0} warm capsules (each installed, started and requested once).`,
      );
    }
    notes.push(
      "Every warm instance is a worker thread (its own V8 isolate) holding one component instance; idle ones are not evicted while they are the capsule's only instance.",
    );
    return { suite: 'density', title: this.title, rows, notes };
  },
};
