import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeNatsKey, encodeNatsKey, natsBucketName } from './nats.ts';

test('NATS key encoding: any key round-trips and only ever uses characters NATS KV accepts', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 64, unit: 'grapheme' }), (key) => {
      const encoded = encodeNatsKey(key);
      assert.match(encoded, /^[-/_=A-Za-z0-9]+$/);
      assert.ok(!encoded.includes('.'), 'no subject token separator');
      assert.equal(decodeNatsKey(encoded), key);
    }),
    { numRuns: 2000 },
  );
});

test('NATS bucket names cannot collide across capsule and label boundaries', () => {
  assert.notEqual(natsBucketName('p', { capsule: 'a_b', label: 'c' }), natsBucketName('p', { capsule: 'a', label: 'b_c' }));
  assert.equal(natsBucketName('stratum_kv', { capsule: 'counter', label: 'default' }), 'stratum_kv_7_counter_default');
});
