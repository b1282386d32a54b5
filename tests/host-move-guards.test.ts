// What `stratum host install` and `host move` refuse or bound before they cost a customer its
// site, through the real CLI and two real hosts: an install that would replace another
// customer's installation, a move given the wrong directory or no config values, and a move
// whose new host stops answering or that the user interrupts.
import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, readKeyFile, writeKeyFile } from '@stratum/core';
import { DiscoveryResolver, startEmbeddedDnsServer } from '@stratum/discovery';
import { createControlClient, parseHostConfig, startHost } from '@stratum/host';
import { runCli as run } from './support/cli.ts';
import { controlProxy, type ProxyFate } from './support/control-proxy.ts';
import { builtExampleCopy } from './support/examples.ts';
import { writeTestHost } from './support/host-dir.ts';
import { counterCount as count } from './support/ingress.ts';
import { testDir } from './support/temp.ts';
import { buildTiny } from './support/tiny.ts';

/**
 * Two hosts, h1.hosting.net and h2.hosting.net, trusting one registrar key (registrar.net), and
 * the counter example, built, in a capsule directory. `tables`: host.toml tables for both.
 */
async function twoHosts(t: TestContext, tables = '') {
  const { dir, closing } = await testDir(t, 'stratum-move-guards-');
  const pair = await generateEd25519KeyPair();
  const key = join(dir, 'registrar.key');
  await writeKeyFile(key, pair.privateJwk);
  const start = async (name: string) => {
    await mkdir(join(dir, name));
    const { path, text } = await writeTestHost(join(dir, name), {
      name,
      registrar: pair.publicJwk.x,
      registrarDomain: 'registrar.net',
      operator: true,
      tables,
    });
    return closing(await startHost(parseHostConfig(text, path), { pullComponent: false }));
  };
  const h1 = await start('h1.hosting.net');
  const h2 = await start('h2.hosting.net');
  const capsule = await builtExampleCopy('counter', dir);
  return { dir, key, h1, h2, capsule };
}

/** The installations `host` has, as `name state domains`. */
async function installations(host: { controlUrl: URL }, key: string): Promise<string[]> {
  const client = createControlClient({ url: host.controlUrl.href, key: await readKeyFile(key) });
  return (await client.status()).capsules.map((one) => `${one.name} ${one.state} ${one.domains.join(',')}`).sort();
}

test('host install refuses to replace an installation of that name serving other domains; the same domains are an upgrade, and --replace replaces', async (t) => {
  const { key, h1, capsule } = await twoHosts(t);
  const onH1 = ['--url', h1.controlUrl.href, '--key', key];
  assert.equal((await run(['host', 'install', capsule, '-d', 'counter.customer.example', ...onH1])).code, 0);
  assert.equal(await count(h1, 'counter.customer.example'), 1);

  // A second customer's install of the same app, under its default name.
  const second = await run(['host', 'install', capsule, '-d', 'counter2.customer.example', ...onH1]);
  assert.equal(second.code, 1);
  assert.equal(
    second.stderr,
    'error: h1.hosting.net already has an installation named counter: 0.1.0, running, serving counter.customer.example\n' +
      '  installing under that name would replace it: counter.customer.example would no longer be served\n' +
      'hint: Give --name <another name> to install beside it, or --replace to replace it on purpose (it would then serve counter2.customer.example).\n',
  );
  assert.equal(await count(h1, 'counter.customer.example'), 2);

  // As it says: beside it, with --name. By --url, the host is named as its identity gives it.
  const beside = await run(['host', 'install', capsule, '--name', 'counter2', '-d', 'counter2.customer.example', ...onH1]);
  assert.equal(beside.code, 0, beside.stderr);
  assert.match(beside.stderr, /^installing counter2 \(0\.1\.0, .*\) on h1\.hosting\.net\n$/);
  // The same domains: an upgrade, said as one.
  const upgrade = await run(['host', 'install', capsule, '-d', 'counter.customer.example', ...onH1]);
  assert.equal(upgrade.code, 0, upgrade.stderr);
  assert.match(
    upgrade.stderr,
    /^replacing counter 0\.1\.0 \(running, serving counter\.customer\.example\) with 0\.1\.0, .* on h1\.hosting\.net\n$/,
  );
  assert.equal(await count(h1, 'counter.customer.example'), 3);
  // On purpose, with other domains.
  const replaced = await run(['host', 'install', capsule, '--replace', '-d', 'counter3.customer.example', ...onH1]);
  assert.equal(replaced.code, 0, replaced.stderr);
  assert.match(
    replaced.stderr,
    /^replacing counter 0\.1\.0 \(running, serving counter\.customer\.example\) with .*, serving counter3\.customer\.example\n$/,
  );
  assert.deepEqual(await installations(h1, key), [
    'counter running counter3.customer.example',
    'counter2 running counter2.customer.example',
  ]);
});

test('host move refuses, before anything changes, another app, a manifest that leaves a store behind, and config values it was not given', async (t) => {
  const { dir, key, h1, h2, capsule } = await twoHosts(t);
  const onH1 = ['--url', h1.controlUrl.href, '--key', key];
  // The counter example, declaring config: installed with values, a secret among them.
  const configured = join(dir, 'configured');
  await mkdir(join(configured, 'dist'), { recursive: true });
  await copyFile(join(capsule, 'dist', 'counter.wasm'), join(configured, 'dist', 'counter.wasm'));
  await writeFile(
    join(configured, 'stratum.toml'),
    'stratum = 1\n[capsule]\nname = "counter"\nversion = "0.1.0"\n[source]\nwasm = "dist/counter.wasm"\n[capabilities]\nkeyvalue = ["default"]\n' +
      '[capabilities.config.greeting]\ndefault = "hello"\n[capabilities.config.api_token]\nsecret = true\n[http]\nroutes = ["/*"]\n',
  );
  const vars = ['--var', 'greeting=bonjour', '--var', 'api_token=s3cret'];
  const installed = await run(['host', 'install', configured, '-d', 'counter.example', ...vars, ...onH1]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.equal(await count(h1, 'counter.example'), 1);
  // Another app: tiny, whose manifest grants no store.
  const tiny = join(dir, 'tiny');
  await mkdir(tiny);
  await writeFile(join(tiny, 'stratum.toml'), 'stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n');
  await copyFile(await buildTiny(), join(tiny, 'tiny.wasm'));

  const sides = ['--from-url', h1.controlUrl.href, '--to-url', h2.controlUrl.href, '--key', key];
  const other = await run(['host', 'move', 'counter', tiny, ...sides]);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /^error: .*tiny holds tiny 0\.1\.0, not counter, the app installed as counter on the old host\n/);
  assert.match(
    other.stderr,
    /\n {2}its \[capsule\] name is tiny, not counter\n {2}its component is sha256:\w+; counter runs sha256:\w+ \(0\.1\.0\)\n/,
  );
  assert.match(other.stderr, /\nhint: Give the directory of the app counter runs\. If this is it, renamed, pass --different-app\.\n$/);
  // Told it is meant (and to drop counter's config values), the move still finds the store tiny's manifest would leave behind.
  const leaves = await run(['host', 'move', 'counter', tiny, '--different-app', '--no-config', ...sides]);
  assert.equal(leaves.code, 1);
  assert.match(
    leaves.stderr,
    /^error: counter on h1\.hosting\.net has state in keyvalue\/default, which the manifest given does not grant\n {2}its state would stay behind on h1\.hosting\.net, and the capsule on h2\.hosting\.net start without it\nhint: Give the directory/,
  );
  // The right directory, but no config values: a usage error that says why.
  const unconfigured = await run(['host', 'move', 'counter', configured, ...sides]);
  assert.equal(unconfigured.code, 2);
  assert.equal(
    unconfigured.stderr,
    'error: counter has config values for api_token (secret), greeting on the old host, and a move cannot carry them: a host never reads them back, secrets or not\n' +
      "hint: Give them again, --var name=value or --var-file <file>; or pass --no-config to run it with the manifest's defaults.\n",
  );
  // The old host says which variables have values: giving some is not enough.
  const partly = await run(['host', 'move', 'counter', configured, '--var', 'greeting=bonjour', ...sides]);
  assert.equal(partly.code, 2);
  assert.match(partly.stderr, /^error: counter has config values for api_token \(secret\) on the old host/);
  const both = await run(['host', 'move', 'counter', configured, '--no-config', '--var', 'greeting=hi', ...sides]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--no-config says there are no config values to carry, and --var or --var-file gives some/);
  // None of them changed anything: counter counts on at h1, h2 has nothing.
  for (const refused of [other, leaves, unconfigured, partly]) assert.doesNotMatch(refused.stderr, /installing|draining/);
  assert.equal(await count(h1, 'counter.example'), 2);
  assert.deepEqual(await installations(h2, key), []);

  // Given its values again, it moves; what it prints of the outage says what resolvers' caches add.
  await writeFile(join(dir, 'counter.env'), 'greeting=bonjour\napi_token=s3cret\n');
  const moved = await run(['host', 'move', 'counter', configured, '--var-file', join(dir, 'counter.env'), ...sides]);
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(moved.stdout, /^moved counter to the new host: running, serving counter\.example; no host served it for \d+ ms\n/);
  assert.match(
    moved.stdout,
    /\nIt is stopped \(drained\) on the old host, which answers 503\. .* for the old records' TTL after \(resolvers cache them\)\./,
  );
  assert.equal(await count(h2, 'counter.example'), 3);
});

/** The new host's start: where a frozen host leaves a move waiting. */
const freezesAtStart = (incoming: IncomingMessage): ProxyFate =>
  incoming.method === 'POST' && /\/start$/.test(incoming.url ?? '') ? 'freeze' : 'forward';

test('a move whose new host freezes at the start gives up after --timeout and puts the capsule back on the old host', async (t) => {
  const { key, h1, h2, capsule } = await twoHosts(t);
  assert.equal((await run(['host', 'install', capsule, '-d', 'counter.example', '--url', h1.controlUrl.href, '--key', key])).code, 0);
  assert.equal(await count(h1, 'counter.example'), 1);
  const h2Url = await controlProxy(t, h2.controlUrl, freezesAtStart);

  const moved = await run([
    ...['host', 'move', 'counter', capsule, '--from-url', h1.controlUrl.href, '--to-url', h2Url, '--key', key],
    ...['--timeout', '5s'],
  ]);
  assert.equal(moved.code, 1);
  // The start, then the uninstall that would put it back, each waited for 5 s (the messages below).
  assert.match(
    moved.stderr,
    /\nstarting counter on the new host\nfailed: h2\.hosting\.net did not answer \(start counter\) within 5\.00 s; starting counter on the old host again\n/,
  );
  assert.match(moved.stderr, /\nput back: counter serves from the old host again\n/);
  assert.match(
    moved.stderr,
    /\nerror: moving counter failed; it serves from the old host again\n {2}h2\.hosting\.net did not answer \(start counter\) within 5\.00 s\n {2}could not remove the copy installed on h2\.hosting\.net: h2\.hosting\.net did not answer \(uninstall counter\) within 5\.00 s\n/,
  );
  assert.ok(
    moved.stderr.endsWith(
      `Once h2.hosting.net answers, remove that copy and the state copied into it: \`stratum host uninstall counter --delete-data --url ${h2Url} --key ${key}\`.\n`,
    ),
    moved.stderr,
  );
  assert.equal(await count(h1, 'counter.example'), 2);
});

test('Ctrl-C during a move points the links back and starts the capsule on the old host again; a second one stops at once and says what was left', async (t) => {
  const { DNS, resolverOf } = await shopZone(t);
  const { dir, key, h1, h2, capsule } = await twoHosts(t, `[discovery]\nresolver = "${DNS.address}"\n`);
  await writeFile(join(dir, 'update.key'), `hmac-sha256:stratum-update:${SECRET}\n`);
  const zone = ['--dns', DNS.address, '--zone', 'shop.net', '--tsig-key', join(dir, 'update.key'), '--registrar', 'registrar.net'];
  const domain = 'counter.shop.net';
  const installed = await run(['host', 'install', capsule, '-d', domain, '--url', h1.controlUrl.href, '--key', key, ...zone]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.equal(await count(h1, domain), 1);
  const resolver = resolverOf();
  assert.equal((await resolver.domainLink(domain))?.host, 'h1.hosting.net');
  let interrupts = 0;
  const interrupt = () => {
    interrupts++;
    process.emit('SIGINT', 'SIGINT');
  };
  // The first Ctrl-C once the new host has frozen at the start, the second while putting back
  // waits for the frozen host to remove its copy.
  const h2Url = await controlProxy(t, h2.controlUrl, freezesAtStart, () => setTimeout(interrupt, 100));
  const listening = process.listenerCount('SIGINT');
  const moved = await run(
    ['host', 'move', 'counter', capsule, '--from-url', h1.controlUrl.href, '--to-url', h2Url, '--key', key, ...zone],
    (stderr) => {
      if (interrupts === 1 && /put back: counter serves/.test(stderr)) setTimeout(interrupt, 100);
    },
  );
  assert.equal(interrupts, 2);
  assert.equal(moved.code, 1);
  assert.match(
    moved.stderr,
    /\nSIGINT: stopping the move and putting back what it changed \(SIGINT again stops at once\)\nfailed: interrupted \(SIGINT\); starting counter on the old host again\n/,
  );
  assert.match(moved.stderr, /\nput back: its domains' links name the old host again\n/);
  assert.match(moved.stderr, /\nSIGINT again: stopping at once\n/);
  assert.match(
    moved.stderr,
    /\nerror: moving counter failed; it serves from the old host again\n {2}interrupted \(SIGINT\)\n {2}could not remove the copy installed on h2\.hosting\.net: stopped before it was done \(SIGINT again\)\nhint: Once h2\.hosting\.net answers, remove that copy and the state copied into it: `stratum host uninstall counter --delete-data --url \S+ --key \S+`\.\n$/,
  );
  assert.equal(process.listenerCount('SIGINT'), listening);
  // As it says: the link names h1 again, which serves; h2 holds the copy, installed, not started.
  assert.equal((await resolver.domainLink(domain))?.host, 'h1.hosting.net');
  assert.equal(await resolver.cname(domain), 'h1.hosting.net');
  assert.equal(await count(h1, domain), 2);
  assert.deepEqual(await installations(h2, key), [`counter installed ${domain}`]);
});

const SECRET = Buffer.from('a test key for the zone shop.net, 32').toString('base64');

/** The zone shop.net on an embedded primary taking updates signed with SECRET. */
async function shopZone(t: TestContext) {
  const DNS = await startEmbeddedDnsServer({ zones: ['shop.net'], updateKeys: [{ name: 'stratum-update', secret: SECRET }] });
  t.after(() => DNS.stop());
  return { DNS, resolverOf: () => new DiscoveryResolver({ servers: [DNS.address] }) };
}

test('a move to a name whose data the new host kept is refused before the drain; told to replace it, a failed move keeps that data and one that succeeds says it replaced it', async (t) => {
  const { key, h1, h2, capsule } = await twoHosts(t);
  const on = (host: { controlUrl: URL }) => ['--url', host.controlUrl.href, '--key', key];
  // kd served on h2 once, then uninstalled there: h2 keeps its data under the name.
  const install = ['host', 'install', capsule, '--name', 'kd', '-d', 'kd.example'];
  assert.equal((await run([...install, ...on(h2)])).code, 0);
  assert.equal(await count(h2, 'kd.example'), 1);
  assert.equal(await count(h2, 'kd.example'), 2);
  assert.equal((await run(['host', 'uninstall', 'kd', ...on(h2)])).code, 0);
  // kd serves on h1 now.
  assert.equal((await run([...install, ...on(h1)])).code, 0);
  assert.equal(await count(h1, 'kd.example'), 1);

  const move = ['host', 'move', 'kd', capsule, '--from-url', h1.controlUrl.href, '--to-url', h2.controlUrl.href, '--key', key];
  const refused = await run(move);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /^installing kd \(.*\) on the new host, not started\nerror: h2\.hosting\.net keeps data under the name kd, left by its installation there uninstalled on \S+: moving kd there would replace it with the copy from h1\.hosting\.net\n {2}the data kept there may be in keyvalue\/default\n {2}nothing else changed: kd serves from h1\.hosting\.net, and the data on h2\.hosting\.net is as it was\n/,
  );
  assert.ok(
    refused.stderr.endsWith(
      `hint: If that data is not needed, delete it, then move again: \`stratum host uninstall kd --delete-data --url ${h2.controlUrl.href} --key ${key}\`. To replace it with the copy from h1.hosting.net, move with --replace-kept-data; to keep both, give the capsule another name there (--name).\n`,
    ),
    refused.stderr,
  );
  assert.equal(await count(h1, 'kd.example'), 2);
  assert.deepEqual(await installations(h2, key), []);

  // Told to replace it, with the old host frozen at the drain (kill -STOP): the way back removes
  // the copy without deleting what h2 kept, as the walkthrough's move had.
  const frozenAtDrain = (incoming: IncomingMessage): ProxyFate =>
    incoming.method === 'POST' && /\/drain$/.test(incoming.url ?? '') ? 'freeze' : 'forward';
  const h1Url = await controlProxy(t, h1.controlUrl, frozenAtDrain);
  const frozen = await run([
    ...['host', 'move', 'kd', capsule, '--from-url', h1Url, '--to-url', h2.controlUrl.href, '--key', key],
    ...['--replace-kept-data', '--timeout', '2s'],
  ]);
  assert.equal(frozen.code, 1);
  assert.match(
    frozen.stderr,
    /\nput back: removed the copy on the new host, keeping the data the new host held under the name before the move \(in the stores copied so far, the copy replaced it\)\n/,
  );
  assert.deepEqual(await installations(h2, key), []);
  const back = await run([...install, ...on(h2), '-d', 'kd2.example', '--replace']);
  assert.equal(back.code, 0, back.stderr);
  assert.match(back.stderr, /\nnote: kd finds the data kept under its name since it was uninstalled on /);
  assert.equal(await count(h2, 'kd2.example'), 3);
  assert.equal((await run(['host', 'uninstall', 'kd', ...on(h2)])).code, 0);

  // Told to replace it, a move that succeeds replaces it, and says so: h2 counts on from h1's.
  const moved = await run([...move, '--replace-kept-data']);
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(
    moved.stderr,
    /\nnote: the new host kept data under the name kd since it was uninstalled there on \S+; the copy from the old host replaced it \(--replace-kept-data\)\n/,
  );
  assert.equal(await count(h2, 'kd.example'), 3);
});
