import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StratumError } from '@stratum/core';
import { decode, encode } from 'dns-packet';
import { EmbeddedDnsServer } from './embedded-server.ts';
import { findTsig, signMessage, verifyMessage } from './tsig.ts';
import { encodeUpdateMessage } from './wire.ts';

const server = new EmbeddedDnsServer({ zones: ['example.test'] });

/** dns-packet's Answer type leaves `data` off some variants. */
const dataOf = (answer: unknown): unknown => (answer as { data?: unknown }).data;

function ask(name: string, type: string, extra: { additionals?: unknown[] } = {}) {
  const packet = { id: 42, type: 'query', flags: 1 << 8, questions: [{ name, type: type as 'TXT' }], ...extra } as Parameters<
    typeof encode
  >[0];
  const reply = server.answer(encode(packet), 'udp');
  assert.ok(reply);
  return decode(reply) as ReturnType<typeof decode> & { rcode: string };
}

test('answers echo the id and RD, set AA, and follow CNAMEs inside the zone', async () => {
  await server.apply([
    { op: 'replace', name: 'www.example.test', type: 'CNAME', records: [{ type: 'CNAME', data: 'h1.example.test' }] },
    { op: 'add', name: 'h1.example.test', record: { type: 'A', data: '192.0.2.1' } },
    { op: 'add', name: 'out.example.test', record: { type: 'CNAME', data: 'elsewhere.example' } },
  ]);
  const reply = ask('WWW.example.test', 'A');
  assert.equal(reply.id, 42);
  assert.equal(reply.flag_aa, true);
  assert.equal(reply.flag_rd, true);
  assert.deepEqual(
    reply.answers?.map((answer) => [answer.name, answer.type, dataOf(answer)]),
    [
      ['WWW.example.test', 'CNAME', 'h1.example.test'],
      ['h1.example.test', 'A', '192.0.2.1'],
    ],
  );
  const outside = ask('out.example.test', 'A');
  assert.equal(outside.rcode, 'NOERROR');
  assert.deepEqual(outside.answers?.map(dataOf), ['elsewhere.example'], 'the chase stops at the zone edge');
  assert.equal(ask('example.test', 'SOA').answers?.[0]?.type, 'SOA');
});

test('every change bumps the SOA serial', async () => {
  const serial = () => (dataOf(ask('example.test', 'SOA').answers?.[0]) as { serial: number }).serial;
  const before = serial();
  await server.apply([{ op: 'add', name: 'x.example.test', record: { type: 'TXT', data: ['a'] } }]);
  assert.equal(serial(), before + 1);
});

test('a change list is atomic: one bad change and none apply', async () => {
  await assert.rejects(
    server.apply([
      { op: 'add', name: 'atomic.example.test', record: { type: 'A', data: '192.0.2.5' } },
      { op: 'add', name: 'atomic.example.test', record: { type: 'CNAME', data: 'h1.example.test' } },
    ]),
    (error: unknown) => error instanceof StratumError && error.code === 'DNS_CNAME_CONFLICT',
  );
  assert.equal(ask('atomic.example.test', 'A').rcode, 'NXDOMAIN');
  await assert.rejects(
    server.apply([{ op: 'add', name: 'bad.example.test', record: { type: 'A', data: '300.1.1.1' } }]),
    (error: unknown) => error instanceof StratumError && error.code === 'DNS_CHANGE_INVALID',
  );
});

test('malformed queries get FORMERR, other opcodes NOTIMP, responses and runts no answer', () => {
  const garbage = Buffer.concat([Buffer.from([0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([50, 1, 2])]);
  const formerr = server.answer(garbage, 'udp');
  assert.ok(formerr);
  assert.equal(formerr.readUInt16BE(0), 9);
  assert.equal(formerr.readUInt16BE(2) & 0xf, 1);
  const update = server.answer(encodeUpdateMessage(5, 'example.test', [{ op: 'delete-name', name: 'x.example.test' }]), 'udp');
  assert.equal((update?.readUInt16BE(2) ?? 0) & 0xf, 4);
  assert.equal(server.answer(Buffer.from([1, 2, 3]), 'udp'), undefined);
  const response = encode({ id: 1, type: 'response', questions: [{ name: 'example.test', type: 'A' }] });
  assert.equal(server.answer(response, 'udp'), undefined, 'never answer an answer (no reflection loops)');
});

test('UDP answers: 512 octets without EDNS, up to 1232 with it, and an OPT back', async () => {
  // Three 200-octet strings: about 720 octets, more than 512 and less than 1232.
  const records = Array.from({ length: 3 }, (_, index) => ({ type: 'TXT' as const, data: [`${index}${'y'.repeat(200)}`] }));
  await server.apply([{ op: 'replace', name: 'mid.example.test', type: 'TXT', records }]);
  const plain = ask('mid.example.test', 'TXT');
  assert.equal(plain.flag_tc, true);
  assert.equal(plain.answers?.length, 0);
  const edns = ask('mid.example.test', 'TXT', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 }] });
  assert.equal(edns.flag_tc, false);
  assert.equal(edns.answers?.length, 3);
  assert.equal((edns.additionals?.[0] as { udpPayloadSize?: number } | undefined)?.udpPayloadSize, 1232);
  const tcp = server.answer(encode({ id: 3, type: 'query', questions: [{ name: 'mid.example.test', type: 'TXT' }] }), 'tcp');
  assert.equal(tcp && decode(tcp).answers?.length, 3, 'TCP is not truncated');
});

test('RFC 2136 over the wire: NOTIMP without keys, NOTZONE, NOTAUTH for other zones, BADTIME, signed replies', async () => {
  const key = { name: 'registrar-key', secret: 'c2VjcmV0LXNlY3JldC1zZWNyZXQ=' };
  const keyed = new EmbeddedDnsServer({ zones: ['example.test'], updateKeys: [key] });
  const rcode = (reply: Buffer | undefined) => (reply?.readUInt16BE(2) ?? 0xffff) & 0xf;
  const update = (zone: string, name: string, options: { timeSigned?: number } = {}) =>
    signMessage(encodeUpdateMessage(77, zone, [{ op: 'add', name, ttl: 60, record: { type: 'A', data: '192.0.2.77' } }]), key, options);

  assert.equal(rcode(server.answer(update('example.test', 'a.example.test').message, 'udp')), 4, 'a server without update keys: NOTIMP');
  assert.equal(rcode(keyed.answer(update('example.test', 'a.other.test').message, 'udp')), 10, 'a name outside the zone: NOTZONE');
  assert.equal(rcode(keyed.answer(update('other.test', 'a.other.test').message, 'udp')), 9, 'a zone it does not hold: NOTAUTH');
  const stale = keyed.answer(update('example.test', 'a.example.test', { timeSigned: Math.floor(Date.now() / 1000) - 3600 }).message, 'udp');
  assert.equal(rcode(stale), 9);
  assert.equal(findTsig(stale!)?.record.error, 18, 'TSIG error BADTIME');
  assert.deepEqual(keyed.records('a.example.test'), [], 'nothing refused was applied');

  const request = update('example.test', 'a.example.test');
  const reply = keyed.answer(request.message, 'tcp');
  assert.equal(rcode(reply), 0);
  assert.equal(verifyMessage(reply!, key, { requestMac: request.mac }).ok, true, 'the reply is signed, chained on the request MAC');
  assert.deepEqual(keyed.records('a.example.test'), [{ type: 'A', data: '192.0.2.77' }]);
});
