import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { directoryBucket } from '../packages/host/src/capabilities/bucket/backends/directory.ts';
import { s3Bucket } from '../packages/host/src/capabilities/bucket/backends/s3.ts';
import { bucketConformance } from '../packages/host/src/capabilities/bucket/conformance.ts';
import { DEFAULT_BUCKET_LIMITS } from '../packages/host/src/capabilities/bucket/types.ts';
import { startS3rver, stopS3rver } from './capabilities-s3rver.ts';

const root = mkdtempSync(join(tmpdir(), 'stratum-bucket-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
after(stopS3rver);

bucketConformance('directory', async (_t, limits) => directoryBucket({ root, ...(limits ? { limits } : {}) }));

// With an index directory, as a host runs it: the index's notes must never change an answer.
bucketConformance('s3 (s3rver)', async (_t, limits) => {
  const s3 = await startS3rver();
  return s3Bucket({ ...s3.options, indexDir: join(root, 's3-index'), ...(limits ? { limits } : {}) });
});

test('bucket: a host takes objects of 5 GiB unless its operator says otherwise, as the spec requires of every host', () => {
  // spec/wit/README.md: limits are minimums a host MUST accept, "an object of at least 5 GiB"
  // among them; storage is per the host's quota (which still caps an object, see the conformance suite).
  assert.equal(DEFAULT_BUCKET_LIMITS.maxObjectBytes, 5 * 1024 ** 3);
});
