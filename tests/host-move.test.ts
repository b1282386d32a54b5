// `stratum host move` between two real hosts, where the new host has installations of its own:
// the name a capsule moves under, and what a failed move leaves and says.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, readKeyFile, writeKeyFile } from '@stratum/core';
import { createControlClient, parseHostConfig, startHost } from '@stratum/host';
import { runCli as run } from './support/cli.ts';
import { controlProxy } from './support/control-proxy.ts';
import { builtExampleCopy } from './support/examples.ts';
import { writeTestHost } from './support/host-dir.ts';
import { counterCount as count } from './support/ingress.ts';
import { testDir } from './support/temp.ts';

/** A key file in `dir` and its public part, for host.toml's [registrars]. */
async function registrarKey(dir: string, file: string): Promise<{ path: string; x: string }> {
  const pair = await generateEd25519KeyPair();
  const path = join(dir, file);
  await writeKeyFile(path, pair.privateJwk);
  return { path, x: pair.publicJwk.x };
}

/**
 * Two hosts, h1 and h2, each with an operator key; h2 also trusts two other registrars, "shops"
 * and "other". The counter example, built, in a capsule directory.
 */
async function twoHosts(t: TestContext) {
  const { dir, closing } = await testDir(t, 'stratum-host-move-');
  const keys = {
    h1: await registrarKey(dir, 'h1-operator.key'),
    h2: await registrarKey(dir, 'h2-operator.key'),
    shops: await registrarKey(dir, 'shops.key'),
    other: await registrarKey(dir, 'other.key'),
  };
  const start = async (name: string, operator: string, tables = '') => {
    await mkdir(join(dir, name));
    const { path, text } = await writeTestHost(join(dir, name), {
      name: `${name}.example.net`,
      registrar: operator,
      registrarName: 'operator',
      operator: true,
      tables,
    });
    return closing(await startHost(parseHostConfig(text, path), { pullComponent: false }));
  };
  const h1 = await start('h1', keys.h1.x);
  const h2 = await start('h2', keys.h2.x, `[registrars.shops]\nkey = "${keys.shops.x}"\n[registrars.other]\nkey = "${keys.other.x}"\n`);
  const capsule = await builtExampleCopy('counter', dir);
  return { dir, keys, h1, h2, capsule };
}

test("host move keeps the capsule's name on the new host, and refuses a name that is another installation there", async (t) => {
  const { keys, h1, h2, capsule } = await twoHosts(t);
  // On h1, the counter example installed as shopc; on h2, another registrar's counter, running.
  const onH1 = ['--url', h1.controlUrl.href, '--key', keys.h1.path];
  assert.equal((await run(['host', 'install', capsule, '--name', 'shopc', '-d', 'shopc.example', ...onH1])).code, 0);
  const onH2 = ['--url', h2.controlUrl.href, '--key', keys.shops.path];
  assert.equal((await run(['host', 'install', capsule, '-d', 'counter.example', ...onH2])).code, 0);
  assert.equal(await count(h1, 'shopc.example'), 1);
  assert.equal(await count(h2, 'counter.example'), 1);

  const from = ['--from-url', h1.controlUrl.href, '--from-key', keys.h1.path, '--to-url', h2.controlUrl.href];
  // The operator's key sees h2's counter: refused before the install, which would have replaced it.
  const operator = await run(['host', 'move', 'shopc', capsule, ...from, '--to-key', keys.h2.path, '--name', 'counter']);
  assert.equal(operator.code, 1);
  assert.match(
    operator.stderr,
    /^error: h2\.example\.net already has a capsule named counter \(running, serving counter\.example\): moving there would replace it\n/,
  );
  assert.doesNotMatch(operator.stderr, /installing|draining/);
  // Another registrar's key is told 404, and its install is refused: a refusal as clean.
  const other = await run(['host', 'move', 'shopc', capsule, ...from, '--to-key', keys.other.path, '--name', 'counter']);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /h2\.example\.net already has a capsule named counter \(another registrar's\)/);
  assert.doesNotMatch(other.stderr, /draining/);
  // Neither changed anything: shopc serves on h1, counter on h2, each counting on.
  assert.equal(await count(h1, 'shopc.example'), 2);
  assert.equal(await count(h2, 'counter.example'), 2);

  // Without --name, the capsule keeps its name, not the manifest's [capsule] name "counter".
  const moved = await run(['host', 'move', 'shopc', capsule, ...from, '--to-key', keys.h2.path]);
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(moved.stderr, /^installing shopc \(0\.1\.0, .*\) on the new host, not started\n/);
  assert.match(moved.stdout, /^moved shopc to the new host: running, serving shopc\.example;/);
  assert.equal(await count(h2, 'shopc.example'), 3);
  assert.equal(await count(h2, 'counter.example'), 3);
  const client = createControlClient({ url: h2.controlUrl.href, key: await readKeyFile(keys.h2.path) });
  const names = (await client.status()).capsules.map((one) => `${one.name} ${one.state}`).sort();
  assert.deepEqual(names, ['counter running', 'shopc running']);
});

test('a move whose new host dies mid-copy says the capsule serves from the old host again, and how to remove the copy left on the new one', async (t) => {
  const { keys, h1, h2, capsule } = await twoHosts(t);
  const onH1 = ['--url', h1.controlUrl.href, '--key', keys.h1.path];
  assert.equal((await run(['host', 'install', capsule, '--name', 'shopc', '-d', 'shopc.example', ...onH1])).code, 0);
  assert.equal(await count(h1, 'shopc.example'), 1);
  // h2 goes away as the state's import reaches it, after the install there.
  const h2Url = await controlProxy(t, h2.controlUrl, (incoming) =>
    incoming.method === 'PUT' && /\/state\//.test(incoming.url ?? '') ? 'die' : 'forward',
  );
  const sides = ['--from-url', h1.controlUrl.href, '--from-key', keys.h1.path, '--to-url', h2Url, '--to-key', keys.h2.path];
  const moved = await run(['host', 'move', 'shopc', capsule, ...sides]);
  assert.equal(moved.code, 1);
  const uninstall = `stratum host uninstall shopc --delete-data --url ${h2Url} --key ${keys.h2.path}`;
  assert.match(
    moved.stderr,
    /\nerror: moving shopc failed; it serves from the old host again\n {2}.+\n {2}could not remove the copy installed on h2\.example\.net: cannot reach the control API at .+\nhint: /,
  );
  assert.ok(
    moved.stderr.endsWith(`hint: Once h2.example.net answers, remove that copy and the state copied into it: \`${uninstall}\`.\n`),
    moved.stderr,
  );
  assert.doesNotMatch(moved.stderr, /so did putting it back/);
  // As it says: h1 serves it again, and h2 has the copy, installed and not started.
  assert.equal(await count(h1, 'shopc.example'), 2);
  const client = createControlClient({ url: h2.controlUrl.href, key: await readKeyFile(keys.h2.path) });
  assert.equal((await client.capsule('shopc')).state, 'installed');
});
