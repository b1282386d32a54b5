import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { type Logger, silentLogger } from '@stratum/core';
import { parseS3Location } from './s3-location.ts';

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
}

/** S3's smallest multipart part (but the last). */
const MIN_PART_BYTES = 5 * 1024 * 1024;
const HEAD_CONCURRENCY = 16;

/**
 * Any S3 API: objects under `<prefix>/<capsule>/<label>/<name>`, large writes as multipart
 * uploads (visible only once completed), reads by byte range. Credentials and the endpoint stay
 * in the host: failures reach the guest as a generic message, the details go to the host's log.
 */
export function s3Bucket(options: S3BucketOptions): BucketBackend {
  const limits = { ...DEFAULT_BUCKET_LIMITS, ...options.limits };
  const logger = options.logger ?? silentLogger;
  const { bucket, prefix } = parseS3Location(options.location);
  const client = new S3Client({
    region: options.region ?? 'us-east-1',
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
    ...(options.accessKeyId && options.secretAccessKey
      ? { credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } }
      : {}),
    // Checksums on streamed uploads are computed over chunked encoding that not every
    // S3-compatible service understands (s3rver stores such bodies corrupted).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  function failure(error: unknown): BucketError {
    if (error instanceof BucketError) return error;
    logger.error({ err: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }, 's3 bucket backend failed');
    return new BucketError('other', 'the object store is unavailable', { cause: error });
  }

  return {
    type: 's3',
    synchronous: false,
    async open(scope: BucketScope) {
      checkScope(scope);
      return openBucket(client, bucket, `${prefix}${scope.capsule}/${scope.label}/`, limits, failure);
    },
    async close() {
      client.destroy();
    },
  };
}

/** Reads a body up to `limit` bytes, then lets go of the rest of it. */
async function readAtMost(body: AsyncIterable<Uint8Array> | undefined, limit: number): Promise<Uint8Array> {
  if (!body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const iterator = body[Symbol.asyncIterator]();
  try {
    while (total < limit) {
      const next = await iterator.next();
      if (next.done) break;
      chunks.push(next.value);
      total += next.value.byteLength;
    }
  } finally {
    await iterator.return?.();
  }
  return new Uint8Array(Buffer.concat(chunks).subarray(0, limit));
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

function openBucket(
  client: S3Client,
  bucket: string,
  keyPrefix: string,
  limits: BucketLimits,
  failure: (error: unknown) => BucketError,
): ObjectBucket {
  const key = (name: string) => keyPrefix + name;

  async function guarded<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw failure(error);
    }
  }

  async function head(name: string): Promise<ObjectInfo | undefined> {
    try {
      const response = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key(name) }));
      const info: ObjectInfo = {
        name,
        size: response.ContentLength ?? 0,
        etag: response.ETag ?? '""',
        modifiedMs: response.LastModified?.getTime() ?? 0,
      };
      if (response.ContentType && response.Metadata?.['stratum-content-type'] !== 'none') info.contentType = response.ContentType;
      return info;
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
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

  /** S3 has no bucket quota: count before the object becomes visible, replacing counts only the difference. */
  async function admit(name: string, size: number): Promise<void> {
    checkObjectSize(size, limits);
    const [current, previous] = await Promise.all([usage(), head(name)]);
    if (current.bytes - (previous?.size ?? 0) + size > limits.maxBucketBytes) throw bucketFull(limits);
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
    try {
      // From the start, no Range header: an empty object has no byte 0, and some S3-compatible
      // services answer such a range badly. The body is read only as far as needed.
      const response = await client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key(name),
          ...(offset === 0 ? {} : { Range: `bytes=${offset}-${offset + wanted - 1}` }),
        }),
      );
      const data = await readAtMost(response.Body as AsyncIterable<Uint8Array> | undefined, wanted);
      const total =
        offset === 0
          ? (response.ContentLength ?? data.byteLength)
          : Number(/\/([0-9]+)$/.exec(response.ContentRange ?? '')?.[1] ?? data.byteLength);
      const info: ObjectInfo = { name, size: total, etag: response.ETag ?? '""', modifiedMs: response.LastModified?.getTime() ?? 0 };
      if (response.ContentType && response.Metadata?.['stratum-content-type'] !== 'none') info.contentType = response.ContentType;
      return { info, data };
    } catch (error) {
      const status = statusOf(error);
      if (status === 404) return undefined;
      if (status === 416) {
        // An empty object has no byte 0, but reading it whole is not an error.
        const info = await head(name);
        if (!info) return undefined;
        if (info.size === 0 && offset === 0) return { info, data: new Uint8Array() };
        throw new BucketError('invalid-range', `the range starts at ${offset}, past the end of the object (${info.size} bytes)`);
      }
      throw error;
    }
  }

  function startUpload(name: string, contentType: string | undefined): Upload {
    checkName(name);
    let buffered: Uint8Array[] = [];
    let bufferedBytes = 0;
    let size = 0;
    let uploadId: string | undefined;
    const parts: { ETag: string; PartNumber: number }[] = [];
    let state: 'open' | 'finished' | 'aborted' = 'open';

    async function flushPart(): Promise<void> {
      if (uploadId === undefined) {
        const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key(name), ...typeFields(contentType) }));
        uploadId = created.UploadId;
      }
      const body = Buffer.concat(buffered);
      const part = await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key(name),
          UploadId: uploadId,
          PartNumber: parts.length + 1,
          Body: body,
          ContentLength: body.byteLength,
        }),
      );
      parts.push({ ETag: part.ETag ?? '', PartNumber: parts.length + 1 });
      buffered = [];
      bufferedBytes = 0;
    }

    async function abort(): Promise<void> {
      if (state !== 'open') return;
      state = 'aborted';
      buffered = [];
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
          buffered.push(new Uint8Array(chunk));
          bufferedBytes += chunk.byteLength;
          size += chunk.byteLength;
          if (bufferedBytes >= MIN_PART_BYTES) await flushPart();
        }),
      finish: () =>
        guarded(async () => {
          ensureOpen();
          try {
            if (uploadId === undefined) {
              state = 'finished';
              return await putWhole(name, Buffer.concat(buffered), contentType);
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
        if (keys.length === 0) return;
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
        const names = (page.Contents ?? []).map((object) => (object.Key ?? '').slice(keyPrefix.length));
        // Listings carry no content type: ask for each object, a few at a time.
        const objects: ObjectInfo[] = [];
        for (let i = 0; i < names.length; i += HEAD_CONCURRENCY) {
          const infos = await Promise.all(names.slice(i, i + HEAD_CONCURRENCY).map(head));
          for (const info of infos) if (info) objects.push(info);
        }
        const last = names.at(-1);
        return page.IsTruncated && last !== undefined ? { objects, cursor: last } : { objects };
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
      for await (const chunk of body) yield new Uint8Array(chunk);
    },
    usage: () => guarded(usage),
    drop: () => clearAll(),
    clear: () => clearAll(),
  };
}
