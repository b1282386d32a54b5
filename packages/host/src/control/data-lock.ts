// One host per data directory. Two hosts on one directory would both append to the usage
// ledger, each with its own idea of the chain's head, and the next start would find the chain
// broken; they would also restore, prune and serve the same installations. The lock is an
// exclusive SQLite transaction held open on `<data>/host.lock`: SQLite takes it with the
// operating system's file locks, which end with the process however it ends, so a host killed
// with SIGKILL leaves no stale lock behind (as a PID file would).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { formatDuration, type Logger, StratumError, silentLogger } from '@stratum/core';

export interface DataLock {
  /**
   * Lets go of the directory. `started: false` for a start that failed before the host served:
   * the record of the host before is put back as it was, so that an unclean stop it recorded is
   * still told at the next start (a refused start recorded a clean stop of its own over it).
   */
  release(options?: { started?: boolean }): void;
}

export interface DataLockOptions {
  /** Told, at warn, when the host before this one did not stop cleanly. */
  logger?: Logger;
  /** The host's `[metering] flush_interval`: how much usage an unclean stop may have lost. */
  flushIntervalMs?: number;
}

/**
 * Who holds the lock, in `<data>/host.lock.json`. `stopped` is null while the host runs and the
 * time it released the lock once it stopped cleanly (its ledger written): a file still null at
 * the next start is a host that died. Absent in the files of releases before it was kept.
 */
interface Holder {
  pid: number;
  name: string;
  since: string;
  stopped?: string | null;
}

/** Takes the data directory for this process, or throws DATA_DIR_IN_USE naming the host that has it. */
export function lockDataDir(dataDir: string, hostName: string, options: DataLockOptions = {}): DataLock {
  const path = join(dataDir, 'host.lock');
  const db = new DatabaseSync(path);
  try {
    // No journal: nothing is ever written, and a killed host would leave one behind.
    db.exec('PRAGMA journal_mode = OFF; PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE');
  } catch (error) {
    db.close();
    if (!(error instanceof Error) || !/locked|busy/i.test(error.message)) throw error;
    throw new StratumError('DATA_DIR_IN_USE', `the data directory ${dataDir} is in use by another Stratum host${describeHolder(path)}`, {
      hint: 'Stop that host first, or give this one a data directory of its own ([host] data in host.toml).',
    });
  }
  // The lock is ours, so the host named there has ended; whether it stopped cleanly is in the file.
  const recorded = readRecord(path);
  const before = holderOf(recorded);
  if (before && before.stopped === null) {
    const flush =
      options.flushIntervalMs === undefined
        ? 'one [metering] flush_interval'
        : `one flush interval (${formatDuration(options.flushIntervalMs)})`;
    (options.logger ?? silentLogger).warn(
      // Not `host`: the host's logger names this host so already.
      { dataDir, pid: before.pid, previousHost: before.name, since: before.since },
      `the host that last ran on ${dataDir} (${typeof before.name === 'string' ? `${before.name}, ` : ''}process ${before.pid}, up since ${before.since ?? 'an unknown time'}) did not stop cleanly (it was killed, crashed, or its machine went down): the usage it served in up to ${flush} before it ended is not in the usage ledger (spec/host-api.md section 7); its own log, or the service manager's, says how it ended`,
    );
  }
  // Only to name the holder to a host turned away, and to tell the next start how this one ended: the lock itself is the transaction.
  const holder: Holder = { pid: process.pid, name: hostName, since: new Date().toISOString(), stopped: null };
  writeFileSync(`${path}.json`, `${JSON.stringify(holder)}\n`, { mode: 0o600 });
  let released = false;
  return {
    release({ started = true } = {}) {
      if (released) return;
      released = true;
      // Before the lock goes: once it has, the next host may have written its own.
      try {
        const record =
          started || recorded === undefined ? `${JSON.stringify({ ...holder, stopped: new Date().toISOString() })}\n` : recorded;
        writeFileSync(`${path}.json`, record, { mode: 0o600 });
      } catch {
        // The next start then warns of an unclean stop: a false alarm, not a lost one.
      }
      db.close();
    },
  };
}

function readRecord(path: string): string | undefined {
  try {
    return readFileSync(`${path}.json`, 'utf8');
  } catch {
    return undefined;
  }
}

function holderOf(text: string | undefined): Partial<Holder> | undefined {
  try {
    const holder = JSON.parse(text ?? '') as Partial<Holder> | null;
    return holder !== null && typeof holder === 'object' && typeof holder.pid === 'number' ? holder : undefined;
  } catch {
    return undefined;
  }
}

function readHolder(path: string): Partial<Holder> | undefined {
  return holderOf(readRecord(path));
}

function describeHolder(path: string): string {
  const holder = readHolder(path);
  if (!holder) return '';
  return ` (${typeof holder.name === 'string' ? `${holder.name}, ` : ''}process ${holder.pid}${typeof holder.since === 'string' ? `, up since ${holder.since}` : ''})`;
}
