import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { test } from 'node:test';
import { primitives } from '../packages/host/src/capabilities/crypto/index.ts';
import { addPublicKeys } from '../packages/sdk/src/guest/crypto-public-keys.ts';

type SubtleCrypto = webcrypto.SubtleCrypto;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type JsonWebKey = webcrypto.JsonWebKey;

// The SDK's public-key layer over the host's verify, passing what it does not handle to Node.js's
// WebCrypto, which is also the reference it is compared with.
const platform = webcrypto.subtle;
const ours = {} as Pick<SubtleCrypto, 'importKey' | 'verify' | 'sign'>;
addPublicKeys(ours, platform, globalThis.CryptoKey.prototype, primitives);

type Case = {
  label: string;
  generate: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams | webcrypto.Algorithm;
  importAs: webcrypto.AlgorithmIdentifier | webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams;
  signWith: webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams | webcrypto.RsaPssParams;
  formats: readonly ('jwk' | 'spki' | 'raw')[];
};

const CASES: readonly Case[] = [
  ...(['P-256', 'P-384', 'P-521'] as const).map((namedCurve) => ({
    label: `ECDSA ${namedCurve}`,
    generate: { name: 'ECDSA', namedCurve },
    importAs: { name: 'ECDSA', namedCurve },
    signWith: { name: 'ECDSA', hash: namedCurve === 'P-256' ? 'SHA-256' : 'SHA-384' },
    formats: ['jwk', 'spki', 'raw'] as const,
  })),
  ...(['SHA-256', 'SHA-512'] as const).map((hash) => ({
    label: `RSASSA-PKCS1-v1_5 ${hash}`,
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash },
    importAs: { name: 'RSASSA-PKCS1-v1_5', hash },
    signWith: 'RSASSA-PKCS1-v1_5',
    formats: ['jwk', 'spki'] as const,
  })),
  {
    label: 'RSA-PSS SHA-256',
    generate: { name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    importAs: { name: 'RSA-PSS', hash: 'SHA-256' },
    signWith: { name: 'RSA-PSS', saltLength: 32 },
    formats: ['jwk', 'spki'] as const,
  },
  { label: 'Ed25519', generate: { name: 'Ed25519' }, importAs: 'Ed25519', signWith: 'Ed25519', formats: ['jwk', 'spki', 'raw'] as const },
];

async function keyPair(testCase: Case): Promise<CryptoKeyPair> {
  return (await platform.generateKey(testCase.generate as webcrypto.EcKeyGenParams, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function exported(key: CryptoKey, format: 'jwk' | 'spki' | 'raw'): Promise<JsonWebKey | ArrayBuffer> {
  return format === 'jwk' ? platform.exportKey('jwk', key) : platform.exportKey(format, key);
}

async function importOurs(format: string, data: unknown, algorithm: unknown, usages: string[] = ['verify']): Promise<CryptoKey> {
  return (ours.importKey as (...args: unknown[]) => Promise<CryptoKey>)(format, data, algorithm, true, usages);
}

test("a public key imported in each format verifies what Node.js signed, and agrees with Node.js's verify on changed signatures and data", async () => {
  const encoder = new TextEncoder();
  for (const testCase of CASES) {
    const pair = await keyPair(testCase);
    const message = encoder.encode(`signed for ${testCase.label}`);
    const signature = new Uint8Array(await platform.sign(testCase.signWith, pair.privateKey, message));
    for (const format of testCase.formats) {
      const label = `${testCase.label} as ${format}`;
      const key = await importOurs(format, await exported(pair.publicKey, format), testCase.importAs);
      assert.ok(key instanceof globalThis.CryptoKey, label);
      assert.equal(key.type, 'public', label);
      assert.deepEqual(key.usages, ['verify'], label);
      assert.deepEqual({ ...key.algorithm }, { ...pair.publicKey.algorithm }, label);
      assert.equal(await ours.verify(testCase.signWith, key, signature, message), true, label);
      for (let round = 0; round < 6; round++) {
        const changed = Uint8Array.from(signature);
        const bit = (round * 2_654_435_761) % (changed.length * 8);
        changed[bit >> 3] = (changed[bit >> 3] ?? 0) ^ (1 << (bit & 7));
        const data = round % 2 ? message : message.subarray(round);
        const expected = await platform.verify(testCase.signWith, pair.publicKey, changed, data);
        assert.equal(await ours.verify(testCase.signWith, key, changed, data), expected, `${label} round ${round}`);
      }
      assert.equal(await ours.verify(testCase.signWith, key, signature.subarray(1), message), false, label);
    }
  }
});

test('private keys, signing with a public key and usages other than verify are refused with the errors WebCrypto names', async () => {
  const pair = await keyPair(CASES[0] as Case);
  const privateJwk = await platform.exportKey('jwk', pair.privateKey);
  const publicJwk = await platform.exportKey('jwk', pair.publicKey);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
  await assert.rejects(importOurs('jwk', privateJwk, algorithm, ['sign']), {
    name: 'NotSupportedError',
    message: /imports public ECDSA keys, not private ones/,
  });
  await assert.rejects(importOurs('pkcs8', await platform.exportKey('pkcs8', pair.privateKey), algorithm, ['sign']), {
    name: 'NotSupportedError',
  });
  await assert.rejects(importOurs('jwk', publicJwk, algorithm, ['verify', 'sign']), {
    name: 'SyntaxError',
    message: /only "verify", not "sign"/,
  });
  const key = await importOurs('jwk', publicJwk, algorithm);
  await assert.rejects(ours.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, new Uint8Array(1)), { name: 'InvalidAccessError' });
  await assert.rejects(ours.verify('Ed25519', key, new Uint8Array(64), new Uint8Array(1)), { name: 'InvalidAccessError' });
  await assert.rejects(ours.verify('ECDSA', key, new Uint8Array(64), new Uint8Array(1)), /ECDSA needs a hash/);
  const verifyOnlyWith = await importOurs('jwk', { ...publicJwk, key_ops: ['verify'] }, algorithm, []);
  await assert.rejects(ours.verify({ name: 'ECDSA', hash: 'SHA-256' }, verifyOnlyWith, new Uint8Array(64), new Uint8Array(1)), {
    name: 'InvalidAccessError',
  });
});

test('a key that lies is a DataError that names what is wrong with it', async () => {
  const ec = await platform.exportKey('jwk', (await keyPair(CASES[0] as Case)).publicKey);
  const p256 = { name: 'ECDSA', namedCurve: 'P-256' };
  const rsaCase = CASES[3] as Case;
  const rsa = await platform.exportKey('jwk', (await keyPair(rsaCase)).publicKey);
  const lies: [string, unknown, unknown, RegExp][] = [
    ['jwk', { ...ec, crv: 'P-384' }, p256, /"crv" is "P-384", but the algorithm asks for P-256/],
    ['jwk', { ...ec, y: ec.x }, p256, /not a point of P-256/],
    ['jwk', { ...ec, x: 'not base64!' }, p256, /"x" is not base64url/],
    ['jwk', { ...ec, kty: 'RSA' }, p256, /"kty" is "RSA", not "EC"/],
    ['jwk', { ...ec, use: 'enc' }, p256, /"use" is "enc"/],
    ['jwk', { ...ec, key_ops: ['sign'] }, p256, /"key_ops" do not allow verify/],
    ['jwk', { ...rsa, alg: 'RS512' }, rsaCase.importAs, /"alg" is "RS512", but RSASSA-PKCS1-v1_5 with SHA-256 is RS256/],
    ['jwk', { ...rsa, e: 'AQ' }, rsaCase.importAs, /public exponent must be odd, at least 3/],
    ['jwk', { ...rsa, e: 'AQAAAAAB' }, rsaCase.importAs, /at most 33 bits/],
    ['jwk', { ...rsa, n: 'AAE' }, rsaCase.importAs, /modulus must be odd and of 512 to 16384 bits \(it has 1\)/],
    ['raw', Uint8Array.from({ length: 65 }, (_, i) => (i === 0 ? 4 : 0)), p256, /not a point of P-256/],
    ['raw', new Uint8Array(12), p256, /not an encoded point of P-256/],
    ['raw', new Uint8Array(32).fill(0xff), 'Ed25519', /not an Ed25519 public key/],
    ['spki', new Uint8Array([0x30, 0x05, 0x30]), p256, /ends inside/],
  ];
  for (const [format, data, algorithm, message] of lies) {
    await assert.rejects(importOurs(format, data, algorithm), { name: 'DataError', message }, `${format} ${String(message)}`);
  }
  const ed = await platform.exportKey('spki', (await keyPair(CASES[6] as Case)).publicKey);
  await assert.rejects(importOurs('spki', ed, p256), { name: 'DataError', message: /does not hold an EC public key/ });
});

test('mutated SPKI and raw keys are imported or refused with a DataError, never another failure (fuzzed)', async () => {
  let refused = 0;
  let imported = 0;
  for (const testCase of CASES) {
    const pair = await keyPair(testCase);
    for (const format of testCase.formats.filter((format) => format !== 'jwk')) {
      const original = new Uint8Array((await exported(pair.publicKey, format)) as ArrayBuffer);
      for (let round = 0; round < 60; round++) {
        let mutant = Uint8Array.from(original);
        const at = (round * 7_919) % mutant.length;
        if (round % 3 === 0) mutant[at] = (round * 37) & 0xff;
        else if (round % 3 === 1) mutant = mutant.subarray(0, at);
        else mutant = Uint8Array.from([...mutant.subarray(0, at), 0x81, ...mutant.subarray(at)]);
        try {
          await importOurs(format, mutant, testCase.importAs);
          imported += 1;
        } catch (error) {
          assert.equal((error as Error).name, 'DataError', `${testCase.label} ${format} round ${round}: ${String(error)}`);
          refused += 1;
        }
      }
    }
  }
  assert.ok(refused > imported, `${refused} refused, ${imported} imported`);
});

test('what is not a public signature key goes on to the platform: HMAC keys import, sign and verify as before', async () => {
  const key = await (ours.importKey as (...args: unknown[]) => Promise<CryptoKey>)(
    'raw',
    new Uint8Array(16).fill(1),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign', 'verify'],
  );
  const mac = await ours.sign('HMAC', key, new Uint8Array([1, 2]));
  assert.equal(await ours.verify('HMAC', key, mac, new Uint8Array([1, 2])), true);
  assert.equal(await ours.verify('HMAC', key, mac, new Uint8Array([1, 3])), false);
});

test('ECDSA signatures whose r or s is zero or n, an RSASSA-PKCS1-v1_5 block with trailing bytes (the e = 3 forgery) and an Ed25519 S of L or more do not check out', async () => {
  const p256n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
  const pair = (await platform.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ec = await ours.importKey('jwk', await platform.exportKey('jwk', pair.publicKey), { name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'verify',
  ]);
  const hex = (value: bigint) => value.toString(16).padStart(64, '0');
  for (const [r, s] of [
    [0n, 1n],
    [1n, 0n],
    [p256n, 1n],
    [1n, p256n],
  ] as const) {
    const signature = new Uint8Array(Buffer.from(hex(r) + hex(s), 'hex'));
    assert.equal(await ours.verify({ name: 'ECDSA', hash: 'SHA-256' }, ec, signature, new Uint8Array(1)), false, `r ${r} s ${s}`);
  }

  // With e = 3 and a block checked by parsing, a signature whose cube starts with
  // 00 01 FF .. 00 DigestInfo hash and ends in garbage passes. Build that cube root here.
  const message = new TextEncoder().encode('forged');
  const hash = new Uint8Array(await platform.digest('SHA-256', message));
  const n = ((2n ** 2048n - 1n) / 3n) | 1n;
  const rsa = await ours.importKey(
    'jwk',
    { kty: 'RSA', n: Buffer.from(n.toString(16).padStart(512, '0'), 'hex').toString('base64url'), e: 'Aw' },
    { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    false,
    ['verify'],
  );
  const prefix = `0001ffffffffffffffff00${'3031300d060960864801650304020105000420'}${Buffer.from(hash).toString('hex')}`;
  const target = BigInt(`0x${prefix}`) << BigInt(2048 - prefix.length * 4);
  let root = 1n << 681n;
  for (let step = root; step > 0n; step >>= 1n) if ((root - step) ** 3n >= target) root -= step;
  while (root ** 3n < target) root += 1n;
  assert.ok((root ** 3n).toString(16).padStart(512, '0').startsWith(prefix));
  const forged = new Uint8Array(Buffer.from(root.toString(16).padStart(512, '0'), 'hex'));
  assert.equal(await ours.verify('RSASSA-PKCS1-v1_5', rsa, forged, message), false);

  // S + L is the same scalar, but a signature with S >= L is malleable and refused.
  const l = 2n ** 252n + 27742317777372353535851937790883648493n;
  const ed = (await platform.generateKey({ name: 'Ed25519' }, true, ['sign'])) as unknown as CryptoKeyPair;
  const edKey = await ours.importKey('raw', await platform.exportKey('raw', ed.publicKey), 'Ed25519', false, ['verify']);
  const signature = new Uint8Array(await platform.sign('Ed25519', ed.privateKey, message));
  assert.equal(await ours.verify('Ed25519', edKey, signature, message), true);
  const s = BigInt(`0x${Buffer.from(signature.subarray(32)).reverse().toString('hex')}`);
  if (s + l < 2n ** 256n) {
    const malleable = Uint8Array.from(signature);
    malleable.set(Buffer.from((s + l).toString(16).padStart(64, '0'), 'hex').reverse(), 32);
    assert.equal(await ours.verify('Ed25519', edKey, malleable, message), false);
  }
});
