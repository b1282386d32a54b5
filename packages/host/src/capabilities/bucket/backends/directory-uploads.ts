import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

/**
 * Unfinished uploads of the directory backend, and how they go when the thread writing them
 * ends without finishing or aborting them (a capsule's worker is terminated mid-request when it
 * is stopped or passes a limit, and no code of it runs then).
 *
 * Each thread that uploads into a bucket claims a folder, `uploads/<id>/`, and holds an
 * exclusive SQLite lock on `uploads/<id>.lock` for as long as it lives. Node.js closes a
 * thread's SQLite connections when it tears the thread down, terminated or not, and the
 * operating system when the process ends; so a lock that can be taken means its owner is gone,
 * and its folder can go. `sweepUploads` does that when a bucket is opened (by the capsule's next
 * instance, or after a restart). A lock file appears under its final name only once locked
 * (it is locked as `<id>.locking`, then renamed), so a sweep never mistakes a new owner for a
 * dead one.
 */

/** Files older than this that no lock accounts for (an earlier layout's, a claim cut short) are removed. */
const STALE_MS = 3_600_000;

export interface UploadOwner {
  /** The folder for this thread's unfinished uploads. */
  readonly dir: string;
  /** Removes the folder and lets go of the lock (the thread is done with the bucket). */
  release(): void;
}

export function claimUploads(uploads: string): UploadOwner {
  const id = randomBytes(16).toString('hex');
  const locking = join(uploads, `${id}.locking`);
  const lockPath = join(uploads, `${id}.lock`);
  const dir = join(uploads, id);
  const lock = new DatabaseSync(locking, { timeout: 0 });
  try {
    // Nothing is written: a journal file (named after `<id>.locking`) would only be left behind.
    lock.exec('PRAGMA journal_mode = MEMORY');
    lock.exec('BEGIN EXCLUSIVE');
    renameSync(locking, lockPath);
    mkdirSync(dir);
  } catch (error) {
    lock.close();
    rmSync(locking, { force: true });
    rmSync(lockPath, { force: true });
    throw error;
  }
  return {
    dir,
    release() {
      rmSync(dir, { recursive: true, force: true });
      if (lock.isOpen) lock.close();
      rmSync(lockPath, { force: true });
    },
  };
}

/** Whether the thread that locked `path` still lives. */
function held(path: string): boolean {
  let probe: DatabaseSync | undefined;
  try {
    probe = new DatabaseSync(path, { readOnly: true, timeout: 0 });
    probe.prepare('SELECT count(*) FROM sqlite_master').get();
    return false;
  } catch (error) {
    // Gone already (another sweep took it): nothing left to hold.
    if (error instanceof Error && /unable to open/.test(error.message)) return false;
    return true;
  } finally {
    probe?.close();
  }
}

/** Removes the unfinished uploads of threads that have ended. */
export function sweepUploads(uploads: string): void {
  const entries = new Set(readdirSync(uploads));
  for (const entry of entries) {
    const path = join(uploads, entry);
    if (entry.endsWith('.lock')) {
      if (held(path)) continue;
      rmSync(join(uploads, entry.slice(0, -'.lock'.length)), { recursive: true, force: true });
      rmSync(path, { force: true });
      continue;
    }
    // An owner's folder goes with its lock; the rest only when old.
    if (entries.has(`${entry}.lock`)) continue;
    try {
      if (Date.now() - statSync(path).mtimeMs > STALE_MS) rmSync(path, { recursive: true, force: true });
    } catch {
      // Removed meanwhile by another sweep.
    }
  }
}
