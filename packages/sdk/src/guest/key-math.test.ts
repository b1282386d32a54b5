import assert from 'node:assert/strict';
import { createECDH, generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { bytesToBigInt, CURVES, isEdPoint, isOnCurve } from './key-math.ts';

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

test("Ed25519: Node.js's public keys are points of the curve, and bytes that are no point are no key", () => {
  for (let round = 0; round < 8; round++) {
    const raw = Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
    assert.ok(isEdPoint(new Uint8Array(raw)), `round ${round}`);
  }
  let refused = 0;
  for (let seed = 0; seed < 64; seed++) {
    const bytes = new Uint8Array(32).map((_, i) => (seed * 131 + i * 17) & 0xff);
    if (!isEdPoint(bytes)) refused += 1;
  }
  // About half of all y values have no x on the curve.
  assert.ok(refused > 10 && refused < 54, `${refused} of 64 refused`);
  const tooLarge = new Uint8Array(32).fill(0xff);
  tooLarge[31] = 0x7f;
  assert.equal(isEdPoint(tooLarge), false);
  assert.equal(isEdPoint(new Uint8Array(31)), false);
});
