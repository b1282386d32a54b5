import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { type Logger, redactUrl, silentLogger } from '@stratum/core';
import { BackendOutage } from '../../backend-failure.ts';
import { type KnownObject, S3Index } from './s3-index.ts';
import { parseS3Location, s3ClientSettings } from './s3-location.ts';
import { type ReadReply, type S3Reads, s3Reads } from './s3-reads.ts';

export { parseS3Location };

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
  type ObjectData,
  type ObjectInfo,
  type Upload,
} from '../types.ts';

export interface S3BucketOptions {
  /** `s3://<bucket>[/<prefix>]`: capsules' objects go under `<prefix>/<capsule>/<label>/`. */
  location: string;
  /** For S3-compatible services (MinIO, R2, s3rver); AWS's own when absent. */
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible services need. */
  forcePathStyle?: boolean;
  limits?: Partial<BucketLimits>;
  logger?: Logger;
  /**
   * Where the host keeps its index of each bucket (content types, the byte count; see
   * `S3Index`), as `<indexDir>/<capsule>/<label>/s3-index.sqlite`. In memory when absent, so
   * each new instance starts knowing nothing.
   */
  indexDir?: string;
}

/** S3's smallest multipart part (but the last). */
const MIN_PART_BYTES = 5 * 1024 * 1024;
const SMALL_UPLOAD_BYTES = 1024 * 1024;
const HEAD_CONCURRENCY = 16;
/** How old a listed byte count may be for a write that fits under the quota with it. */
const USAGE_FRESH_MS = 60_000;

/**
 * Any S3 API: objects under `<prefix>/<capsule>/<label>/<name>`, large writes as multipart
 * uploads (visible only once completed), reads by byte range. Credentials and the endpoint stay
 * in the host: failures reach the guest as a generic message, the details go to the host's log.
 */
export function s3Bucket(options: S3BucketOptions): BucketBackend {
  const limits = { ...DEFAULT_BUCKET_LIMITS, ...options.limits };
  const logger = options.logger ?? silentLogger;
  const { bucket, prefix } = parseS3Location(options.location);
  const connection = s3ClientSettings(options);
  const { region, forcePathStyle } = connection;
  const client = new S3Client({
    ...connection,
    // Checksums on streamed uploads are computed over chunked encoding that not every
    // S3-compatible service understands (s3rver stores such bodies corrupted).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // The client runs on the capsule's thread, which is charged for every microsecond of it.
    // Resolving the middleware stack for every request took about an eighth of a HEAD's CPU.
    cacheMiddleware: true,
    // With `Expect: 100-continue` (the default above 2 MiB) the SDK sends each part on a new,
    // not kept-alive connection. The endpoint is fixed, so there is no redirect to wait for.
    expectContinueHeader: false,
  });
  const reads = s3Reads(client, bucket, { endpoint: options.endpoint, region, forcePathStyle }, logger);
  const what = `the s3 bucket backend for ${options.location} at ${options.endpoint ? redactUrl(options.endpoint) : `AWS (${region})`}`;
  const outage = new BackendOutage(logger, what, [options.secretAccessKey]);

  function failure(error: unknown): BucketError {
    if (error instanceof BucketError) return error;
    const status = statusOf(error);
    if (storeFailed(error, status)) outage.failed(status === undefined ? error : new Error(answerText(error, status)));
    // An object gone between a listing and its read is the capsule's to see, not the store failing.
    else if ((error as Error).name !== 'NoSuchKey') logger.warn({ err: answerText(error, status) }, `${what} refused a request`);
    return new BucketError('other', 'the object store is unavailable', { cause: error });
  }

  // One index connection and bucket per scope for this backend: every instance of a worker shares it.
  const opened = new Map<string, { bucket: ObjectBucket; index: S3Index }>();
  return {
    type: 's3',
    synchronous: false,
    async open(scope: BucketScope) {
      checkScope(scope);
      const where = `${scope.capsule}/${scope.label}`;
      const known = opened.get(where);
      if (known) return known.bucket;
      const path = options.indexDir === undefined ? undefined : join(options.indexDir, scope.capsule, scope.label, 's3-index.sqlite');
      const index = new S3Index(path, logger);
      const made = openBucket(client, reads, bucket, `${prefix}${where}/`, limits, { failure, answered: () => outage.answered() }, index);
      opened.set(where, { bucket: made, index });
      return made;
    },
    async close() {
      for (const { index } of opened.values()) index.close();
      opened.clear();
      reads.close();
      client.destroy();
    },
  };
}

/**
 * Reads a ranged body into one buffer. The body is read to its end, so that its connection goes
 * back to the pool rather than being closed; a service that ignored the range and sends more
 * than `limit` gets its connection dropped instead.
 */
async function readRange(body: AsyncIterable<Uint8Array> | undefined, limit: number): Promise<Uint8Array> {
  if (!body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    total += chunk.byteLength;
    if (total > limit) break;
  }
  const data = new Uint8Array(Math.min(total, limit));
  let offset = 0;
  for (const chunk of chunks) {
    if (offset >= data.byteLength) break;
    const piece = chunk.byteLength <= data.byteLength - offset ? chunk : chunk.subarray(0, data.byteLength - offset);
    data.set(piece, offset);
    offset += piece.byteLength;
  }
  return data;
}

/** What a GET or HEAD says of the object, from raw headers (the host's own reads) or the SDK's output. */
interface Head {
  etag: string | undefined;
  modifiedMs: number | undefined;
  contentType: string | undefined;
  /** `x-amz-meta-stratum-content-type`: "none" when the object was stored without one. */
  typeMarker: string | undefined;
  contentRange: string | undefined;
}

function fromHeaders(headers: IncomingHttpHeaders): Head {
  const modified = headers['last-modified'] === undefined ? Number.NaN : Date.parse(headers['last-modified']);
  return {
    etag: headers.etag,
    modifiedMs: Number.isNaN(modified) ? undefined : modified,
    contentType: headers['content-type'],
    typeMarker: single(headers['x-amz-meta-stratum-content-type']),
    contentRange: single(headers['content-range']),
  };
}

function fromOutput(output: HeadObjectCommandOutput | GetObjectCommandOutput): Head {
  return {
    etag: output.ETag,
    modifiedMs: output.LastModified?.getTime(),
    contentType: output.ContentType,
    typeMarker: output.Metadata?.['stratum-content-type'],
    contentRange: 'ContentRange' in output ? output.ContentRange : undefined,
  };
}

const single = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

function infoOf(name: string, head: Head, size: number): ObjectInfo {
  const info: ObjectInfo = { name, size, etag: head.etag ?? '""', modifiedMs: head.modifiedMs ?? 0 };
  if (head.contentType && head.typeMarker !== 'none') info.contentType = head.contentType;
  return info;
}

/**
 * S3 answers a range of an empty object with 416; s3rver with "bytes 0-0/0" and a byte it never
 * sends, which is not waited for.
 */
const emptyRange = (contentRange: string | undefined) => contentRange?.endsWith('/0') === true;

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

/** Refusals of the host itself, whatever it asks: its credentials, its bucket, its region. */
const HOST_REFUSED = new Set(['NoSuchBucket', 'AuthorizationHeaderMalformed', 'ExpiredToken', 'InvalidToken']);

/**
 * Whether a failure is the store's, or the host's to fix, and so an outage (`BackendOutage`):
 * no answer at all (refused, reset, timed out, a name that does not resolve: the SDK gives these
 * without a status), a 5xx, throttling, or a refusal of the host itself. Any other refusal is of
 * one request: a key the store does not take (MinIO refuses `a//b`, s3rver answers it 404), which
 * a capsule can send as often as it likes between calls that succeed.
 */
function storeFailed(error: unknown, status: number | undefined): boolean {
  if (status === undefined || status >= 500 || status === 429 || status === 403 || status === 301 || status === 307) return true;
  return HOST_REFUSED.has((error as Error).name);
}

/** S3's answer with its status, which its code alone does not give: `SlowDown (HTTP 503): Please reduce your request rate.` */
function answerText(error: unknown, status: number | undefined): string {
  if (!(error instanceof Error)) return String(error);
  const said = error.message && error.message !== 'UnknownError' ? `: ${error.message}` : '';
  return status === undefined ? `${error.name}${said}` : `${error.name} (HTTP ${status})${said}`;
}

function openBucket(
  client: S3Client,
  reads: S3Reads,
  bucket: string,
  keyPrefix: string,
  limits: BucketLimits,
  /** The backend's: its failures mapped for the capsule, and outages counted (`BackendOutage`). */
  calls: { failure: (error: unknown) => BucketError; answered: () => void },
  index: S3Index,
): ObjectBucket {
  const key = (name: string) => keyPrefix + name;
  const { failure } = calls;

  async function guarded<T>(work: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await work();
    } catch (error) {
      throw failure(error);
    }
    calls.answered();
    return result;
  }

  /** The SDK answered a read that S3 refused when the host sent it (a 4xx other than 404 and 416). */
  function sdkAnswered(own: ReadReply | undefined): void {
    if (own && own.status >= 400 && own.status < 500 && own.status !== 404 && own.status !== 416) reads.refusedHere(own.status);
  }

  async function head(name: string): Promise<ObjectInfo | undefined> {
    const own = await reads.read('HEAD', key(name));
    if (own?.status === 404) {
      index.forget(name);
      return undefined;
    }
    if (own?.status === 200) {
      const info = infoOf(name, fromHeaders(own.headers), Number(own.headers['content-length'] ?? 0));
      index.remember(info);
      return info;
    }
    try {
      const response = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key(name) }));
      sdkAnswered(own);
      const info = infoOf(name, fromOutput(response), response.ContentLength ?? 0);
      index.remember(info);
      return info;
    } catch (error) {
      if (statusOf(error) === 404) {
        index.forget(name);
        return undefined;
      }
      throw error;
    }
  }

  async function usage(): Promise<{ objects: number; bytes: number }> {
    let objects = 0;
    let bytes = 0;
    let marker: string | undefined;
    do {
      const page = await client.send(new ListObjectsCommand({ Bucket: bucket, Prefix: keyPrefix, ...(marker ? { Marker: marker } : {}) }));
      for (const object of page.Contents ?? []) {
        objects++;
        bytes += object.Size ?? 0;
      }
      marker = page.IsTruncated ? page.Contents?.at(-1)?.Key : undefined;
    } while (marker);
    return { objects, bytes };
  }

  /**
   * S3 has no bucket quota: count before the object becomes visible. Listing the whole bucket
   * for every write cost each write CPU in proportion to the objects stored (about 30 ms per
   * thousand), so a write that fits under a recent count (plus what was written since, the
   * replaced object counted twice) goes ahead on it; one that does not gets a fresh count, in
   * which replacing counts only the difference.
   */
  async function admit(name: string, size: number): Promise<void> {
    checkObjectSize(size, limits);
    const known = index.usage();
    if (known && Date.now() - known.listedMs < USAGE_FRESH_MS && known.bytes + size <= limits.maxBucketBytes) {
      index.addUsage(size);
      return;
    }
    const listedMs = Date.now();
    const [current, previous] = await Promise.all([usage(), head(name)]);
    const after = current.bytes - (previous?.size ?? 0) + size;
    if (after > limits.maxBucketBytes) {
      index.setUsage(current.bytes, listedMs);
      throw bucketFull(limits);
    }
    index.setUsage(after, listedMs);
  }

  // S3 keeps a content type on every object; a marker says none was given.
  const typeFields = (contentType: string | undefined) =>
    contentType === undefined
      ? { ContentType: 'application/octet-stream', Metadata: { 'stratum-content-type': 'none' } }
      : { ContentType: contentType };

  async function putWhole(name: string, data: Uint8Array, contentType: string | undefined): Promise<ObjectInfo> {
    await admit(name, data.byteLength);
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: key(name), Body: data, ContentLength: data.byteLength, ...typeFields(contentType) }),
    );
    const info = await head(name);
    if (!info) throw new BucketError('other', 'the object vanished right after it was stored');
    return info;
  }

  async function get(name: string, range?: ByteRange): Promise<ObjectData | undefined> {
    const offset = range?.offset ?? 0;
    const wanted = Math.min(range?.length ?? Number.MAX_SAFE_INTEGER, limits.maxChunkBytes);
    if (wanted === 0) {
      const info = await head(name);
      if (!info) return undefined;
      if (offset > info.size || (offset === info.size && info.size > 0))
        throw new BucketError('invalid-range', `the range starts at ${offset}, past the end of the object (${info.size} bytes)`);
      return { info, data: new Uint8Array() };
    }
    // Always a range, also from the start: the whole object would be sent for a first chunk.
    const bytes = `bytes=${offset}-${offset + wanted - 1}`;
    const own = await reads.read('GET', key(name), { header: bytes, limit: wanted });
    if (own?.status === 404) return undefined;
    if (own?.status === 416) return emptyOrPastEnd(name, offset);
    if (own?.status === 200 || own?.status === 206)
      return ranged(name, offset, fromHeaders(own.headers), Number(own.headers['content-length'] ?? own.body.byteLength), own.body);
    let response: GetObjectCommandOutput;
    try {
      response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(name), Range: bytes }));
    } catch (error) {
      const status = statusOf(error);
      if (status === 404) return undefined;
      if (status === 416) return emptyOrPastEnd(name, offset);
      throw error;
    }
    sdkAnswered(own);
    const body = response.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
    const said = fromOutput(response);
    if (emptyRange(said.contentRange)) body?.destroy?.();
    const data = emptyRange(said.contentRange) ? new Uint8Array() : await readRange(body, wanted);
    return ranged(name, offset, said, response.ContentLength ?? data.byteLength, data);
  }

  /**
   * A ranged read's answer. A store that ignores the range sends the whole object and no
   * Content-Range: right from the start, wrong from anywhere else.
   */
  function ranged(name: string, offset: number, head: Head, length: number, data: Uint8Array): ObjectData {
    const whole = /\/([0-9]+)$/.exec(head.contentRange ?? '')?.[1];
    if (whole === undefined && offset > 0) throw new Error('the object store answered a byte range with the whole object');
    const total = whole === undefined ? length : Number(whole);
    return { info: infoOf(name, head, total), data: total === 0 ? new Uint8Array() : data };
  }

  /** 416: an empty object has no byte 0, but reading it whole is not an error. */
  async function emptyOrPastEnd(name: string, offset: number): Promise<ObjectData | undefined> {
    const info = await head(name);
    if (!info) return undefined;
    if (info.size === 0 && offset === 0) return { info, data: new Uint8Array() };
    throw new BucketError('invalid-range', `the range starts at ${offset}, past the end of the object (${info.size} bytes)`);
  }

  function startUpload(name: string, contentType: string | undefined): Upload {
    checkName(name);
    // The part being gathered, each chunk copied in once: a small buffer first, so that a small
    // upload does not hold a part's worth of memory, then one of a whole part's size (a part
    // ends with the chunk that takes it to 5 MiB), used for every part after.
    let part: Buffer | undefined;
    let bufferedBytes = 0;
    const gather = (chunk: Uint8Array) => {
      const needed = bufferedBytes + chunk.byteLength;
      if (!part || needed > part.byteLength) {
        const grown = Buffer.allocUnsafeSlow(
          part || needed > SMALL_UPLOAD_BYTES ? MIN_PART_BYTES + limits.maxChunkBytes : SMALL_UPLOAD_BYTES,
        );
        if (part) grown.set(part.subarray(0, bufferedBytes));
        part = grown;
      }
      part.set(chunk, bufferedBytes);
      bufferedBytes = needed;
    };
    let size = 0;
    let uploadId: string | undefined;
    const parts: { ETag: string; PartNumber: number }[] = [];
    let state: 'open' | 'finished' | 'aborted' = 'open';

    async function flushPart(): Promise<void> {
      if (uploadId === undefined) {
        const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key(name), ...typeFields(contentType) }));
        uploadId = created.UploadId;
      }
      const body = (part ?? Buffer.alloc(0)).subarray(0, bufferedBytes);
      const uploaded = await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key(name),
          UploadId: uploadId,
          PartNumber: parts.length + 1,
          Body: body,
          ContentLength: body.byteLength,
        }),
      );
      parts.push({ ETag: uploaded.ETag ?? '', PartNumber: parts.length + 1 });
      bufferedBytes = 0;
    }

    async function abort(): Promise<void> {
      if (state !== 'open') return;
      state = 'aborted';
      part = undefined;
      if (uploadId !== undefined)
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key(name), UploadId: uploadId }));
    }

    const ensureOpen = () => {
      if (state !== 'open') throw new BucketError('other', `the upload was already ${state}`);
    };

    return {
      write: (chunk) =>
        guarded(async () => {
          ensureOpen();
          checkChunk(chunk.byteLength, limits);
          try {
            checkObjectSize(size + chunk.byteLength, limits);
          } catch (error) {
            await abort();
            throw error;
          }
          gather(chunk);
          size += chunk.byteLength;
          if (bufferedBytes >= MIN_PART_BYTES) await flushPart();
        }),
      finish: () =>
        guarded(async () => {
          ensureOpen();
          try {
            if (uploadId === undefined) {
              state = 'finished';
              return await putWhole(name, (part ?? Buffer.alloc(0)).subarray(0, bufferedBytes), contentType);
            }
            await admit(name, size);
            if (bufferedBytes > 0) await flushPart();
            await client.send(
              new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key(name), UploadId: uploadId, MultipartUpload: { Parts: parts } }),
            );
            state = 'finished';
          } catch (error) {
            await abort().catch(() => {});
            throw error;
          }
          const info = await head(name);
          if (!info) throw new BucketError('other', 'the object vanished right after it was stored');
          return info;
        }),
      abort: () => guarded(abort),
    };
  }

  function clearAll(): Promise<void> {
    return guarded(async () => {
      for (;;) {
        const page = await client.send(new ListObjectsCommand({ Bucket: bucket, Prefix: keyPrefix, MaxKeys: 1000 }));
        const keys = (page.Contents ?? []).map((object) => ({ Key: object.Key ?? '' }));
        if (keys.length === 0) {
          index.cleared();
          return;
        }
        await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
      }
    });
  }

  return {
    put: (name, data, contentType) =>
      guarded(async () => {
        checkName(name);
        checkChunk(data.byteLength, limits);
        return putWhole(name, data, contentType);
      }),
    get: (name, range) =>
      guarded(async () => {
        checkName(name);
        checkRange(range);
        return get(name, range);
      }),
    head: (name) =>
      guarded(async () => {
        checkName(name);
        return head(name);
      }),
    delete: (name) =>
      guarded(async () => {
        checkName(name);
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(name) }));
        index.forget(name);
      }),
    list: (prefix, cursor, limit) =>
      guarded(async (): Promise<ListPage> => {
        const max = checkListLimit(limit);
        const page = await client.send(
          // Version 1 listing, paged by marker (the last name seen): every S3 API has it, and
          // the cursor stays a plain object name rather than a service's opaque token.
          new ListObjectsCommand({
            Bucket: bucket,
            Prefix: keyPrefix + (prefix ?? ''),
            MaxKeys: max,
            ...(cursor !== undefined ? { Marker: key(cursor) } : {}),
          }),
        );
        const listed = (page.Contents ?? []).map(
          (object): ObjectInfo => ({
            name: (object.Key ?? '').slice(keyPrefix.length),
            size: object.Size ?? 0,
            etag: object.ETag ?? '""',
            // Whole seconds, as a HEAD gives them: some services list milliseconds too.
            modifiedMs: Math.floor((object.LastModified?.getTime() ?? 0) / 1000) * 1000,
          }),
        );
        const names = listed.map((info) => info.name);
        // Listings carry no content type. The index has it for the objects this host wrote or
        // saw, while they are unchanged; the others are asked for, a few at a time.
        const known = names.length > 0 ? index.between(names[0] ?? '', names.at(-1) ?? '') : new Map<string, KnownObject>();
        const objects: (ObjectInfo | undefined)[] = listed.map((info) => {
          const seen = known.get(info.name);
          if (!seen || seen.etag !== info.etag || seen.size !== info.size || seen.modifiedS * 1000 !== info.modifiedMs) return undefined;
          return seen.contentType === undefined ? info : { ...info, contentType: seen.contentType };
        });
        const unknown = objects.flatMap((info, i) => (info === undefined ? [i] : []));
        for (let i = 0; i < unknown.length; i += HEAD_CONCURRENCY) {
          await Promise.all(
            unknown.slice(i, i + HEAD_CONCURRENCY).map(async (at) => {
              objects[at] = await head(names[at] ?? '');
            }),
          );
        }
        const last = names.at(-1);
        // An object deleted between the listing and its HEAD is left out.
        const found = objects.filter((info) => info !== undefined);
        return page.IsTruncated && last !== undefined ? { objects: found, cursor: last } : { objects: found };
      }),
    startUpload: (name, contentType) => {
      try {
        return startUpload(name, contentType);
      } catch (error) {
        throw failure(error);
      }
    },
    async *stream(name) {
      checkName(name);
      const response = await guarded(() => client.send(new GetObjectCommand({ Bucket: bucket, Key: key(name) })));
      const body = response.Body as AsyncIterable<Uint8Array> | undefined;
      if (!body) return;
      try {
        for await (const chunk of body) yield new Uint8Array(chunk);
      } catch (error) {
        // A connection lost mid-object is the store failing, as one lost before it.
        throw failure(error);
      }
    },
    usage: () => guarded(usage),
    drop: () => clearAll(),
    clear: () => clearAll(),
  };
}
