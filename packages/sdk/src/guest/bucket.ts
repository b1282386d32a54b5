/// <reference path="../wit/guest.generated.d.ts" />
import { type Bucket as BucketHandle, type ObjectInfo as InfoRecord, open } from 'stratum:bucket/objects@0.1.0';
import { isBytes, ownBytes } from './binding-arrays.ts';
import { CHUNK_BYTES } from './bucket-chunk.ts';
import { CapabilityError, call, kindOf, toCapabilityError } from './errors.ts';
import { refuseAtTopLevel } from './top-level.ts';

export { CHUNK_BYTES };

export interface ObjectInfo {
  name: string;
  size: number;
  contentType: string | undefined;
  /** Quoted, as in an HTTP ETag header. */
  etag: string;
  modified: Date;
}

export interface StoredObject {
  info: ObjectInfo;
  /** The bytes asked for, read from the bucket a chunk at a time as the stream is consumed. */
  body: ReadableStream<Uint8Array>;
}

export interface ObjectPage {
  objects: ObjectInfo[];
  cursor: string | undefined;
}

export type PutBody = string | Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array>;

/**
 * Drops a resource's handle. `Symbol.dispose` looked up rather than typed: a capsule project's
 * TypeScript lib (ES2023, as `stratum init` writes it) has no `Symbol.dispose`, and its tsc
 * checks this file; the engine has it.
 */
function drop(resource: object): void {
  const dispose = (Symbol as unknown as { dispose: symbol }).dispose;
  (resource as Record<symbol, () => void>)[dispose]?.();
}

/** An object storage bucket the manifest grants (`[capabilities] bucket = ["uploads"]`). */
export interface Bucket {
  readonly label: string;
  /** Stores an object, in chunks when it is large or a stream; replaces any object of that name. */
  put(name: string, body: PutBody, options?: { contentType?: string }): Promise<ObjectInfo>;
  /** An object's bytes (or `length` bytes from `offset`), or undefined when there is none. */
  get(name: string, options?: { range?: { offset: number; length?: number } }): StoredObject | undefined;
  head(name: string): ObjectInfo | undefined;
  delete(name: string): void;
  /** One page of objects whose names start with `prefix`, in ascending byte order. */
  list(options?: { prefix?: string; cursor?: string; limit?: number }): ObjectPage;
}

const info = (record: InfoRecord): ObjectInfo => ({
  name: record.name,
  size: Number(record.size),
  contentType: record.contentType,
  etag: record.etag,
  modified: new Date(Number(record.modifiedMs)),
});

async function* chunksOf(body: PutBody): AsyncGenerator<Uint8Array> {
  if (typeof body === 'string') yield new TextEncoder().encode(body);
  else if (isBytes(body)) yield body;
  else if (body instanceof ArrayBuffer) yield new Uint8Array(body);
  else {
    const reader = (isBlob(body) ? body.stream() : (body as ReadableStream<Uint8Array>)).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  }
}

// Not every JS engine a capsule runs on has Blob; `instanceof` on a missing global would throw.
const isBlob = (value: unknown): value is Blob => typeof Blob !== 'undefined' && value instanceof Blob;

const opened = new Map<string, Bucket>();

/**
 * An object's name, checked before it reaches the bindings, whose string encoder said only
 * "expected a string, received [number]".
 */
function nameArgument(method: string, name: unknown): void {
  if (typeof name !== 'string') throw new TypeError(`bucket.${method}(name): name must be a string, not ${kindOf(name)}`);
}

/**
 * A body `put` can store. Another value failed deep in the upload ("reader is not a function"),
 * after the upload had begun.
 */
function bodyArgument(name: string, body: unknown): void {
  if (typeof body === 'string' || isBytes(body) || body instanceof ArrayBuffer || isBlob(body)) return;
  if (typeof (body as { getReader?: unknown } | null)?.getReader === 'function') return;
  throw new TypeError(
    `bucket.put(${JSON.stringify(name)}, body): body must be a string, a Uint8Array, an ArrayBuffer, a Blob or a ReadableStream, not ${kindOf(body)}`,
  );
}

/**
 * Opens a bucket by its label in the manifest; the handle is kept for the instance's life.
 * Call it inside `fetch()`: the modules' top-level code runs while the component is built.
 *
 * @example
 * import { openBucket } from '@stratum/sdk/bucket';
 * const images = openBucket('images');
 * await images.put('cat.png', request.body!, { contentType: 'image/png' });
 * const cat = images.get('cat.png');
 * return cat ? new Response(cat.body) : new Response('not found', { status: 404 });
 */
export function openBucket(label = 'default'): Bucket {
  refuseAtTopLevel(`openBucket(${JSON.stringify(label)})`, `let bucket; … bucket ??= openBucket(${JSON.stringify(label)})`);
  const existing = opened.get(label);
  if (existing) return existing;
  const handle: BucketHandle = call('bucket', `open("${label}")`, () => open(label));
  const op = <T>(what: string, fn: () => T) => call('bucket', what, fn);
  const bucket: Bucket = {
    label,
    async put(name, body, options = {}) {
      nameArgument('put', name);
      bodyArgument(name, body);
      const contentType = options.contentType ?? (isBlob(body) && body.type ? body.type : undefined);
      if (typeof body === 'string' || isBytes(body) || body instanceof ArrayBuffer) {
        const data = typeof body === 'string' ? new TextEncoder().encode(body) : body instanceof ArrayBuffer ? new Uint8Array(body) : body;
        if (data.length <= CHUNK_BYTES) return info(op(`put("${name}")`, () => handle.put(name, data, contentType)));
      }
      const upload = op(`start-upload("${name}")`, () => handle.startUpload(name, contentType));
      try {
        for await (const chunk of chunksOf(body)) {
          for (let offset = 0; offset < chunk.length; offset += CHUNK_BYTES) {
            const piece = chunk.subarray(offset, offset + CHUNK_BYTES);
            op(`upload("${name}")`, () => upload.write(piece));
          }
        }
        return info(op(`upload("${name}")`, () => upload.finish()));
      } catch (error) {
        try {
          upload.abort();
        } catch {
          // The upload failed already; the first error is the one worth reporting.
        }
        throw error;
      } finally {
        // The host's handle goes with it: nothing drops a resource the capsule forgets.
        drop(upload);
      }
    },
    get(name, options = {}) {
      nameArgument('get', name);
      const start = options.range?.offset ?? 0;
      const wanted = options.range?.length;
      const firstLength = wanted === undefined ? CHUNK_BYTES : Math.min(wanted, CHUNK_BYTES);
      const first = op(`get("${name}")`, () => handle.get(name, { offset: BigInt(start), length: BigInt(firstLength) }));
      if (!first) return undefined;
      const meta = info(first.info);
      const end = wanted === undefined ? meta.size : Math.min(meta.size, start + wanted);
      let position = start + first.data.length;
      let pending: Uint8Array | undefined = ownBytes(first.data);
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pending) {
            if (pending.length > 0) controller.enqueue(pending);
            pending = undefined;
            if (position >= end) controller.close();
            return;
          }
          if (position >= end) {
            controller.close();
            return;
          }
          try {
            const length = Math.min(CHUNK_BYTES, end - position);
            const next = handle.get(name, { offset: BigInt(position), length: BigInt(length) });
            if (!next || next.info.etag !== first.info.etag) {
              throw new CapabilityError('bucket', 'changed', `bucket object "${name}" changed or disappeared while it was being read`);
            }
            if (next.data.length === 0) {
              controller.close();
              return;
            }
            position += next.data.length;
            controller.enqueue(ownBytes(next.data));
          } catch (error) {
            controller.error(toCapabilityError('bucket', `get("${name}")`, error));
          }
        },
      });
      return { info: meta, body };
    },
    head(name) {
      nameArgument('head', name);
      const record = op(`head("${name}")`, () => handle.head(name));
      return record ? info(record) : undefined;
    },
    delete(name) {
      nameArgument('delete', name);
      op(`delete("${name}")`, () => handle.delete(name));
    },
    list(options = {}) {
      const page = op('list', () => handle.listObjects(options.prefix, options.cursor, options.limit));
      return { objects: Array.from(page.objects, info), cursor: page.cursor };
    },
  };
  opened.set(label, bucket);
  return bucket;
}
