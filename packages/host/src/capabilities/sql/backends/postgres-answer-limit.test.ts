import assert from 'node:assert/strict';
import { test } from 'node:test';
import { answerLimit, countable } from './postgres-answer-limit.ts';

test('answers are counted on plain connections to one host, not over TLS or across several hosts', () => {
  assert.equal(countable('postgres://stratum:secret@db.internal:5432/stratum', {}), true);
  assert.equal(countable('postgres://stratum@/stratum?host=/var/run/postgresql', {}), true);
  assert.equal(countable('postgres://db/stratum?sslmode=disable', {}), true);
  assert.equal(countable('postgres://db/stratum?sslmode=require', {}), false);
  assert.equal(countable('postgres://db/stratum?ssl=true', {}), false);
  assert.equal(countable('postgres://db/stratum?sslrootcert=system', {}), false);
  assert.equal(countable('postgres://db/stratum', { PGSSLMODE: 'verify-full' }), false);
  assert.equal(countable('postgres://db/stratum', { PGSSLMODE: 'disable' }), true);
  assert.equal(countable('postgres://u:p@db1:5432,db2:5433/stratum', {}), false);
});

test('the bound admits a result at the limits in its wire form', () => {
  const limits = { maxResultBytes: 16 * 1024 * 1024, maxRows: 10_000 };
  // 16 MiB of blobs travel as hex: twice the bytes, with a length per value.
  assert.ok(answerLimit(limits) > 2 * limits.maxResultBytes + limits.maxRows * 16);
  assert.ok(answerLimit(limits) < 64 * 1024 * 1024);
});
