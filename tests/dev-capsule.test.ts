// A dev capsule's reloads, in this process: what a save does when nothing in the capsule changed,
// and where its config values come from.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { DevCapsule } from '../packages/cli/src/dev/capsule.ts';
import { DevOutput } from '../packages/cli/src/dev/output.ts';
import { parseVarFlag } from '../packages/cli/src/dev/vars.ts';
import { openDevCapsule } from './support/dev-capsule.ts';
import { testCacheHome } from './support/dev-engines.ts';
import { removeDir } from './support/temp.ts';
import { buildTiny } from './support/tiny.ts';

/** A dev capsule of the project in `dir`, closed after the test; `said()` is what dev printed so far. */
const openDev = (t: TestContext, dir: string) => openDevCapsule(t, dir);

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

test("without --var-file, a project's .env gives its config values, is read again when it changes, and is named where a value is missing", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-capsule-'));
  t.after(() => removeDir(dir));
  await writeFile(
    join(dir, 'stratum.toml'),
    'stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n' +
      '[capabilities.config.api_key]\nrequired = true\nsecret = true\n[capabilities.config.greeting]\ndefault = "hello"\n[capabilities.config.region]\nrequired = false\n',
  );
  await copyFile(await buildTiny(), join(dir, 'tiny.wasm'));
  const stream = new PassThrough();
  let said = '';
  stream.on('data', (chunk: Buffer) => {
    said += chunk.toString();
  });
  const output = new DevOutput(stream, { json: false });
  const capsule = await DevCapsule.open({ dir, alone: true, port: 0, flags: [], output, projectVarFile: true });
  t.after(() => capsule.close());
  await capsule.reload('starting');
  assert.equal(capsule.serving, false);
  assert.match(said, /config variable "api_key" is required and has no value \(a secret\)/);
  assert.ok(said.includes(`hint: Put name=value lines in ${join(dir, '.env')}`), said);

  capsule.watch();
  await setTimeout(300);
  await writeFile(join(dir, '.env'), 'api_key=sk-live-123\ngreeting=hi there\n');
  for (const deadline = Date.now() + 10_000; !capsule.serving; await setTimeout(50)) {
    if (Date.now() > deadline) assert.fail(`not served from .env: ${said}`);
  }
  assert.match(said, /\.env changed/);
  const served = capsule.served();
  assert.deepEqual(served.config, [
    { name: 'api_key', secret: true, value: 'given', from: join(dir, '.env') },
    { name: 'greeting', secret: false, value: 'given', text: 'hi there', from: join(dir, '.env') },
    { name: 'region', secret: false, value: 'unset' },
  ]);
  assert.equal(served.varFile, join(dir, '.env'));
  output.ready([served], { watching: true, port: 8800 });
  assert.match(said, /config {8}api_key {3}secret, set ← .*\.env\n/);
  assert.match(said, / {14}greeting {2}"hi there" ← .*\.env\n/);
  assert.match(said, / {14}region {4}not set\n/);
  assert.match(said, /values from {3}.*\.env \(name=value lines, as --var-file; read again when it changes\)/);
  assert.doesNotMatch(said, /sk-live/);
});

test('a --var wins over a line of the project’s .env, and a project that declares no config variable leaves its .env alone', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-capsule-'));
  t.after(() => removeDir(dir));
  const manifest = 'stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n';
  await writeFile(join(dir, 'stratum.toml'), manifest);
  await copyFile(await buildTiny(), join(dir, 'tiny.wasm'));
  // Another tool's: not a config variable's name, which dev would refuse.
  await writeFile(join(dir, '.env'), 'DATABASE_URL=postgres://localhost/app\n');
  const vars = [parseVarFlag('greeting=from the flag')];
  const { capsule, said } = await openDevCapsule(t, dir, { projectVarFile: true, vars: async () => [] });
  await capsule.reload('starting');
  assert.ok(capsule.serving, said());
  assert.equal(capsule.served().varFile, undefined);

  await capsule.close();
  await writeFile(join(dir, 'stratum.toml'), `${manifest}[capabilities.config.greeting]\ndefault = "hello"\n`);
  await writeFile(join(dir, '.env'), 'greeting=from the file\n');
  const { capsule: flagged } = await openDevCapsule(t, dir, { projectVarFile: true, vars: async () => vars });
  await flagged.reload('starting');
  assert.deepEqual(flagged.served().config, [{ name: 'greeting', secret: false, value: 'given', text: 'from the flag', from: '--var' }]);
});

test('a store label renamed in stratum.toml is said to keep its data in the state directory, not under the new label, in this run and after a restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-capsule-'));
  t.after(() => removeDir(dir));
  const manifest = (bucket: string) =>
    `stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n[capabilities]\nbucket = ["${bucket}"]\n`;
  await writeFile(join(dir, 'stratum.toml'), manifest('attachments'));
  await copyFile(await buildTiny(), join(dir, 'tiny.wasm'));
  const first = await openDev(t, dir);
  await first.capsule.reload('starting');
  assert.doesNotMatch(first.said(), /no longer granted/);
  await writeFile(join(dir, 'stratum.toml'), manifest('files'));
  await first.capsule.reload('stratum.toml changed, reloading');
  assert.ok(first.capsule.serving);
  assert.match(
    first.said(),
    /bucket:attachments is no longer granted: what it stored is kept in \S+\.stratum, and not served as bucket:files, which is a new store\./,
  );
  // Said once: the next save has nothing more to say.
  await first.capsule.reload('stratum.toml changed, reloading');
  assert.equal(first.said().match(/no longer granted/g)?.length, 1);
  await first.capsule.close();

  // Renamed back while dev was not running: the next run says it of the label it served last.
  await writeFile(join(dir, 'stratum.toml'), manifest('attachments'));
  const second = await openDev(t, dir);
  await second.capsule.reload('starting');
  assert.match(second.said(), /bucket:files is no longer granted/);
});
