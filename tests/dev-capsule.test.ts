// A dev capsule's reloads, in this process: what a save does when nothing in the capsule changed.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
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
