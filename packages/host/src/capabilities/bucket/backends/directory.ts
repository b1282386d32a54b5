import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import {
  type BucketBackend,
  BucketError,
  type BucketLimits,
  type BucketScope,
  type ByteRange,
  bucketFull,
  checkChunk,
  checkListLimit,
  checkName,
  checkObjectSize,
  checkRange,
  checkScope,
  DEFAULT_BUCKET_LIMITS,
  type ListPage,
  type ObjectBucket,
  type ObjectInfo,
  readLength,
  type Upload,
} from '../types.ts';
import { claimUploads, sweepUploads, type UploadOwner } from './directory-uploads.ts';

export interface DirectoryBucketOptions {
  /** The directory every bucket lives under, as `<root>/<capsule>/<label>/`. */
  root: string;
  limits?: Partial<BucketLimits>;
}

interface Row {
  name: string;
  file: string;
  size: number;
  content_type: string | null;
  etag: string;
  modified_ms: number;
}

/**
 * The embedded default: objects as files under a directory, named by random ids (so an object
 * name never becomes a path), with an SQLite index per bucket that keeps names, metadata and
 * the byte count, and makes replacing an object and the quota check one transaction.
 * Synchronous, through node:fs and node:sqlite.
 */
export function directoryBucket(options: DirectoryBucketOptions): BucketBackend {
  const limits = { ...DEFAULT_BUCKET_LIMITS, ...options.limits };
  const open = new Set<DatabaseSync>();
  const owners = new Set<UploadOwner>();
  // One index connection per bucket for this backend: every instance of a worker shares it.
  const opened = new Map<string, ObjectBucket>();
  return {
    type: 'directory',
    synchronous: true,
    async open(scope: BucketScope) {
      checkScope(scope);
      const dir = join(options.root, scope.capsule, scope.label);
      const known = opened.get(dir);
      if (known) return known;
      mkdirSync(join(dir, 'objects'), { recursive: true });
      mkdirSync(join(dir, 'uploads'), { recursive: true });
      sweepUploads(join(dir, 'uploads'));
      const db = new DatabaseSync(join(dir, 'index.sqlite'), { timeout: 5000 });
      db.exec('PRAGMA journal_mode = WAL');
      db.exec(
        'CREATE TABLE IF NOT EXISTS objects (name TEXT PRIMARY KEY, file TEXT NOT NULL, size INTEGER NOT NULL, content_type TEXT, etag TEXT NOT NULL, modified_ms INTEGER NOT NULL) WITHOUT ROWID',
      );
      open.add(db);
      // This thread's folder for unfinished uploads, claimed at its first upload.
      let owner: UploadOwner | undefined;
      const uploadsDir = () => {
        if (!owner) {
          owner = claimUploads(join(dir, 'uploads'));
          owners.add(owner);
        }
        return owner.dir;
      };
      const bucket = openBucket(dir, db, limits, uploadsDir);
      opened.set(dir, bucket);
      return bucket;
    },
    async close() {
      for (const owner of owners) owner.release();
      owners.clear();
      for (const db of open) db.close();
      open.clear();
      opened.clear();
    },
  };
}

function toInfo(row: Row): ObjectInfo {
  const info: ObjectInfo = { name: row.name, size: row.size, etag: row.etag, modifiedMs: row.modified_ms };
  if (row.content_type !== null) info.contentType = row.content_type;
  return info;
}

function openBucket(dir: string, db: DatabaseSync, limits: BucketLimits, uploadsDir: () => string): ObjectBucket {
  const statements = {
    get: db.prepare('SELECT * FROM objects WHERE name = ?'),
    upsert: db.prepare(
      'INSERT INTO objects (name, file, size, content_type, etag, modified_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET file = excluded.file, size = excluded.size, content_type = excluded.content_type, etag = excluded.etag, modified_ms = excluded.modified_ms',
    ),
    remove: db.prepare('DELETE FROM objects WHERE name = ?'),
    total: db.prepare('SELECT count(*) AS objects, coalesce(sum(size), 0) AS bytes FROM objects'),
    list: db.prepare('SELECT * FROM objects WHERE name > ? AND substr(name, 1, length(?)) = ? ORDER BY name LIMIT ?'),
    all: db.prepare('SELECT file FROM objects'),
  };
  const objectPath = (file: string) => join(dir, 'objects', file);

  function row(name: string): Row | undefined {
    return statements.get.get(name) as Row | undefined;
  }

  /** Makes a finished upload the object `name`, if the bucket's quota allows it. */
  function commit(name: string, temp: string, size: number, etag: string, contentType: string | undefined): ObjectInfo {
    const file = randomBytes(16).toString('hex');
    renameSync(temp, objectPath(file));
    const modified = Date.now();
    let replaced: string | undefined;
    db.exec('BEGIN IMMEDIATE');
    try {
      const previous = row(name);
      const { bytes } = statements.total.get() as { bytes: number };
      if (bytes - (previous?.size ?? 0) + size > limits.maxBucketBytes) throw bucketFull(limits);
      statements.upsert.run(name, file, size, contentType ?? null, etag, modified);
      db.exec('COMMIT');
      replaced = previous?.file;
    } catch (error) {
      db.exec('ROLLBACK');
      rmSync(objectPath(file), { force: true });
      throw error;
    }
    if (replaced) rmSync(objectPath(replaced), { force: true });
    return toInfo({ name, file, size, content_type: contentType ?? null, etag, modified_ms: modified });
  }

  function startUpload(name: string, contentType?: string): Upload {
    checkName(name);
    const temp = join(uploadsDir(), randomBytes(16).toString('hex'));
    const fd = openSync(temp, 'wx');
    const hash = createHash('sha256');
    let size = 0;
    let state: 'open' | 'finished' | 'aborted' = 'open';
    const ensureOpen = () => {
      if (state !== 'open') throw new BucketError('other', `the upload was already ${state}`);
    };
    const discard = () => {
      if (state === 'open') closeSync(fd);
      rmSync(temp, { force: true });
    };
    return {
      write(chunk) {
        ensureOpen();
        checkChunk(chunk.byteLength, limits);
        try {
          checkObjectSize(size + chunk.byteLength, limits);
        } catch (error) {
          discard();
          state = 'aborted';
          throw error;
        }
        let written = 0;
        while (written < chunk.byteLength) written += writeSync(fd, chunk, written);
        hash.update(chunk);
        size += chunk.byteLength;
      },
      finish() {
        ensureOpen();
        closeSync(fd);
        state = 'finished';
        try {
          return commit(name, temp, size, `"${hash.digest('hex').slice(0, 32)}"`, contentType);
        } catch (error) {
          rmSync(temp, { force: true });
          throw error;
        }
      },
      abort() {
        if (state !== 'open') return;
        discard();
        state = 'aborted';
      },
    };
  }

  function get(name: string, range?: ByteRange) {
    checkName(name);
    checkRange(range);
    const found = row(name);
    if (!found) return undefined;
    const { offset, length } = readLength(found.size, range, limits);
    const data = new Uint8Array(length);
    const fd = openSync(objectPath(found.file), 'r');
    try {
      let read = 0;
      while (read < length) {
        const n = readSync(fd, data, read, length - read, offset + read);
        if (n === 0) break;
        read += n;
      }
    } finally {
      closeSync(fd);
    }
    return { info: toInfo(found), data };
  }

  return {
    put(name, data, contentType) {
      checkName(name);
      checkChunk(data.byteLength, limits);
      checkObjectSize(data.byteLength, limits);
      const upload = startUpload(name, contentType);
      upload.write(data);
      return upload.finish() as ObjectInfo;
    },
    get,
    head(name) {
      checkName(name);
      const found = row(name);
      return found ? toInfo(found) : undefined;
    },
    delete(name) {
      checkName(name);
      const found = row(name);
      if (!found) return;
      statements.remove.run(name);
      rmSync(objectPath(found.file), { force: true });
    },
    list(prefix, cursor, limit): ListPage {
      const max = checkListLimit(limit);
      const rows = statements.list.all(cursor ?? '', prefix ?? '', prefix ?? '', max + 1) as unknown as Row[];
      const objects = rows.slice(0, max).map(toInfo);
      const last = objects.at(-1);
      return rows.length > max && last ? { objects, cursor: last.name } : { objects };
    },
    startUpload,
    async *stream(name) {
      checkName(name);
      const found = row(name);
      if (!found) throw new BucketError('other', `no object named "${name}"`);
      const fd = openSync(objectPath(found.file), 'r');
      try {
        const size = fstatSync(fd).size;
        for (let offset = 0; offset < size; offset += limits.maxChunkBytes) {
          const chunk = new Uint8Array(Math.min(limits.maxChunkBytes, size - offset));
          readSync(fd, chunk, 0, chunk.byteLength, offset);
          yield chunk;
        }
      } finally {
        closeSync(fd);
      }
    },
    usage() {
      const { objects, bytes } = statements.total.get() as { objects: number; bytes: number };
      return { objects, bytes };
    },
    drop() {
      this.clear();
    },
    clear() {
      const files = statements.all.all() as { file: string }[];
      db.exec('DELETE FROM objects');
      for (const { file } of files) {
        try {
          unlinkSync(objectPath(file));
        } catch {
          // Already gone: clearing is idempotent.
        }
      }
    },
  };
}
