// StarlingMonkey's `crypto.subtle` has no encrypt, decrypt, deriveBits, deriveKey, generateKey or
// exportKey, so a capsule could not hash a password (PBKDF2), derive a key (HKDF), or keep a
// cookie or a token secret (AES-GCM, AES-CBC: jose's JWE, Auth.js's session). This module adds
// them for secret keys, over the host's `stratum:crypto/primitives`, which computes them with
// OpenSSL: in constant time, and at native speed for PBKDF2's rounds. HMAC keys stay the
// engine's; the module keeps the bytes of those it sees, so that they can be exported and
// derived. Installed by webcrypto.ts.

import { ownBytes } from './binding-arrays.ts';
import {
  base64Url,
  bytesOf,
  type CryptoKey,
  checkJwkUse,
  failure,
  fromBase64Url,
  fromHost,
  HASHES,
  hashOf,
  jwkAlg,
  makeCryptoKey,
  nameOf,
  parametersOf,
  type SubtleCrypto,
  type WitHash,
} from './webcrypto-support.ts';

/** What the host computes (`stratum:crypto/primitives`); a test gives Node.js's own. */
export interface Primitives {
  pbkdf2(hash: WitHash, password: Uint8Array, salt: Uint8Array, iterations: number, length: number): Uint8Array;
  hkdf(hash: WitHash, key: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  aesGcmEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array, additionalData: Uint8Array, tagLength: number): Uint8Array;
  aesGcmDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array, additionalData: Uint8Array, tagLength: number): Uint8Array;
  aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array;
  aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array;
}

type Kind = 'AES-GCM' | 'AES-CBC' | 'PBKDF2' | 'HKDF' | 'HMAC';

interface Secret {
  readonly kind: Kind;
  readonly bytes: Uint8Array;
  /** HMAC's hash, as WebCrypto names it. */
  readonly hash?: string;
}

const KINDS: Readonly<Record<string, Kind>> = {
  'AES-GCM': 'AES-GCM',
  'AES-CBC': 'AES-CBC',
  PBKDF2: 'PBKDF2',
  HKDF: 'HKDF',
  HMAC: 'HMAC',
};
const USAGES: Readonly<Record<Kind, readonly string[]>> = {
  'AES-GCM': ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
  'AES-CBC': ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
  PBKDF2: ['deriveBits', 'deriveKey'],
  HKDF: ['deriveBits', 'deriveKey'],
  HMAC: ['sign', 'verify'],
};

// Algorithms WebCrypto has that neither the engine nor the host does here, refused by name.
const REFUSED = new Set(['AES-CTR', 'AES-KW', 'RSA-OAEP', 'X448', 'ED448']);

/** What the host computes, as the capsule's own bytes; what it refuses, as an OperationError. */
function computed(what: string, work: () => Uint8Array): Uint8Array {
  return ownBytes(fromHost('OperationError', what, work));
}

function secretJwkAlg(secret: Secret): string {
  if (secret.kind === 'HMAC') return jwkAlg('HMAC', secret.hash ?? '');
  return `A${secret.bytes.byteLength * 8}${secret.kind === 'AES-GCM' ? 'GCM' : 'CBC'}`;
}

/**
 * Gives `target` generateKey, exportKey, encrypt, decrypt, deriveBits and deriveKey for secret
 * keys, and an importKey, sign and verify that know them, passing everything else on to what
 * `target` had (the public-key layer, then the engine).
 */
export function addSecretKeys(target: Partial<SubtleCrypto>, primitives: Primitives, cryptoKeyPrototype: object): void {
  const secrets = new WeakMap<object, Secret>();
  const previousImportKey = target.importKey?.bind(target) as (...args: unknown[]) => Promise<CryptoKey>;
  const previousSign = target.sign?.bind(target) as (...args: unknown[]) => Promise<ArrayBuffer>;
  const previousVerify = target.verify?.bind(target) as (...args: unknown[]) => Promise<boolean>;
  const previousGenerateKey = target.generateKey?.bind(target) as ((...args: unknown[]) => Promise<unknown>) | undefined;
  const previousExportKey = target.exportKey?.bind(target) as ((...args: unknown[]) => Promise<unknown>) | undefined;
  const previousDeriveBits = target.deriveBits?.bind(target) as ((...args: unknown[]) => Promise<unknown>) | undefined;
  const previousDeriveKey = target.deriveKey?.bind(target) as ((...args: unknown[]) => Promise<unknown>) | undefined;
  const isOurs = (key: unknown): key is CryptoKey => typeof key === 'object' && key !== null && secrets.has(key);

  function secretOf(key: unknown, kind: readonly Kind[], usage: string, what: string): Secret {
    const secret = typeof key === 'object' && key !== null ? secrets.get(key) : undefined;
    if (!secret || !kind.includes(secret.kind)) throw failure('InvalidAccessError', `${what} needs a ${kind.join(' or ')} key`);
    if (!(key as CryptoKey).usages.includes(usage as CryptoKey['usages'][number]))
      throw failure('InvalidAccessError', `the key was not made for "${usage}"`);
    return secret;
  }

  function checkUsages(kind: Kind, usages: readonly string[]): string[] {
    const allowed = USAGES[kind];
    const refused = usages.filter((usage) => !allowed.includes(usage));
    if (refused.length > 0)
      throw failure('SyntaxError', `a ${kind} key cannot be used to ${refused.map((usage) => `"${usage}"`).join(', ')}`);
    if (usages.length === 0) throw failure('SyntaxError', `a ${kind} key needs at least one usage (${allowed.join(', ')})`);
    return [...new Set(usages)];
  }

  async function makeKey(secret: Secret, extractable: boolean, usages: string[]): Promise<CryptoKey> {
    let key: CryptoKey;
    if (secret.kind === 'HMAC') {
      key = await previousImportKey('raw', secret.bytes, { name: 'HMAC', hash: secret.hash }, extractable, usages);
    } else {
      const algorithm =
        secret.kind === 'AES-GCM' || secret.kind === 'AES-CBC'
          ? { name: secret.kind, length: secret.bytes.byteLength * 8 }
          : { name: secret.kind };
      key = makeCryptoKey(cryptoKeyPrototype, { type: 'secret', extractable, algorithm, usages });
    }
    secrets.set(key, secret);
    return key;
  }

  /** A key from its bytes, as importKey('raw') and deriveKey make it. */
  async function secretKey(kind: Kind, bytes: Uint8Array, algorithm: unknown, extractable: boolean, usages: string[]): Promise<CryptoKey> {
    const parameters = parametersOf(algorithm);
    if (kind === 'AES-GCM' || kind === 'AES-CBC') {
      if (![16, 24, 32].includes(bytes.byteLength))
        throw failure('DataError', `an ${kind} key is 16, 24 or 32 bytes, not ${bytes.byteLength}`);
      if (parameters.length !== undefined && parameters.length !== bytes.byteLength * 8) {
        throw failure('DataError', `the key is ${bytes.byteLength * 8} bits, but the algorithm's length is ${String(parameters.length)}`);
      }
    }
    if ((kind === 'PBKDF2' || kind === 'HKDF') && extractable) throw failure('SyntaxError', `a ${kind} key cannot be extractable`);
    if (kind === 'HMAC') {
      if (bytes.byteLength === 0) throw failure('DataError', 'an HMAC key has at least one byte');
      return makeKey({ kind, bytes, hash: hashOf(parameters.hash, 'HMAC') }, extractable, usages);
    }
    return makeKey({ kind, bytes }, extractable, usages);
  }

  const importKey = async (...args: unknown[]): Promise<CryptoKey> => {
    const [format, keyData, algorithm, extractable, usages] = args as [string, unknown, unknown, boolean, string[]];
    const name = nameOf(algorithm).toUpperCase();
    if (REFUSED.has(name)) throw failure('NotSupportedError', `${nameOf(algorithm)} is not available in a capsule`);
    const kind = KINDS[name];
    if (!kind) return previousImportKey(...args);
    const wanted = checkUsages(kind, Array.from(usages ?? []));
    if (format === 'raw') return secretKey(kind, bytesOf(keyData, 'a raw key'), algorithm, Boolean(extractable), wanted);
    if (format !== 'jwk' || kind === 'PBKDF2' || kind === 'HKDF') {
      throw failure(
        'NotSupportedError',
        `a ${kind} key is imported as ${kind === 'PBKDF2' || kind === 'HKDF' ? '"raw"' : '"raw" or "jwk"'}, not "${format}"`,
      );
    }
    const jwk = keyData as Record<string, unknown>;
    if (typeof jwk !== 'object' || jwk === null) throw new TypeError('a JWK must be an object');
    if (jwk.kty !== 'oct') throw failure('DataError', `the JWK's "kty" is ${JSON.stringify(jwk.kty)}, not "oct"`);
    checkJwkUse(jwk, kind === 'HMAC' ? 'sig' : 'enc', Boolean(extractable), wanted);
    const bytes = fromBase64Url(jwk.k, 'k');
    const key = await secretKey(kind, bytes, algorithm, Boolean(extractable), wanted);
    const expected = secretJwkAlg(secrets.get(key) as Secret);
    if (jwk.alg !== undefined && jwk.alg !== expected)
      throw failure('DataError', `the JWK's "alg" is ${JSON.stringify(jwk.alg)}, but this key is ${expected}`);
    return key;
  };

  const generateKey = async (algorithm: unknown, extractable: boolean, usages: Iterable<string>): Promise<unknown> => {
    const name = nameOf(algorithm).toUpperCase();
    const kind = KINDS[name];
    if (!kind || kind === 'PBKDF2' || kind === 'HKDF') {
      if (previousGenerateKey && !kind) return previousGenerateKey(algorithm, extractable, usages);
      throw failure('NotSupportedError', `generateKey cannot make ${nameOf(algorithm)} keys in a capsule`);
    }
    const wanted = checkUsages(kind, Array.from(usages ?? []));
    const parameters = parametersOf(algorithm);
    let bits: number;
    if (kind === 'HMAC') {
      const hash = hashOf(parameters.hash, 'HMAC');
      bits = typeof parameters.length === 'number' ? parameters.length : HASHES[hash].blockBits;
      if (bits <= 0 || bits % 8 !== 0)
        throw failure('OperationError', `an HMAC key made here is a whole number of bytes, not ${bits} bits`);
    } else {
      bits = Number(parameters.length);
      if (![128, 192, 256].includes(bits))
        throw failure('OperationError', `an AES key is 128, 192 or 256 bits, not ${String(parameters.length)}`);
    }
    const bytes = crypto.getRandomValues(new Uint8Array(bits / 8));
    return secretKey(kind, bytes, { ...parameters, name: kind }, Boolean(extractable), wanted);
  };

  const exportKey = async (format: string, key: CryptoKey): Promise<unknown> => {
    const secret = typeof key === 'object' && key !== null ? secrets.get(key) : undefined;
    if (!secret) {
      if (previousExportKey) return previousExportKey(format, key);
      throw failure('NotSupportedError', 'this key cannot be exported in a capsule');
    }
    if (!key.extractable) throw failure('InvalidAccessError', 'the key is not extractable');
    if (format === 'raw') return secret.bytes.slice().buffer;
    if (format === 'jwk') {
      return { kty: 'oct', k: base64Url(secret.bytes), alg: secretJwkAlg(secret), ext: true, key_ops: [...key.usages] };
    }
    throw failure('NotSupportedError', `a secret key is exported as "raw" or "jwk", not "${format}"`);
  };

  function aes(operation: 'encrypt' | 'decrypt', algorithm: unknown, key: unknown, data: unknown): ArrayBuffer {
    const name = nameOf(algorithm).toUpperCase();
    const secret = secretOf(key, name === 'AES-CBC' ? ['AES-CBC'] : ['AES-GCM'], operation, `${operation} with ${nameOf(algorithm)}`);
    if (name !== 'AES-GCM' && name !== 'AES-CBC')
      throw failure('NotSupportedError', `${operation} takes AES-GCM or AES-CBC in a capsule, not ${nameOf(algorithm)}`);
    const parameters = parametersOf(algorithm);
    const iv = bytesOf(parameters.iv, 'the iv');
    const input = bytesOf(data, 'the data');
    let result: Uint8Array;
    if (name === 'AES-GCM') {
      const tagBits = parameters.tagLength === undefined ? 128 : Number(parameters.tagLength);
      if (![32, 64, 96, 104, 112, 120, 128].includes(tagBits))
        throw failure('OperationError', `an AES-GCM tagLength is 32, 64, or 96 to 128 bits, not ${tagBits}`);
      const additional =
        parameters.additionalData === undefined ? new Uint8Array() : bytesOf(parameters.additionalData, 'the additionalData');
      const run = operation === 'encrypt' ? primitives.aesGcmEncrypt : primitives.aesGcmDecrypt;
      result = computed(`AES-GCM ${operation}`, () => run(secret.bytes, iv, input, additional, tagBits / 8));
    } else {
      const run = operation === 'encrypt' ? primitives.aesCbcEncrypt : primitives.aesCbcDecrypt;
      result = computed(`AES-CBC ${operation}`, () => run(secret.bytes, iv, input));
    }
    return result.slice().buffer;
  }

  function derive(algorithm: unknown, secret: Secret, length: unknown): Uint8Array {
    if (typeof length !== 'number' || length <= 0 || length % 8 !== 0) {
      throw failure('OperationError', `the length to derive is a positive multiple of 8 bits, not ${String(length)}`);
    }
    const parameters = parametersOf(algorithm);
    const hash = HASHES[hashOf(parameters.hash, secret.kind)].wit;
    const salt = bytesOf(parameters.salt, 'the salt');
    if (secret.kind === 'PBKDF2') {
      const iterations = parameters.iterations;
      if (typeof iterations !== 'number' || !Number.isInteger(iterations) || iterations < 1) {
        throw failure('OperationError', `PBKDF2 needs iterations, a whole number of at least 1 (it got ${String(iterations)})`);
      }
      return computed('PBKDF2', () => primitives.pbkdf2(hash, secret.bytes, salt, iterations, length / 8));
    }
    const info = bytesOf(parameters.info, 'the info');
    return computed('HKDF', () => primitives.hkdf(hash, secret.bytes, salt, info, length / 8));
  }

  const deriveBits = async (algorithm: unknown, baseKey: CryptoKey, length: number): Promise<unknown> => {
    const name = nameOf(algorithm).toUpperCase();
    if (name !== 'PBKDF2' && name !== 'HKDF') {
      if (previousDeriveBits) return previousDeriveBits(algorithm, baseKey, length);
      throw failure('NotSupportedError', `deriveBits takes PBKDF2 or HKDF in a capsule, not ${nameOf(algorithm)}`);
    }
    const secret = secretOf(baseKey, [name], 'deriveBits', `deriveBits with ${name}`);
    return derive(algorithm, secret, length).slice().buffer;
  };

  const deriveKey = async (
    algorithm: unknown,
    baseKey: CryptoKey,
    derivedKeyType: unknown,
    extractable: boolean,
    usages: Iterable<string>,
  ): Promise<unknown> => {
    const name = nameOf(algorithm).toUpperCase();
    if (name !== 'PBKDF2' && name !== 'HKDF') {
      if (previousDeriveKey) return previousDeriveKey(algorithm, baseKey, derivedKeyType, extractable, usages);
      throw failure('NotSupportedError', `deriveKey takes PBKDF2 or HKDF in a capsule, not ${nameOf(algorithm)}`);
    }
    const secret = secretOf(baseKey, [name], 'deriveKey', `deriveKey with ${name}`);
    const kind = KINDS[nameOf(derivedKeyType).toUpperCase()];
    if (kind !== 'AES-GCM' && kind !== 'AES-CBC' && kind !== 'HMAC') {
      throw failure('NotSupportedError', `deriveKey makes AES-GCM, AES-CBC or HMAC keys in a capsule, not ${nameOf(derivedKeyType)}`);
    }
    const wanted = checkUsages(kind, Array.from(usages ?? []));
    const parameters = parametersOf(derivedKeyType);
    const bits =
      kind === 'HMAC'
        ? typeof parameters.length === 'number'
          ? parameters.length
          : HASHES[hashOf(parameters.hash, 'HMAC')].blockBits
        : Number(parameters.length);
    return secretKey(kind, derive(algorithm, secret, bits), derivedKeyType, Boolean(extractable), wanted);
  };

  const sign = async (...args: unknown[]): Promise<ArrayBuffer> => {
    const key = args[1];
    if (isOurs(key) && secrets.get(key)?.kind !== 'HMAC') throw failure('InvalidAccessError', `a ${key.algorithm.name} key cannot sign`);
    return previousSign(...args);
  };
  const verify = async (...args: unknown[]): Promise<boolean> => {
    const key = args[1];
    if (isOurs(key) && secrets.get(key)?.kind !== 'HMAC') throw failure('InvalidAccessError', `a ${key.algorithm.name} key cannot verify`);
    return previousVerify(...args);
  };

  const methods = {
    importKey,
    generateKey,
    exportKey,
    encrypt: async (algorithm: unknown, key: CryptoKey, data: unknown) => aes('encrypt', algorithm, key, data),
    decrypt: async (algorithm: unknown, key: CryptoKey, data: unknown) => aes('decrypt', algorithm, key, data),
    deriveBits,
    deriveKey,
    sign,
    verify,
  };
  for (const [name, value] of Object.entries(methods)) {
    Object.defineProperty(target, name, { configurable: true, writable: true, value });
  }
}
