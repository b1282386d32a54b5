import type { Logger } from '@stratum/core';
import { type ImportObjects, WitError } from '../contract.ts';
import { BucketError, type MaybePromise, type ObjectBucket, type ObjectInfo, type Upload } from './types.ts';

/**
 * The import object for `stratum:bucket/objects` over buckets already opened for the capsule's
 * granted labels, in jco's shapes (u64 as bigint, option as undefined, resources as instances
 * of the classes given here). A function returns a promise exactly when its bucket's backend is
 * asynchronous.
 */
export interface BucketBindingOptions {
  buckets: ReadonlyMap<string, ObjectBucket>;
  logger: Logger;
  /** Called for every quota refusal, so the host can log and count it. */
  onQuota?: (message: string) => void;
  /** Called when the guest opens a label the manifest does not grant (its error case has no text). */
  onNotGranted?: (label: string) => void;
}

interface WitObjectInfo {
  name: string;
  size: bigint;
  contentType: string | undefined;
  etag: string;
  modifiedMs: bigint;
}

function toWit(info: ObjectInfo): WitObjectInfo {
  return { name: info.name, size: BigInt(info.size), contentType: info.contentType, etag: info.etag, modifiedMs: BigInt(info.modifiedMs) };
}

const NO_PAYLOAD = new Set(['no-such-bucket', 'access-denied', 'invalid-range']);

function payload(error: unknown, logger: Logger, onQuota?: (message: string) => void): unknown {
  if (error instanceof WitError) return error.payload;
  if (error instanceof BucketError && error.kind === 'limit-exceeded') onQuota?.(error.message);
  if (error instanceof BucketError) return NO_PAYLOAD.has(error.kind) ? { tag: error.kind } : { tag: error.kind, val: error.message };
  logger.error({ err: error instanceof Error ? error.message : String(error) }, 'bucket operation failed unexpectedly');
  return { tag: 'other', val: 'internal error in the object store' };
}

function run<T>(logger: Logger, work: () => MaybePromise<T>, onQuota?: (message: string) => void): MaybePromise<T> {
  try {
    const result = work();
    if (result instanceof Promise) {
      return result.catch((error: unknown) => {
        throw new WitError(payload(error, logger, onQuota));
      });
    }
    return result;
  } catch (error) {
    throw new WitError(payload(error, logger, onQuota));
  }
}

function then<T, U>(value: MaybePromise<T>, next: (value: T) => U): MaybePromise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

function safeNumber(value: bigint | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new BucketError('invalid-range', `${what} ${value} is too large`);
  return Number(value);
}

/**
 * Uploads one instance may hold unfinished at once. Each holds a file open (a directory bucket)
 * or a multipart upload (S3); a capsule that started 300 a request and never finished them took
 * 19,999 of the host's 20,000 file descriptors in 58 requests, and then every capsule's bucket
 * and the control API failed (a security audit).
 */
export const MAX_OPEN_UPLOADS = 64;

export function bucketImports(options: BucketBindingOptions): ImportObjects {
  const { buckets, onQuota } = options;
  const logger = options.logger;
  const guard = <T>(work: () => MaybePromise<T>) => run(logger, work, onQuota);
  let openUploads = 0;

  class WitUpload {
    readonly upload: Upload;
    #open = true;
    constructor(upload: Upload) {
      this.upload = upload;
      openUploads++;
    }
    /** Finished, aborted or dropped: it no longer counts against `MAX_OPEN_UPLOADS`. */
    #closed(): void {
      if (!this.#open) return;
      this.#open = false;
      openUploads--;
    }
    write(chunk: Uint8Array) {
      return guard(() => this.upload.write(chunk));
    }
    finish() {
      return guard(() => {
        let finished: MaybePromise<ObjectInfo>;
        try {
          finished = this.upload.finish();
        } catch (error) {
          this.#closed();
          throw error;
        }
        if (finished instanceof Promise) return finished.finally(() => this.#closed()).then(toWit);
        this.#closed();
        return toWit(finished);
      });
    }
    abort() {
      this.#closed();
      return guard(() => this.upload.abort());
    }
    /** The guest dropped the handle: an unfinished upload is discarded. */
    [Symbol.dispose]() {
      if (!this.#open) return;
      this.#closed();
      try {
        const aborted = this.upload.abort();
        if (aborted instanceof Promise)
          aborted.catch((error: unknown) => logger.warn({ err: String(error) }, 'discarding a dropped upload failed'));
      } catch (error) {
        logger.warn({ err: String(error) }, 'discarding a dropped upload failed');
      }
    }
  }

  class Bucket {
    readonly bucket: ObjectBucket;
    constructor(bucket: ObjectBucket) {
      this.bucket = bucket;
    }
    put(name: string, data: Uint8Array, contentType: string | undefined) {
      return guard(() => then(this.bucket.put(name, data, contentType), toWit));
    }
    get(name: string, range: { offset: bigint; length: bigint | undefined } | undefined) {
      return guard(() => {
        const converted =
          range === undefined
            ? undefined
            : {
                offset: safeNumber(range.offset, 'offset') ?? 0,
                ...(range.length === undefined ? {} : { length: safeNumber(range.length, 'length') }),
              };
        return then(this.bucket.get(name, converted as Parameters<ObjectBucket['get']>[1]), (found) =>
          found ? { info: toWit(found.info), data: found.data } : undefined,
        );
      });
    }
    head(name: string) {
      return guard(() => then(this.bucket.head(name), (info) => (info ? toWit(info) : undefined)));
    }
    delete(name: string) {
      return guard(() => this.bucket.delete(name));
    }
    listObjects(prefix: string | undefined, cursor: string | undefined, limit: number | undefined) {
      return guard(() =>
        then(this.bucket.list(prefix, cursor, limit), (page) => ({ objects: page.objects.map(toWit), cursor: page.cursor })),
      );
    }
    startUpload(name: string, contentType: string | undefined) {
      return guard(() => {
        if (openUploads >= MAX_OPEN_UPLOADS) {
          throw new BucketError('limit-exceeded', `${MAX_OPEN_UPLOADS} uploads are unfinished already: finish or abort one first`);
        }
        return then(this.bucket.startUpload(name, contentType), (upload) => new WitUpload(upload));
      });
    }
  }

  function open(label: string): Bucket {
    const bucket = buckets.get(label);
    if (!bucket) {
      options.onNotGranted?.(label);
      throw new WitError({ tag: 'no-such-bucket' });
    }
    return new Bucket(bucket);
  }

  return { 'stratum:bucket/objects': { Bucket, Upload: WitUpload, open } };
}

export function bucketAsyncImports(imports: readonly string[]): string[] {
  const functions = [
    '[method]bucket.put',
    '[method]bucket.get',
    '[method]bucket.head',
    '[method]bucket.delete',
    '[method]bucket.list-objects',
    '[method]bucket.start-upload',
    '[method]upload.write',
    '[method]upload.finish',
    '[method]upload.abort',
  ];
  return imports
    .filter((versioned) => versioned.startsWith('stratum:bucket/objects@'))
    .flatMap((versioned) => functions.map((fn) => `${versioned}#${fn}`));
}
