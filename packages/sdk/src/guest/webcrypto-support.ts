/// <reference path="../wit/guest.generated.d.ts" />
// What the SDK's WebCrypto layers (crypto-public-keys.ts, crypto-secret-keys.ts) share: reading
// WebCrypto's arguments and failing the way WebCrypto names its failures.

import type { Hash, SignatureScheme } from 'stratum:crypto/primitives@0.1.0';
import { witError } from './errors.ts';

// WebCrypto's types, as the project's type definitions (Node.js's) name them.
export type SubtleCrypto = typeof globalThis.crypto.subtle;
export type CryptoKey = Awaited<ReturnType<SubtleCrypto['importKey']>>;

export type FailureName = 'DataError' | 'NotSupportedError' | 'InvalidAccessError' | 'SyntaxError' | 'OperationError';

export function failure(name: FailureName, message: string): DOMException {
  return new DOMException(message, name);
}

export function parametersOf(algorithm: unknown): Record<string, unknown> {
  return typeof algorithm === 'object' && algorithm !== null ? (algorithm as Record<string, unknown>) : {};
}

export function nameOf(algorithm: unknown): string {
  if (typeof algorithm === 'string') return algorithm;
  const name = parametersOf(algorithm).name;
  if (typeof name === 'string') return name;
  throw new TypeError('the algorithm must be a name or an object with a name');
}

export const HASH_NAMES = ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512'] as const;
export type HashName = (typeof HASH_NAMES)[number];

/** A hash as stratum:crypto names it. */
export type WitHash = Hash;

/** Each hash's name in stratum:crypto, its block (an HMAC key's default length) and its JWK `alg` suffix. */
export const HASHES: Readonly<Record<HashName, { wit: WitHash; blockBits: number; jwk: string }>> = {
  'SHA-1': { wit: 'sha1', blockBits: 512, jwk: '1' },
  'SHA-256': { wit: 'sha256', blockBits: 512, jwk: '256' },
  'SHA-384': { wit: 'sha384', blockBits: 1024, jwk: '384' },
  'SHA-512': { wit: 'sha512', blockBits: 1024, jwk: '512' },
};

/** A signature scheme as stratum:crypto names it, by WebCrypto's algorithm. */
export type Scheme = SignatureScheme;
export const SCHEMES: Readonly<Record<string, Scheme>> = {
  ECDSA: 'ecdsa',
  'RSASSA-PKCS1-v1_5': 'rsassa-pkcs1-v1-5',
  'RSA-PSS': 'rsa-pss',
  Ed25519: 'ed25519',
};

/** A JWK's `alg` for an HMAC or RSA key bound to `hash`: HS256, RS384, PS512 and the like. */
export function jwkAlg(kind: 'HMAC' | 'RSASSA-PKCS1-v1_5' | 'RSA-PSS', hash: string): string {
  const prefix = kind === 'HMAC' ? 'HS' : kind === 'RSA-PSS' ? 'PS' : 'RS';
  return `${prefix}${HASHES[hash as HashName]?.jwk ?? ''}`;
}

/**
 * A stratum:crypto call, its error as WebCrypto's: `name` for input the host will not take,
 * OperationError for data that does not check out. The message says what the host said.
 */
export function fromHost<T>(name: FailureName, what: string, work: () => T): T {
  try {
    return work();
  } catch (thrown) {
    const variant = witError(thrown);
    if (!variant) throw thrown;
    if (variant.tag === 'operation-failed') throw failure('OperationError', `${what} failed: the data does not check out with this key`);
    throw failure(name, `${what}: ${typeof variant.val === 'string' ? variant.val : variant.tag}`);
  }
}

/** A hash named as WebCrypto names it, whatever the case it was given in. */
export function hashOf(hash: unknown, what: string): HashName {
  if (hash === undefined) throw new TypeError(`${what} needs a hash ('SHA-256', say)`);
  const name = nameOf(hash).toUpperCase();
  const known = HASH_NAMES.find((candidate) => candidate === name);
  if (!known) throw failure('NotSupportedError', `${what}: the hash ${nameOf(hash)} is not one of ${HASH_NAMES.join(', ')}`);
  return known;
}

/** A copy of a BufferSource, known by its internal slots rather than `instanceof` (see binding-arrays.ts). */
export function bytesOf(data: unknown, what: string): Uint8Array {
  if (ArrayBuffer.isView(data)) return Uint8Array.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (Object.prototype.toString.call(data) === '[object ArrayBuffer]') return Uint8Array.from(new Uint8Array(data as ArrayBuffer));
  throw new TypeError(`${what} must be an ArrayBuffer or a view of one`);
}

export function base64Url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A JWK member's bytes; a DataError that names the member when it is not base64url. */
export function fromBase64Url(text: unknown, member: string): Uint8Array {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw failure('DataError', `the JWK's "${member}" is not base64url`);
  }
  const binary = atob(
    text
      .replace(/-/g, '+')
      .replace(/_/g, '/')
      .padEnd(Math.ceil(text.length / 4) * 4, '='),
  );
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

/** A JWK's `use`, `key_ops` and `ext` checked against what it is imported for. */
export function checkJwkUse(jwk: Record<string, unknown>, use: 'sig' | 'enc', extractable: boolean, usages: readonly string[]): void {
  if (jwk.use !== undefined && jwk.use !== use) throw failure('DataError', `the JWK's "use" is ${JSON.stringify(jwk.use)}, not "${use}"`);
  if (jwk.key_ops !== undefined) {
    const ops = jwk.key_ops;
    if (!Array.isArray(ops) || usages.some((usage) => !ops.includes(usage))) {
      throw failure('DataError', `the JWK's "key_ops" do not allow ${usages.join(', ')}`);
    }
  }
  if (jwk.ext === false && extractable)
    throw failure('DataError', 'the JWK is not extractable ("ext": false), but extractable was asked for');
}

/** A CryptoKey of the SDK's own, which the engine's prototype gives `instanceof CryptoKey`. */
export function makeCryptoKey(
  prototype: object,
  fields: { type: 'public' | 'private' | 'secret'; extractable: boolean; algorithm: object; usages: readonly string[] },
): CryptoKey {
  const key = Object.create(prototype) as CryptoKey;
  Object.defineProperties(key, {
    type: { value: fields.type, enumerable: true },
    extractable: { value: fields.extractable, enumerable: true },
    algorithm: { value: Object.freeze(fields.algorithm), enumerable: true },
    usages: { value: Object.freeze([...new Set(fields.usages)]), enumerable: true },
  });
  return key;
}
