// `stratum host install --dns` and `host move --dns` as a new user runs them: hosts given by
// their host.toml, whose operator key signs, and a zone's primary server taking RFC 2136 updates.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import { DiscoveryResolver, startEmbeddedDnsServer } from '@stratum/discovery';
import { parseHostConfig, startHost } from '@stratum/host';
import { runCli as run } from './support/cli.ts';
import { testHostToml } from './support/host-dir.ts';
import { freePort } from './support/services.ts';
import { testDir } from './support/temp.ts';
import { buildTiny } from './support/tiny.ts';

/** The zone shop.org on an embedded primary that takes updates signed with the key in `<dir>/update.key`. */
async function shopZone(t: TestContext, dir: string) {
  const secret = randomBytes(32).toString('base64');
  const dns = await startEmbeddedDnsServer({ zones: ['shop.org'], updateKeys: [{ name: 'stratum-update', secret }] });
  t.after(() => dns.stop());
  await writeFile(join(dir, 'update.key'), `hmac-sha256:stratum-update:${secret}\n`);
  return { dns, resolver: new DiscoveryResolver({ servers: [dns.address] }), keyFile: join(dir, 'update.key') };
}

/**
 * A host started from `<dir>/<name>/host.toml` as `host init` leaves it: operator-key.json beside
 * it, which --config finds, trusted as [registrars.operator] with `domain`. Its links are checked
 * through `resolver`.
 */
async function hostFromToml(dir: string, name: string, domain: string, resolver: string) {
  const home = join(dir, name);
  await mkdir(home);
  const operator = await generateEd25519KeyPair();
  await writeKeyFile(join(home, 'operator-key.json'), operator.privateJwk);
  await writeKeyFile(join(home, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const text = testHostToml({
    name: `${name}.hosting.net`,
    registrar: operator.publicJwk.x,
    registrarName: 'operator',
    operator: true,
    registrarDomain: domain,
    tables: `[discovery]\nresolver = "${resolver}"\n`,
  }).replace(/\[control\]\nlisten = "127\.0\.0\.1:0"/, `[control]\nlisten = "127.0.0.1:${await freePort()}"`);
  const path = join(home, 'host.toml');
  await writeFile(path, text);
  return { path, host: await startHost(parseHostConfig(text, path), { pullComponent: false }) };
}

/** The tiny capsule, built, in `<dir>/tiny`. */
async function tinyCapsule(dir: string): Promise<string> {
  const capsule = join(dir, 'tiny');
  await mkdir(capsule);
  await writeFile(
    join(capsule, 'stratum.toml'),
    'stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n',
  );
  await copyFile(await buildTiny(), join(capsule, 'tiny.wasm'));
  return capsule;
}

test('--dns links name the registrar host.toml gives the signing key, when there is no link to take it from and no --registrar', async (t) => {
  const { dir, closing } = await testDir(t, 'stratum-install-dns-');
  const { dns, resolver, keyFile } = await shopZone(t, dir);
  const h1 = await hostFromToml(dir, 'h1', 'registrar.shop.org', dns.address);
  closing(h1.host);
  // The new host's operator is another registrar, whose links the new host checks.
  const h2 = await hostFromToml(dir, 'h2', 'registrar2.shop.org', dns.address);
  closing(h2.host);
  const capsule = await tinyCapsule(dir);
  const zone = ['--dns', dns.address, '--zone', 'shop.org', '--tsig-key', keyFile];

  const installed = await run(['host', 'install', capsule, '-d', 'www.shop.org', '--config', h1.path, ...zone]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(installed.stdout, /^installed tiny 0\.1\.0 .*: running, serving www\.shop\.org\n/);
  assert.equal((await resolver.domainLink('www.shop.org'))?.registrar, 'registrar.shop.org');
  assert.equal((await resolver.domainLink('www.shop.org'))?.host, 'h1.hosting.net');

  // The move's links name h2's registrar, as h2 checks at the start, not the current link's.
  const move = ['host', 'move', 'tiny', capsule, '--from-config', h1.path, '--to-config', h2.path, ...zone];
  const moved = await run(move);
  assert.equal(moved.code, 0, moved.stderr);
  assert.deepEqual(
    { ...(await resolver.domainLink('www.shop.org')), capsule: '' },
    { version: 'stratum1', host: 'h2.hosting.net', capsule: '', registrar: 'registrar2.shop.org' },
  );
});

test('--dns checks what it can before installing: a domain outside --zone and an unreadable key change nothing; an unsigned update says to pass --tsig-key', async (t) => {
  const { dir, closing } = await testDir(t, 'stratum-install-dns-');
  const { dns, keyFile } = await shopZone(t, dir);
  const h1 = await hostFromToml(dir, 'h1', 'registrar.shop.org', dns.address);
  closing(h1.host);
  const h2 = await hostFromToml(dir, 'h2', 'registrar.shop.org', dns.address);
  closing(h2.host);
  const capsule = await tinyCapsule(dir);
  const install = ['host', 'install', capsule, '-d', 'www.shop.org', '--config', h1.path];
  const installations = async (path: string) =>
    (JSON.parse((await run(['host', 'status', '--json', '--config', path])).stdout) as { capsules: unknown[] }).capsules.length;

  // No DNS server needed to see that other.org does not hold www.shop.org.
  const outside = await run([...install, '--dns', '127.0.0.1:1', '--zone', 'other.org', '--tsig-key', keyFile]);
  assert.equal(outside.code, 2);
  assert.equal(
    outside.stderr,
    'error: www.shop.org is not in the zone other.org (--zone)\nhint: Give --zone the zone that holds www.shop.org.\n',
  );
  await writeFile(join(dir, 'garbled.key'), 'not a key\n');
  const garbled = await run([...install, '--dns', dns.address, '--zone', 'shop.org', '--tsig-key', join(dir, 'garbled.key')]);
  assert.equal(garbled.code, 1);
  assert.match(garbled.stderr, /^error: .*garbled\.key holds no TSIG key\n/);
  assert.equal(await installations(h1.path), 0);

  // An update the server would refuse is found before the install too (an update that changes
  // nothing), and the error says which option signs it.
  const unsigned = await run([...install, '--dns', dns.address, '--zone', 'shop.org', '--registrar', 'registrar.shop.org']);
  assert.equal(unsigned.code, 1);
  assert.match(unsigned.stderr, /^error: \S+ refused the update to shop\.org: the update was not signed\n/);
  assert.match(unsigned.stderr, /\nhint: Pass --tsig-key <file>: the TSIG key the server's update ACL names\.\n$/);
  assert.equal(await installations(h1.path), 0);
  // With --url, nothing says which registrar the new link names: asked for before the install.
  const byUrl = ['host', 'install', capsule, '-d', 'www.shop.org', '--url', h1.host.controlUrl.href];
  byUrl.push('--key', join(dir, 'h1', 'operator-key.json'), '--audience', 'h1.hosting.net');
  const nameless = await run([...byUrl, '--dns', dns.address, '--zone', 'shop.org', '--tsig-key', keyFile]);
  assert.equal(nameless.code, 1);
  assert.match(nameless.stderr, /^error: www\.shop\.org has no _stratum link to take its registrar from\nhint: Give --registrar <domain>/);
  assert.equal(await installations(h1.path), 0);

  // A move with a domain outside --zone stops before the new host is touched.
  assert.equal((await run([...install, '--no-start'])).code, 0);
  const move = ['host', 'move', 'tiny', capsule, '--from-config', h1.path, '--to-config', h2.path];
  const moved = await run([...move, '--dns', dns.address, '--zone', 'other.org', '--tsig-key', keyFile]);
  assert.equal(moved.code, 2);
  assert.match(moved.stderr, /^error: www\.shop\.org is not in the zone other\.org \(--zone\)\n/);
  assert.equal(await installations(h2.path), 0);
});
