import { createHash } from 'node:crypto';
import { snapshotInvalid, snapshotLines, storing } from '../snapshot-lines.ts';
import type { ObjectBucket } from './types.ts';

/**
 * A bucket as a portable snapshot (spec/snapshot.md): JSON Lines with a header; per object a
 * record with its name, size and content type, followed by its bytes in base64 `data` records;
 * and a trailer with the record count and the SHA-256 of every line before it. Objects stream
 * through in chunks, so neither side holds a large object whole.
 */
export const SNAPSHOT_VERSION = 1;
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

const invalid = (message: string, line: number) => snapshotInvalid('bucket', message, line);

/**
 * Replaces the bucket's objects with the snapshot's. Each object is written as an upload, so
 * it appears only when complete and its size was checked against the header.
 */
export async function importBucket(
  bucket: ObjectBucket,
  input: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>,
): Promise<{ label: string; records: number }> {
  const hash = createHash('sha256');
  let lineNumber = 0;
  let label: string | undefined;
  let records = 0;
  let current: { name: string; size: number; written: number; upload: Awaited<ReturnType<ObjectBucket['startUpload']>> } | undefined;
  const finish = async () => {
    if (!current) return;
    if (current.written !== current.size) {
      await current.upload.abort();
      throw invalid(`object "${current.name}" has ${current.written} bytes, its record says ${current.size}`, lineNumber);
    }
    await current.upload.finish();
    current = undefined;
  };
  for await (const text of snapshotLines(input, 'bucket')) {
    lineNumber++;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw invalid('not JSON', lineNumber);
    }
    if (typeof record !== 'object' || record === null) throw invalid('not a JSON object', lineNumber);
    if (label === undefined) {
      if (record['stratum-snapshot'] !== SNAPSHOT_VERSION || record.capability !== 'bucket' || typeof record.label !== 'string') {
        throw invalid(`not a version ${SNAPSHOT_VERSION} bucket snapshot header`, lineNumber);
      }
      label = record.label;
      hash.update(text);
      await bucket.clear();
      continue;
    }
    if ('end' in record) {
      const end = record.end as { records?: unknown; sha256?: unknown } | null;
      if (end?.records !== records)
        throw invalid(`the trailer counts ${String(end?.records)} records, the snapshot has ${records}`, lineNumber);
      if (end.sha256 !== hash.digest('hex')) {
        await current?.upload.abort();
        throw invalid('the checksum does not match: the snapshot was changed or cut', lineNumber);
      }
      await finish();
      return { label, records };
    }
    hash.update(text);
    records++;
    if ('object' in record) {
      await finish();
      const object = record.object as { name?: unknown; size?: unknown; contentType?: unknown };
      if (typeof object.name !== 'string' || !Number.isSafeInteger(object.size))
        throw invalid('an object needs "name" and "size"', lineNumber);
      const name = object.name;
      const upload = await storing('bucket', lineNumber, () =>
        bucket.startUpload(name, typeof object.contentType === 'string' ? object.contentType : undefined),
      );
      current = { name: object.name, size: object.size as number, written: 0, upload };
    } else if ('data' in record) {
      if (!current || typeof record.data !== 'string') throw invalid('data outside an object', lineNumber);
      const bytes = Buffer.from(record.data, 'base64');
      for (let offset = 0; offset < bytes.byteLength; offset += WRITE_PIECE) {
        const piece = new Uint8Array(bytes.subarray(offset, offset + WRITE_PIECE));
        const { upload } = current;
        await storing('bucket', lineNumber, () => upload.write(piece));
      }
      current.written += bytes.byteLength;
    } else {
      throw invalid('an unknown record', lineNumber);
    }
  }
  await current?.upload.abort();
  throw invalid(label === undefined ? 'empty snapshot' : 'the trailer is missing: the snapshot was cut short', lineNumber);
}
