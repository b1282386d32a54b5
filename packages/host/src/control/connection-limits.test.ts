import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { defaultMaxConnections, openFileLimit } from './connection-limits.ts';

test("the open-file limit is the process's soft limit, as the shell reports it", (t) => {
  if (process.platform !== 'linux') {
    t.skip('reads /proc/self/limits, which only Linux has');
    return;
  }
  // A child inherits its parent's limits.
  const shell = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' });
  const expected = shell.stdout.trim();
  assert.equal(String(openFileLimit() ?? 'unlimited'), expected);
});

test("the ingress's default connection limit leaves descriptors for the rest of the host", () => {
  assert.equal(defaultMaxConnections(65536), 65280);
  assert.equal(defaultMaxConnections(1024), 768);
  // A tiny limit still lets some clients in.
  assert.equal(defaultMaxConnections(100), 64);
  assert.equal(defaultMaxConnections(undefined), undefined);
});
