// One host per data directory. Two hosts on one directory would both append to the usage
// ledger, each with its own idea of the chain's head, and the next start would find the chain
// broken; they would also restore, prune and serve the same installations. The lock is an
// exclusive SQLite transaction held open on `<data>/host.lock`: SQLite takes it with the
// operating system's file locks, which end with the process however it ends, so a host killed
// with SIGKILL leaves no stale lock behind (as a PID file would).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { StratumError } from '@stratum/core';

export interface DataLock {
  release(): void;
}

interface Holder {
  pid: number;
  name: string;
  since: string;
}

/** Takes the data directory for this process, or throws DATA_DIR_IN_USE naming the host that has it. */
export function lockDataDir(dataDir: string, hostName: string): DataLock {
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
  // Only to name the holder to a host turned away: the lock itself is the transaction.
  const holder: Holder = { pid: process.pid, name: hostName, since: new Date().toISOString() };
  writeFileSync(`${path}.json`, `${JSON.stringify(holder)}\n`, { mode: 0o600 });
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      db.close();
    },
  };
}

function describeHolder(path: string): string {
  try {
    const holder = JSON.parse(readFileSync(`${path}.json`, 'utf8')) as Partial<Holder>;
    if (typeof holder.pid !== 'number') return '';
    return ` (${typeof holder.name === 'string' ? `${holder.name}, ` : ''}process ${holder.pid}${typeof holder.since === 'string' ? `, up since ${holder.since}` : ''})`;
  } catch {
    return '';
  }
}
