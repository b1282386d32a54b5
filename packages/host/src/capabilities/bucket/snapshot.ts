import { createHash } from 'node:crypto';
import {
  ascendingNames,
  decodeBase64,
  importSnapshot,
  members,
  SNAPSHOT_VERSION,
  type SnapshotSource,
  snapshotInvalid,
  storing,
} from '../snapshot-lines.ts';
import type { ObjectBucket } from './types.ts';

/**
 * A bucket as a portable snapshot (spec/snapshot.md): JSON Lines with a header; per object a
 * record with its name, size and content type, followed by its bytes in base64 `data` records;
 * and a trailer with the record count and the SHA-256 of every line before it. Objects stream
 * through in chunks, so neither side holds a large object whole.
 */
const DATA_CHUNK = 256 * 1024;
/** Writes into the target bucket in pieces no backend's chunk limit refuses. */
const WRITE_PIECE = 64 * 1024;

export async function* exportBucket(bucket: ObjectBucket, label: string): AsyncIterable<string> {
  const hash = createHash('sha256');
  let records = 0;
  const line = (value: unknown) => {
    const text = `${JSON.stringify(value)}\n`;
    hash.update(text);
    records++;
    return text;
  };
  const header = `${JSON.stringify({ 'stratum-snapshot': SNAPSHOT_VERSION, capability: 'bucket', label, created: new Date().toISOString() })}\n`;
  hash.update(header);
  yield header;
  let cursor: string | undefined;
  do {
    const page = await bucket.list(undefined, cursor);
    for (const info of page.objects) {
      yield line({
        object: { name: info.name, size: info.size, ...(info.contentType !== undefined ? { contentType: info.contentType } : {}) },
      });
      let pending = Buffer.alloc(0);
      for await (const chunk of bucket.stream(info.name)) {
        pending = Buffer.concat([pending, chunk]);
        while (pending.byteLength >= DATA_CHUNK) {
          yield line({ data: pending.subarray(0, DATA_CHUNK).toString('base64') });
          pending = pending.subarray(DATA_CHUNK);
        }
      }
      if (pending.byteLength > 0) yield line({ data: pending.toString('base64') });
    }
    cursor = page.cursor;
  } while (cursor !== undefined);
  yield `${JSON.stringify({ end: { records, sha256: hash.digest('hex') } })}\n`;
}

const FORMAT = { capability: 'bucket', kind: 'bucket' } as const;
const invalid = (message: string, line: number) => snapshotInvalid(FORMAT.kind, message, line);

type Upload = Awaited<ReturnType<ObjectBucket['startUpload']>>;

/**
 * Replaces the bucket's objects with the snapshot's. The whole snapshot is checked before the
 * bucket is cleared (`source` may be read twice, `importSnapshot`); each object is then written as an upload, so it
 * appears only when complete.
 */
export async function importBucket(bucket: ObjectBucket, source: SnapshotSource): Promise<{ records: number; skipped: number }> {
  const { records } = await importSnapshot(
    source,
    FORMAT,
    (write) => {
      const inOrder = ascendingNames('object name', invalid);
      let current: { name: string; size: number; written: number; line: number; upload: Upload | undefined } | undefined;
      const finish = async () => {
        if (!current) return;
        if (current.written !== current.size)
          throw invalid(
            `object ${JSON.stringify(current.name.slice(0, 64))} has ${current.written} bytes, its record says ${current.size}`,
            current.line,
          );
        await current.upload?.finish();
        current = undefined;
      };
      return {
        async record(record, line) {
          const [kind, ...more] = Object.keys(record);
          if (kind === undefined || more.length > 0 || !['object', 'data'].includes(kind))
            throw invalid('not a record: one of "object" or "data", alone', line);
          if (kind === 'object') {
            await finish();
            const object = record.object;
            if (typeof object !== 'object' || object === null || Array.isArray(object))
              throw invalid('an object record is not an object', line);
            const fields = object as Record<string, unknown>;
            members(fields, ['name', 'size', 'contentType'], ['name', 'size'], 'an object', line, invalid);
            const { name, size, contentType } = fields;
            if (typeof name !== 'string') throw invalid('an object\'s "name" is not a string', line);
            inOrder(name, line);
            if (!Number.isSafeInteger(size) || (size as number) < 0) throw invalid('an object\'s "size" is not a byte count', line);
            if (contentType !== undefined && typeof contentType !== 'string')
              throw invalid('an object\'s "contentType" is not a string', line);
            const upload = write ? await storing(FORMAT.kind, line, () => bucket.startUpload(name, contentType)) : undefined;
            current = { name, size: size as number, written: 0, line, upload };
          } else {
            if (!current) throw invalid('data before any object', line);
            const bytes = decodeBase64(record.data, '"data"', line, invalid);
            if (bytes.byteLength === 0) throw invalid('an empty "data" record; an empty object has none', line);
            current.written += bytes.byteLength;
            if (current.written > current.size)
              throw invalid(`more bytes than object ${JSON.stringify(current.name.slice(0, 64))}'s size, ${current.size}`, line);
            const { upload } = current;
            if (!upload) return;
            for (let offset = 0; offset < bytes.byteLength; offset += WRITE_PIECE) {
              const piece = new Uint8Array(bytes.subarray(offset, offset + WRITE_PIECE));
              await storing(FORMAT.kind, line, () => upload.write(piece));
            }
          }
        },
        end: finish,
        async abort() {
          await current?.upload?.abort();
          current = undefined;
        },
      };
    },
    () => bucket.clear(),
  );
  return { records, skipped: 0 };
}
