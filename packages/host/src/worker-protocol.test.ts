import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { packBatches, packRequests, type ResponseBatch, unpackBatches, unpackRequests } from './worker-protocol.ts';

const chunk = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 40 }),
  fc.integer({ min: 16 * 1024, max: 20 * 1024 }).map((size) => new Uint8Array(size).fill(size % 251)),
);
const batch: fc.Arbitrary<ResponseBatch> = fc.record(
  {
    type: fc.constant('batch' as const),
    id: fc.nat(),
    head: fc.record({ status: fc.integer({ min: 100, max: 599 }), headers: fc.array(fc.string(), { maxLength: 4 }) }),
    failed: fc.string(),
    chunks: fc.array(chunk, { minLength: 1, maxLength: 4 }),
    end: fc.constant(true),
    limit: fc.constant('response-body' as const),
    logs: fc.array(fc.record({ level: fc.constant('info' as const), message: fc.string(), source: fc.string() }), {
      minLength: 1,
      maxLength: 2,
    }),
    done: fc.record({ cpuMicros: fc.nat(), memoryBytes: fc.nat() }, { requiredKeys: ['cpuMicros', 'memoryBytes'] }),
  },
  { requiredKeys: ['type', 'id'] },
);

test('packed batches come back as they were: every field, every chunk in order, large chunks moved', () => {
  fc.assert(
    fc.property(fc.array(batch, { maxLength: 8 }), (batches) => {
      const copy = structuredClone(batches);
      const { message, transfer } = packBatches(batches);
      const moved = batches.flatMap((item) => item.chunks ?? []).filter((bytes) => bytes.byteLength >= 16 * 1024);
      assert.equal(transfer.length, moved.length, 'each large chunk travels as its own buffer');
      const received = unpackBatches(structuredClone(message, { transfer }));
      assert.deepEqual(
        received.map((item) => ({ ...item, chunks: item.chunks?.map((bytes) => [...bytes]) })),
        copy.map((item) => ({ ...item, chunks: item.chunks?.map((bytes) => [...bytes]) })),
      );
    }),
    { numRuns: 200 },
  );
});

test('a trap and an empty batch survive packing', () => {
  const [trapped, empty] = unpackBatches(
    packBatches([
      { type: 'batch', id: 7, done: { cpuMicros: 5, memoryBytes: 65536, trap: 'unreachable' } },
      { type: 'batch', id: 8 },
    ]).message,
  );
  assert.deepEqual(trapped, { type: 'batch', id: 7, done: { cpuMicros: 5, memoryBytes: 65536, trap: 'unreachable' } });
  assert.deepEqual(empty, { type: 'batch', id: 8 });
});

test('packed requests come back as they were, in order', () => {
  const request = fc.record({
    type: fc.constant('request' as const),
    id: fc.nat(),
    requestId: fc.string(),
    domain: fc.string(),
    method: fc.string(),
    path: fc.string(),
    scheme: fc.constantFrom('http' as const, 'https' as const),
    authority: fc.string(),
    headers: fc.array(fc.string(), { maxLength: 6 }),
    outboundRequests: fc.nat(),
    body: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(request, { maxLength: 40 }), (requests) => {
      assert.deepEqual(
        unpackRequests(structuredClone(packRequests(requests))),
        requests.map((request) => ({ ...request })),
      );
    }),
  );
});
