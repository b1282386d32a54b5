// Which layout of the data directory a host wrote, so that an older host refuses one a newer
// host has written in a way it would misread (an installation record, the ledger, a backend's
// files), instead of serving from it, appending to it, or deleting what it does not know.
// Databases do the same (PostgreSQL's PG_VERSION, etcd's and NATS's stores): an upgrade moves
// the directory forward, and only a backup goes back.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, StratumError } from '@stratum/core';

/**
 * The layout this host reads and writes. Raise it when a change means that the host before it
 * would misread the directory (and say so in CHANGELOG.md); a host upgrading a directory of a
 * lower one converts it before it writes the new number.
 */
export const DATA_FORMAT = 1;

export const DATA_FORMAT_FILE = 'format.json';

interface FormatRecord {
  format: number;
  /** The release that wrote this format last, to name it to an older host that refuses it. */
  writtenBy: string;
  since: string;
}

/**
 * Checks the data directory's format, and records this host's when the directory has none (a
 * new one, or one written before the file existed, which is format 1) or an older one. Throws
 * DATA_DIR_NEWER for a directory a newer host has written; its file is left as it is. Called
 * with the directory locked, before anything in it is read.
 */
export async function checkDataFormat(dataDir: string, version: string): Promise<void> {
  const path = join(dataDir, DATA_FORMAT_FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text !== undefined) {
    const record = parseRecord(text, path);
    if (record.format > DATA_FORMAT) {
      throw new StratumError(
        'DATA_DIR_NEWER',
        `the data directory ${dataDir} has format ${record.format}, written by Stratum ${record.writtenBy}; this host (${version}) reads format ${DATA_FORMAT} and older`,
        {
          hint: 'Run the release that wrote it, or a newer one. Going back to an older release takes a backup of the data directory made before the upgrade (CHANGELOG.md).',
        },
      );
    }
    if (record.format === DATA_FORMAT) return;
  }
  const record: FormatRecord = { format: DATA_FORMAT, writtenBy: version, since: new Date().toISOString() };
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, path);
}

function parseRecord(text: string, path: string): FormatRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw damaged(path, `it is not JSON (${errorMessage(error)})`);
  }
  const record = parsed as Partial<FormatRecord> | null;
  if (typeof record !== 'object' || record === null || !Number.isSafeInteger(record.format) || (record.format as number) < 1) {
    throw damaged(path, '"format" is not a whole number of 1 or more');
  }
  return {
    format: record.format as number,
    writtenBy: typeof record.writtenBy === 'string' ? record.writtenBy : 'an unknown release',
    since: String(record.since),
  };
}

function damaged(path: string, why: string): StratumError {
  return new StratumError('DATA_DIR_DAMAGED', `${path} does not say which format the data directory has: ${why}`, {
    hint: `It is written by the host; if it was edited by hand, put back {"format": ${DATA_FORMAT}} when the directory was last used by this release, or restore the data directory from a backup.`,
  });
}
