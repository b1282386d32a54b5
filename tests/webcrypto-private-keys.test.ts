// The SDK's private-key WebCrypto over the host's stratum:crypto primitives, layered as a capsule
// has it (public keys, private keys, secret keys), compared with Node.js's own WebCrypto: keys
// and signatures cross both ways.
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { test } from 'node:test';
import { primitives } from '../packages/host/src/capabilities/crypto/index.ts';
import { addPrivateKeys } from '../packages/sdk/src/guest/crypto-private-keys.ts';
import { addPublicKeys } from '../packages/sdk/src/guest/crypto-public-keys.ts';
import { addSecretKeys } from '../packages/sdk/src/guest/crypto-secret-keys.ts';

type Subtle = webcrypto.SubtleCrypto;
type Key = webcrypto.CryptoKey;
type Pair = webcrypto.CryptoKeyPair;
const node = webcrypto.subtle;
const ours = {} as Subtle;
const publicKeys = addPublicKeys(ours, node, globalThis.CryptoKey.prototype, primitives);
addPrivateKeys(ours, primitives, globalThis.CryptoKey.prototype, publicKeys);
addSecretKeys(ours, primitives, globalThis.CryptoKey.prototype);

const RSA = { modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) };
const CASES = [
  { label: 'ECDSA P-256', key: { name: 'ECDSA', namedCurve: 'P-256' }, signWith: { name: 'ECDSA', hash: 'SHA-256' } },
  { label: 'ECDSA P-384', key: { name: 'ECDSA', namedCurve: 'P-384' }, signWith: { name: 'ECDSA', hash: 'SHA-384' } },
  { label: 'ECDSA P-521', key: { name: 'ECDSA', namedCurve: 'P-521' }, signWith: { name: 'ECDSA', hash: 'SHA-512' } },
  { label: 'RSASSA-PKCS1-v1_5', key: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', ...RSA }, signWith: { name: 'RSASSA-PKCS1-v1_5' } },
  { label: 'RSA-PSS', key: { name: 'RSA-PSS', hash: 'SHA-256', ...RSA }, signWith: { name: 'RSA-PSS', saltLength: 32 } },
  { label: 'Ed25519', key: { name: 'Ed25519' }, signWith: { name: 'Ed25519' } },
] as const;

const message = new TextEncoder().encode('signed in a capsule');

test('a key pair made here signs what Node.js verifies, and exports keys Node.js imports and signs with', async () => {
  for (const { label, key, signWith } of CASES) {
    const pair = (await ours.generateKey(key, true, ['sign', 'verify'])) as Pair;
    assert.equal(pair.privateKey.type, 'private', label);
    assert.equal(pair.publicKey.type, 'public', label);
    assert.deepEqual({ ...pair.privateKey.algorithm }, { ...pair.publicKey.algorithm }, label);
    const signature = await ours.sign(signWith, pair.privateKey, message);
    const spki = await ours.exportKey('spki', pair.publicKey);
    const theirPublic = await node.importKey('spki', spki, key, true, ['verify']);
    assert.equal(await node.verify(signWith, theirPublic, signature, message), true, `${label}: Node.js verifies ours`);
    assert.equal(await ours.verify(signWith, pair.publicKey, signature, message), true, label);
    // The public key's JWK is the one Node.js gives for the same key.
    const jwk = (await ours.exportKey('jwk', pair.publicKey)) as webcrypto.JsonWebKey;
    const theirJwk = await node.exportKey('jwk', theirPublic);
    for (const member of ['kty', 'crv', 'x', 'y', 'n', 'e'] as const) assert.equal(jwk[member], theirJwk[member], `${label} ${member}`);

    for (const format of ['pkcs8', 'jwk'] as const) {
      const exported = await (ours.exportKey as (format: string, key: Key) => Promise<unknown>)(format, pair.privateKey);
      const theirPrivate =
        format === 'jwk'
          ? await node.importKey('jwk', exported as webcrypto.JsonWebKey, key, false, ['sign'])
          : await node.importKey('pkcs8', exported as ArrayBuffer, key, false, ['sign']);
      const theirs = await node.sign(signWith, theirPrivate, message);
      assert.equal(await ours.verify(signWith, pair.publicKey, theirs, message), true, `${label}: ${format} round trip`);
    }
  }
});

test("Node.js's private keys, imported as PKCS#8 or JWK, sign here what Node.js verifies", async () => {
  for (const { label, key, signWith } of CASES) {
    const theirs = (await node.generateKey(key, true, ['sign', 'verify'])) as Pair;
    for (const format of ['pkcs8', 'jwk']) {
      const data = format === 'jwk' ? await node.exportKey('jwk', theirs.privateKey) : await node.exportKey('pkcs8', theirs.privateKey);
      const mine = await (ours.importKey as (...args: unknown[]) => Promise<Key>)(format, data, key, false, ['sign']);
      assert.equal(mine.type, 'private');
      assert.equal(mine.extractable, false);
      const signature = await ours.sign(signWith, mine, message);
      assert.equal(await node.verify(signWith, theirs.publicKey, signature, message), true, `${label} from ${format}`);
    }
  }
});

test('private keys that lie, wrong usages and the bounds of the host are refused with the errors WebCrypto names', async () => {
  const p384Pair = (await node.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign'])) as Pair;
  const pkcs8 = new Uint8Array(await node.exportKey('pkcs8', p384Pair.privateKey));
  const p256 = { name: 'ECDSA', namedCurve: 'P-256' };
  const p384 = { name: 'ECDSA', namedCurve: 'P-384' };
  const importing = ours.importKey as (...args: unknown[]) => Promise<Key>;
  const mine = (await ours.generateKey(p256, false, ['sign', 'verify'])) as Pair;
  const p384Jwk = await node.exportKey('jwk', p384Pair.privateKey);
  const cases: [() => Promise<unknown>, string, RegExp][] = [
    [() => importing('pkcs8', pkcs8, p256, false, ['sign']), 'DataError', /the private key is p384, not p256/],
    [() => importing('pkcs8', pkcs8.subarray(0, 40), p256, false, ['sign']), 'DataError', /does not parse as PKCS#8/],
    [
      () => importing('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-384' }, false, ['verify']),
      'SyntaxError',
      /can only "sign", not "verify"/,
    ],
    // A `d` that is not base64url, one that is another key's, and a public point off the curve.
    [() => importing('jwk', { ...p384Jwk, d: '!!' }, p384, false, ['sign']), 'DataError', /parts do not belong together/],
    [() => importing('jwk', { ...p384Jwk, d: p384Jwk.x }, p384, false, ['sign']), 'DataError', /parts do not belong together/],
    [
      () => importing('jwk', { ...p384Jwk, x: p384Jwk.y }, p384, false, ['sign']),
      'DataError',
      /does not parse as a JWK|do not belong together/,
    ],
    [
      () => ours.verify({ name: 'ECDSA', hash: 'SHA-256' }, mine.privateKey, new Uint8Array(64), message),
      'InvalidAccessError',
      /private key cannot verify/,
    ],
    [() => ours.sign({ name: 'ECDSA', hash: 'SHA-256' }, mine.publicKey, message), 'InvalidAccessError', /public key cannot sign/],
    [() => ours.exportKey('pkcs8', mine.privateKey), 'InvalidAccessError', /not extractable/],
    [
      () =>
        ours.generateKey(
          { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) },
          false,
          ['sign'],
        ),
      'OperationError',
      /2048 to 4096 bits/,
    ],
    [() => ours.generateKey(p256, false, ['verify']), 'SyntaxError', /needs a usage for its private key/],
  ];
  for (const [attempt, name, pattern] of cases) await assert.rejects(attempt(), { name, message: pattern }, String(pattern));
});

test('ECDH and X25519: a pair made here and one of Node.js agree on the secret Node.js derives, keys crossing in every format', async () => {
  const algorithms = [{ name: 'ECDH', namedCurve: 'P-256' }, { name: 'ECDH', namedCurve: 'P-384' }, { name: 'X25519' }] as const;
  for (const algorithm of algorithms) {
    const label = 'namedCurve' in algorithm ? algorithm.namedCurve : algorithm.name;
    const mine = (await ours.generateKey(algorithm, true, ['deriveBits', 'deriveKey'])) as Pair;
    assert.deepEqual(mine.publicKey.usages, [], label);
    const theirs = (await node.generateKey(algorithm, true, ['deriveBits'])) as Pair;
    // Each side's public key as the other takes it: raw, as a web push subscription's p256dh is.
    const theirPublic = await ours.importKey('raw', await node.exportKey('raw', theirs.publicKey), algorithm, true, []);
    const myPublic = await node.importKey('raw', await ours.exportKey('raw', mine.publicKey), algorithm, true, []);
    const secret = new Uint8Array(await ours.deriveBits({ name: algorithm.name, public: theirPublic }, mine.privateKey, null));
    const expected = new Uint8Array(await node.deriveBits({ name: algorithm.name, public: myPublic }, theirs.privateKey, null));
    assert.deepEqual(secret, expected, label);
    // Node.js's private key, imported here as PKCS#8 and as JWK, agrees on the same secret.
    for (const format of ['pkcs8', 'jwk']) {
      const data = format === 'jwk' ? await node.exportKey('jwk', theirs.privateKey) : await node.exportKey('pkcs8', theirs.privateKey);
      const imported = await (ours.importKey as (...args: unknown[]) => Promise<Key>)(format, data, algorithm, false, ['deriveBits']);
      const myPublicHere = await ours.importKey('spki', await ours.exportKey('spki', mine.publicKey), algorithm, true, []);
      const again = new Uint8Array(await ours.deriveBits({ name: algorithm.name, public: myPublicHere }, imported, 128));
      assert.deepEqual(again, expected.subarray(0, 16), `${label} from ${format}`);
    }
  }
  const p256 = (await ours.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveKey'])) as Pair;
  const other = (await node.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits'])) as Pair;
  const otherHere = await ours.importKey(
    'jwk',
    await node.exportKey('jwk', other.publicKey),
    { name: 'ECDH', namedCurve: 'P-256' },
    true,
    [],
  );
  const aes = await ours.deriveKey({ name: 'ECDH', public: otherHere }, p256.privateKey, { name: 'AES-GCM', length: 256 }, true, [
    'encrypt',
  ]);
  const p256Here = await node.importKey(
    'spki',
    await ours.exportKey('spki', p256.publicKey),
    { name: 'ECDH', namedCurve: 'P-256' },
    true,
    [],
  );
  const bits = await node.deriveBits({ name: 'ECDH', public: p256Here }, other.privateKey, 256);
  assert.deepEqual(new Uint8Array(await ours.exportKey('raw', aes)), new Uint8Array(bits));
  const p384 = (await ours.generateKey({ name: 'ECDH', namedCurve: 'P-384' }, false, ['deriveBits'])) as Pair;
  await assert.rejects(ours.deriveBits({ name: 'ECDH', public: p384.publicKey }, p256.privateKey, 256), { name: 'InvalidAccessError' });
  await assert.rejects(ours.deriveBits({ name: 'ECDH', public: otherHere }, p384.privateKey, 256), {
    name: 'OperationError',
    message: /p256, the private key p384/,
  });
  await assert.rejects(
    ours.importKey('raw', await ours.exportKey('raw', p256.publicKey), { name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']),
    {
      name: 'SyntaxError',
      message: /has no usages/,
    },
  );
});
