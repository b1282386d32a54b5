// Untrusted input: TXT strings from anyone's DNS zone and packets from anyone on the network.
// Whatever arrives, the parsers end in a value or a StratumError with a code and a message;
// nothing else may escape (no TypeError, no RangeError, no hang), and the embedded server's
// answer() never throws at all.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StratumError } from '@stratum/core';
import { encode as encodePacket } from 'dns-packet';
import fc from 'fast-check';
import { EmbeddedDnsServer } from './embedded-server.ts';
import { parseChallengeTxt, parseDomainLink, parseHostRecord, parseServiceInstanceTxt } from './records.ts';
import { findTsig, signMessage, verifyMessage } from './tsig.ts';
import { decodeMessage, decodeUpdateMessage, encodeUpdateMessage, messageLayout } from './wire.ts';

const KEY = '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo';
const SEEDS: string[][] = [
  ['v=stratum1', `k=${KEY}`, 'api=https://h1.example.net/stratum/v1', 'wit=stratum:keyvalue@0.1.0,wasi:http@0.2.0'],
  ['v=stratum1', 'host=h1.example.net', `capsule=sha256:${'ab'.repeat(32)}`, 'registrar=registrar.example.org'],
  ['v=stratum1', 'host=h1.example.net', 'path=/stratum/v1'],
  ['6po-esnAwaRIy8a9rmCw764COCe635aEtbC6HinWcpY'],
];
const PARSERS = [parseHostRecord, parseDomainLink, parseServiceInstanceTxt, parseChallengeTxt];

function clean(error: unknown, input: unknown): void {
  if (!(error instanceof StratumError)) throw new Error(`escaped ${String(error)} for ${JSON.stringify(input).slice(0, 300)}`);
  assert.ok(error.code.length > 0 && error.message.length > 0 && error.message.length < 500);
}

let txtRuns = 0;
let packetRuns = 0;

function parseAll(strings: string[]): void {
  txtRuns++;
  for (const parse of PARSERS) {
    try {
      parse(strings);
    } catch (error) {
      clean(error, strings);
    }
  }
}

const fragment = fc.constantFrom(
  '=',
  'v=stratum1',
  'v=',
  'k=',
  'api=',
  'wit=',
  'nk=',
  'nks=',
  'host=',
  'capsule=sha256:',
  ',',
  '@',
  ':',
  '/',
  '.',
  '\u00e9',
  '\u0000',
  '\t',
  ' ',
  KEY,
);
const mutatedString = fc
  .tuple(
    fc.constantFrom(...SEEDS.flat()),
    fc.nat(300),
    fc.nat(300),
    fc.array(fragment, { maxLength: 3 }),
    fc.string({ maxLength: 8, unit: 'binary' }),
  )
  .map(([base, cut, at, inserts, noise]) => {
    const start = base.slice(0, cut % (base.length + 1));
    return `${start.slice(0, at % (start.length + 1))}${inserts.join('')}${noise}${start.slice(at % (start.length + 1))}`;
  });
const txtRecord = fc.oneof(
  // strings of any content, including non-ASCII and over-long ones
  { arbitrary: fc.array(fc.string({ maxLength: 300, unit: 'binary' }), { maxLength: 12 }), weight: 2 },
  // a valid record with one string mutated, duplicated or dropped
  {
    arbitrary: fc
      .tuple(fc.constantFrom(...SEEDS), fc.nat(), mutatedString, fc.constantFrom('replace', 'insert', 'drop', 'upper'))
      .map(([seed, index, value, how]) => {
        const copy = [...seed];
        const at = index % (copy.length + 1);
        if (how === 'replace') copy[at % copy.length] = value;
        else if (how === 'insert') copy.splice(at, 0, value);
        else if (how === 'drop') copy.splice(at, 1);
        else copy[at % copy.length] = (copy[at % copy.length] ?? '').toUpperCase();
        return copy;
      }),
    weight: 4,
  },
  // key=value pairs with plausible keys and arbitrary values
  {
    arbitrary: fc.array(
      fc
        .tuple(
          fc.constantFrom('v', 'k', 'api', 'wit', 'host', 'capsule', 'registrar', 'path', 'nk', 'nks', 'X'),
          fc.string({ maxLength: 80 }),
        )
        .map(([k, v]) => `${k}=${v}`),
      { maxLength: 10 },
    ),
    weight: 2,
  },
);

test('10,000+ malformed TXT records end in a value or a clean StratumError', () => {
  fc.assert(
    fc.property(txtRecord, (strings) => parseAll(strings)),
    { numRuns: 6000, seed: 8 },
  );
  // Non-string members, as a careless caller (or JSON from elsewhere) might pass.
  for (const odd of [[1], [null], [undefined], [{}], [['v=stratum1']], 'v=stratum1', null]) parseAll(odd as never);
  assert.ok(txtRuns >= 6000);
});

const QUERY = Buffer.from(
  encodePacket({ id: 7, type: 'query', flags: 1 << 8, questions: [{ name: '_stratum.shop.example.test', type: 'TXT' }] }),
);
const UPDATE = signMessage(
  encodeUpdateMessage(9, 'example.test', [
    { op: 'add', name: 'a.example.test', ttl: 60, record: { type: 'TXT', data: ['v=stratum1', 'host=h1.example.test'] } },
    { op: 'delete-record', name: 'b.example.test', record: { type: 'AAAA', data: '2001:db8::1' } },
  ]),
  { name: 'k', secret: 'c2VjcmV0' },
  { timeSigned: 1764028800 },
).message;

const packet = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 600 }), weight: 2 },
  {
    arbitrary: fc
      .tuple(
        fc.constantFrom(QUERY, UPDATE),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.nat(),
      )
      .map(([base, flips, cut]) => {
        const copy = Buffer.from(base);
        for (const [at, value] of flips) copy[at % copy.length] = value;
        return cut % 4 === 0 ? copy.subarray(0, cut % (copy.length + 1)) : copy;
      }),
    weight: 5,
  },
  // a header that claims thousands of records over a short body
  {
    arbitrary: fc
      .tuple(fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 40 }))
      .map(([head, body]) => Buffer.concat([head, body])),
    weight: 1,
  },
);

test('10,000+ malformed DNS packets: decoders fail cleanly, the server never throws', () => {
  const server = new EmbeddedDnsServer({ zones: ['example.test'], updateKeys: [{ name: 'k', secret: 'c2VjcmV0' }] });
  fc.assert(
    fc.property(packet, (bytes) => {
      packetRuns++;
      const buf = Buffer.from(bytes);
      for (const decode of [
        messageLayout,
        decodeMessage,
        decodeUpdateMessage,
        findTsig,
        (b: Buffer) => verifyMessage(b, { name: 'k', secret: 'c2VjcmV0' }),
      ]) {
        try {
          decode(buf);
        } catch (error) {
          clean(error, buf.toString('hex'));
        }
      }
      const reply = server.answer(buf, 'udp');
      if (reply) assert.equal(messageLayout(reply).id, buf.readUInt16BE(0), 'a reply echoes the query id');
    }),
    { numRuns: 6000, seed: 8 },
  );
  assert.ok(packetRuns >= 6000);
});

test('the fuzz corpus covered at least 10,000 inputs in all', () => {
  assert.ok(txtRuns + packetRuns >= 10_000, `${txtRuns} TXT records + ${packetRuns} packets`);
});
