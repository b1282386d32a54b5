import { createCipheriv, createDecipheriv, hkdfSync, pbkdf2Sync } from 'node:crypto';
import { StratumError } from '@stratum/core';
import type { Capability } from '../contract.ts';
import { WitError } from '../contract.ts';

/**
 * `stratum:crypto/primitives`: PBKDF2, HKDF, AES-GCM and AES-CBC computed by Node.js (OpenSSL)
 * for capsules whose engine lacks them. Served to every capsule without a grant, as a digest
 * would be: a call reads its arguments and nothing else. Each call runs synchronously on the
 * capsule's own thread, so its CPU time is the capsule's, and the bounds below keep one call
 * short enough (1,000,000 PBKDF2 rounds: about half a second) that an instance past its time
 * limit is ended soon after, since a thread cannot be stopped inside OpenSSL.
 */

type Hash = 'sha1' | 'sha256' | 'sha384' | 'sha512';

const HASH_BYTES: Readonly<Record<Hash, number>> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };
const MAX_PBKDF2_ITERATIONS = 1_000_000;
const MAX_DERIVED_BYTES = 1024;
const GCM_TAG_BYTES = new Set([4, 8, 12, 13, 14, 15, 16]);

function invalid(message: string): WitError {
  return new WitError({ tag: 'invalid-input', val: message });
}

function hashOf(hash: unknown): Hash {
  if (typeof hash !== 'string' || !(hash in HASH_BYTES)) throw invalid(`unknown hash ${String(hash)}`);
  return hash as Hash;
}

function aesName(key: Uint8Array, mode: 'gcm' | 'cbc'): `aes-${128 | 192 | 256}-${typeof mode}` {
  if (key.byteLength !== 16 && key.byteLength !== 24 && key.byteLength !== 32) {
    throw invalid(`an AES key is 16, 24 or 32 bytes, not ${key.byteLength}`);
  }
  return `aes-${(key.byteLength * 8) as 128 | 192 | 256}-${mode}`;
}

function gcmArguments(iv: Uint8Array, tagLength: number): void {
  if (iv.byteLength < 1 || iv.byteLength > 1024)
    throw invalid(`an AES-GCM IV is 1 to 1024 bytes (12 is the one to use), not ${iv.byteLength}`);
  if (!GCM_TAG_BYTES.has(tagLength)) throw invalid(`an AES-GCM tag is 4, 8, or 12 to 16 bytes, not ${tagLength}`);
}

function cbcIv(iv: Uint8Array): void {
  if (iv.byteLength !== 16) throw invalid(`an AES-CBC IV is 16 bytes, not ${iv.byteLength}`);
}

function joined(...parts: Buffer[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

export const primitives = {
  pbkdf2(hash: Hash, password: Uint8Array, salt: Uint8Array, iterations: number, length: number): Uint8Array {
    const digest = hashOf(hash);
    if (iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) {
      throw invalid(`PBKDF2 takes 1 to ${MAX_PBKDF2_ITERATIONS.toLocaleString('en')} iterations, not ${iterations}`);
    }
    if (length < 1 || length > MAX_DERIVED_BYTES) throw invalid(`PBKDF2 derives 1 to ${MAX_DERIVED_BYTES} bytes, not ${length}`);
    return new Uint8Array(pbkdf2Sync(password, salt, iterations, length, digest));
  },
  hkdf(hash: Hash, key: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
    const digest = hashOf(hash);
    const most = Math.min(255 * HASH_BYTES[digest], MAX_DERIVED_BYTES);
    if (length < 1 || length > most) throw invalid(`HKDF with ${digest} derives 1 to ${most} bytes, not ${length}`);
    if (info.byteLength > 1024) throw invalid(`HKDF's info is at most 1024 bytes, not ${info.byteLength}`);
    return new Uint8Array(hkdfSync(digest, key, salt, info, length));
  },
  aesGcmEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array, additionalData: Uint8Array, tagLength: number): Uint8Array {
    gcmArguments(iv, tagLength);
    const cipher = createCipheriv(aesName(key, 'gcm') as 'aes-256-gcm', key, iv, { authTagLength: tagLength });
    cipher.setAAD(additionalData);
    return joined(cipher.update(data), cipher.final(), cipher.getAuthTag());
  },
  aesGcmDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array, additionalData: Uint8Array, tagLength: number): Uint8Array {
    gcmArguments(iv, tagLength);
    if (data.byteLength < tagLength) throw new WitError({ tag: 'operation-failed' });
    const decipher = createDecipheriv(aesName(key, 'gcm') as 'aes-256-gcm', key, iv, { authTagLength: tagLength });
    decipher.setAAD(additionalData);
    decipher.setAuthTag(data.subarray(data.byteLength - tagLength));
    try {
      return joined(decipher.update(data.subarray(0, data.byteLength - tagLength)), decipher.final());
    } catch {
      throw new WitError({ tag: 'operation-failed' });
    }
  },
  aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
    cbcIv(iv);
    const cipher = createCipheriv(aesName(key, 'cbc'), key, iv);
    return joined(cipher.update(data), cipher.final());
  },
  aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
    cbcIv(iv);
    const decipher = createDecipheriv(aesName(key, 'cbc'), key, iv);
    try {
      return joined(decipher.update(data), decipher.final());
    } catch {
      throw new WitError({ tag: 'operation-failed' });
    }
  },
};

const crypto: Capability<Record<string, never>> = {
  name: 'crypto',
  interfaces: ['stratum:crypto/primitives'],
  configure(context) {
    if (context.hostConfig !== undefined) {
      throw new StratumError('HOST_CONFIG_INVALID', 'host.toml: crypto takes no settings', { hint: 'Remove the [crypto] table.' });
    }
    return { settings: {} };
  },
  prepare() {
    return { imports: { 'stratum:crypto/primitives': primitives } };
  },
};

export default crypto;
