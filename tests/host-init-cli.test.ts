// `stratum host init` as a hosting provider runs it: the files it makes start a host that trusts
// the operator key, the control commands find that key beside host.toml, and it never overwrites.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readKeyFile } from '@stratum/core';
import { hostKeyFromJwk, parseHostRecord } from '@stratum/discovery';
import { ControlApiError, createControlClient, loadHostConfig, startHost } from '@stratum/host';
import { runCli } from './support/cli.ts';
import { freePort } from './support/services.ts';
import { removeDir, testDir } from './support/temp.ts';
import { buildTiny } from './support/tiny.ts';

test('host init writes a host.toml that starts a host trusting the operator key it made, which --config finds', async (t) => {
  const { dir: parent, closing } = await testDir(t, 'stratum-host-init-');
  const dir = join(parent, 'h1');
  const controlPort = await freePort();
  const made = await runCli([
    'host',
    'init',
    dir,
    '--name',
    'h1.example.net',
    '--ingress',
    '127.0.0.1:0',
    '--control',
    `127.0.0.1:${controlPort}`,
    '--operator-domain',
    'operator.example.net',
    '--api',
    'https://h1.example.net/stratum/v1',
  ]);
  assert.equal(made.code, 0, made.stderr);
  // Paths as the directory was given: absolute here, not relative to wherever the test runs.
  assert.ok(made.stdout.includes(`\n  stratum host start --config ${join(dir, 'host.toml')}\n`), made.stdout);
  // host.toml too: its store tables come to hold passwords and S3 keys.
  // Its directory too, whatever the umask (the test's default would leave it 0755).
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  for (const key of ['host-key.json', 'operator-key.json', 'host.toml']) {
    assert.equal((await stat(join(dir, key))).mode & 0o777, 0o600, `${key} is readable by its owner only`);
  }
  // The record printed carries the identity key written.
  const identity = hostKeyFromJwk(await readKeyFile(join(dir, 'host-key.json')));
  const line = made.stdout.split('\n').find((one) => one.startsWith('_stratum-host.h1.example.net. 300 IN TXT '));
  assert.ok(line, made.stdout);
  const strings = [...line.matchAll(/"([^"]*)"/g)].map((match) => match[1] ?? '');
  const record = parseHostRecord(strings);
  assert.deepEqual(
    [record.publicKey, record.keyThumbprint, record.api],
    [identity.publicKey, identity.thumbprint, 'https://h1.example.net/stratum/v1'],
  );

  const config = await loadHostConfig(join(dir, 'host.toml'));
  assert.equal(config.name, 'h1.example.net');
  assert.equal(config.keyFile, join(dir, 'host-key.json'));
  assert.equal(config.dataDir, join(dir, 'data'));
  const operator = await readKeyFile(join(dir, 'operator-key.json'));
  assert.deepEqual(
    config.registrars.map(({ name, key, domain, operator }) => ({ name, key: key.x, domain, operator })),
    [{ name: 'operator', key: operator.x, domain: 'operator.example.net', operator: true }],
  );

  const host = closing(await startHost(config, { pullComponent: false }));
  // No --key: the operator key beside host.toml signs.
  const status = await runCli(['host', 'status', '--config', join(dir, 'host.toml'), '--json']);
  assert.equal(status.code, 0, status.stderr);
  assert.equal((JSON.parse(status.stdout) as { host: { name: string } }).host.name, 'h1.example.net');
  // The instance limit, left at its default, is written out commented with the figure it has here.
  const text = await readFile(join(dir, 'host.toml'), 'utf8');
  const written = Number(/^# max = (\d+)$/m.exec(text)?.[1]);
  assert.equal((JSON.parse(status.stdout) as { runtime?: { maxInstances?: number } }).runtime?.maxInstances, written);

  // Its [limits] let in a capsule of the "small" resource class, and refuse a larger one.
  const client = createControlClient({ url: host.controlUrl, key: operator, audience: 'h1.example.net' });
  const component = new Uint8Array(await readFile(await buildTiny()));
  const manifest = (resources: string) =>
    `stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n[resources]\n${resources}\n`;
  await assert.rejects(
    client.install({ domains: ['tiny.example'], manifest: manifest('cpu = "large"\ntimeout = "15m"'), component }),
    (error: unknown) => {
      assert.ok(error instanceof ControlApiError, String(error));
      assert.equal(error.code, 'RESOURCES_UNAVAILABLE');
      assert.equal(error.details.length, 2, error.details.join('\n'));
      assert.match(error.details[0] ?? '', /^\[resources\] cpu asks for 5 s .*this host allows 200 ms.*\(\[limits\] cpu\)$/);
      assert.match(error.details[1] ?? '', /^\[resources\] timeout asks for 900 s; this host allows 30 s \(\[limits\] timeout\)$/);
      return true;
    },
  );
  const small = await client.install({ domains: ['tiny.example'], manifest: manifest('cpu = "small"'), component });
  assert.equal(small.state, 'running');
});

test('host init never overwrites, and refuses options the host would refuse before writing anything', async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'stratum-host-init-'));
  t.after(() => removeDir(parent));
  const dir = join(parent, 'h1');
  assert.equal((await runCli(['host', 'init', dir, '--name', 'h1.example.net'])).code, 0);
  const before = await readFile(join(dir, 'host.toml'), 'utf8');
  const keyBefore = await readFile(join(dir, 'host-key.json'), 'utf8');
  const again = await runCli(['host', 'init', dir, '--name', 'h2.example.net']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already holds a host's files/);
  assert.match(again.stderr, /host\.toml exists\n.*host-key\.json exists\n.*operator-key\.json exists/);
  assert.equal(await readFile(join(dir, 'host.toml'), 'utf8'), before);
  assert.equal(await readFile(join(dir, 'host-key.json'), 'utf8'), keyBefore);

  const elsewhere = join(parent, 'h2');
  const badName = await runCli(['host', 'init', elsewhere, '--name', 'not a name']);
  assert.equal(badName.code, 2);
  assert.match(badName.stderr, /host\.name "not a name" is not valid/);
  const badAddress = await runCli(['host', 'init', elsewhere, '--name', 'h2.example.net', '--ingress', '8080']);
  assert.equal(badAddress.code, 2);
  assert.match(badAddress.stderr, /ingress\.listen "8080" is not valid/);
  await assert.rejects(stat(elsewhere), { code: 'ENOENT' }, 'nothing was written');

  // Without --config's key beside it, --key is asked for, saying where it looked.
  const noKey = await runCli(['host', 'status', '--config', join(parent, 'elsewhere.toml')]);
  assert.equal(noKey.code, 2);
  assert.match(noKey.stderr, /--key is required.*there is no operator-key\.json beside/);
});
