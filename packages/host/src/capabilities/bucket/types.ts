import { StratumError } from '@stratum/core';

/**
 * The object-storage seam: one interface that every backend (a local directory, any S3 API)
 * implements and that `stratum:bucket/objects` serves. Synchronous backends return plain
 * values so that capsules bound only to them need no JSPI; asynchronous ones return promises.
 */
export type MaybePromise<T> = T | Promise<T>;

export interface BucketScope {
  capsule: string;
  label: string;
}

export interface ObjectInfo {
  name: string;
  size: number;
  contentType?: string;
  /** Changes whenever the content does; quoted as in HTTP. */
  etag: string;
  modifiedMs: number;
}

export interface ByteRange {
  offset: number;
  length?: number;
}

export interface ObjectData {
  info: ObjectInfo;
  data: Uint8Array;
}

export interface ListPage {
  objects: ObjectInfo[];
  cursor?: string;
}

export interface BucketLimits {
  /** Every object of one bucket together. */
  maxBucketBytes: number;
  maxObjectBytes: number;
  /** The most bytes one `put`, `write` or `get` moves (the WIT promises at least 1 MiB). */
  maxChunkBytes: number;
}

export const DEFAULT_BUCKET_LIMITS: BucketLimits = {
  maxBucketBytes: 1024 ** 3,
  // The spec's minimum, which a host MUST accept (spec/wit/README.md: limits are minimums; only
  // storage is per the host's quota). The quota still caps an object: see `checkObjectSize`.
  maxObjectBytes: 5 * 1024 ** 3,
  maxChunkBytes: 1024 ** 2,
};

export const MAX_LIST = 1000;
export const MAX_NAME_BYTES = 1024;

export type BucketErrorKind = 'no-such-bucket' | 'access-denied' | 'invalid-name' | 'invalid-range' | 'limit-exceeded' | 'other';

/** An error a guest may see: its message never names a path, an endpoint or a credential. */
export class BucketError extends StratumError {
  readonly kind: BucketErrorKind;
  constructor(kind: BucketErrorKind, message: string, options: { cause?: unknown } = {}) {
    super(kind === 'limit-exceeded' ? 'BUCKET_QUOTA' : 'BUCKET_ERROR', message, { ...options, user: kind !== 'other' });
    this.name = 'BucketError';
    this.kind = kind;
  }
}

export interface Upload {
  write(chunk: Uint8Array): MaybePromise<void>;
  finish(): MaybePromise<ObjectInfo>;
  abort(): MaybePromise<void>;
}

export interface ObjectBucket {
  put(name: string, data: Uint8Array, contentType?: string): MaybePromise<ObjectInfo>;
  get(name: string, range?: ByteRange): MaybePromise<ObjectData | undefined>;
  head(name: string): MaybePromise<ObjectInfo | undefined>;
  delete(name: string): MaybePromise<void>;
  list(prefix?: string, cursor?: string, limit?: number): MaybePromise<ListPage>;
  startUpload(name: string, contentType?: string): MaybePromise<Upload>;
  /** The whole object as a stream of chunks, for the host (snapshots, serving large files). */
  stream(name: string): AsyncIterable<Uint8Array>;
  /** Bytes stored, for metering and the quota. */
  usage(): MaybePromise<{ objects: number; bytes: number }>;
  clear(): MaybePromise<void>;
  /** Removes the bucket itself, when the capsule is uninstalled. */
  drop(): MaybePromise<void>;
}

export interface BucketBackend {
  readonly type: string;
  readonly synchronous: boolean;
  open(scope: BucketScope): Promise<ObjectBucket>;
  close(): Promise<void>;
}

const SCOPE_PART = /^[a-z][a-z0-9_-]{0,62}$/;

export function checkScope(scope: BucketScope): void {
  for (const [what, value] of [
    ['capsule', scope.capsule],
    ['label', scope.label],
  ] as const) {
    if (!SCOPE_PART.test(value)) {
      throw new StratumError('BUCKET_SCOPE', `invalid ${what} name "${value}" for a bucket`, {
        hint: 'Names are 1 to 63 lowercase letters, digits, "-" and "_", starting with a letter.',
        user: false,
      });
    }
  }
}

export function checkName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new BucketError('invalid-name', 'an object name must not be empty');
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_NAME_BYTES) throw new BucketError('invalid-name', `object name is ${bytes} bytes, over the limit of ${MAX_NAME_BYTES}`);
  if (name.includes('\0')) throw new BucketError('invalid-name', 'an object name must not hold a NUL');
  if (name.split('/').includes('..')) throw new BucketError('invalid-name', 'an object name must not hold a ".." segment');
}

export function checkChunk(bytes: number, limits: BucketLimits): void {
  if (bytes > limits.maxChunkBytes)
    throw new BucketError('limit-exceeded', `${bytes} bytes in one call, over the chunk limit of ${limits.maxChunkBytes}`);
}

/**
 * Refuses an object over the object limit, or over the bucket's whole quota: such a one could
 * never be stored, and refusing it at the write that passes the quota keeps an unfinished upload
 * (a file on the directory backend, parts on S3) from growing past it until `finish`.
 */
export function checkObjectSize(bytes: number, limits: BucketLimits): void {
  if (bytes > limits.maxObjectBytes)
    throw new BucketError('limit-exceeded', `the object would be ${bytes} bytes, over the limit of ${limits.maxObjectBytes}`);
  if (bytes > limits.maxBucketBytes)
    throw new BucketError(
      'limit-exceeded',
      `the object would be ${bytes} bytes, over the bucket's storage quota of ${limits.maxBucketBytes}`,
    );
}

export function bucketFull(limits: BucketLimits): BucketError {
  return new BucketError('limit-exceeded', `the bucket reached its storage quota of ${limits.maxBucketBytes} bytes`);
}

export function checkRange(range: ByteRange | undefined): void {
  if (range === undefined) return;
  if (!Number.isSafeInteger(range.offset) || range.offset < 0)
    throw new BucketError('invalid-range', `invalid range offset ${range.offset}`);
  if (range.length !== undefined && (!Number.isSafeInteger(range.length) || range.length < 0)) {
    throw new BucketError('invalid-range', `invalid range length ${range.length}`);
  }
}

export function checkListLimit(limit: number | undefined): number {
  if (limit === undefined) return MAX_LIST;
  if (!Number.isSafeInteger(limit) || limit < 1) throw new BucketError('other', `invalid list limit ${limit}`);
  return Math.min(limit, MAX_LIST);
}

/** How many bytes a read returns: what the range asks, capped by the object's end and the chunk limit. */
export function readLength(size: number, range: ByteRange | undefined, limits: BucketLimits): { offset: number; length: number } {
  const offset = range?.offset ?? 0;
  if (offset > size || (offset === size && size > 0))
    throw new BucketError('invalid-range', `the range starts at ${offset}, past the end of the object (${size} bytes)`);
  const wanted = range?.length ?? size - offset;
  return { offset, length: Math.min(wanted, size - offset, limits.maxChunkBytes) };
}
