// The loader's transpile worker (jco, about 250 MB) lives only while there is work for it.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Loader, sha256Digest } from '../packages/host/src/loader.ts';
import { buildHostile, buildTiny } from './support/tiny.ts';

test('the transpile worker ends once idle, and starts again for the next component', async (t) => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'stratum-loader-'));
  const loader = new Loader({ cacheDir, transpileIdleMs: 50 });
  t.after(async () => {
    await loader.close();
    await rm(cacheDir, { recursive: true, force: true });
  });
  const component = async (path: string) => {
    const bytes = new Uint8Array(await readFile(path));
    return { digest: sha256Digest(bytes), bytes: () => Promise.resolve(bytes) };
  };
  const tiny = await component(await buildTiny());
  assert.ok((await loader.inspect(tiny)).exports.some((name) => name.startsWith('wasi:http/incoming-handler@')));
  const transpiled = await loader.transpile(tiny, [], []);
  assert.equal(loader.stats.transpileWorkersStarted, 1, 'both jobs ran in one worker');
  // jco's glue as written: its instantiate compiled with the module (packages/host/src/glue.ts).
  const glue = await readFile(new URL(transpiled.glueUrl), 'utf8');
  assert.match(glue, /\nexport const instantiate = \(function instantiate\(/, "jco's glue no longer has the shape glue.ts rewrites");
  await new Promise((resolve) => setTimeout(resolve, 300));
  const trap = await component(await buildHostile('trap'));
  await loader.transpile(trap, [], []);
  assert.equal(loader.stats.transpileWorkersStarted, 2, 'the idle worker was not ended');
  assert.equal(loader.stats.transpiles, 2);
});

test('pruning the transpile cache keeps what is in use and the most recently used others; a pruned component transpiles again', async (t) => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'stratum-loader-'));
  const loader = new Loader({ cacheDir });
  t.after(async () => {
    await loader.close();
    await rm(cacheDir, { recursive: true, force: true });
  });
  const tiny = await readFile(await buildTiny());
  // Three components: tiny, and tiny with a custom section appended (another digest each).
  const variants = ['one', 'two', 'three'].map((name) => {
    const bytes = new Uint8Array(Buffer.concat([tiny, Buffer.from([0x00, 1 + name.length, name.length, ...Buffer.from(name)])]));
    return { digest: sha256Digest(bytes), bytes: () => Promise.resolve(bytes) };
  });
  const [inUse, older, newer] = await Promise.all(
    variants.map(async (component) => ({
      component,
      world: await loader.inspect(component),
      transpiled: await loader.transpile(component, [], []),
    })),
  );
  if (!inUse || !older || !newer) throw new Error('three variants');
  const meta = (entry: { transpiled: { dir: string } }) => join(entry.transpiled.dir, 'meta.json');
  await utimes(meta(older), new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
  await utimes(meta(newer), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  const removed = await loader.pruneCache({ keys: new Set([inUse.transpiled.key]), digests: new Set([inUse.component.digest]) }, 1);
  assert.equal(removed, 2, 'the older unused entry and its world');
  assert.deepEqual((await readdir(join(cacheDir, 'transpiled'))).sort(), [inUse.transpiled.key, newer.transpiled.key].sort());
  assert.equal((await readdir(join(cacheDir, 'inspect'))).length, 2);
  const transpiles = loader.stats.transpiles;
  await loader.transpile(newer.component, [], []);
  assert.equal(loader.stats.transpiles, transpiles, 'a kept entry was transpiled again');
  await loader.transpile(older.component, [], []);
  assert.equal(loader.stats.transpiles, transpiles + 1, 'a pruned entry was not transpiled again');
});

test('the glue loads as an ES module when the cache is inside a CommonJS package (npm init -y)', async (t) => {
  const project = await mkdtemp(join(tmpdir(), 'stratum-loader-'));
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'app', type: 'commonjs' }));
  const loader = new Loader({ cacheDir: join(project, '.stratum', 'cache') });
  t.after(async () => {
    await loader.close();
    await rm(project, { recursive: true, force: true });
  });
  const bytes = new Uint8Array(await readFile(await buildTiny()));
  const transpiled = await loader.transpile({ digest: sha256Digest(bytes), bytes: () => Promise.resolve(bytes) }, [], []);
  const glue = (await import(transpiled.glueUrl)) as { instantiate?: unknown };
  assert.equal(typeof glue.instantiate, 'function');
});
