import type { Summary } from './stats.ts';

export interface BenchOptions {
  /** A short pass: fewer rounds and shorter runs, for a quick look. */
  quick: boolean;
  rounds: number;
  /** Seconds of load per measurement. */
  seconds: number;
  /** CPU list for servers and for the load generator (taskset syntax), when pinning is possible. */
  serverCpus: string;
  loadCpus: string;
  log(line: string): void;
}

/** One measured row: a name, the figures, and what it is compared against. */
export interface BenchRow {
  name: string;
  unit: string;
  summary: Summary;
  /** Extra figures, already summarised (latency percentiles and the like). */
  extra?: Record<string, Summary>;
  /** The row this one is compared with, by name, and the ratio of medians. */
  baseline?: string;
  ratio?: number;
  /** A target from the issue, and whether the median met it. */
  target?: { text: string; met: boolean };
}

export interface SuiteResult {
  suite: string;
  title: string;
  rows: BenchRow[];
  notes: string[];
}

export interface Suite {
  name: string;
  title: string;
  run(options: BenchOptions): Promise<SuiteResult>;
}
