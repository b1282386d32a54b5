// A dev capsule's reloads, in this process: what a save does when nothing in the capsule changed.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { DevCapsule } from '../packages/cli/src/dev/capsule.ts';
import { DevOutput } from '../packages/cli/src/dev/output.ts';
import { removeDir } from './support/temp.ts';
import { buildTiny } from './support/tiny.ts';

test('a save with nothing changed serves a capsule the runtime stopped again, saying why it was stopped', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-capsule-'));
  t.after(() => removeDir(dir));
  await writeFile(join(dir, 'stratum.toml'), 'stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n');
  await copyFile(await buildTiny(), join(dir, 'tiny.wasm'));
  const stream = new PassThrough();
  let said = '';
  stream.on('data', (chunk: Buffer) => {
    said += chunk.toString();
  });
  const capsule = await DevCapsule.open({ dir, alone: true, port: 0, flags: [], output: new DevOutput(stream, { json: false }) });
  t.after(() => capsule.close());
  await capsule.reload('starting');
  assert.equal(capsule.runtime.status()[0]?.state, 'running');

  await capsule.reload('tiny.wasm changed, rebuilding');
  assert.match(said, /no change to serve/);
  // As the runtime stops a capsule whose ended instance's thread is stuck in native code.
  await capsule.runtime.stop('tiny');
  await capsule.reload('tiny.wasm changed, rebuilding');
  assert.equal(capsule.runtime.status()[0]?.state, 'running');
  assert.match(said, /serving 0\.1\.0 again, unchanged; it was stopped/);
});

for (const wasm of ['dist/links.wasm', 'links.wasm']) {
  test(`dev building from sources does not rebuild when stratum build writes its component (${wasm}): dev does not serve it`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-capsule-'));
    t.after(() => removeDir(dir));
    await writeFile(
      join(dir, 'stratum.toml'),
      `stratum = 1\n[capsule]\nname = "links"\nversion = "0.1.0"\n[source]\nwasm = "${wasm}"\n[build]\nentry = "src/index.ts"\n`,
    );
    await mkdir(join(dir, 'src'));
    await mkdir(join(dir, 'dist'));
    // A source that fails to bundle at once: what matters here is whether a change starts a build.
    await writeFile(join(dir, 'src', 'index.ts'), 'export default {\n');
    const stream = new PassThrough();
    let said = '';
    stream.on('data', (chunk: Buffer) => {
      said += chunk.toString();
    });
    const capsule = await DevCapsule.open({ dir, alone: true, port: 0, flags: [], output: new DevOutput(stream, { json: false }) });
    t.after(() => capsule.close());
    capsule.watch();
    await setTimeout(300);
    // As `stratum build` writes it: a temporary file beside it, renamed over it.
    await writeFile(join(dir, `${wasm}.${process.pid}.tmp`), 'a component');
    await rename(join(dir, `${wasm}.${process.pid}.tmp`), join(dir, wasm));
    await setTimeout(600);
    assert.doesNotMatch(said, /changed/);
    // A change to the sources still rebuilds.
    await writeFile(join(dir, 'src', 'index.ts'), 'export default {\n// edited\n');
    for (const deadline = Date.now() + 10_000; !/src\/index\.ts changed, rebuilding/.test(said); await setTimeout(50)) {
      if (Date.now() > deadline) assert.fail(`no rebuild: ${said}`);
    }
  });
}
