import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { LAUNCHER, stratumInvocation } from './launcher.ts';

test("stratum is named as typed only when a directory on the user's own PATH holds this launcher, not one npm or npx put there", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-launcher-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const [linked, npxBin, other, gyp] = [join(dir, 'bin'), join(dir, 'node_modules', '.bin'), join(dir, 'other'), join(dir, 'node-gyp-bin')];
  for (const one of [linked, npxBin, other, gyp]) await mkdir(one, { recursive: true });
  await symlink(LAUNCHER, join(linked, 'stratum'));
  await symlink(LAUNCHER, join(npxBin, 'stratum'));
  // The unrelated npm package of that name, say.
  await writeFile(join(other, 'stratum'), '#!/bin/sh\n', { mode: 0o755 });
  const shell = {};
  // As npx and npm scripts run a command: their directories first, node-gyp-bin last among them.
  const npx = { npm_execpath: '/usr/lib/node_modules/npm/bin/npm-cli.js', npm_lifecycle_event: 'npx' };
  const notOnPath = (path: string, env: NodeJS.ProcessEnv) => {
    const { command, hint } = stratumInvocation(path, env);
    assert.equal(command, LAUNCHER, path);
    assert.match(hint ?? '', /not on your PATH: `npm link -w @stratum\/cli` in \S+ puts it there/);
  };

  assert.deepEqual(stratumInvocation([other, linked].join(delimiter), shell), { command: 'stratum' });
  // A node_modules/.bin the user put on their PATH themselves holds it as well as a linked one.
  assert.deepEqual(stratumInvocation([other, npxBin].join(delimiter), shell), { command: 'stratum' });
  for (const path of [other, '']) notOnPath(path, shell);
  // Under npx: the node_modules/.bin before node-gyp-bin is npx's, gone in the user's next command.
  notOnPath([npxBin, gyp, other].join(delimiter), npx);
  assert.deepEqual(stratumInvocation([npxBin, gyp, other, npxBin].join(delimiter), npx), { command: 'stratum' });
  assert.deepEqual(stratumInvocation([npxBin, gyp, linked].join(delimiter), npx), { command: 'stratum' });
  // With no node-gyp-bin to tell where npm's end, no node_modules/.bin counts.
  notOnPath([npxBin, other].join(delimiter), npx);
});
