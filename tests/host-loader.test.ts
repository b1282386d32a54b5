// The loader's transpile worker (jco, about 250 MB) lives only while there is work for it.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
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
