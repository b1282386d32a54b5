import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { canPin } from './load.ts';

export interface ServerProcess {
  child: ChildProcess;
  /** The first line the server printed that matched `ready`, with its capture groups. */
  ready: RegExpExecArray;
  /** Resident set size in bytes, from /proc. */
  rss(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts a server as its own process, pinned to `cpus` where taskset exists, and waits until it
 * prints a line matching `ready` (servers print their port that way).
 */
export async function startServer(
  command: string,
  args: string[],
  options: { ready: RegExp; cpus?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<ServerProcess> {
  const [file, argv] = canPin && options.cpus ? ['taskset', ['-c', options.cpus, command, ...args]] : [command, args];
  // Its own process group, so that stop() ends what it started too (`jco serve` runs the server in
  // a child of its own, which outlived every benchmark run before).
  const child = spawn(file, argv as string[], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
    detached: true,
  });
  let output = '';
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${command} did not become ready in time; it printed:\n${output.slice(-2000)}`)),
      options.timeoutMs ?? 60_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = options.ready.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited with ${code} before it was ready:\n${output.slice(-2000)}`));
    });
  });
  return {
    child,
    ready,
    async rss() {
      const { readFile } = await import('node:fs/promises');
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
      const kb = /VmRSS:\s+([0-9]+) kB/.exec(status)?.[1];
      return kb ? Number(kb) * 1024 : Number.NaN;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const group = (signal: NodeJS.Signals) => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, signal);
        } catch {
          child.kill(signal);
        }
      };
      const exited = once(child, 'exit');
      group('SIGTERM');
      const timer = setTimeout(() => group('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      // The group's other members (a child the server started) get the signal too; end them
      // for certain even when the leader left first.
      group('SIGKILL');
    },
  };
}
