// `stratum host move` between two real hosts, where the new host has installations of its own:
// the name a capsule moves under, and what a failed move leaves and says.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
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

test('a stopped capsule moves stopped, and a failed move leaves it stopped; data an earlier version stored in a store it dropped is named, and left behind', async (t) => {
  const { dir, keys, h1, h2, capsule } = await twoHosts(t);
  const onH1 = ['--url', h1.controlUrl.href, '--key', keys.h1.path];
  // An earlier version also had a keyvalue store "extra", which the upgrade drops.
  const earlier = join(dir, 'earlier');
  await mkdir(join(earlier, 'dist'), { recursive: true });
  await copyFile(join(capsule, 'dist', 'counter.wasm'), join(earlier, 'dist', 'counter.wasm'));
  const manifest = await readFile(join(capsule, 'stratum.toml'), 'utf8');
  assert.match(manifest, /^keyvalue = \["default"\]$/m);
  await writeFile(join(earlier, 'stratum.toml'), manifest.replace(/^keyvalue = \["default"\]$/m, 'keyvalue = ["default", "extra"]'));
  assert.equal((await run(['host', 'install', earlier, '--name', 'shopc', '-d', 'shopc.example', ...onH1])).code, 0);
  assert.equal(await count(h1, 'shopc.example'), 1);
  const upgraded = await run(['host', 'install', capsule, '--name', 'shopc', '-d', 'shopc.example', ...onH1]);
  assert.equal(upgraded.code, 0, upgraded.stderr);
  assert.match(
    upgraded.stderr,
    /\nnote: 0\.1\.0 does not grant keyvalue\/extra, as shopc had: what it stored there stays on h1\.example\.net under the name, .*until `stratum host uninstall shopc --delete-data --url \S+ --key \S+` deletes it/,
  );
  // Taken out of service by its registrar.
  assert.equal((await run(['host', 'stop', 'shopc', ...onH1])).code, 0);
  const h1Client = createControlClient({ url: h1.controlUrl.href, key: await readKeyFile(keys.h1.path) });
  const h2Client = createControlClient({ url: h2.controlUrl.href, key: await readKeyFile(keys.h2.path) });

  // A move that fails (h2 goes away at the import) does not start it on h1.
  const dying = await controlProxy(t, h2.controlUrl, (incoming) =>
    incoming.method === 'PUT' && /\/state\//.test(incoming.url ?? '') ? 'die' : 'forward',
  );
  const from = ['--from-url', h1.controlUrl.href, '--from-key', keys.h1.path];
  const failed = await run(['host', 'move', 'shopc', capsule, ...from, '--to-url', dying, '--to-key', keys.h2.path]);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /^shopc is stopped on the old host: it moves as it is, and is not started on the new host\n/);
  assert.match(failed.stderr, /\nerror: moving shopc failed; it is stopped on h1\.example\.net, as it was\n/);
  assert.doesNotMatch(failed.stderr, /draining|serves from the old host again/);
  assert.equal((await h1Client.capsule('shopc')).state, 'stopped');
  await h2Client.uninstall('shopc', { deleteData: true });

  const moved = await run(['host', 'move', 'shopc', capsule, ...from, '--to-url', h2.controlUrl.href, '--to-key', keys.h2.path]);
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(
    moved.stderr,
    /\nnote: shopc on the old host holds data in keyvalue\/extra, which its manifest no longer grants: a move copies only the stores a manifest grants, so that data stays on the old host/,
  );
  assert.match(moved.stderr, /\nleaving shopc stopped on the new host, as it was on the old host\n/);
  assert.doesNotMatch(moved.stderr, /draining|starting/);
  assert.match(
    moved.stdout,
    /^moved shopc to the new host: stopped, as it was on the old host; it serves shopc\.example once started:\n {2}stratum host serve shopc --url /,
  );
  assert.equal((await h1Client.capsule('shopc')).state, 'stopped');
  assert.equal((await h2Client.capsule('shopc')).state, 'stopped');
  // Its registrar serves it when it means to, with its data.
  assert.equal((await run(['host', 'serve', 'shopc', '--url', h2.controlUrl.href, '--key', keys.h2.path])).code, 0);
  assert.equal(await count(h2, 'shopc.example'), 2);
  // On h1, deleting the name's data finds the store the upgrade dropped too.
  const deleted = await run(['host', 'uninstall', 'shopc', '--delete-data', ...onH1]);
  assert.equal(deleted.stdout, 'uninstalled shopc; its data deleted (keyvalue/default, keyvalue/extra)\n');
});
