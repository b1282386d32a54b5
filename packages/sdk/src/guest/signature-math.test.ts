import assert from 'node:assert/strict';
import { createECDH, createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { test } from 'node:test';
import {
  bytesToBigInt,
  CURVES,
  type Digest,
  ecdsaVerify,
  ed25519Verify,
  edDecode,
  isOnCurve,
  rsaPkcs1Verify,
  rsaPssVerify,
} from './signature-math.ts';

const digest: Digest = async (algorithm, data) =>
  new Uint8Array(createHash(algorithm.replace('-', '').toLowerCase()).update(data).digest());

const fromBase64Url = (text: string | undefined): Uint8Array => new Uint8Array(Buffer.from(text ?? '', 'base64url'));

// Flips one random bit, so that each round tries a different place of the signature.
function flipped(bytes: Uint8Array, seed: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  const bit = seed % (copy.length * 8);
  copy[bit >> 3] = (copy[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  return copy;
}

test("each curve's parameters are Node.js's: the generator is private key 1's public key, it is on the curve, and n - 1 times it is its negation", () => {
  const opensslNames = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' } as const;
  for (const curve of Object.values(CURVES)) {
    const one = new Uint8Array(curve.size);
    one[curve.size - 1] = 1;
    const ecdh = createECDH(opensslNames[curve.name]);
    ecdh.setPrivateKey(one);
    const generator = new Uint8Array(ecdh.getPublicKey());
    assert.equal(bytesToBigInt(generator.subarray(1, 1 + curve.size)), curve.gx, curve.name);
    assert.equal(bytesToBigInt(generator.subarray(1 + curve.size)), curve.gy, curve.name);
    assert.ok(isOnCurve(curve, curve.gx, curve.gy), curve.name);
    assert.ok(!isOnCurve(curve, curve.gx, curve.gy + 1n), curve.name);
    // n - 1 times G is -G: same x. A wrong n would give another point.
    const minusOne = new Uint8Array(Buffer.from((curve.n - 1n).toString(16).padStart(curve.size * 2, '0'), 'hex'));
    ecdh.setPrivateKey(minusOne);
    const minusG = new Uint8Array(ecdh.getPublicKey());
    assert.equal(bytesToBigInt(minusG.subarray(1, 1 + curve.size)), curve.gx, curve.name);
    assert.equal(bytesToBigInt(minusG.subarray(1 + curve.size)), curve.p - curve.gy, curve.name);
  }
});

function ecPublic(key: KeyObject) {
  const jwk = key.export({ format: 'jwk' });
  return { x: bytesToBigInt(fromBase64Url(jwk.x)), y: bytesToBigInt(fromBase64Url(jwk.y)) };
}

test("ECDSA: Node.js's signatures check out on every curve and hash, and a changed bit, message or key does not", async () => {
  const cases = [
    ['P-256', 'SHA-256'],
    ['P-256', 'SHA-384'],
    ['P-384', 'SHA-384'],
    ['P-384', 'SHA-1'],
    ['P-521', 'SHA-512'],
    ['P-521', 'SHA-256'],
  ] as const;
  for (const [curveName, hashName] of cases) {
    const curve = CURVES[curveName];
    for (let round = 0; round < 4; round++) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curveName });
      const other = ecPublic(generateKeyPairSync('ec', { namedCurve: curveName }).publicKey);
      const message = new TextEncoder().encode(`message ${round} on ${curveName}`);
      const signature = new Uint8Array(
        sign(hashName.replace('-', '').toLowerCase(), message, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
      );
      const hash = await digest(hashName, message);
      const label = `${curveName} ${hashName} round ${round}`;
      assert.ok(ecdsaVerify(curve, ecPublic(publicKey), hash, signature), label);
      assert.ok(!ecdsaVerify(curve, ecPublic(publicKey), hash, flipped(signature, round * 7919 + 13)), label);
      assert.ok(!ecdsaVerify(curve, ecPublic(publicKey), await digest(hashName, message.subarray(1)), signature), label);
      assert.ok(!ecdsaVerify(curve, other, hash, signature), label);
      assert.ok(!ecdsaVerify(curve, ecPublic(publicKey), hash, signature.subarray(1)), label);
    }
  }
});

test('ECDSA: r or s of zero, or of n or more, is refused, not computed with', () => {
  const curve = CURVES['P-256'];
  const size = curve.size;
  const hex = (value: bigint) => value.toString(16).padStart(size * 2, '0');
  const signatureOf = (r: bigint, s: bigint) => new Uint8Array(Buffer.from(hex(r) + hex(s), 'hex'));
  const key = { x: curve.gx, y: curve.gy };
  const hash = new Uint8Array(32).fill(7);
  for (const [r, s] of [
    [0n, 1n],
    [1n, 0n],
    [curve.n, 1n],
    [1n, curve.n],
  ] as const) {
    assert.equal(ecdsaVerify(curve, key, hash, signatureOf(r, s)), false);
  }
});

test("RSASSA-PKCS1-v1_5 and RSA-PSS: Node.js's signatures check out for each hash, and a changed bit, message or salt length does not", async () => {
  for (const bits of [1024, 2048, 3072]) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
    const jwk = publicKey.export({ format: 'jwk' });
    const key = { n: bytesToBigInt(fromBase64Url(jwk.n)), e: bytesToBigInt(fromBase64Url(jwk.e)) };
    for (const [index, hashName] of ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512'].entries()) {
      const label = `${bits} bits, ${hashName}`;
      const nodeHash = hashName.replace('-', '').toLowerCase();
      const message = new TextEncoder().encode(`a message for ${label}`);
      const hash = await digest(hashName, message);
      const pkcs1 = new Uint8Array(sign(nodeHash, message, privateKey));
      assert.ok(rsaPkcs1Verify(key, hashName, hash, pkcs1), label);
      assert.ok(!rsaPkcs1Verify(key, hashName, hash, flipped(pkcs1, index * 104_729 + bits)), label);
      assert.ok(!rsaPkcs1Verify(key, hashName, await digest(hashName, message.subarray(1)), pkcs1), label);
      assert.ok(!rsaPkcs1Verify(key, hashName === 'SHA-1' ? 'SHA-256' : 'SHA-1', hash, pkcs1), label);

      const saltLength = (index * 13) % 40;
      if (bits === 1024 && hashName === 'SHA-512' && saltLength > 62) continue;
      const pss = new Uint8Array(sign(nodeHash, message, { key: privateKey, padding: 6, saltLength }));
      assert.ok(await rsaPssVerify(key, hashName, digest, hash, pss, saltLength), `PSS ${label} salt ${saltLength}`);
      assert.ok(!(await rsaPssVerify(key, hashName, digest, hash, pss, saltLength + 1)), `PSS ${label}`);
      assert.ok(!(await rsaPssVerify(key, hashName, digest, hash, flipped(pss, index * 7 + bits), saltLength)));
      assert.ok(!(await rsaPssVerify(key, hashName, digest, await digest(hashName, message.subarray(1)), pss, saltLength)));
    }
  }
});

test('RSASSA-PKCS1-v1_5: a signature that decodes to a well-formed block with trailing bytes, the e = 3 forgery, is refused', () => {
  // With e = 3 and a block that is checked by parsing, a signature whose cube starts with
  // 00 01 FF .. 00 DigestInfo hash and ends in garbage passes. Build that cube root here.
  const n = (2n ** 2048n - 1n) / 3n; // only its size matters: the forgery's cube is below n
  const key = { n: n | 1n, e: 3n };
  const hash = new Uint8Array(32).fill(0xab);
  const prefix = '0001ffffffffffffffff00' + '3031300d060960864801650304020105000420' + 'ab'.repeat(32);
  const garbageBits = 2048 - prefix.length * 4;
  const target = BigInt(`0x${prefix}`) << BigInt(garbageBits);
  // The integer cube root rounded up: its cube starts with the prefix and differs only below.
  let root = 1n << BigInt(Math.ceil((2048 - 8) / 3));
  for (let step = root; step > 0n; step >>= 1n) if ((root - step) ** 3n >= target) root -= step;
  while (root ** 3n < target) root += 1n;
  assert.ok((root ** 3n).toString(16).padStart(512, '0').startsWith(prefix));
  const signature = new Uint8Array(Buffer.from(root.toString(16).padStart(512, '0'), 'hex'));
  assert.equal(rsaPkcs1Verify(key, 'SHA-256', hash, signature), false);
});

test("Ed25519: Node.js's signatures check out, and a changed bit, message or key does not; S of L or more is refused", async () => {
  for (let round = 0; round < 12; round++) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const raw = fromBase64Url(publicKey.export({ format: 'jwk' }).x);
    const message = new Uint8Array(round * 37).fill(round);
    const signature = new Uint8Array(sign(null, message, privateKey));
    assert.ok(await ed25519Verify(raw, signature, message, digest), `round ${round}`);
    assert.ok(!(await ed25519Verify(raw, flipped(signature, round * 31 + 5), message, digest)), `round ${round}`);
    assert.ok(!(await ed25519Verify(raw, signature, new Uint8Array([...message, 1]), digest)), `round ${round}`);
    assert.ok(!(await ed25519Verify(flipped(raw, round), signature, message, digest)), `round ${round}`);
    // S + L is the same scalar, but a signature with S >= L is malleable and refused.
    const l = 2n ** 252n + 27742317777372353535851937790883648493n;
    const s = bytesToBigInt(Uint8Array.from(signature.subarray(32)).reverse());
    const bigger = Uint8Array.from(Buffer.from((s + l).toString(16).padStart(64, '0'), 'hex')).reverse();
    if (s + l < 2n ** 256n) {
      const malleable = Uint8Array.from(signature);
      malleable.set(bigger, 32);
      assert.ok(!(await ed25519Verify(raw, malleable, message, digest)), `round ${round}`);
    }
  }
});

test('Ed25519: bytes that are no point of the curve are no key', () => {
  let refused = 0;
  for (let seed = 0; seed < 64; seed++) {
    const bytes = new Uint8Array(32).map((_, i) => (seed * 131 + i * 17) & 0xff);
    if (!edDecode(bytes)) refused += 1;
  }
  // About half of all y values have no x on the curve.
  assert.ok(refused > 10 && refused < 54, `${refused} of 64 refused`);
  const tooLarge = new Uint8Array(32).fill(0xff);
  tooLarge[31] = 0x7f;
  assert.equal(edDecode(tooLarge), undefined);
  assert.equal(edDecode(new Uint8Array(31)), undefined);
});
