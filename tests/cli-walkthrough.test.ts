// The rough edges a new user's walkthrough of the CLI found, each as the user met it: through the
// CLI's main(), checking the exit code and what is said.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli as run } from './support/cli.ts';
import { removeDir } from './support/temp.ts';

test('build checks -o before it builds: a directory, or a path under a file, fails at once naming it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-cli-build-out-'));
  t.after(() => removeDir(dir));
  // No stratum.toml: a build that got as far as reading the project would fail on that instead.
  await writeFile(join(dir, 'README.md'), 'a file\n');
  const underFile = await run(['build', dir, '-o', join(dir, 'README.md', 'x.wasm')]);
  assert.equal(underFile.code, 2, underFile.stderr);
  assert.match(underFile.stderr, /^error: cannot write -o .*README\.md\/x\.wasm: .*README\.md is a file, not a directory\nhint: /);

  await mkdir(join(dir, 'out'));
  const directory = await run(['build', dir, '-o', join(dir, 'out')]);
  assert.equal(directory.code, 2, directory.stderr);
  assert.match(directory.stderr, /^error: -o .*\/out is a directory\nhint: Name the file in it/);

  // A path that can be made is made before the build, which then fails on the project alone.
  const fresh = await run(['build', dir, '-o', join(dir, 'a', 'b', 'x.wasm')]);
  assert.equal(fresh.code, 1);
  assert.match(fresh.stderr, /stratum\.toml/);
  assert.ok((await stat(join(dir, 'a', 'b'))).isDirectory());
});
