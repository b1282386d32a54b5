import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  tool: string;
}

export interface LoadOptions {
  url: string;
  /** Host header, for the host's ingress. */
  host?: string;
  /** More request headers, as name and value. */
  headers?: [string, string][];
  seconds: number;
  connections: number;
  /** CPUs the load generator is pinned to (taskset list syntax), when pinning is possible. */
  cpus?: string;
}

const hasCommand = (command: string) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
export const canPin = hasCommand('taskset');
export const hasWrk = hasCommand('wrk');

/** wrk's latency distribution lines: "     50%  412.00us". */
function parseWrkLatency(text: string, percentile: string): number {
  const match = new RegExp(`^\\s*${percentile}%\\s+([0-9.]+)(us|ms|s)`, 'm').exec(text);
  if (!match?.[1]) return Number.NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

/**
 * Drives load with wrk (Debian) when present, else autocannon. wrk is preferred: one C thread
 * generates far more load than a Node.js load generator can, so the server is what is measured.
 */
export async function measureLoad(options: LoadOptions): Promise<LoadResult> {
  const pin = canPin && options.cpus ? ['taskset', '-c', options.cpus] : [];
  if (hasWrk) {
    const args = [
      ...pin.slice(1),
      ...(pin.length ? ['wrk'] : []),
      '-t1',
      `-c${options.connections}`,
      `-d${options.seconds}s`,
      '--latency',
      ...(options.host ? ['-H', `Host: ${options.host}`] : []),
      ...(options.headers ?? []).flatMap(([name, value]) => ['-H', `${name}: ${value}`]),
      options.url,
    ];
    const command = pin.length ? 'taskset' : 'wrk';
    const { stdout } = await run(command, args, { maxBuffer: 1 << 20 });
    const rps = /Requests\/sec:\s+([0-9.]+)/.exec(stdout);
    const errors = /Non-2xx or 3xx responses:\s+([0-9]+)/.exec(stdout);
    const socketErrors = /Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)/.exec(stdout);
    const socketErrorCount = socketErrors ? socketErrors.slice(1).reduce((sum, value) => sum + Number(value), 0) : 0;
    return {
      requestsPerSecond: Number(rps?.[1] ?? Number.NaN),
      p50Ms: parseWrkLatency(stdout, '50'),
      p99Ms: parseWrkLatency(stdout, '99'),
      errors: Number(errors?.[1] ?? 0) + socketErrorCount,
      tool: 'wrk',
    };
  }
  const autocannon = (await import('autocannon')).default;
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.seconds,
    headers: { ...Object.fromEntries(options.headers ?? []), ...(options.host ? { host: options.host } : {}) },
  });
  return {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.non2xx + result.errors + result.timeouts,
    tool: 'autocannon',
  };
}
