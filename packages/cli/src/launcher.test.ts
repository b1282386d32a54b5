import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { LAUNCHER, stratumInvocation } from './launcher.ts';

test('stratum is named as typed only when a directory on the PATH, not a node_modules/.bin, holds this launcher', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-launcher-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const [linked, npxBin, other] = [join(dir, 'bin'), join(dir, 'node_modules', '.bin'), join(dir, 'other')];
  for (const one of [linked, npxBin, other]) await mkdir(one, { recursive: true });
  await symlink(LAUNCHER, join(linked, 'stratum'));
  await symlink(LAUNCHER, join(npxBin, 'stratum'));
  // The unrelated npm package of that name, say.
  await writeFile(join(other, 'stratum'), '#!/bin/sh\n', { mode: 0o755 });

  assert.deepEqual(stratumInvocation([other, linked].join(delimiter)), { command: 'stratum' });
  for (const path of [npxBin, other, '']) {
    const { command, hint } = stratumInvocation(path);
    assert.equal(command, LAUNCHER);
    assert.match(hint ?? '', /not on your PATH: `npm link -w @stratum\/cli` in \S+ puts it there/);
  }
});
