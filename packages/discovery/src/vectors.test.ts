// The test vectors in spec/discovery/vectors are the contract a second implementation follows;
// these tests hold this implementation to them, and check that every record it formats parses
// back to the same meaning.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { publicKeyFromRaw, StratumError, verifyEd25519 } from '@stratum/core';
import { answerChallenge, challengeSigningInput } from './challenge.ts';
import { acceptHostKey, hostKeyFromJwk, nextKeyIsAuthentic, rotationStatement } from './host-key.ts';
import { challengeRecordName, hostRecordName, linkRecordName, normaliseHostName, serviceTypeName } from './names.ts';
import {
  challengeTxtValue,
  formatDomainLink,
  formatHostRecord,
  formatServiceInstanceTxt,
  interfaceSatisfies,
  missingInterfaces,
  parseChallengeTxt,
  parseDomainLink,
  parseHostRecord,
  parseServiceInstanceTxt,
  parseWitList,
  type WitInterface,
} from './records.ts';
import { signMessage, verifyMessage } from './tsig.ts';
import { chooseStratumRecord } from './txt.ts';
import { decodeUpdateMessage, encodeRdata, encodeUpdateMessage, type UpdateOperation } from './wire.ts';

const vectorsDir = new URL('../../../spec/discovery/vectors/', import.meta.url);
const load = <T>(file: string): T => JSON.parse(readFileSync(new URL(file, vectorsDir), 'utf8')) as T;

interface Case {
  description: string;
  txt: string[];
  expect?: unknown;
  error?: string;
}

function runCases(file: string, parse: (strings: string[]) => unknown, format?: (value: never) => string[]): void {
  const { cases } = load<{ cases: Case[] }>(file);
  assert.ok(cases.length > 0);
  for (const vector of cases) {
    test(`${file}: ${vector.description}`, () => {
      if (vector.error) {
        assert.throws(
          () => parse(vector.txt),
          (error: unknown) => error instanceof StratumError && error.code === vector.error && error.message.length > 0,
        );
        return;
      }
      const parsed = parse(vector.txt);
      assert.deepEqual(parsed, vector.expect);
      if (format) assert.deepEqual(parse(format(parsed as never)), parsed, 'formatting the parsed record gives the same meaning');
    });
  }
}

runCases('host-record.json', parseHostRecord, formatHostRecord);
runCases('domain-link.json', parseDomainLink, formatDomainLink);
runCases('service-instance.json', parseServiceInstanceTxt, formatServiceInstanceTxt);

const choice = load<{ cases: { description: string; records: string[][]; chosen?: number | null; error?: string }[] }>(
  'record-choice.json',
);
for (const vector of choice.cases) {
  test(`record-choice.json: ${vector.description}`, () => {
    if (vector.error) {
      assert.throws(
        () => chooseStratumRecord(vector.records, 'the name'),
        (error: unknown) => error instanceof StratumError && error.code === vector.error,
      );
      return;
    }
    assert.ok(vector.chosen !== undefined, 'a case names either the chosen record or an error');
    const chosen = chooseStratumRecord(vector.records, 'the name');
    assert.equal(chosen, vector.chosen === null ? undefined : vector.records[vector.chosen]);
  });
}

const wit = load<{
  satisfies: { description: string; offered: string; needed: string; expect: boolean }[];
  missing: { description: string; offered: string[]; needed: string[]; expect: string[] }[];
}>('wit-compatibility.json');
// Through the record grammar, so that every item in the file is one a host record can carry.
const witItem = (text: string): WitInterface => {
  const [item, ...rest] = parseWitList(text);
  assert.ok(item && rest.length === 0, `"${text}" is one wit-item`);
  return item;
};
for (const vector of wit.satisfies) {
  test(`wit-compatibility.json: ${vector.description}`, () => {
    assert.equal(interfaceSatisfies(witItem(vector.offered), witItem(vector.needed)), vector.expect);
  });
}
for (const vector of wit.missing) {
  test(`wit-compatibility.json missing: ${vector.description}`, () => {
    const missing = missingInterfaces({ interfaces: vector.offered.map(witItem) }, vector.needed.map(witItem));
    assert.deepEqual(
      missing.map((item) => `${item.name}@${item.version}`),
      vector.expect,
    );
  });
}

const challenge = load<{
  privateJwk: { kty: 'OKP'; crv: 'Ed25519'; d: string; x: string };
  keyThumbprint: string;
  challenge: { token: string; hostName: string; registrar: string };
  keyAuthorization: string;
  recordName: string;
  txtValue: string;
  signingInput: string;
  response: { token: string; hostName: string; publicKey: string; signature: string };
  rotation: {
    hostName: string;
    currentKey: string;
    nextPrivateJwk: { x: string };
    statement: string;
    signature: string;
    unverifiedSignature: string;
  };
  txt: Case[];
}>('challenge.json');

test('challenge.json: key authorization digest, signing input and the exact Ed25519 signature', async () => {
  const key = hostKeyFromJwk(challenge.privateJwk);
  assert.equal(key.thumbprint, challenge.keyThumbprint);
  assert.equal(challengeTxtValue(challenge.challenge.token, key.thumbprint), challenge.txtValue);
  assert.equal(new TextDecoder().decode(challengeSigningInput(challenge.challenge)), challenge.signingInput);
  const answer = await answerChallenge(challenge.challenge, key);
  assert.equal(answer.recordName, challenge.recordName);
  assert.equal(answer.txtValue, challenge.txtValue);
  assert.deepEqual(answer.response, challenge.response);
  const signature = Buffer.from(challenge.response.signature, 'base64url');
  assert.equal(await verifyEd25519(key.publicJwk, new TextEncoder().encode(challenge.signingInput), signature), true);
});

test('challenge.json: the rotation statement and its signature by the current key', async () => {
  const { rotation } = challenge;
  assert.equal(
    new TextDecoder().decode(rotationStatement(rotation.hostName, rotation.currentKey, rotation.nextPrivateJwk.x)),
    rotation.statement,
  );
  const current = publicKeyFromRaw(rotation.currentKey);
  assert.equal(
    await verifyEd25519(current, new TextEncoder().encode(rotation.statement), Buffer.from(rotation.signature, 'base64url')),
    true,
  );
  const record = parseHostRecord([
    'v=stratum1',
    `k=${rotation.currentKey}`,
    'api=https://h1.example.net/',
    `nk=${rotation.nextPrivateJwk.x}`,
    `nks=${rotation.signature}`,
  ]);
  assert.equal(await nextKeyIsAuthentic(rotation.hostName, record), true);
  assert.equal(await nextKeyIsAuthentic('h2.example.net', record), false, 'the statement is bound to its host name');
  const rotated = parseHostRecord(['v=stratum1', `k=${rotation.nextPrivateJwk.x}`, 'api=https://h1.example.net/']);
  assert.equal(
    await acceptHostKey({ hostName: rotation.hostName, trustedKey: rotation.currentKey, announced: record, record: rotated }),
    rotation.nextPrivateJwk.x,
  );
});

test('challenge.json: an nks that parses but does not verify announces nothing (section 4.3)', async () => {
  const { rotation } = challenge;
  const announced = parseHostRecord([
    'v=stratum1',
    `k=${rotation.currentKey}`,
    'api=https://h1.example.net/',
    `nk=${rotation.nextPrivateJwk.x}`,
    `nks=${rotation.unverifiedSignature}`,
  ]);
  assert.equal(announced.nextKey?.signature, rotation.unverifiedSignature, 'parsing checks only the shape');
  assert.equal(await nextKeyIsAuthentic(rotation.hostName, announced), false);
  const rotated = parseHostRecord(['v=stratum1', `k=${rotation.nextPrivateJwk.x}`, 'api=https://h1.example.net/']);
  await assert.rejects(
    acceptHostKey({ hostName: rotation.hostName, trustedKey: rotation.currentKey, announced, record: rotated }),
    (error: unknown) => error instanceof StratumError && error.code === 'HOST_KEY_CHANGED',
  );
});

for (const vector of challenge.txt) {
  test(`challenge.json txt: ${vector.description}`, () => {
    if (vector.error) {
      assert.throws(
        () => parseChallengeTxt(vector.txt),
        (error: unknown) => error instanceof StratumError && error.code === vector.error,
      );
    } else assert.equal(parseChallengeTxt(vector.txt), vector.expect);
  });
}

const builders: Record<string, (input: string) => string> = {
  normaliseHostName,
  hostRecordName,
  linkRecordName,
  challengeRecordName,
  serviceTypeName,
};
for (const vector of load<{ cases: { description: string; fn: string; input: string; output?: string; error?: string }[] }>('names.json')
  .cases) {
  test(`names.json: ${vector.description}`, () => {
    const build = builders[vector.fn];
    assert.ok(build, `names.json names an unknown function ${vector.fn}`);
    if (vector.error) {
      assert.throws(
        () => build(vector.input),
        (error: unknown) => error instanceof StratumError && error.code === vector.error,
      );
    } else assert.equal(build(vector.input), vector.output);
  });
}

const update = load<{
  key: { name: string; secret: string };
  zone: string;
  id: number;
  timeSigned: number;
  fudge: number;
  operations: UpdateOperation[];
  unsignedHex: string;
  macHex: string;
  signedHex: string;
}>('update-tsig.json');

test('update-tsig.json: UPDATE encoding with classes ANY and NONE, and the TSIG MAC', () => {
  const unsigned = encodeUpdateMessage(update.id, update.zone, update.operations);
  assert.equal(unsigned.toString('hex'), update.unsignedHex);
  const signed = signMessage(unsigned, update.key, { timeSigned: update.timeSigned, fudge: update.fudge });
  assert.equal(signed.mac.toString('hex'), update.macHex);
  assert.equal(signed.message.toString('hex'), update.signedHex);
  // Class NONE (254) for "delete one RR": the byte dns-packet 5.6 gets wrong.
  assert.ok(update.unsignedHex.includes('0001' + '00fe'), 'type A, class NONE');
});

test('TSIG verification: good, tampered, wrong key, stale', () => {
  const signed = Buffer.from(update.signedHex, 'hex');
  const now = update.timeSigned + 10;
  const good = verifyMessage(signed, update.key, { now });
  assert.equal(good.ok, true);
  const tampered = Buffer.from(signed);
  tampered[40] = (tampered[40] ?? 0) ^ 1;
  assert.deepEqual(verifyMessage(tampered, update.key, { now }).ok, false);
  assert.equal((verifyMessage(tampered, update.key, { now }) as { reason: string }).reason, 'BADSIG');
  assert.equal((verifyMessage(signed, { ...update.key, secret: 'b3RoZXI=' }, { now }) as { reason: string }).reason, 'BADSIG');
  assert.equal((verifyMessage(signed, { ...update.key, name: 'other' }, { now }) as { reason: string }).reason, 'BADKEY');
  assert.equal((verifyMessage(signed, update.key, { now: update.timeSigned + update.fudge + 1 }) as { reason: string }).reason, 'BADTIME');
  assert.equal((verifyMessage(Buffer.from(update.unsignedHex, 'hex'), update.key) as { reason: string }).reason, 'unsigned');
});

test('TSIG response MACs chain on the request MAC (RFC 8945 section 4.3.1)', () => {
  const request = signMessage(Buffer.from(update.unsignedHex, 'hex'), update.key);
  const reply = Buffer.from(update.unsignedHex, 'hex').subarray(0, 12);
  reply.writeUInt16BE(0x8000 | (5 << 11), 2);
  for (const offset of [4, 6, 8, 10]) reply.writeUInt16BE(0, offset);
  const response = signMessage(reply, update.key, { requestMac: request.mac });
  assert.equal(verifyMessage(response.message, update.key, { requestMac: request.mac }).ok, true);
  assert.equal(verifyMessage(response.message, update.key, { requestMac: Buffer.alloc(32) }).ok, false);
  assert.equal(verifyMessage(response.message, update.key).ok, false);
});

test('update-tsig.json: decoding the UPDATE gives back the operations', () => {
  const decoded = decodeUpdateMessage(Buffer.from(update.unsignedHex, 'hex'));
  assert.equal(decoded.id, update.id);
  assert.equal(decoded.zone, update.zone);
  assert.equal(decoded.prerequisites, 0);
  assert.deepEqual(decoded.operations, update.operations);
});

test('UPDATE round trip for every record type, AAAA compared on the wire', () => {
  const operations: UpdateOperation[] = [
    { op: 'add', name: 'a.example.test', ttl: 60, record: { type: 'AAAA', data: '2001:db8::1' } },
    {
      op: 'add',
      name: 'a.example.test',
      ttl: 60,
      record: { type: 'SRV', data: { priority: 1, weight: 2, port: 8443, target: 'h1.example.test' } },
    },
    { op: 'add', name: '_stratum._tcp.example.test', ttl: 60, record: { type: 'PTR', data: 'h1._stratum._tcp.example.test' } },
    { op: 'delete-record', name: 'b.example.test', record: { type: 'CNAME', data: 'c.example.test' } },
    { op: 'delete-rrset', name: 'b.example.test', type: 'SRV' },
  ];
  const decoded = decodeUpdateMessage(encodeUpdateMessage(1, 'example.test', operations)).operations;
  assert.equal(decoded.length, operations.length);
  decoded.forEach((operation, index) => {
    const original = operations[index]!;
    assert.equal(operation.op, original.op);
    assert.equal(operation.name, original.name);
    if ('record' in operation && 'record' in original) assert.ok(encodeRdata(operation.record).equals(encodeRdata(original.record)));
  });
});
