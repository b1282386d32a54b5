// An installation kept on disk that a restarted host cannot bring back stays visible and can be
// uninstalled or installed again, instead of vanishing from every answer while its file remains.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import { parseHostConfig } from '../packages/host/src/config/parse.ts';
import { ControlApiError, createControlClient } from '../packages/host/src/control/client.ts';
import { startHost } from '../packages/host/src/control/host.ts';
import { testHostToml } from './support/host-dir.ts';
import { installingRuntime } from './support/installing-runtime.ts';
import { testDir } from './support/temp.ts';

const MANIFEST =
  'stratum = 1\n[capsule]\nname = "notes"\nversion = "1.2.0"\n[source]\nwasm = "notes.wasm"\n[capabilities]\nkeyvalue = ["default"]\n';

test('an installation the host cannot bring back at its start is listed as failed with why, refused what needs it running, and can be uninstalled or installed again', async (t) => {
  const { dir: base, closing } = await testDir(t, 'stratum-unrestored-');
  const registrar = await generateEd25519KeyPair();
  await writeKeyFile(join(base, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const config = parseHostConfig(testHostToml({ registrar: registrar.publicJwk.x, operator: true }), join(base, 'host.toml'));
  const start = async () => {
    const host = await startHost(config, { createRuntime: () => installingRuntime(), pullComponent: false });
    return { host, client: createControlClient({ url: host.controlUrl, key: registrar.privateJwk, audience: 'host1.example.net' }) };
  };
  const component = new TextEncoder().encode('not a component');
  const first = await start();
  closing(first.host);
  for (const name of ['notes', 'kept']) {
    await first.client.install({ name, domains: [`${name}.example`], manifest: MANIFEST, component, start: false });
  }
  await first.host.close();

  // Files that are not records at all: cut short, and written by hand without the fields.
  await writeFile(join(config.dataDir, 'installations', 'cut.json'), '{"name": "cut", "domains"');
  await writeFile(join(config.dataDir, 'installations', 'bare.json'), '{"name": "bare", "domains": ["bare.localhost"]}');
  // A manifest this host no longer takes, as after an upgrade that narrowed a rule.
  for (const name of ['notes', 'kept']) {
    const file = join(config.dataDir, 'installations', `${name}.json`);
    const installation = JSON.parse(await readFile(file, 'utf8')) as { manifest: string };
    installation.manifest += 'unknown_key = 1\n';
    await writeFile(file, JSON.stringify(installation));
  }
  const { host, client } = await start();
  closing(host);
  assert.deepEqual(
    host.restored.map((item) => [item.name, item.error !== undefined]),
    [
      ['kept', true],
      ['notes', true],
      ['bare', true],
      ['cut', true],
    ],
  );
  const listed = (await client.status()).capsules;
  assert.deepEqual(
    listed.map((capsule) => [capsule.name, capsule.state, capsule.version, capsule.domains]),
    [
      ['kept', 'failed', '1.2.0', ['kept.example']],
      ['notes', 'failed', '1.2.0', ['notes.example']],
      ['bare', 'failed', '', []],
      ['cut', 'failed', '', []],
    ],
  );
  assert.match(listed[1]?.lastError ?? '', /^not brought back when the host started: .*unknown_key/);
  assert.match(listed[2]?.lastError ?? '', /bare\.json is not an installation record: it has no manifest$/);
  assert.match(listed[3]?.lastError ?? '', /cut\.json is not an installation record: not JSON/);
  // The operator removes one, kept aside to read, and installs over the other.
  await client.uninstall('cut');
  assert.ok((await readdir(join(config.dataDir, 'installations'))).some((file) => file.startsWith('cut.json.damaged-')));
  await client.install({ name: 'bare', domains: ['bare.example'], manifest: MANIFEST, component, start: false });
  assert.equal((await client.capsule('bare')).state, 'installed');
  await client.uninstall('bare');
  assert.equal((await client.capsule('notes')).state, 'failed');

  const refused = await client.start('notes').then(
    () => assert.fail('a capsule the host could not bring back was started'),
    (error: unknown) => error,
  );
  assert.ok(refused instanceof ControlApiError);
  assert.equal(refused.code, 'CAPSULE_NOT_RESTORED');
  assert.match(refused.hint ?? '', /Install it again .* or uninstall it/);

  // Uninstalled: gone from the list and the disk, its data kept under its name.
  await client.uninstall('notes');
  assert.deepEqual(
    (await client.status()).capsules.map((capsule) => capsule.name),
    ['kept'],
  );
  // Installed again with a manifest the host takes: served as any other.
  await client.install({ name: 'kept', domains: ['kept.example'], manifest: MANIFEST, component, start: false });
  assert.deepEqual(
    (await client.status()).capsules.map((capsule) => [capsule.name, capsule.state]),
    [['kept', 'installed']],
  );
});
