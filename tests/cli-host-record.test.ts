// `stratum host record`: the _stratum-host record of a host set up already, which a new user had
// to assemble by hand once `host init` had printed it and scrolled away.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseHostRecord, parseWitList } from '@stratum/discovery';
import { CAPABILITY_MODULES, type Capability } from '@stratum/host';
import { HOST_INTERFACES } from '../packages/cli/src/host-interfaces.ts';
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

  // Without --wit, what stratum-host serves: a record without wit= says the host serves nothing
  // (dns check showed `interfaces: []`), and a registrar would offer it no capsule.
  const record = parseHostRecord(printed.record.strings);
  assert.deepEqual(
    record.interfaces.map((item) => `${item.name}@${item.version}`),
    [...HOST_INTERFACES],
  );
  assert.match(published, /"wit=wasi:http@0\.2\.10,/);
  const chosen = await run(['host', 'record', '--config', join(dir, 'host.toml'), '--api', api, '--wit', 'wasi:http@0.2.0', '--json']);
  const narrowed = JSON.parse(chosen.stdout) as { record: { strings: string[] } };
  assert.deepEqual(
    narrowed.record.strings.filter((one) => one.startsWith('wit=')),
    ['wit=wasi:http@0.2.0'],
  );

  const noApi = await run(['host', 'record', '--config', join(dir, 'host.toml')]);
  assert.equal(noApi.code, 2);
  assert.match(noApi.stderr, /--api is required/);
});

test("the record's default wit= covers every interface the host's capabilities provide, at spec/wit's versions", async () => {
  const listed = parseWitList(HOST_INTERFACES.join(','));
  for (const entry of CAPABILITY_MODULES) {
    const capability = ((await import(entry.module)) as { default: Capability }).default;
    for (const name of capability.interfaces) {
      assert.ok(
        listed.some((item) => item.name === name || name.startsWith(`${item.name}/`)),
        `${entry.name} provides ${name}, which HOST_INTERFACES does not list`,
      );
    }
  }
  // Each package's version is the one spec/wit/deps holds (wasi:keyvalue is the host's own binding).
  const deps = new URL('../spec/wit/deps/', import.meta.url);
  const versions = new Map<string, string>();
  for (const dir of await readdir(deps, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    for (const file of await readdir(new URL(`${dir.name}/`, deps))) {
      const found = /^package ([a-z-]+:[a-z-]+)@(\S+);/m.exec(await readFile(new URL(`${dir.name}/${file}`, deps), 'utf8'));
      if (found) versions.set(found[1] ?? '', found[2] ?? '');
    }
  }
  for (const item of listed) {
    const pkg = item.name.split('/')[0] ?? '';
    if (pkg === 'wasi:keyvalue') continue;
    assert.equal(versions.get(pkg), item.version, item.name);
  }
});
