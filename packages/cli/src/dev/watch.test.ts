import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { isWatchedPath, watchDirectory } from './watch.ts';

test('build output, dev state, packages and editor files are not followed', () => {
  for (const path of [
    'dist/app.wasm',
    '.stratum/build/x.wasm',
    'node_modules/a/index.js',
    'src/.git/HEAD',
    'src/index.ts~',
    'src/.index.ts.swp',
    '.#stratum.toml',
    'stratum.pinned.toml',
  ]) {
    assert.equal(isWatchedPath(path), false, path);
  }
  for (const path of ['stratum.toml', 'src/index.ts', 'src/lib/distance.ts', 'README.md']) assert.equal(isWatchedPath(path), true, path);
});

/** Watches a fresh directory; `next()` resolves with the next burst of changes. */
async function watched(t: TestContext, alsoWatch: string[] = []) {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-watch-'));
  await mkdir(join(dir, 'src'));
  await mkdir(join(dir, 'dist'));
  await writeFile(join(dir, 'stratum.toml'), 'one');
  const bursts: string[][] = [];
  let wake: (() => void) | undefined;
  const watcher = watchDirectory(
    dir,
    (paths) => {
      bursts.push(paths);
      wake?.();
    },
    { debounceMs: 50, alsoWatch },
  );
  t.after(async () => {
    watcher.close();
    await rm(dir, { recursive: true, force: true });
  });
  // Let the watchers settle before the first change.
  await new Promise((resolve) => setTimeout(resolve, 100));
  return {
    dir,
    async next(): Promise<string[]> {
      if (bursts.length === 0) {
        await new Promise<void>((resolve, reject) => {
          const timeout = setTimeout(() => reject(new Error('no change was reported')), 5000);
          wake = () => {
            clearTimeout(timeout);
            resolve();
          };
        });
      }
      return bursts.shift() ?? [];
    },
    /** Waits long enough for a change to have been reported, and says whether one was. */
    async quiet(): Promise<boolean> {
      await new Promise((resolve) => setTimeout(resolve, 400));
      return bursts.length === 0;
    },
  };
}

test('a file saved in place, saved by rename, and saved in place again is reported each time', async (t) => {
  const { dir, next } = await watched(t);
  await writeFile(join(dir, 'stratum.toml'), 'two');
  assert.ok((await next()).includes('stratum.toml'));
  // sed -i and many editors write a temporary file and rename it over the original.
  await writeFile(join(dir, 'stratum.toml.tmp'), 'three');
  await rename(join(dir, 'stratum.toml.tmp'), join(dir, 'stratum.toml'));
  assert.ok((await next()).includes('stratum.toml'));
  // The file is a new inode now; a recursive fs.watch on Linux no longer sees it.
  await writeFile(join(dir, 'stratum.toml'), 'four');
  assert.deepEqual(await next(), ['stratum.toml']);
});

test('a directory created later is followed; ignored directories are not', async (t) => {
  const { dir, next, quiet } = await watched(t);
  await mkdir(join(dir, 'src', 'lib'));
  await next();
  await writeFile(join(dir, 'src', 'lib', 'util.ts'), 'export {}');
  assert.deepEqual(await next(), [join('src', 'lib', 'util.ts')]);
  await writeFile(join(dir, 'dist', 'app.wasm'), 'x');
  await mkdir(join(dir, '.stratum'));
  await writeFile(join(dir, '.stratum', 'state'), 'x');
  assert.equal(await quiet(), true);
});

test('a prebuilt component inside an ignored directory is followed when asked', async (t) => {
  const { dir, next } = await watched(t, ['dist/app.wasm']);
  await writeFile(join(dir, 'dist', 'app.wasm'), 'x');
  assert.deepEqual(await next(), [join('dist', 'app.wasm')]);
});
