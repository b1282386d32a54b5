// Where `stratum registrar challenge` keeps the challenges it issued until `registrar verify`
// takes them (spec/discovery.md section 6.1): one small JSON file, owner-only.
import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StratumError } from '@stratum/core';
import type { Challenge, ChallengeStore } from '@stratum/discovery';

/** How long a used token is remembered past its expiry, so that a late replay still reads as a replay. */
const REMEMBER_USED_MS = 3_600_000;
/** A lock file older than this was left by a process that died holding it. */
const STALE_LOCK_MS = 30_000;

interface StoredChallenge extends Challenge {
  /** When `registrar verify` took it; a token is taken once, whatever the outcome. */
  usedAt?: number;
}

interface StateFile {
  version: 1;
  challenges: Record<string, StoredChallenge>;
}

/** The default state file: $XDG_STATE_HOME/stratum/challenges.json, else ~/.local/state/stratum/challenges.json. */
export function defaultChallengeStateFile(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME ?? '';
  // The XDG spec ignores a relative path.
  const base = xdg.startsWith('/') ? xdg : join(homedir(), '.local', 'state');
  return join(base, 'stratum', 'challenges.json');
}

async function readState(file: string): Promise<StateFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, challenges: {} };
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as StateFile;
    if (parsed?.version !== 1 || typeof parsed.challenges !== 'object' || parsed.challenges === null)
      throw new Error('not a version 1 state file');
    return parsed;
  } catch (error) {
    throw new StratumError('CHALLENGE_STATE_INVALID', `the challenge state file ${file} cannot be read: ${(error as Error).message}`, {
      hint: 'It is written by `stratum registrar challenge`; move it away to start afresh (the challenges in it are then lost).',
    });
  }
}

/**
 * A challenge store in one file. Every change holds `<file>.lock` (created exclusively), reads,
 * changes and replaces the file whole (a rename), so that two `registrar verify` runs cannot
 * both take one token.
 */
export class FileChallengeStore implements ChallengeStore {
  readonly file: string;
  readonly #now: () => number;

  constructor(file: string, options: { now?: () => number } = {}) {
    this.file = file;
    this.#now = options.now ?? Date.now;
  }

  async #locked<T>(change: (state: StateFile) => T): Promise<T> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    const lock = `${this.file}.lock`;
    for (let attempt = 0; ; attempt++) {
      try {
        await (await open(lock, 'wx', 0o600)).close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const age = await stat(lock).then(
          (info) => Date.now() - info.mtimeMs,
          () => 0,
        );
        if (age > STALE_LOCK_MS) await rm(lock, { force: true });
        else if (attempt >= 100) {
          throw new StratumError('CHALLENGE_STATE_BUSY', `the challenge state file ${this.file} stays locked by ${lock}`, {
            hint: 'Another `stratum registrar` command is using it; try again, or remove the lock file if none is running.',
          });
        } else await sleep(50);
      }
    }
    try {
      const state = await readState(this.file);
      const now = this.#now();
      for (const [token, challenge] of Object.entries(state.challenges)) {
        if (challenge.expiresAt + REMEMBER_USED_MS < now) delete state.challenges[token];
      }
      const result = change(state);
      const temporary = `${this.file}.${randomUUID()}.tmp`;
      await writeFile(temporary, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
      await rename(temporary, this.file);
      return result;
    } finally {
      await rm(lock, { force: true });
    }
  }

  async save(challenge: Challenge): Promise<void> {
    await this.#locked((state) => {
      state.challenges[challenge.token] = { ...challenge };
    });
  }

  async take(token: string) {
    return this.#locked((state) => {
      const stored = state.challenges[token];
      if (!stored) return undefined;
      if (stored.usedAt !== undefined) return { state: 'used' as const };
      stored.usedAt = this.#now();
      const { usedAt: _, ...challenge } = stored;
      return { state: 'pending' as const, challenge };
    });
  }

  /** A challenge as stored, without taking it. */
  async peek(token: string): Promise<StoredChallenge | undefined> {
    return (await readState(this.file)).challenges[token];
  }
}
