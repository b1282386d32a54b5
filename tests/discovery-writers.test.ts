// One conformance suite for every DnsWriter: the registrar's embedded authoritative server
// (written in process, and through RFC 2136 with TSIG), and Knot DNS (Debian `knot`) updated
// through RFC 2136 with TSIG. Records go in through the writer
// and come back out through the resolver (Node.js dns over the loopback), and the raw answers
// (NXDOMAIN, NODATA, REFUSED, truncation over UDP, TCP) must match between the two servers.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { type TestContext, test } from 'node:test';
import { StratumError } from '@stratum/core';
import {
  assertDomainLinked,
  checkDomain,
  DiscoveryResolver,
  type DnsWriter,
  parseServerAddress,
  publishChallenge,
  publishDomainLink,
  publishHostRecord,
  publishServiceInstance,
  Rfc2136Writer,
  serviceTypeName,
  startEmbeddedDnsServer,
  type TsigKey,
  withdrawChallenge,
} from '@stratum/discovery';
import dnsPacket from 'dns-packet';
import { startKnot } from './support/knot.ts';
import { freePort } from './support/services.ts';

const ZONE = 'stratum.test';
const KEY = 'A8f2mYyWLCVJbJlSnc7cm66fJYnECEXyHp1sB8E1b2w';
const DIGEST = `sha256:${'c0ffee'.repeat(10)}abcd`;

interface Target {
  writer: DnsWriter;
  server: string;
}

// ---------------------------------------------------------------- raw queries, to compare servers

interface RawAnswer {
  rcode: string;
  aa: boolean;
  tc: boolean;
  answers: number;
  soaInAuthority: boolean;
}

function summarise(reply: Buffer): RawAnswer {
  const packet = dnsPacket.decode(reply);
  return {
    // dns-packet decodes the rcode but its types leave it out.
    rcode: (packet as { rcode?: string }).rcode ?? 'NOERROR',
    aa: packet.flag_aa ?? false,
    tc: packet.flag_tc ?? false,
    answers: packet.answers?.length ?? 0,
    soaInAuthority: (packet.authorities ?? []).some((record) => record.type === 'SOA'),
  };
}

function query(name: string, type: dnsPacket.RecordType): Buffer {
  return dnsPacket.encode({ id: randomBytes(2).readUInt16BE(0), type: 'query', flags: 0, questions: [{ name, type }] });
}

async function udpQuery(server: string, name: string, type: dnsPacket.RecordType): Promise<RawAnswer> {
  const { host, port } = parseServerAddress(server);
  const socket = createSocket('udp4');
  try {
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no UDP answer from ${server}`)), 3000);
      socket.once('message', (message) => {
        clearTimeout(timer);
        resolve(message);
      });
      socket.send(query(name, type), port, host);
    });
    return summarise(reply);
  } finally {
    socket.close();
  }
}

async function tcpQuery(server: string, name: string, type: dnsPacket.RecordType): Promise<RawAnswer> {
  const { host, port } = parseServerAddress(server);
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const socket = connect({ host, port });
    let pending = Buffer.alloc(0);
    socket.setTimeout(3000, () => {
      socket.destroy();
      reject(new Error(`no TCP answer from ${server}`));
    });
    socket.on('error', reject);
    socket.on('connect', () => socket.write(dnsPacket.streamEncode(dnsPacket.decode(query(name, type)))));
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        socket.end();
        resolve(pending.subarray(2, 2 + pending.readUInt16BE(0)));
      }
    });
  });
  return summarise(reply);
}

// ---------------------------------------------------------------- the suite

async function conformance(t: TestContext, target: Target): Promise<void> {
  const resolver = new DiscoveryResolver({ servers: [target.server] });
  const host = `h1.${ZONE}`;
  const domain = `shop.${ZONE}`;

  await t.test('host record, domain link and CNAME routing read back through the resolver', async () => {
    await target.writer.apply([{ op: 'add', name: host, ttl: 60, record: { type: 'A', data: '192.0.2.10' } }]);
    await publishHostRecord(target.writer, host, {
      publicKey: KEY,
      api: `https://${host}/stratum/v1`,
      interfaces: [
        { name: 'stratum:keyvalue', version: '0.1.0' },
        { name: 'wasi:http', version: '0.2.0' },
      ],
    });
    await publishDomainLink(target.writer, domain, { host, capsule: DIGEST, registrar: 'registrar.test' }, { cname: host });
    const record = await resolver.hostRecord(host);
    assert.equal(record?.publicKey, KEY);
    assert.deepEqual(
      record?.interfaces.map((item) => item.name),
      ['stratum:keyvalue', 'wasi:http'],
    );
    assert.deepEqual(await resolver.domainLink(domain), { version: 'stratum1', host, capsule: DIGEST, registrar: 'registrar.test' });
    assert.deepEqual(await resolver.routing(domain), { cname: host, a: ['192.0.2.10'], aaaa: [] });
    const check = await checkDomain(resolver, domain);
    assert.deepEqual(check.problems, []);
    await assertDomainLinked(resolver, { domain, hostName: host, capsule: DIGEST, registrar: 'registrar.test' });
  });

  await t.test('a replaced link is read back at once, and the host refuses a capsule it is not linked to', async () => {
    const other = `sha256:${'1'.repeat(64)}`;
    await publishDomainLink(target.writer, domain, { host, capsule: other, registrar: 'registrar.test' }, { cname: host });
    assert.equal((await resolver.domainLink(domain))?.capsule, other);
    await assert.rejects(
      assertDomainLinked(resolver, { domain, hostName: host, capsule: DIGEST, registrar: 'registrar.test' }),
      (error: unknown) => error instanceof StratumError && error.code === 'DOMAIN_CAPSULE_MISMATCH',
    );
    await assert.rejects(
      assertDomainLinked(resolver, { domain, hostName: `h2.${ZONE}`, capsule: other, registrar: 'registrar.test' }),
      (error: unknown) => error instanceof StratumError && error.code === 'DOMAIN_LINKED_ELSEWHERE',
    );
  });

  await t.test('routing moves from a CNAME to addresses in one atomic change', async () => {
    await publishDomainLink(
      target.writer,
      domain,
      { host, capsule: DIGEST, registrar: 'registrar.test' },
      { addresses: ['192.0.2.10', '2001:db8::10'] },
    );
    assert.deepEqual(await resolver.routing(domain), { a: ['192.0.2.10'], aaaa: ['2001:db8::10'] });
    const check = await checkDomain(resolver, domain);
    assert.deepEqual(check.problems, [`${domain} points at 2001:db8::10, which ${host} does not resolve to`]);
    await target.writer.apply([{ op: 'add', name: host, ttl: 60, record: { type: 'AAAA', data: '2001:db8::10' } }]);
    assert.deepEqual((await checkDomain(resolver, domain)).problems, []);
  });

  await t.test('challenge records are added beside each other and withdrawn one at a time', async () => {
    const mine = 'M'.repeat(43);
    const theirs = 'T'.repeat(43);
    await publishChallenge(target.writer, host, mine);
    await publishChallenge(target.writer, host, theirs);
    assert.deepEqual((await resolver.challengeValues(host)).map((strings) => strings.join('')).sort(), [mine, theirs]);
    await withdrawChallenge(target.writer, host, mine);
    assert.deepEqual(await resolver.challengeValues(host), [[theirs]]);
    await withdrawChallenge(target.writer, host, theirs);
    assert.deepEqual(await resolver.challengeValues(host), []);
  });

  await t.test('DNS-SD: PTR, SRV and TXT of a _stratum._tcp instance', async () => {
    const instance = await publishServiceInstance(target.writer, ZONE, {
      label: 'h1',
      target: host,
      port: 8443,
      priority: 10,
      weight: 5,
      info: { host, path: '/stratum/v1' },
    });
    assert.equal(instance, `h1.${serviceTypeName(ZONE)}`);
    const services = await resolver.services(ZONE);
    assert.deepEqual(services, [
      { instance, target: host, port: 8443, priority: 10, weight: 5, info: { version: 'stratum1', host, path: '/stratum/v1' } },
    ]);
  });

  await t.test('raw answers: NXDOMAIN and NODATA carry the SOA, AA is set, other zones are refused', async () => {
    assert.deepEqual(await udpQuery(target.server, `nothing.${ZONE}`, 'TXT'), {
      rcode: 'NXDOMAIN',
      aa: true,
      tc: false,
      answers: 0,
      soaInAuthority: true,
    });
    // h1 holds A records but no TXT: NODATA.
    assert.deepEqual(await udpQuery(target.server, host, 'TXT'), {
      rcode: 'NOERROR',
      aa: true,
      tc: false,
      answers: 0,
      soaInAuthority: true,
    });
    assert.deepEqual(await udpQuery(target.server, `_stratum.${domain}`, 'TXT'), {
      rcode: 'NOERROR',
      aa: true,
      tc: false,
      answers: 1,
      soaInAuthority: false,
    });
    // _tcp has records only below it: an empty non-terminal answers NODATA, not NXDOMAIN (RFC 8020).
    assert.equal((await udpQuery(target.server, `_tcp.${ZONE}`, 'TXT')).rcode, 'NOERROR');
    assert.equal((await udpQuery(target.server, 'elsewhere.example', 'TXT')).rcode, 'REFUSED');
  });

  await t.test('an answer too large for UDP sets TC; TCP carries it whole; the resolver follows', async () => {
    const big = `big.${ZONE}`;
    const records = Array.from({ length: 6 }, (_, index) => ({
      type: 'TXT' as const,
      data: [`v=stratum1`, `n${index}=${'x'.repeat(200)}`],
    }));
    await target.writer.apply([{ op: 'replace', name: big, type: 'TXT', records }]);
    const udp = await udpQuery(target.server, big, 'TXT');
    assert.equal(udp.tc, true);
    assert.equal((await tcpQuery(target.server, big, 'TXT')).answers, 6);
    assert.equal((await resolver.txt(big)).length, 6);
  });

  await t.test('two stratum1 records at one name are reported as ambiguous', async () => {
    await target.writer.apply([
      {
        op: 'add',
        name: `_stratum.${domain}`,
        record: { type: 'TXT', data: ['v=stratum1', `host=h9.${ZONE}`, `capsule=${DIGEST}`, 'registrar=registrar.test'] },
      },
    ]);
    await assert.rejects(
      resolver.domainLink(domain),
      (error: unknown) => error instanceof StratumError && error.code === 'RECORD_AMBIGUOUS',
    );
  });

  await t.test('deleting a name removes all its records', async () => {
    await target.writer.apply([{ op: 'delete', name: `_stratum.${domain}` }]);
    assert.equal(await resolver.domainLink(domain), undefined);
    assert.equal((await checkDomain(resolver, domain)).link, undefined);
  });

  await t.test('both writers refuse the same bad input the same way', async () => {
    await assert.rejects(
      target.writer.apply([{ op: 'add', name: 'outside.example', record: { type: 'A', data: '192.0.2.1' } }]),
      (error: unknown) => error instanceof StratumError && error.code === 'DNS_NOT_IN_ZONE',
    );
    await assert.rejects(
      target.writer.apply([{ op: 'replace', name: `x.${ZONE}`, type: 'A', records: [{ type: 'TXT', data: ['v=stratum1'] }] }]),
      (error: unknown) => error instanceof StratumError && error.code === 'DNS_CHANGE_INVALID',
    );
    await assert.rejects(target.writer.apply([]), (error: unknown) => error instanceof StratumError && error.code === 'DNS_CHANGE_INVALID');
  });
}

// ---------------------------------------------------------------- the targets

test('embedded DNS server passes the writer conformance suite', async (t) => {
  const server = await startEmbeddedDnsServer({ zones: [ZONE] });
  t.after(() => server.stop());
  await conformance(t, { writer: server, server: server.address });
});

const TSIG: TsigKey = { name: 'stratum-registrar', secret: randomBytes(32).toString('base64') };

test('Knot DNS through RFC 2136 + TSIG passes the writer conformance suite', async (t) => {
  const server = await startKnot(t, TSIG, ZONE);
  if (!server) return;
  await conformance(t, { writer: new Rfc2136Writer({ server, zone: ZONE, key: TSIG }), server });
});

test('the embedded server updated through RFC 2136 + TSIG passes the writer conformance suite', async (t) => {
  const dns = await startEmbeddedDnsServer({ zones: [ZONE], updateKeys: [TSIG] });
  t.after(() => dns.stop());
  await conformance(t, { writer: new Rfc2136Writer({ server: dns.address, zone: ZONE, key: TSIG }), server: dns.address });
});

async function refusesBadUpdates(server: string): Promise<void> {
  const resolver = new DiscoveryResolver({ servers: [server] });
  const change = [{ op: 'add', name: `intruder.${ZONE}`, record: { type: 'A', data: '192.0.2.66' } }] as const;
  const refused = async (writer: Rfc2136Writer, reason: RegExp) =>
    assert.rejects(writer.apply(change), (error: unknown) => {
      assert.ok(error instanceof StratumError);
      assert.equal(error.code, 'DNS_UPDATE_REFUSED');
      assert.match(error.message, reason);
      assert.ok(error.hint);
      return true;
    });
  await refused(new Rfc2136Writer({ server, zone: ZONE }), /not signed/);
  await refused(
    new Rfc2136Writer({ server, zone: ZONE, key: { ...TSIG, secret: randomBytes(32).toString('base64') } }),
    /signature is wrong/,
  );
  await refused(new Rfc2136Writer({ server, zone: ZONE, key: { ...TSIG, name: 'someone-else' } }), /does not know the TSIG key/);
  assert.deepEqual(await resolver.a(`intruder.${ZONE}`), [], 'no refused update changed the zone');
  await new Rfc2136Writer({ server, zone: ZONE, key: TSIG }).apply(change);
  assert.deepEqual(await resolver.a(`intruder.${ZONE}`), ['192.0.2.66'], 'the same change, signed, is applied');
}

test('Knot refuses unsigned and wrongly signed updates, and the writer says why', async (t) => {
  const server = await startKnot(t, TSIG, ZONE);
  if (!server) return;
  await refusesBadUpdates(server);
});

test('the embedded server refuses unsigned and wrongly signed updates the same way', async (t) => {
  const dns = await startEmbeddedDnsServer({ zones: [ZONE], updateKeys: [TSIG] });
  t.after(() => dns.stop());
  await refusesBadUpdates(dns.address);
});

test('an unreachable update server is reported as such', async () => {
  const port = await freePort();
  const writer = new Rfc2136Writer({ server: `127.0.0.1:${port}`, zone: ZONE, key: TSIG, timeoutMs: 2000 });
  await assert.rejects(
    writer.apply([{ op: 'delete', name: `x.${ZONE}` }]),
    (error: unknown) => error instanceof StratumError && error.code === 'DNS_UNREACHABLE',
  );
});
