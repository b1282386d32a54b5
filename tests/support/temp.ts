import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/**
 * Removes a test's temporary directory, for its `t.after` hook. node:test runs a test's after
 * hooks in the order they were registered and skips the rest once one throws; a directory's hook
 * is usually registered before the hook that stops the host or worker using it, which may still
 * be writing there (a capsule thread flushing V8's code cache) when the removal runs. A removal
 * that failed with ENOTEMPTY then left that host running. It retries instead.
 */
export function removeDir(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
}

/** What a test starts that writes under its directory until it is closed: a host, a runtime. */
interface Closable {
  close(): Promise<unknown>;
}

/**
 * A temporary directory for a test that starts hosts or runtimes in it. `closing(x)` has `x`
 * closed, the last started first, before the directory goes, in one after hook: node:test runs
 * after hooks in the order they were added, and a directory registered for removal before its
 * host was closed lost the race to the host's capsule threads writing V8's code cache there.
 */
export async function testDir(t: TestContext, prefix: string): Promise<{ dir: string; closing<T extends Closable>(closable: T): T }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const closables: Closable[] = [];
  t.after(async () => {
    for (const closable of closables.reverse()) await closable.close();
    await removeDir(dir);
  });
  return {
    dir,
    closing(closable) {
      closables.push(closable);
      return closable;
    },
  };
}
