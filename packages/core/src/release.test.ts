import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { releaseVersion } from './release.ts';

const root = new URL('../../../', import.meta.url);

test("the release version names the checkout's commit when Stratum runs from one, so two builds of one release can be told apart", (t) => {
  const { version } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string };
  if (!existsSync(new URL('.git', root))) {
    t.diagnostic('not a git checkout: the version is the release alone');
    assert.equal(releaseVersion(), version);
    return;
  }
  const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  assert.equal(releaseVersion(), `${version}+${commit.slice(0, 12)}`);
});
