import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateEd25519KeyPair, jwkThumbprint, publicKeyFromRaw, signEd25519, verifyEd25519 } from './signing.ts';

test('Ed25519 sign and verify round trip, and tampering fails', async () => {
  const pair = await generateEd25519KeyPair();
  const data = new TextEncoder().encode('hello');
  const signature = await signEd25519(pair.privateJwk, data);
  assert.equal(await verifyEd25519(pair.publicJwk, data, signature), true);
  assert.equal(await verifyEd25519(pair.publicJwk, new TextEncoder().encode('hellO'), signature), false);
  const other = await generateEd25519KeyPair();
  assert.equal(await verifyEd25519(other.publicJwk, data, signature), false);
});

test('RFC 8037 appendix A.3 thumbprint vector', () => {
  const thumbprint = jwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' });
  assert.equal(thumbprint, 'kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k');
});

test('raw public keys must be 32 bytes of canonical base64url', () => {
  assert.throws(() => publicKeyFromRaw('abc'), /32 bytes/);
  const jwk = publicKeyFromRaw('11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo');
  assert.equal(jwk.kid, 'kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k');
});
