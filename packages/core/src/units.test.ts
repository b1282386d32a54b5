import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, parseDuration, parseSize } from './units.ts';

test('sizes use decimal and binary units', () => {
  assert.equal(parseSize('64mb'), 64_000_000);
  assert.equal(parseSize('1gib'), 1024 ** 3);
  assert.equal(parseSize('512 KiB'), 512 * 1024);
  assert.equal(parseSize('1.5kb'), 1500);
  assert.throws(() => parseSize('64'), /not a size/);
  assert.throws(() => parseSize('lots'), /not a size/);
});

test('durations', () => {
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('2m'), 120_000);
  assert.throws(() => parseDuration('30'), /not a duration/);
});

test('formatBytes rounds to a readable unit', () => {
  assert.equal(formatBytes(100), '100 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(12 * 1024 * 1024), '12 MiB');
});
