import { createHash, generateKeyPairSync, webcrypto } from 'node:crypto';
import { StratumError } from './errors.ts';

const { subtle } = webcrypto;

/** An Ed25519 key pair as JWKs (RFC 8037), the form Stratum stores and exchanges keys in. */
export interface Ed25519KeyPair {
  publicJwk: Ed25519PublicJwk;
  privateJwk: Ed25519PrivateJwk;
}

export interface Ed25519PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid?: string;
}

export interface Ed25519PrivateJwk extends Ed25519PublicJwk {
  d: string;
}

export async function generateEd25519KeyPair(): Promise<Ed25519KeyPair> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const exported = privateKey.export({ format: 'jwk' });
  if (exported.x === undefined || exported.d === undefined) {
    throw new StratumError('KEYGEN_FAILED', 'Ed25519 key generation returned an incomplete key', { user: false });
  }
  const publicJwk: Ed25519PublicJwk = { kty: 'OKP', crv: 'Ed25519', x: exported.x };
  publicJwk.kid = jwkThumbprint(publicJwk);
  return { publicJwk, privateJwk: { ...publicJwk, d: exported.d } };
}

/** The RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key. */
export function jwkThumbprint(jwk: Pick<Ed25519PublicJwk, 'crv' | 'kty' | 'x'>): string {
  // RFC 7638 section 3.2: required members only, lexicographic order, no white space.
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x });
  return createHash('sha256').update(canonical).digest('base64url');
}

/** The raw 32-byte public key, base64url, as published in DNS records. */
export function publicKeyFromRaw(raw: string): Ed25519PublicJwk {
  const bytes = Buffer.from(raw, 'base64url');
  if (bytes.length !== 32 || bytes.toString('base64url') !== raw) {
    throw new StratumError('INVALID_PUBLIC_KEY', 'an Ed25519 public key is 32 bytes in unpadded base64url', {
      details: [`got ${bytes.length} bytes from "${raw.slice(0, 60)}"`],
    });
  }
  const jwk: Ed25519PublicJwk = { kty: 'OKP', crv: 'Ed25519', x: raw };
  jwk.kid = jwkThumbprint(jwk);
  return jwk;
}

export async function signEd25519(privateJwk: Ed25519PrivateJwk, data: Uint8Array): Promise<Uint8Array> {
  const key = await subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', x: privateJwk.x, d: privateJwk.d }, { name: 'Ed25519' }, false, [
    'sign',
  ]);
  return new Uint8Array(await subtle.sign({ name: 'Ed25519' }, key, data));
}

export async function verifyEd25519(publicJwk: Ed25519PublicJwk, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
  try {
    const key = await subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', x: publicJwk.x }, { name: 'Ed25519' }, false, ['verify']);
    return await subtle.verify({ name: 'Ed25519' }, key, signature, data);
  } catch {
    // A malformed key or signature is simply not a valid signature.
    return false;
  }
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
