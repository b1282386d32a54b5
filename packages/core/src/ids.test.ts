import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newId, newRequestId } from './ids.ts';

test('request ids are 12 URL-safe characters and do not repeat across refills of their pool', () => {
  const seen = new Set<string>();
  // 512 ids per pool: this crosses several refills.
  for (let i = 0; i < 3000; i++) {
    const id = newRequestId();
    assert.match(id, /^[A-Za-z0-9_-]{12}$/);
    assert.ok(!seen.has(id), `request id ${id} repeated after ${i} ids`);
    seen.add(id);
  }
});

test('ids carry their prefix and 16 bytes of entropy', () => {
  const id = newId('op_');
  assert.match(id, /^op_[A-Za-z0-9_-]{22}$/);
  assert.notEqual(newId(), newId());
});
