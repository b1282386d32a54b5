import { rm } from 'node:fs/promises';

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
