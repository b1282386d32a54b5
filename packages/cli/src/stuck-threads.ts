import type { HostRuntime } from '@stratum/host';

/** Stratum's runtime counts them (`RuntimeStats.stuckThreads`); another `HostRuntime` may not. */
type Counting = HostRuntime & { stats?: () => { stuckThreads?: number } };

/**
 * Ends this process if a capsule instance's thread is stuck in native code (the runtime's
 * `stuckThreads`: an SQL statement on SQLite that does not end). Node.js joins every worker
 * thread as it exits, so `process.exit` would wait for that thread for ever; SIGKILL is the one
 * way out. Everything else has stopped and been written by then (the ledger, the logs).
 */
export function leaveIfThreadsStuck(runtimes: readonly Counting[], say: (line: string) => void): void {
  const stuck = runtimes.reduce((sum, runtime) => sum + (runtime.stats?.().stuckThreads ?? 0), 0);
  if (stuck === 0) return;
  say(
    `${stuck === 1 ? 'a capsule thread is' : `${stuck} capsule threads are`} stuck in native code (an SQL statement that does not end) and cannot be joined: leaving by SIGKILL`,
  );
  process.kill(process.pid, 'SIGKILL');
}
