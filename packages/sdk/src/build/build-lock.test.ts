import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { lockHolderAlive } from './build.ts';

test('a dev engine lock is stale once the process that took it has gone, not only after minutes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const lock = join(dir, 'engine.wasm.lock');

  const child = spawn(process.execPath, ['-e', '']);
  const pid = child.pid ?? 0;
  await once(child, 'exit');
  await writeFile(lock, String(pid));
  assert.equal(await lockHolderAlive(lock), false, `pid ${pid} has exited`);

  await writeFile(lock, String(process.pid));
  assert.equal(await lockHolderAlive(lock), true);
  // Taken a moment ago, its pid not written yet: the holder is alive.
  await writeFile(lock, '');
  assert.equal(await lockHolderAlive(lock), true);
});
