// A host serves a capsule on a domain only when the domain's _stratum record links it to this
// host, this component and the registrar asking (spec/discovery.md section 5.3): checked when the
// capsule is first served, through a real DNS server (the embedded authoritative one, over UDP).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { type IncomingMessage, request, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair } from '@stratum/core';
import { publishDomainLink, startEmbeddedDnsServer } from '@stratum/discovery';
import { ControlApiError, createControlClient, parseHostConfig, startHost, toOriginForm } from '@stratum/host';

import { writeTestHost } from './support/host-dir.ts';
import { ingressGet } from './support/ingress.ts';
import { removeDir } from './support/temp.ts';
import { buildHostile, buildTiny } from './support/tiny.ts';

const ZONE = 'shop.net';
const HOST = 'h1.hosting.net';
const REGISTRAR = 'registrar.net';

async function linkingHost(t: TestContext, discovery = '', tables = '') {
  const dns = await startEmbeddedDnsServer({ zones: [ZONE] });
  t.after(() => dns.stop());
  const dir = await mkdtemp(join(tmpdir(), 'stratum-links-'));
  const registrar = await generateEd25519KeyPair();
  const { path, text } = await writeTestHost(dir, {
    name: HOST,
    registrar: registrar.publicJwk.x,
    registrarDomain: REGISTRAR,
    tables: `[discovery]\nresolver = "${dns.address}"\n${discovery}${tables}`,
  });
  const host = await startHost(parseHostConfig(text, path), { pullComponent: false });
  t.after(() => host.close());
  // After the host has closed: its capsule threads write V8's code cache as they end.
  t.after(() => removeDir(dir));
  const client = createControlClient({ url: host.controlUrl, key: registrar.privateJwk, audience: HOST });
  const wasm = await buildTiny();
  const component = new Uint8Array(await readFile(wasm));
  const manifest = `stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n`;
  const digest = `sha256:${createHash('sha256').update(component).digest('hex')}`;
  const link = (domain: string, fields: Partial<{ host: string; capsule: string; registrar: string }> = {}) =>
    publishDomainLink(dns, domain, { host: HOST, capsule: digest, registrar: REGISTRAR, ...fields }, { addresses: ['127.0.0.1'] });
  return { dns, host, client, component, manifest, digest, link };
}

/** The problems a refused start names, or fails the test when it was not refused for its link. */
async function refusedForLink(attempt: Promise<unknown>, hint?: RegExp): Promise<string[]> {
  try {
    await attempt;
  } catch (error) {
    assert.ok(error instanceof ControlApiError, String(error));
    assert.equal(error.status, 409);
    assert.equal(error.code, 'DOMAIN_NOT_LINKED');
    if (hint) assert.match(error.hint ?? '', hint);
    return [...error.details];
  }
  assert.fail('the host served a domain that is not linked to it');
}

test('a public domain is served only once its _stratum record names this host, this component and the registrar', async (t) => {
  const { host, client, component, manifest, digest, link } = await linkingHost(t);
  const install = (domain: string) => client.install({ domains: [domain], manifest, component });

  // The answer says what to publish.
  const record = `_stratum.www.shop.net. 300 IN TXT "v=stratum1" "host=h1.hosting.net" "capsule=${digest}" "registrar=registrar.net"`;
  const missing = await refusedForLink(
    install('www.shop.net'),
    new RegExp(`^Publish in each domain's zone.*:\\n${record.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`),
  );
  assert.deepEqual(missing, ['_stratum.www.shop.net has no v=stratum1 TXT record']);
  // Refused, it leaves nothing behind.
  assert.deepEqual((await client.status()).capsules, []);
  assert.equal(await (await ingressGet(host.ingressUrl, 'www.shop.net')).status, 404);

  await link('www.shop.net', { host: 'h2.hosting.net' });
  assert.deepEqual(await refusedForLink(install('www.shop.net')), [
    '_stratum.www.shop.net names host h2.hosting.net, not this host (h1.hosting.net)',
  ]);
  const other = `sha256:${'0'.repeat(64)}`;
  await link('www.shop.net', { capsule: other, registrar: 'elsewhere.net' });
  assert.deepEqual(await refusedForLink(install('www.shop.net')), [
    `_stratum.www.shop.net names capsule ${other}, not ${digest}`,
    '_stratum.www.shop.net names registrar elsewhere.net, not registrar.net (registrar "test")',
  ]);

  await link('www.shop.net');
  const installed = await install('www.shop.net');
  assert.equal(installed.state, 'running');
  assert.equal(await (await ingressGet(host.ingressUrl, 'www.shop.net')).status, 200);
});

test('installed without starting, a capsule is checked at its start, so the link can follow the install', async (t) => {
  const { client, component, manifest, link } = await linkingHost(t);
  const installed = await client.install({ domains: ['new.shop.net'], manifest, component, start: false });
  assert.equal(installed.state, 'installed');
  assert.deepEqual(await refusedForLink(client.start('tiny')), ['_stratum.new.shop.net has no v=stratum1 TXT record']);
  await link('new.shop.net');
  assert.equal((await client.start('tiny')).state, 'running');
});

test("an operator's start checks a capsule's links against the registrar that installed it, as the checks while it serves do", async (t) => {
  const operator = await generateEd25519KeyPair();
  const { host, client, component, manifest, link } = await linkingHost(
    t,
    '',
    `[registrars.ops]\nkey = "${operator.publicJwk.x}"\noperator = true\ndomain = "ops-registrar.net"\n`,
  );
  const domain = 'moved.shop.net';
  await client.install({ domains: [domain], manifest, component, start: false });
  const operatorClient = createControlClient({ url: host.controlUrl, key: operator.privateJwk, audience: HOST });
  // A link naming the operator's registrar domain does not do: the capsule is registrar.net's.
  await link(domain, { registrar: 'ops-registrar.net' });
  assert.deepEqual(await refusedForLink(operatorClient.start('tiny')), [
    '_stratum.moved.shop.net names registrar ops-registrar.net, not registrar.net (registrar "test")',
  ]);
  await link(domain);
  assert.equal((await operatorClient.start('tiny')).state, 'running');
  const links = host.links;
  assert.ok(links, 'the host watches no links');
  await links.recheck();
  assert.equal((await ingressGet(host.ingressUrl, domain)).status, 200);
  // Started by the operator, it is still the installing registrar's.
  assert.equal((await client.capsule('tiny')).state, 'running');
});

test('GET /links answers what a start would find of the links, and the registrar they must name, before anything is installed; a host that does not check says so', async (t) => {
  const { client, digest, link } = await linkingHost(t);
  const unlinked = await client.links(['www.shop.net', 'tiny.test'], digest);
  assert.equal(unlinked.checked, true);
  assert.deepEqual(unlinked.problems, [{ domain: 'www.shop.net', problem: '_stratum.www.shop.net has no v=stratum1 TXT record' }]);
  assert.match(
    unlinked.hint ?? '',
    /^Publish in each domain's zone.*:\n_stratum\.www\.shop\.net\. 300 IN TXT "v=stratum1" "host=h1\.hosting\.net"/,
  );
  await link('www.shop.net', { host: 'h2.hosting.net' });
  assert.deepEqual((await client.links(['www.shop.net'], digest)).problems, [
    { domain: 'www.shop.net', problem: '_stratum.www.shop.net names host h2.hosting.net, not this host (h1.hosting.net)' },
  ]);
  await link('www.shop.net');
  // It names the registrar a link must name for this key: what a registrar writing links needs.
  assert.deepEqual(await client.links(['www.shop.net'], digest), { checked: true, problems: [], registrar: REGISTRAR });
  // It changed nothing: nothing is installed.
  assert.deepEqual((await client.status()).capsules, []);
  for (const [domains, capsule] of [
    [[], digest],
    [['WWW.shop.net'], digest],
    [['www.shop.net'], 'sha256:abc'],
  ] as const) {
    await assert.rejects(
      client.links(domains, capsule),
      (error: unknown) => error instanceof ControlApiError && error.code === 'INVALID_REQUEST',
    );
  }

  const unchecked = await linkingHost(t, 'verify_links = false\n');
  assert.deepEqual(await unchecked.client.links(['www.shop.net'], unchecked.digest), {
    checked: false,
    problems: [],
    registrar: REGISTRAR,
  });
});

test('names under localhost, test, example and invalid need no link; verify_links = false turns the check off', async (t) => {
  const checked = await linkingHost(t);
  const special = await checked.client.install({
    domains: ['tiny.localhost', 'tiny.test', 'tiny.example'],
    manifest: checked.manifest,
    component: checked.component,
  });
  assert.equal(special.state, 'running');
  // One public domain among them is still checked.
  const mixed = checked.client.install({
    name: 'mixed',
    domains: ['a.test', 'b.shop.net'],
    manifest: checked.manifest,
    component: checked.component,
  });
  assert.deepEqual(await refusedForLink(mixed), ['_stratum.b.shop.net has no v=stratum1 TXT record']);

  const unchecked = await linkingHost(t, 'verify_links = false\n');
  const served = await unchecked.client.install({
    domains: ['www.shop.net'],
    manifest: unchecked.manifest,
    component: unchecked.component,
  });
  assert.equal(served.state, 'running');
});

test('a served domain whose link stops naming this host is answered 421 until it names it again; a failed lookup changes nothing', async (t) => {
  const { dns, host, client, component, manifest, link } = await linkingHost(t);
  const domain = 'www.shop.net';
  await link(domain);
  await client.install({ domains: [domain, 'tiny.test'], manifest, component });
  const links = host.links;
  assert.ok(links, 'the host watches no links');
  await links.recheck();
  assert.equal((await ingressGet(host.ingressUrl, domain)).status, 200);

  await link(domain, { host: 'h2.hosting.net' });
  await links.recheck();
  const moved = await ingressGet(host.ingressUrl, domain);
  assert.deepEqual(moved, { status: 421, body: 'www.shop.net is not linked to this host\n' });
  // The capsule still serves its other domain.
  assert.equal((await ingressGet(host.ingressUrl, 'tiny.test')).status, 200);
  // Its registrar sees why, in the capsule's status and log, not only the operator in the host's.
  const expected =
    'www.shop.net is answered 421 until its link names this host again: _stratum.www.shop.net names host h2.hosting.net, not this host (h1.hosting.net)';
  const held = await client.capsule('tiny');
  assert.equal(held.lastError, expected);
  // Which domains are held back, while the capsule goes on running on the others.
  assert.equal(held.state, 'running');
  assert.deepEqual(held.unlinkedDomains, [
    { domain, problem: '_stratum.www.shop.net names host h2.hosting.net, not this host (h1.hosting.net)' },
  ]);
  const logged = () => {
    const lines: string[] = [];
    host.runtime.subscribeLogs('tiny', (entry) => lines.push(entry.message))();
    return lines;
  };
  assert.ok(logged().includes(expected), 'the capsule log says why its domain is answered 421');

  await link(domain);
  await links.recheck();
  assert.equal((await ingressGet(host.ingressUrl, domain)).status, 200);
  assert.ok(logged().includes('www.shop.net is served again: its link names this host'));
  // Served again: status no longer says otherwise.
  const served = await client.capsule('tiny');
  assert.equal(served.unlinkedDomains, undefined);
  assert.equal(served.lastError, undefined);

  // With its DNS server gone, the host keeps serving as it was.
  await dns.stop();
  await links.recheck();
  assert.equal((await ingressGet(host.ingressUrl, domain)).status, 200);
});

test('a request target in absolute form is routed by its own authority, not the Host header, and the capsule gets only its path; OPTIONS * is a 400; a WebSocket handshake gets the plain answer', async (t) => {
  const { host, client, manifest } = await linkingHost(t);
  // moody reads its path: given the whole target, "http://...", it would take the "t" for its
  // trap mood and answer 500.
  const component = new Uint8Array(await readFile(await buildHostile('moody')));
  await client.install({ domains: ['tiny.test'], manifest, component });
  // As a client speaking to a proxy writes it: `GET http://name/path HTTP/1.1`.
  const send = (method: string, target: string, hostHeader: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const outgoing = request(
        { host: host.ingressUrl.hostname, port: host.ingressUrl.port, method, path: target, headers: { host: hostHeader }, agent: false },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        },
      );
      outgoing.on('error', reject);
      outgoing.end();
    });
  const elsewhere = await send('GET', 'http://other.test/x', 'tiny.test');
  assert.equal(elsewhere.status, 404, elsewhere.body);
  assert.match(elsewhere.body, /other\.test/);
  const routed = await send('GET', 'http://TINY.test:80/x?y=1', 'other.test');
  assert.equal(routed.status, 200, routed.body);
  assert.match(routed.body, /^hello from tiny \d+\n$/);
  assert.deepEqual(await send('OPTIONS', '*', 'tiny.test'), {
    status: 400,
    body: 'the request target must be a path, or an absolute http URL\n',
  });
  // Two Host fields could route by one while the capsule read the other: 400 (RFC 9112 section 3.2).
  const twice = connect(Number(host.ingressUrl.port), host.ingressUrl.hostname);
  twice.write('GET /x HTTP/1.1\r\nHost: tiny.test\r\nHost: other.test\r\nConnection: close\r\n\r\n');
  let refused = '';
  for await (const chunk of twice) refused += String(chunk);
  assert.match(refused, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*\r\n\r\nmore than one Host header\n$/);
  // A WebSocket handshake is answered as the plain request it also is, not with a closed connection.
  const socket = connect(Number(host.ingressUrl.port), host.ingressUrl.hostname);
  socket.write(
    'GET /n HTTP/1.1\r\nHost: tiny.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  let answer = '';
  for await (const chunk of socket) {
    answer += String(chunk);
    if (/\r\n\r\nhello from tiny \d+\n$/.test(answer)) break;
  }
  socket.destroy();
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nhello from tiny \d+\n$/);
});

test('a target in absolute form gives the Host a capsule reads in the raw headers too, as it gives the routing', () => {
  const request = { url: 'http://tiny.test/x', headers: { host: 'other.test' }, rawHeaders: ['Host', 'other.test', 'Accept', '*/*'] };
  assert.equal(toOriginForm(request as unknown as IncomingMessage, {} as ServerResponse), true);
  assert.deepEqual([request.url, request.headers.host, request.rawHeaders], ['/x', 'tiny.test', ['Host', 'tiny.test', 'Accept', '*/*']]);
});

test('an install with "start": false over a running capsule, which serves the new version at once, is checked as a start is: a domain or a component its link does not name is refused', async (t) => {
  const { host, client, component, manifest, link } = await linkingHost(t);
  await link('www.shop.net');
  await client.install({ name: 'shop', domains: ['www.shop.net'], manifest, component });
  assert.equal((await ingressGet(host.ingressUrl, 'www.shop.net')).status, 200);

  // A domain without a link, added by a replacement that does not ask to start.
  const added = await refusedForLink(
    client.install({ name: 'shop', domains: ['www.shop.net', 'victim.shop.net'], manifest, component, start: false }),
  );
  assert.deepEqual(added, ['_stratum.victim.shop.net has no v=stratum1 TXT record']);
  assert.equal((await ingressGet(host.ingressUrl, 'victim.shop.net')).status, 404);
  // Another component than the links name.
  const other = new Uint8Array(await readFile(await buildHostile('trap')));
  const swapped = await refusedForLink(
    client.install({ name: 'shop', domains: ['www.shop.net'], manifest, component: other, start: false }),
  );
  assert.match(swapped[0] ?? '', /^_stratum\.www\.shop\.net names capsule sha256:[0-9a-f]{64}, not sha256:/);
  // Refused, the running version serves on as it was.
  const [shop] = (await client.status()).capsules;
  assert.deepEqual([shop?.state, shop?.domains], ['running', ['www.shop.net']]);
  assert.equal((await ingressGet(host.ingressUrl, 'www.shop.net')).status, 200);

  // A stopped capsule installed over without starting is not served, and is not checked until its start.
  await client.stop('shop');
  const stopped = await client.install({ name: 'shop', domains: ['www.shop.net', 'later.shop.net'], manifest, component, start: false });
  assert.equal(stopped.state, 'installed');
});
