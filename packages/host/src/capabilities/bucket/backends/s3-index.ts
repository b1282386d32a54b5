import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { Logger } from '@stratum/core';
import type { ObjectInfo } from '../types.ts';

/** What the host last saw of an object: enough to tell from a listing whether it is still that object. */
export interface KnownObject {
  etag: string;
  size: number;
  /** S3 keeps whole seconds (a listing may show milliseconds that a HEAD does not). */
  modifiedS: number;
  contentType: string | undefined;
}

interface KnownRow {
  name: string;
  etag: string;
  size: number;
  modified_s: number;
  content_type: string | null;
}

/**
 * A host's own notes on one S3 bucket (one capsule's label), beside the objects it cannot hold:
 * the content type of each object it wrote or read the head of, and the bucket's byte count as
 * last listed plus what was written since. S3 lists objects without their content type, so a
 * listing would otherwise send a HEAD per object; and it keeps no quota, so every write would
 * otherwise list the whole bucket. Both are only hints: an entry counts only while the listing
 * shows the same ETag, size and second of modification, and the byte count is listed afresh when
 * it is old or says a write would not fit. SQLite, in a file shared by the host's workers (or
 * in memory without one); failures are logged and make the S3 backend ask S3 instead.
 */
export class S3Index {
  readonly #db: DatabaseSync;
  readonly #logger: Logger;
  readonly #statements: Record<'remember' | 'forget' | 'forgetAll' | 'between' | 'usage' | 'setUsage' | 'addUsage', StatementSync>;

  constructor(path: string | undefined, logger: Logger) {
    this.#logger = logger;
    if (path !== undefined) mkdirSync(dirname(path), { recursive: true });
    this.#db = new DatabaseSync(path ?? ':memory:', { timeout: 5000 });
    if (path !== undefined) {
      this.#db.exec('PRAGMA journal_mode = WAL');
      // Losing the last notes in a power cut costs a HEAD each, never a wrong answer.
      this.#db.exec('PRAGMA synchronous = NORMAL');
    }
    this.#db.exec(
      'CREATE TABLE IF NOT EXISTS known (name TEXT PRIMARY KEY, etag TEXT NOT NULL, size INTEGER NOT NULL, modified_s INTEGER NOT NULL, content_type TEXT) WITHOUT ROWID',
    );
    this.#db.exec(
      'CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL, listed_ms INTEGER NOT NULL)',
    );
    this.#statements = {
      remember: this.#db.prepare(
        'INSERT INTO known (name, etag, size, modified_s, content_type) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET etag = excluded.etag, size = excluded.size, modified_s = excluded.modified_s, content_type = excluded.content_type',
      ),
      forget: this.#db.prepare('DELETE FROM known WHERE name = ?'),
      forgetAll: this.#db.prepare('DELETE FROM known'),
      between: this.#db.prepare('SELECT * FROM known WHERE name >= ? AND name <= ?'),
      usage: this.#db.prepare('SELECT bytes, listed_ms FROM usage WHERE id = 1'),
      setUsage: this.#db.prepare(
        'INSERT INTO usage (id, bytes, listed_ms) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET bytes = excluded.bytes, listed_ms = excluded.listed_ms',
      ),
      addUsage: this.#db.prepare('UPDATE usage SET bytes = bytes + ? WHERE id = 1'),
    };
  }

  #try<T>(what: string, work: () => T, fallback: T): T {
    try {
      return work();
    } catch (error) {
      this.#logger.warn({ err: error instanceof Error ? error.message : String(error) }, `s3 bucket index: ${what} failed`);
      return fallback;
    }
  }

  remember(info: ObjectInfo): void {
    this.#try(
      'remember',
      () => this.#statements.remember.run(info.name, info.etag, info.size, Math.floor(info.modifiedMs / 1000), info.contentType ?? null),
      undefined,
    );
  }

  forget(name: string): void {
    this.#try('forget', () => this.#statements.forget.run(name), undefined);
  }

  /** What is known of the objects whose names sort from `first` to `last`. */
  between(first: string, last: string): Map<string, KnownObject> {
    return this.#try(
      'lookup',
      () => {
        const known = new Map<string, KnownObject>();
        for (const row of this.#statements.between.all(first, last) as unknown as KnownRow[]) {
          known.set(row.name, { etag: row.etag, size: row.size, modifiedS: row.modified_s, contentType: row.content_type ?? undefined });
        }
        return known;
      },
      new Map(),
    );
  }

  /** The byte count and when it was last listed, if ever. */
  usage(): { bytes: number; listedMs: number } | undefined {
    return this.#try(
      'usage',
      () => {
        const row = this.#statements.usage.get() as { bytes: number; listed_ms: number } | undefined;
        return row ? { bytes: row.bytes, listedMs: row.listed_ms } : undefined;
      },
      undefined,
    );
  }

  /** The byte count just listed (`bytes`, at `listedMs`), with any write it admitted included. */
  setUsage(bytes: number, listedMs: number): void {
    this.#try('usage', () => this.#statements.setUsage.run(bytes, listedMs), undefined);
  }

  addUsage(bytes: number): void {
    this.#try('usage', () => this.#statements.addUsage.run(bytes), undefined);
  }

  /** The bucket was emptied: nothing is known, and it holds no bytes. */
  cleared(): void {
    this.#try(
      'clear',
      () => {
        this.#statements.forgetAll.run();
        this.#statements.setUsage.run(0, Date.now());
      },
      undefined,
    );
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}
