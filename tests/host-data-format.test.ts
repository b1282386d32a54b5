// A data directory says which layout wrote it, so that an older host refuses a directory a newer
// one has written instead of serving from it, appending to its ledger, or pruning what it does
// not know; and a directory from before the marker existed is taken as it is.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateEd25519KeyPair, isStratumError, writeKeyFile } from '@stratum/core';
import { parseHostConfig } from '../packages/host/src/config/parse.ts';
import { createControlClient } from '../packages/host/src/control/client.ts';
import { DATA_FORMAT, DATA_FORMAT_FILE } from '../packages/host/src/control/data-format.ts';
import { startHost } from '../packages/host/src/control/host.ts';
import { testHostToml } from './support/host-dir.ts';
import { installingRuntime } from './support/installing-runtime.ts';
import { testDir } from './support/temp.ts';

const MANIFEST = 'stratum = 1\n[capsule]\nname = "notes"\nversion = "1.0.0"\n[source]\nwasm = "notes.wasm"\n';

test("a host records its data directory's format, takes one from before the record, and refuses one a newer host wrote without touching it", async (t) => {
  const { dir: base, closing } = await testDir(t, 'stratum-data-format-');
  const registrar = await generateEd25519KeyPair();
  await writeKeyFile(join(base, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const config = parseHostConfig(testHostToml({ registrar: registrar.publicJwk.x, operator: true }), join(base, 'host.toml'));
  const formatFile = join(config.dataDir, DATA_FORMAT_FILE);
  const start = () => startHost(config, { createRuntime: () => installingRuntime(), pullComponent: false });

  const first = await start();
  closing(first);
  const client = createControlClient({ url: first.controlUrl, key: registrar.privateJwk, audience: 'host1.example.net' });
  await client.install({
    name: 'notes',
    domains: ['notes.example'],
    manifest: MANIFEST,
    component: new TextEncoder().encode('x'),
    start: false,
  });
  await first.close();
  const written = JSON.parse(await readFile(formatFile, 'utf8')) as { format: number; writtenBy: string };
  assert.equal(written.format, DATA_FORMAT);
  assert.match(written.writtenBy, /^\d+\.\d+\.\d+/);

  // A directory from before the record: taken as format 1, and the record written.
  await rm(formatFile);
  const again = await start();
  closing(again);
  assert.deepEqual(
    again.restored.map((one) => one.name),
    ['notes'],
  );
  await again.close();
  assert.equal((JSON.parse(await readFile(formatFile, 'utf8')) as { format: number }).format, DATA_FORMAT);

  // A newer host's directory: refused before anything in it is read or removed (a snapshot
  // upload left behind is emptied at every start this host accepts).
  const newer = `${JSON.stringify({ format: DATA_FORMAT + 1, writtenBy: '9.0.0', since: '2030-01-01T00:00:00.000Z' })}\n`;
  await writeFile(formatFile, newer);
  const uploads = join(config.dataDir, 'runtime', 'state-uploads');
  await mkdir(uploads, { recursive: true });
  await writeFile(join(uploads, 'left'), 'x');
  const refused = await start().then(
    (host) => {
      closing(host);
      assert.fail('a host started on a directory of a newer format');
    },
    (error: unknown) => error,
  );
  assert.ok(isStratumError(refused) && refused.code === 'DATA_DIR_NEWER', String(refused));
  assert.match(
    refused.message,
    new RegExp(`has format ${DATA_FORMAT + 1}, written by Stratum 9\\.0\\.0; this host \\(.+\\) reads format ${DATA_FORMAT} and older$`),
  );
  assert.equal(await readFile(formatFile, 'utf8'), newer);
  assert.deepEqual(await readdir(uploads), ['left']);

  // A record that says nothing: refused, naming the file, not taken for format 1.
  for (const [text, why] of [
    ['{"format": "1"}', /"format" is not a whole number/],
    ['{"form', /it is not JSON/],
  ] as const) {
    await writeFile(formatFile, text);
    const damaged = await start().then(
      (host) => {
        closing(host);
        assert.fail(`a host started on the format record ${text}`);
      },
      (error: unknown) => error,
    );
    assert.ok(isStratumError(damaged) && damaged.code === 'DATA_DIR_DAMAGED', String(damaged));
    assert.ok(damaged.message.startsWith(`${formatFile} does not say which format`), damaged.message);
    assert.match(damaged.message, why);
    assert.equal(await readFile(formatFile, 'utf8'), text);
  }

  // The lock was let go each time: a host of this format starts again.
  await writeFile(formatFile, `${JSON.stringify({ format: DATA_FORMAT, writtenBy: '0.1.0', since: '2026-01-01T00:00:00.000Z' })}\n`);
  const last = await start();
  closing(last);
  await last.close();
});
