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

test('--dns links name the registrar host.toml gives the signing key; a move whose new host checks them against another registrar is refused before the drain, unless --take-over', async (t) => {
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

  // h2 checks the links of its operator's key against registrar2.shop.org: the move would hand
  // the domain to another registrar, which is refused before anything changes (not found at the
  // start, after the drain, the copy and the DNS switch).
  const move = ['host', 'move', 'tiny', capsule, '--from-config', h1.path, '--to-config', h2.path, ...zone];
  const refused = await run(move);
  assert.equal(refused.code, 1);
  assert.equal(
    refused.stderr,
    'error: www.shop.org is linked to registrar registrar.shop.org: moving with --dns would name registrar2.shop.org in its link (as h2.hosting.net checks links for the key that signs there), taking it from registrar.shop.org\n' +
      '  _stratum.www.shop.org names host h1.hosting.net and registrar registrar.shop.org; the new link would name host h2.hosting.net and registrar registrar2.shop.org (as h2.hosting.net checks links for the key that signs there)\n' +
      '  nothing was changed: tiny serves from h1.hosting.net as before\n' +
      "hint: Sign with the key of registrar.shop.org's registrar, which h2.hosting.net must trust (--to-key <file>). To hand www.shop.org to registrar2.shop.org on purpose, pass --take-over.\n",
  );
  assert.equal((await resolver.domainLink('www.shop.org'))?.host, 'h1.hosting.net');
  assert.equal((await run(['host', 'status', '--json', '--config', h2.path])).stdout.includes('"tiny"'), false);
  // Meant: the links name h2's registrar, as h2 checks at the start, not the current link's.
  const moved = await run([...move, '--take-over']);
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
  // A --registrar the host does not check links against for this key: its start would refuse them.
  const wrong = await run([...install, '--dns', dns.address, '--zone', 'shop.org', '--tsig-key', keyFile, '--registrar', 'acme.org']);
  assert.equal(wrong.code, 1);
  assert.equal(
    wrong.stderr,
    'error: h1.hosting.net checks the links of the key that signs there against registrar registrar.shop.org, not acme.org (--registrar): its start would refuse links naming acme.org\n' +
      "hint: Leave out --registrar (the links then name registrar.shop.org), or sign with the key of acme.org's registrar that h1.hosting.net trusts (--key).\n",
  );
  assert.equal(await installations(h1.path), 0);

  // A move with a domain outside --zone stops before the new host is touched.
  assert.equal((await run([...install, '--no-start'])).code, 0);
  const move = ['host', 'move', 'tiny', capsule, '--from-config', h1.path, '--to-config', h2.path];
  const moved = await run([...move, '--dns', dns.address, '--zone', 'other.org', '--tsig-key', keyFile]);
  assert.equal(moved.code, 2);
  assert.match(moved.stderr, /^error: www\.shop\.org is not in the zone other\.org \(--zone\)\n/);
  assert.equal(await installations(h2.path), 0);
});

test('install --dns refuses a domain linked to another host or another registrar, naming them and `host move`; --take-over takes it', async (t) => {
  const { dir, closing } = await testDir(t, 'stratum-install-dns-');
  const { dns, resolver, keyFile } = await shopZone(t, dir);
  const h1 = await hostFromToml(dir, 'h1', 'registrar.shop.org', dns.address);
  closing(h1.host);
  const h2 = await hostFromToml(dir, 'h2', 'registrar.shop.org', dns.address);
  closing(h2.host);
  const capsule = await tinyCapsule(dir);
  const zone = ['--dns', dns.address, '--zone', 'shop.org', '--tsig-key', keyFile];
  const installations = async (path: string) =>
    (JSON.parse((await run(['host', 'status', '--json', '--config', path])).stdout) as { capsules: unknown[] }).capsules.length;
  assert.equal((await run(['host', 'install', capsule, '-d', 'www.shop.org', '--config', h2.path, ...zone])).code, 0);
  assert.equal((await resolver.domainLink('www.shop.org'))?.host, 'h2.hosting.net');

  // h2 serves www.shop.org: installing it on h1 would take it away, with none of its data.
  const install = ['host', 'install', capsule, '-d', 'www.shop.org', '--config', h1.path, ...zone];
  const taken = await run(install);
  assert.equal(taken.code, 1);
  assert.equal(
    taken.stderr,
    'error: www.shop.org is linked to h2.hosting.net (registrar registrar.shop.org): installing with --dns would point it at h1.hosting.net, and h2.hosting.net would stop serving it while h1.hosting.net starts without its data\n' +
      '  _stratum.www.shop.org names host h2.hosting.net and registrar registrar.shop.org; the new link would name host h1.hosting.net and registrar registrar.shop.org (as h1.hosting.net checks links for the key that signs there)\n' +
      `hint: If the capsule h2.hosting.net serves there should come here, move it with its data: \`stratum host move <capsule> [dir] --from-url <h2.hosting.net's control API> --from-audience h2.hosting.net --to-config ${h1.path}\`, with the same --dns options. To point the links at it all the same, pass --take-over.\n`,
  );
  assert.equal(await installations(h1.path), 0);
  assert.equal((await resolver.domainLink('www.shop.org'))?.host, 'h2.hosting.net');

  // Meant: the links name h1 now.
  const took = await run([...install, '--take-over']);
  assert.equal(took.code, 0, took.stderr);
  assert.equal((await resolver.domainLink('www.shop.org'))?.host, 'h1.hosting.net');

  // A link naming this host but another registrar: installing would take the domain from it.
  const { domainLinkChanges } = await import('@stratum/discovery');
  const link = await resolver.domainLink('www.shop.org');
  assert.ok(link);
  await dns.apply(domainLinkChanges('www.shop.org', { ...link, registrar: 'acme.org' }, { cname: 'h1.hosting.net' }, 300));
  const upgrade = await run(install);
  assert.equal(upgrade.code, 1);
  assert.match(
    upgrade.stderr,
    /^error: www\.shop\.org is linked to registrar acme\.org: installing with --dns would name registrar\.shop\.org in its link \(as h1\.hosting\.net checks links for the key that signs there\), taking it from acme\.org\n/,
  );
  assert.match(
    upgrade.stderr,
    /\nhint: Sign with the key of acme\.org's registrar, which h1\.hosting\.net must trust \(--key <file>\)\. To hand www\.shop\.org to registrar\.shop\.org on purpose, pass --take-over\.\n$/,
  );
  assert.equal((await resolver.domainLink('www.shop.org'))?.registrar, 'acme.org');
});

test('install --dns by --url takes the links registrar from the host; one that gives the key no domain is refused saying what to add', async (t) => {
  const { dir, closing } = await testDir(t, 'stratum-install-dns-');
  const { dns, resolver, keyFile } = await shopZone(t, dir);
  const h1 = await hostFromToml(dir, 'h1', 'registrar.shop.org', dns.address);
  closing(h1.host);
  const h2 = await hostFromToml(dir, 'h2', '', dns.address);
  closing(h2.host);
  const capsule = await tinyCapsule(dir);
  const zone = ['--dns', dns.address, '--zone', 'shop.org', '--tsig-key', keyFile];
  const byUrl = (host: { host: { controlUrl: URL } }, name: string) => [
    ...['host', 'install', capsule, '--url', host.host.controlUrl.href],
    ...['--key', join(dir, name, 'operator-key.json'), '--audience', `${name}.hosting.net`, ...zone],
  ];

  // No host.toml, no --registrar, no link yet: the host says which registrar its check expects.
  const installed = await run([...byUrl(h1, 'h1'), '-d', 'www.shop.org']);
  assert.equal(installed.code, 0, installed.stderr);
  assert.equal((await resolver.domainLink('www.shop.org'))?.registrar, 'registrar.shop.org');

  // A host that knows no registrar domain for the key would refuse any link at the start.
  const nameless = await run([...byUrl(h2, 'h2'), '-d', 'shop.org']);
  assert.equal(nameless.code, 1);
  assert.equal(
    nameless.stderr,
    'error: h2.hosting.net knows no registrar domain for the key that signs there, so its start would refuse every link\n' +
      "  its host.toml gives that key's [registrars] entry no domain, which a link's registrar= must match\n" +
      `hint: h2.hosting.net's operator adds the registrar's domain to that key's entry in its host.toml ([registrars.<name>] domain = "<domain>") and restarts it; or sign with a key it gives a domain (--key).\n`,
  );
  assert.equal(await resolver.domainLink('shop.org'), undefined);
});
