// `stratum host record`: the _stratum-host record of a host set up already, which a new user had
// to assemble by hand once `host init` had printed it and scrolled away.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli as run } from './support/cli.ts';
import { removeDir } from './support/temp.ts';

test('host record prints the record host init printed, from host.toml and the identity key', async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'stratum-host-record-'));
  t.after(() => removeDir(parent));
  const dir = join(parent, 'h1');
  const api = 'https://h1.example.net/stratum/v1';
  const made = await run(['host', 'init', dir, '--name', 'h1.example.net', '--api', api]);
  assert.equal(made.code, 0, made.stderr);
  const published = made.stdout.split('\n').find((line) => line.startsWith('_stratum-host.'));
  assert.ok(published, made.stdout);

  const again = await run(['host', 'record', '--config', join(dir, 'host.toml'), '--api', api]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, `Publish in h1.example.net's zone:\n${published}\n`);

  const json = await run(['host', 'record', '--config', join(dir, 'host.toml'), '--api', api, '--json']);
  const printed = JSON.parse(json.stdout) as { host: string; publicKey: string; record: { name: string; strings: string[] } };
  assert.equal(printed.host, 'h1.example.net');
  assert.equal(printed.record.name, '_stratum-host.h1.example.net');
  assert.ok(printed.record.strings.includes(`k=${printed.publicKey}`), JSON.stringify(printed));

  const noApi = await run(['host', 'record', '--config', join(dir, 'host.toml')]);
  assert.equal(noApi.code, 2);
  assert.match(noApi.stderr, /--api is required/);
});
