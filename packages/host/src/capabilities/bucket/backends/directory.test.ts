import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { BucketError } from '../types.ts';
import { directoryBucket } from './directory.ts';

test('directory bucket: any guest-chosen name is refused as invalid-name or stored and read back, never a path', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'stratum-bucket-fuzz-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const backend = directoryBucket({ root });
  t.after(() => backend.close());
  const bucket = await backend.open({ capsule: 'fuzz', label: 'default' });
  const name = fc.oneof(
    fc.string({ maxLength: 40, unit: 'grapheme' }),
    fc.array(fc.constantFrom('..', '.', '', 'a', '/', '\\', '\0', '%2e', 'é'), { maxLength: 8 }).map((parts) => parts.join('/')),
  );
  await fc.assert(
    fc.asyncProperty(name, async (candidate) => {
      const data = new TextEncoder().encode(candidate);
      try {
        bucket.put(candidate, data);
      } catch (error) {
        assert.ok(error instanceof BucketError && error.kind === 'invalid-name', String(error));
        return;
      }
      assert.deepEqual((bucket.get(candidate) as { data: Uint8Array }).data, data);
    }),
    { numRuns: 500 },
  );
  // Whatever the names were, the bucket's directory holds only its own layout.
  const layout = new Set(['index.sqlite', 'index.sqlite-shm', 'index.sqlite-wal', 'objects', 'uploads']);
  for (const entry of readdirSync(join(root, 'fuzz', 'default'))) assert.ok(layout.has(entry), `unexpected ${entry}`);
  for (const file of readdirSync(join(root, 'fuzz', 'default', 'objects'))) assert.match(file, /^[0-9a-f]{32}$/);
  assert.deepEqual(readdirSync(root), ['fuzz']);
});
