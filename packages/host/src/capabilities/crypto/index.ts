import {
  constants,
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  pbkdf2Sync,
  sign as signWith,
  verify as verifyWith,
} from 'node:crypto';
import { StratumError } from '@stratum/core';
import type { Capability } from '../contract.ts';
import { WitError } from '../contract.ts';

/**
 * `stratum:crypto/primitives`: PBKDF2, HKDF, AES-GCM and AES-CBC, key pairs, signatures and key
 * agreement, computed by Node.js (OpenSSL) for capsules whose engine lacks them. Served to every
 * capsule without a grant, as a digest would be: a call reads its arguments and nothing else.
 * Each call runs synchronously on the capsule's own thread, so its CPU time is the capsule's,
 * and the bounds below keep one call short enough (1,000,000 PBKDF2 rounds: about half a second;
 * a 4096-bit RSA key pair: about as long, on average) that an instance past its time limit is
 * ended soon after, since a thread cannot be stopped inside OpenSSL.
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

type KeyType = 'p256' | 'p384' | 'p521' | 'rsa' | 'ed25519' | 'x25519';
type PrivateKey = { tag: 'pkcs8'; val: Uint8Array } | { tag: 'jwk'; val: string };
interface KeyInfo {
  keyType: KeyType;
  modulusBits: number;
  pkcs8: Uint8Array;
  jwk: string;
  publicKey: Uint8Array;
}

const CURVE_TYPES: Readonly<Record<string, KeyType>> = { prime256v1: 'p256', secp384r1: 'p384', secp521r1: 'p521' };
const CURVE_NAMES: Readonly<Record<string, string>> = { p256: 'P-256', p384: 'P-384', p521: 'P-521' };
const GENERATED_RSA_BITS = { least: 2048, most: 4096 };
const MAX_RSA_BITS = 8192;

function typeOf(key: KeyObject): KeyType | undefined {
  if (key.asymmetricKeyType === 'ec') return CURVE_TYPES[key.asymmetricKeyDetails?.namedCurve ?? ''];
  // Not 'rsa-pss' (a key under id-RSASSA-PSS): WebCrypto takes and gives RSA-PSS keys under
  // rsaEncryption, and Node.js cannot write the other as a JWK.
  if (key.asymmetricKeyType === 'rsa') return 'rsa';
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'x25519') return 'x25519';
  return undefined;
}

function infoOf(key: KeyObject): KeyInfo {
  const keyType = typeOf(key);
  if (!keyType) throw invalid(`a ${key.asymmetricKeyType ?? 'private'} key is not one of P-256, P-384, P-521, RSA, Ed25519 or X25519`);
  const modulusBits = keyType === 'rsa' ? (key.asymmetricKeyDetails?.modulusLength ?? 0) : 0;
  if (modulusBits > MAX_RSA_BITS) throw invalid(`an RSA key of ${modulusBits} bits is over ${MAX_RSA_BITS}`);
  return {
    keyType,
    modulusBits,
    pkcs8: new Uint8Array(key.export({ type: 'pkcs8', format: 'der' })),
    jwk: JSON.stringify(key.export({ format: 'jwk' })),
    publicKey: new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' })),
  };
}

function privateKeyOf(key: PrivateKey): KeyObject {
  try {
    if (key.tag === 'pkcs8') return createPrivateKey({ key: Buffer.from(key.val), format: 'der', type: 'pkcs8' });
    return createPrivateKey({ key: JSON.parse(key.val) as Record<string, unknown> as never, format: 'jwk' });
  } catch (error) {
    // Its code only: a parser's message may quote the input, and this one is a private key.
    const code = (error as { code?: unknown }).code;
    throw invalid(
      `the private key does not parse as ${key.tag === 'pkcs8' ? 'PKCS#8' : 'a JWK'}${typeof code === 'string' ? ` (${code})` : ''}`,
    );
  }
}

function publicKeyOf(spki: Uint8Array): KeyObject {
  try {
    return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw invalid(`the public key does not parse as SPKI${typeof code === 'string' ? ` (${code})` : ''}`);
  }
}

const SIGNATURE_KEY_TYPES: Readonly<Record<string, readonly KeyType[]>> = {
  ecdsa: ['p256', 'p384', 'p521'],
  'rsassa-pkcs1-v1-5': ['rsa'],
  'rsa-pss': ['rsa'],
  ed25519: ['ed25519'],
};

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
  generateKeyPair(keyType: KeyType, modulusBits: number, publicExponent: number): KeyInfo {
    if (keyType === 'rsa') {
      const { least, most } = GENERATED_RSA_BITS;
      if (modulusBits < least || modulusBits > most || modulusBits % 8 !== 0) {
        throw invalid(`an RSA key made here is ${least} to ${most} bits, a multiple of 8, not ${modulusBits}`);
      }
      if (publicExponent !== 3 && publicExponent !== 65537) throw invalid(`an RSA public exponent is 3 or 65537, not ${publicExponent}`);
      return infoOf(generateKeyPairSync('rsa', { modulusLength: modulusBits, publicExponent }).privateKey);
    }
    if (keyType === 'ed25519') return infoOf(generateKeyPairSync('ed25519').privateKey);
    if (keyType === 'x25519') return infoOf(generateKeyPairSync('x25519').privateKey);
    const namedCurve = CURVE_NAMES[keyType];
    if (!namedCurve) throw invalid(`unknown key type ${String(keyType)}`);
    return infoOf(generateKeyPairSync('ec', { namedCurve }).privateKey);
  },
  inspectPrivateKey(key: PrivateKey, keyType: KeyType): KeyInfo {
    const parsed = privateKeyOf(key);
    const info = infoOf(parsed);
    if (info.keyType !== keyType) throw invalid(`the private key is ${info.keyType}, not ${keyType}`);
    // OpenSSL takes a JWK's members as given: a `d` that is not base64url, or that belongs to
    // another public key, still parses. A signature its own public half verifies does not, nor
    // (X25519 cannot sign) the secret it agrees on with a stranger's key, both ways round.
    let consistent = false;
    try {
      const own = createPublicKey(parsed);
      if (keyType === 'x25519') {
        const stranger = generateKeyPairSync('x25519');
        const ours = diffieHellman({ privateKey: parsed, publicKey: stranger.publicKey });
        consistent = ours.equals(diffieHellman({ privateKey: stranger.privateKey, publicKey: own }));
      } else {
        const probe = Buffer.from('stratum:crypto key check');
        const hash = keyType === 'ed25519' ? null : 'sha256';
        consistent = verifyWith(hash, probe, own, signWith(hash, probe, parsed));
      }
    } catch {
      consistent = false;
    }
    if (!consistent)
      throw invalid(
        `the private key's parts do not belong together (its ${key.tag === 'jwk' ? '"d"' : 'private value'} is not its public key's)`,
      );
    return info;
  },
  sign(scheme: string, hash: Hash, privateKey: Uint8Array, data: Uint8Array, saltLength: number): Uint8Array {
    const key = privateKeyOf({ tag: 'pkcs8', val: privateKey });
    const keyType = typeOf(key);
    const allowed = SIGNATURE_KEY_TYPES[scheme];
    if (!allowed) throw invalid(`unknown signature scheme ${String(scheme)}`);
    if (!keyType || !allowed.includes(keyType))
      throw invalid(`a ${scheme} signature needs a ${allowed.join(' or ')} key, not ${keyType ?? 'this one'}`);
    if (scheme === 'ed25519') return new Uint8Array(signWith(null, data, key));
    const digest = hashOf(hash);
    if (scheme === 'ecdsa') return new Uint8Array(signWith(digest, data, { key, dsaEncoding: 'ieee-p1363' }));
    if (scheme === 'rsa-pss') {
      const most = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8) - HASH_BYTES[digest] - 2;
      if (saltLength > most) throw invalid(`an RSA-PSS salt with this key and ${digest} is at most ${most} bytes, not ${saltLength}`);
      return new Uint8Array(signWith(digest, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }));
    }
    return new Uint8Array(signWith(digest, data, key));
  },
  verify(scheme: string, hash: Hash, publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array, saltLength: number): boolean {
    const key = publicKeyOf(publicKey);
    const keyType = typeOf(key);
    const allowed = SIGNATURE_KEY_TYPES[scheme];
    if (!allowed) throw invalid(`unknown signature scheme ${String(scheme)}`);
    if (!keyType || !allowed.includes(keyType))
      throw invalid(`a ${scheme} signature needs a ${allowed.join(' or ')} key, not ${keyType ?? 'this one'}`);
    const digest = scheme === 'ed25519' ? null : hashOf(hash);
    try {
      if (scheme === 'ecdsa') return verifyWith(digest, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
      if (scheme === 'rsa-pss') return verifyWith(digest, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, signature);
      return verifyWith(digest, data, key, signature);
    } catch {
      // A signature OpenSSL cannot even decode (of the wrong length, say) does not check out.
      return false;
    }
  },
  deriveSharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
    const mine = privateKeyOf({ tag: 'pkcs8', val: privateKey });
    const theirs = publicKeyOf(publicKey);
    const [ourType, theirType] = [typeOf(mine), typeOf(theirs)];
    if (!ourType || !['p256', 'p384', 'p521', 'x25519'].includes(ourType))
      throw invalid(`a ${ourType ?? 'this'} key does not agree on secrets`);
    if (ourType !== theirType) throw invalid(`the public key is ${theirType ?? 'of another kind'}, the private key ${ourType}`);
    try {
      return new Uint8Array(diffieHellman({ privateKey: mine, publicKey: theirs }));
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

/**
 * The primitives as the guest calls them: a failure that is not one of the interface's errors
 * (a case OpenSSL or Node.js refuses that the checks above did not foresee) becomes
 * `invalid-input` with its code, rather than an exception the bindings would turn into a trap of
 * the instance. Never its message, which may quote the key.
 */
const guarded = Object.fromEntries(
  Object.entries(primitives).map(([name, compute]) => [
    name,
    (...args: unknown[]) => {
      try {
        return (compute as (...args: unknown[]) => unknown)(...args);
      } catch (error) {
        if (error instanceof WitError) throw error;
        const code = (error as { code?: unknown }).code;
        throw invalid(`${name} could not be computed with these arguments${typeof code === 'string' ? ` (${code})` : ''}`);
      }
    },
  ]),
);

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
    return { imports: { 'stratum:crypto/primitives': guarded } };
  },
};

export default crypto;
