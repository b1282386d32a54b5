// A dev capsule's reloads, in this process: what a save does when nothing in the capsule changed.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { DevCapsule } from '../packages/cli/src/dev/capsule.ts';
import { DevOutput } from '../packages/cli/src/dev/output.ts';
import { testCacheHome } from './support/dev-engines.ts';
import { removeDir } from './support/temp.ts';
import { buildTiny } from './support/tiny.ts';

/** A dev capsule of the project in `dir`, closed after the test; `said()` is what dev printed so far. */
async function openDev(t: TestContext, dir: string): Promise<{ capsule: DevCapsule; said: () => string }> {
  const stream = new PassThrough();
  let said = '';
  stream.on('data', (chunk: Buffer) => {
    said += chunk.toString();
  });
  const capsule = await DevCapsule.open({ dir, alone: true, port: 0, flags: [], output: new DevOutput(stream, { json: false }) });
  t.after(() => capsule.close());
  return { capsule, said: () => said };
}

test('a save with nothing changed serves a capsule the runtime stopped again, saying why it was stopped', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-capsule-'));
  t.after(() => removeDir(dir));
  await writeFile(join(dir, 'stratum.toml'), 'stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n');
  await copyFile(await buildTiny(), join(dir, 'tiny.wasm'));
  const { capsule, said } = await openDev(t, dir);
  await capsule.reload('starting');
  assert.equal(capsule.runtime.status()[0]?.state, 'running');

  await capsule.reload('tiny.wasm changed, rebuilding');
  assert.match(said(), /no change to serve/);
  // As the runtime stops a capsule whose ended instance's thread is stuck in native code.
  await capsule.runtime.stop('tiny');
  await capsule.reload('tiny.wasm changed, rebuilding');
  assert.equal(capsule.runtime.status()[0]?.state, 'running');
  assert.match(said(), /serving 0\.1\.0 again, unchanged; it was stopped/);
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
    const { capsule, said } = await openDev(t, dir);
    capsule.watch();
    await setTimeout(300);
    // As `stratum build` writes it: a temporary file beside it, renamed over it.
    await writeFile(join(dir, `${wasm}.${process.pid}.tmp`), 'a component');
    await rename(join(dir, `${wasm}.${process.pid}.tmp`), join(dir, wasm));
    await setTimeout(600);
    assert.doesNotMatch(said(), /changed/);
    // A change to the sources still rebuilds.
    await writeFile(join(dir, 'src', 'index.ts'), 'export default {\n// edited\n');
    for (const deadline = Date.now() + 10_000; !/src\/index\.ts changed, rebuilding/.test(said()); await setTimeout(50)) {
      if (Date.now() > deadline) assert.fail(`no rebuild: ${said()}`);
    }
  });
}

const PIN = `sha256:${'0'.repeat(64)}`;

for (const [pinned, source] of [
  ['to a registry (as push --pin once left it)', `registry = "oci://127.0.0.1:9390/me/links:0.1.1"\ndigest = "${PIN}"`],
  ['by digest', `wasm = "dist/links.wasm"\ndigest = "${PIN}"`],
] as const) {
  test(`dev serves the sources of a project whose [source] is pinned ${pinned}: the pin is the published build's`, async (t) => {
    const cacheHome = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = testCacheHome;
    t.after(() => {
      if (cacheHome === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = cacheHome;
    });
    const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-capsule-'));
    t.after(() => removeDir(dir));
    await writeFile(join(dir, 'stratum.toml'), `stratum = 1\n[capsule]\nname = "links"\nversion = "0.1.1"\n[source]\n${source}\n`);
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src', 'index.ts'), "export default { fetch: () => new Response('from the sources\\n') };\n");
    const { capsule, said } = await openDev(t, dir);
    await capsule.reload('starting');
    assert.equal(capsule.runtime.status()[0]?.state, 'running', said());
    assert.doesNotMatch(said(), /digest/);
    if (source.startsWith('registry'))
      assert.match(
        said(),
        /stratum\.toml's \[source\] is the published oci:\/\/127\.0\.0\.1:9390\/me\/links:0\.1\.1 \(pinned\); dev serves this directory's sources/,
      );
  });
}

test("a prebuilt component that is not the build [source] digest pins is refused, saying the pin is a published build's", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-capsule-'));
  t.after(() => removeDir(dir));
  await writeFile(
    join(dir, 'stratum.toml'),
    `stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\ndigest = "${PIN}"\n`,
  );
  await copyFile(await buildTiny(), join(dir, 'tiny.wasm'));
  const { capsule, said } = await openDev(t, dir);
  await capsule.reload('starting');
  assert.equal(capsule.serving, false);
  assert.match(
    said(),
    /error: tiny\.wasm is not the build stratum\.toml pins\n {4}\[source\] digest sha256:0{64}\n {4}tiny\.wasm is sha256:[0-9a-f]{64}\n/,
  );
  assert.match(
    said(),
    /hint: The pin is the digest of a published build [^\n]*; this file is another build\. Rebuild or pull the published one to serve it, or re-pin to this one: set \[source\] digest = "sha256:[0-9a-f]{64}", or remove the line\./,
  );
  assert.doesNotMatch(said(), /changed or corrupted/);
});
