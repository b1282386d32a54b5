// The SDK's secret-key WebCrypto over the host's stratum:crypto primitives, both real, compared
// with Node.js's own WebCrypto: what one encrypts the other decrypts, and derived bits agree.
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { test } from 'node:test';
import { primitives } from '../packages/host/src/capabilities/crypto/index.ts';
import { addPublicKeys } from '../packages/sdk/src/guest/crypto-public-keys.ts';
import { addSecretKeys } from '../packages/sdk/src/guest/crypto-secret-keys.ts';

type Subtle = webcrypto.SubtleCrypto;
const node = webcrypto.subtle;
const ours = {} as Subtle;
addPublicKeys(ours, node, globalThis.CryptoKey.prototype, primitives);
addSecretKeys(ours, primitives, globalThis.CryptoKey.prototype);

const encoder = new TextEncoder();
const bytes = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

test('PBKDF2 and HKDF derive the bits Node.js derives, for each hash', async () => {
  for (const hash of ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512']) {
    const password = encoder.encode('correct horse battery staple');
    const pbkdf2 = { name: 'PBKDF2', hash, salt: bytes(16, 1), iterations: 1000 };
    const mine = await ours.importKey('raw', password, 'PBKDF2', false, ['deriveBits']);
    const theirs = await node.importKey('raw', password, 'PBKDF2', false, ['deriveBits']);
    assert.deepEqual(
      new Uint8Array(await ours.deriveBits(pbkdf2, mine, 256)),
      new Uint8Array(await node.deriveBits(pbkdf2, theirs, 256)),
      hash,
    );

    const hkdf = { name: 'HKDF', hash, salt: bytes(32, 2), info: encoder.encode('session') };
    const ikm = bytes(32, 3);
    const mineH = await ours.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
    const theirsH = await node.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
    assert.deepEqual(
      new Uint8Array(await ours.deriveBits(hkdf, mineH, 512)),
      new Uint8Array(await node.deriveBits(hkdf, theirsH, 512)),
      hash,
    );
  }
});

test('AES-GCM and AES-CBC: what one side encrypts the other decrypts, a changed byte fails with an OperationError', async () => {
  for (const length of [16, 24, 32]) {
    const raw = bytes(length, length);
    const plaintext = encoder.encode(`a secret of ${length} bytes' key`.repeat(3));
    const gcm = { name: 'AES-GCM', iv: bytes(12, 9), additionalData: encoder.encode('header'), tagLength: 96 };
    const mine = await ours.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
    const theirs = await node.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
    const sealed = new Uint8Array(await ours.encrypt(gcm, mine, plaintext));
    assert.deepEqual(sealed, new Uint8Array(await node.encrypt(gcm, theirs, plaintext)), `GCM ${length}`);
    assert.deepEqual(new Uint8Array(await ours.decrypt(gcm, mine, sealed)), plaintext);
    const changed = Uint8Array.from(sealed);
    changed[5] = (changed[5] ?? 0) ^ 1;
    await assert.rejects(ours.decrypt(gcm, mine, changed), { name: 'OperationError', message: /does not check out with this key/ });
    await assert.rejects(ours.decrypt({ ...gcm, additionalData: encoder.encode('other') }, mine, sealed), { name: 'OperationError' });

    const cbc = { name: 'AES-CBC', iv: bytes(16, 4) };
    const mineC = await ours.importKey('raw', raw, 'AES-CBC', false, ['encrypt', 'decrypt']);
    const theirsC = await node.importKey('raw', raw, 'AES-CBC', false, ['encrypt', 'decrypt']);
    const cipher = await node.encrypt(cbc, theirsC, plaintext);
    assert.deepEqual(new Uint8Array(await ours.decrypt(cbc, mineC, cipher)), plaintext, `CBC ${length}`);
    assert.deepEqual(new Uint8Array(await ours.encrypt(cbc, mineC, plaintext)), new Uint8Array(cipher));
    await assert.rejects(ours.decrypt(cbc, mineC, new Uint8Array(cipher).subarray(0, 20)), { name: 'OperationError' });
    await assert.rejects(ours.encrypt({ ...cbc, iv: bytes(12, 0) }, mineC, plaintext), {
      name: 'OperationError',
      message: /IV is 16 bytes, not 12/,
    });
  }
});

test('deriveKey from a password makes the AES key Node.js makes; generateKey and exportKey round-trip through JWK', async () => {
  const password = await ours.importKey('raw', encoder.encode('hunter2'), 'PBKDF2', false, ['deriveKey']);
  const nodePassword = await node.importKey('raw', encoder.encode('hunter2'), 'PBKDF2', false, ['deriveKey']);
  const pbkdf2 = { name: 'PBKDF2', hash: 'SHA-256', salt: bytes(16, 5), iterations: 100_000 };
  const key = await ours.deriveKey(pbkdf2, password, { name: 'AES-GCM', length: 256 }, true, ['encrypt']);
  const nodeKey = await node.deriveKey(pbkdf2, nodePassword, { name: 'AES-GCM', length: 256 }, true, ['encrypt']);
  assert.deepEqual(new Uint8Array((await ours.exportKey('raw', key)) as ArrayBuffer), new Uint8Array(await node.exportKey('raw', nodeKey)));
  assert.deepEqual({ ...key.algorithm }, { name: 'AES-GCM', length: 256 });
  assert.equal(key.type, 'secret');

  const made = await ours.generateKey({ name: 'AES-CBC', length: 128 }, true, ['encrypt', 'decrypt']);
  const jwk = (await ours.exportKey('jwk', made as webcrypto.CryptoKey)) as webcrypto.JsonWebKey;
  assert.equal(jwk.alg, 'A128CBC');
  const imported = await node.importKey('jwk', jwk, 'AES-CBC', true, ['encrypt', 'decrypt']);
  assert.deepEqual(
    new Uint8Array(await node.exportKey('raw', imported)),
    new Uint8Array((await ours.exportKey('raw', made as webcrypto.CryptoKey)) as ArrayBuffer),
  );

  // HMAC keys stay the engine's (here Node.js's), and can now be made, exported and derived.
  const hmac = (await ours.generateKey({ name: 'HMAC', hash: 'SHA-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKey;
  const hmacJwk = (await ours.exportKey('jwk', hmac)) as webcrypto.JsonWebKey;
  assert.equal(hmacJwk.alg, 'HS256');
  assert.equal(Buffer.from(hmacJwk.k ?? '', 'base64url').length, 64);
  const signature = await ours.sign('HMAC', hmac, encoder.encode('m'));
  const again = await node.importKey('jwk', hmacJwk, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  assert.equal(await node.verify('HMAC', again, signature, encoder.encode('m')), true);
});

test('what WebCrypto refuses is refused with the error it names, and what the host bounds says its bound', async () => {
  const aes = await ours.importKey('raw', bytes(32, 0), 'AES-GCM', false, ['encrypt']);
  const password = await ours.importKey('raw', encoder.encode('pw'), 'PBKDF2', false, ['deriveBits']);
  const cases: [Promise<unknown>, string, RegExp][] = [
    [ours.importKey('raw', bytes(20, 0), 'AES-GCM', false, ['encrypt']), 'DataError', /16, 24 or 32 bytes, not 20/],
    [ours.importKey('raw', bytes(16, 0), 'PBKDF2', true, ['deriveBits']), 'SyntaxError', /cannot be extractable/],
    [ours.importKey('raw', bytes(16, 0), 'AES-GCM', false, ['sign']), 'SyntaxError', /cannot be used to "sign"/],
    [ours.importKey('raw', bytes(16, 0), 'AES-CTR', false, ['encrypt']), 'NotSupportedError', /AES-CTR is not available/],
    [
      ours.importKey('jwk', { kty: 'oct', k: 'AAAAAAAAAAAAAAAAAAAAAA', alg: 'A256GCM' }, 'AES-GCM', false, ['encrypt']),
      'DataError',
      /"alg" is "A256GCM", but this key is A128GCM/,
    ],
    [ours.decrypt({ name: 'AES-GCM', iv: bytes(12, 0) }, aes, bytes(32, 0)), 'InvalidAccessError', /not made for "decrypt"/],
    [ours.sign('HMAC', aes, bytes(1, 0)), 'InvalidAccessError', /AES-GCM key cannot sign/],
    [
      ours.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: bytes(8, 0), iterations: 2_000_000 }, password, 256),
      'OperationError',
      /1 to 1,000,000 iterations/,
    ],
    [
      ours.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: bytes(8, 0), iterations: 1000 }, password, 12),
      'OperationError',
      /multiple of 8 bits/,
    ],
    [ours.generateKey({ name: 'X25519' }, false, ['deriveBits']), 'NotSupportedError', /cannot make X25519 keys/],
    [ours.exportKey('raw', aes), 'InvalidAccessError', /not extractable/],
  ];
  for (const [attempt, name, message] of cases) await assert.rejects(attempt, { name, message }, String(message));
});
