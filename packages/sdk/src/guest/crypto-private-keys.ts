/// <reference path="../wit/guest.generated.d.ts" />
// Private ECDSA, RSA and Ed25519 keys, which sign, and ECDH and X25519 keys, which agree on
// secrets: imported, made by generateKey, used and exported. The work is the host's
// (stratum:crypto's `sign` and `derive-shared-secret`, OpenSSL), which does it in constant time:
// the SDK's BigInt arithmetic would leak the key through its timing. A private key is held as
// the PKCS#8 bytes the host checked; its public half, from generateKey, is the public-key layer's
// (crypto-public-keys.ts). Installed by webcrypto.ts, between that layer and the secret-key one.

import type { KeyInfo, KeyType, PrivateKey } from 'stratum:crypto/primitives@0.1.0';
import { ownBytes } from './binding-arrays.ts';
import type { PublicKeys } from './crypto-public-keys.ts';
import {
  bytesOf,
  type CryptoKey,
  checkJwkUse,
  failure,
  fromBase64Url,
  fromHost,
  HASHES,
  type HashName,
  hashOf,
  jwkAlg,
  makeCryptoKey,
  nameOf,
  parametersOf,
  SCHEMES,
  type Scheme,
  type SubtleCrypto,
  type WitHash,
} from './webcrypto-support.ts';

/** What the host computes (`stratum:crypto/primitives`); a test gives the host's own. */
export interface KeyPrimitives {
  generateKeyPair(keyType: KeyType, modulusBits: number, publicExponent: number): KeyInfo;
  inspectPrivateKey(key: PrivateKey, keyType: KeyType): KeyInfo;
  sign(scheme: Scheme, hash: WitHash, privateKey: Uint8Array, data: Uint8Array, saltLength: number): Uint8Array;
  deriveSharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
}

type Kind = 'ECDSA' | 'RSASSA-PKCS1-v1_5' | 'RSA-PSS' | 'Ed25519' | 'ECDH' | 'X25519';

const KINDS: Readonly<Record<string, Kind>> = {
  ECDSA: 'ECDSA',
  'RSASSA-PKCS1-V1_5': 'RSASSA-PKCS1-v1_5',
  'RSA-PSS': 'RSA-PSS',
  ED25519: 'Ed25519',
  ECDH: 'ECDH',
  X25519: 'X25519',
};

/** What a private key of each kind may do: sign, or agree on secrets. */
const PRIVATE_USAGES: Readonly<Record<Kind, readonly string[]>> = {
  ECDSA: ['sign'],
  'RSASSA-PKCS1-v1_5': ['sign'],
  'RSA-PSS': ['sign'],
  Ed25519: ['sign'],
  ECDH: ['deriveBits', 'deriveKey'],
  X25519: ['deriveBits', 'deriveKey'],
};

const CURVE_TYPES: Readonly<Record<string, KeyType>> = { 'P-256': 'p256', 'P-384': 'p384', 'P-521': 'p521' };

interface Private {
  readonly kind: Kind;
  readonly info: KeyInfo;
  readonly hash?: HashName;
}

function bufferOf(bytes: Uint8Array): ArrayBuffer {
  return ownBytes(bytes).slice().buffer;
}

/**
 * Gives `target` an importKey, generateKey, sign, verify, exportKey, deriveBits and deriveKey
 * that know private ECDSA, RSASSA-PKCS1-v1_5, RSA-PSS, Ed25519, ECDH and X25519 keys, passing
 * everything else on to what `target` had. `publicKeys` gives the SPKI of the other side's key.
 */
export function addPrivateKeys(
  target: Partial<SubtleCrypto>,
  primitives: KeyPrimitives,
  cryptoKeyPrototype: object,
  publicKeys: PublicKeys,
): void {
  const keys = new WeakMap<object, Private>();
  type Method = (...args: unknown[]) => Promise<unknown>;
  const previous = (name: keyof SubtleCrypto): Method | undefined => {
    const method = target[name] as Method | undefined;
    return typeof method === 'function' ? method.bind(target) : undefined;
  };
  const previousImportKey = previous('importKey') as Method;
  const previousSign = previous('sign') as Method;
  const previousVerify = previous('verify') as Method;
  const previousGenerateKey = previous('generateKey');
  const previousExportKey = previous('exportKey');
  const previousDeriveBits = previous('deriveBits');
  const previousDeriveKey = previous('deriveKey');
  const privateOf = (key: unknown) => (typeof key === 'object' && key !== null ? keys.get(key) : undefined);

  /** The key type an algorithm's parameters ask for, and the hash an RSA key is bound to. */
  function expected(kind: Kind, algorithm: unknown): { keyType: KeyType; hash?: HashName } {
    const parameters = parametersOf(algorithm);
    if (kind === 'ECDSA' || kind === 'ECDH') {
      const keyType = CURVE_TYPES[String(parameters.namedCurve)];
      if (!keyType) {
        throw failure('NotSupportedError', `${kind} needs a namedCurve of P-256, P-384 or P-521 (it got ${String(parameters.namedCurve)})`);
      }
      return { keyType };
    }
    if (kind === 'Ed25519') return { keyType: 'ed25519' };
    if (kind === 'X25519') return { keyType: 'x25519' };
    return { keyType: 'rsa', hash: hashOf(parameters.hash, kind) };
  }

  function algorithmOf(kind: Kind, info: KeyInfo, hash: HashName | undefined): object {
    if (kind === 'ECDSA' || kind === 'ECDH') return { name: kind, namedCurve: `P-${info.keyType.slice(1)}` };
    if (kind === 'Ed25519' || kind === 'X25519') return { name: kind };
    const exponent = fromBase64Url((JSON.parse(info.jwk) as { e?: string }).e, 'e');
    return { name: kind, modulusLength: info.modulusBits, publicExponent: exponent, hash: { name: hash } };
  }

  function privateKey(kind: Kind, info: KeyInfo, hash: HashName | undefined, extractable: boolean, usages: readonly string[]): CryptoKey {
    const key = makeCryptoKey(cryptoKeyPrototype, { type: 'private', extractable, algorithm: algorithmOf(kind, info, hash), usages });
    keys.set(key, { kind, info, ...(hash === undefined ? {} : { hash }) });
    return key;
  }

  function checkedUsages(kind: Kind, usages: readonly string[], allowed: readonly string[]): string[] {
    const refused = usages.filter((usage) => !allowed.includes(usage));
    if (refused.length > 0) {
      const may = allowed.map((usage) => `"${usage}"`).join(' or ');
      throw failure('SyntaxError', `a ${kind} key can only ${may}, not ${refused.map((usage) => `"${usage}"`).join(', ')}`);
    }
    return [...usages];
  }

  const importKey = async (...args: unknown[]): Promise<unknown> => {
    const [format, keyData, algorithm, extractable, usages] = args as [string, unknown, unknown, boolean, Iterable<string>];
    const kind = KINDS[nameOf(algorithm).toUpperCase()];
    const isPrivate = format === 'pkcs8' || (format === 'jwk' && typeof keyData === 'object' && keyData !== null && 'd' in keyData);
    if (!kind || !isPrivate) return previousImportKey(...args);
    const asked = checkedUsages(kind, Array.from(usages ?? []), PRIVATE_USAGES[kind]);
    if (asked.length === 0) throw failure('SyntaxError', `a private ${kind} key needs a usage (${PRIVATE_USAGES[kind].join(', ')})`);
    const { keyType, hash } = expected(kind, algorithm);
    let given: { tag: 'pkcs8'; val: Uint8Array } | { tag: 'jwk'; val: string };
    if (format === 'jwk') {
      const jwk = keyData as Record<string, unknown>;
      checkJwkUse(jwk, kind === 'ECDH' || kind === 'X25519' ? 'enc' : 'sig', Boolean(extractable), asked);
      if (kind === 'RSASSA-PKCS1-v1_5' || kind === 'RSA-PSS') {
        const alg = jwkAlg(kind, hash ?? '');
        if (jwk.alg !== undefined && jwk.alg !== alg)
          throw failure('DataError', `the JWK's "alg" is ${JSON.stringify(jwk.alg)}, but ${kind} with ${hash} is ${alg}`);
      }
      given = { tag: 'jwk', val: JSON.stringify(jwk) };
    } else {
      given = { tag: 'pkcs8', val: bytesOf(keyData, 'a pkcs8 key') };
    }
    const info = fromHost('DataError', 'importKey', () => primitives.inspectPrivateKey(given, keyType));
    return privateKey(kind, info, hash, Boolean(extractable), asked);
  };

  const generateKey = async (algorithm: unknown, extractable: boolean, usages: Iterable<string>): Promise<unknown> => {
    const kind = KINDS[nameOf(algorithm).toUpperCase()];
    if (!kind) {
      if (!previousGenerateKey) throw failure('NotSupportedError', `generateKey cannot make ${nameOf(algorithm)} keys in a capsule`);
      return previousGenerateKey(algorithm, extractable, usages);
    }
    const agrees = kind === 'ECDH' || kind === 'X25519';
    const asked = checkedUsages(kind, Array.from(usages ?? []), agrees ? PRIVATE_USAGES[kind] : ['sign', 'verify']);
    const privateUsages = asked.filter((usage) => PRIVATE_USAGES[kind].includes(usage));
    if (privateUsages.length === 0) {
      throw failure('SyntaxError', `a ${kind} key pair needs a usage for its private key (${PRIVATE_USAGES[kind].join(', ')})`);
    }
    const { keyType, hash } = expected(kind, algorithm);
    const parameters = parametersOf(algorithm);
    let modulusBits = 0;
    let exponent = 0;
    if (keyType === 'rsa') {
      modulusBits = Number(parameters.modulusLength);
      const bytes = parameters.publicExponent;
      if (!ArrayBuffer.isView(bytes)) throw new TypeError(`${kind} needs a publicExponent, as bytes (new Uint8Array([1, 0, 1]))`);
      exponent = Array.from(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)).reduce(
        (value, byte) => value * 256 + byte,
        0,
      );
    }
    const info = fromHost('OperationError', 'generateKey', () => primitives.generateKeyPair(keyType, modulusBits, exponent));
    const publicKey = (await previousImportKey(
      'spki',
      ownBytes(info.publicKey),
      { ...parameters, name: kind },
      true,
      asked.filter((usage) => usage === 'verify'),
    )) as CryptoKey;
    return { publicKey, privateKey: privateKey(kind, info, hash, Boolean(extractable), privateUsages) };
  };

  const sign = async (...args: unknown[]): Promise<unknown> => {
    const [algorithm, key, data] = args;
    const held = privateOf(key);
    if (!held) return previousSign(...args);
    const name = nameOf(algorithm);
    if (KINDS[name.toUpperCase()] !== held.kind) throw failure('InvalidAccessError', `the key is a ${held.kind} key, not ${name}`);
    if (!(key as CryptoKey).usages.includes('sign')) throw failure('InvalidAccessError', 'the key was not made for "sign"');
    const parameters = parametersOf(algorithm);
    const hash = held.kind === 'ECDSA' ? hashOf(parameters.hash, 'ECDSA') : (held.hash ?? 'SHA-256');
    let saltLength = 0;
    if (held.kind === 'RSA-PSS') {
      saltLength = Number(parameters.saltLength);
      if (!Number.isInteger(saltLength) || saltLength < 0)
        throw new TypeError('RSA-PSS needs a saltLength (a whole number of bytes; 32 for PS256)');
    }
    const bytes = bytesOf(data, 'the data');
    const scheme = SCHEMES[held.kind];
    if (!scheme) throw failure('InvalidAccessError', `a ${held.kind} key does not sign`);
    return bufferOf(
      fromHost('OperationError', 'sign', () => primitives.sign(scheme, HASHES[hash].wit, held.info.pkcs8, bytes, saltLength)),
    );
  };

  /** The secret a private ECDH or X25519 key agrees on with `algorithm.public`, cut to `length` bits. */
  function agreed(algorithm: unknown, baseKey: unknown, usage: 'deriveBits' | 'deriveKey', length: number | null): Uint8Array {
    const held = privateOf(baseKey) as Private;
    const name = nameOf(algorithm);
    if (KINDS[name.toUpperCase()] !== held.kind) throw failure('InvalidAccessError', `the key is a ${held.kind} key, not ${name}`);
    if (!(baseKey as CryptoKey).usages.includes(usage as never)) throw failure('InvalidAccessError', `the key was not made for "${usage}"`);
    const other = parametersOf(algorithm).public;
    const spki = publicKeys.spkiOf(other);
    if (!spki || (other as CryptoKey).algorithm.name !== held.kind) {
      throw failure('InvalidAccessError', `${held.kind} needs the other side's public ${held.kind} key as "public"`);
    }
    const secret = ownBytes(fromHost('OperationError', held.kind, () => primitives.deriveSharedSecret(held.info.pkcs8, spki)));
    if (length === null) return secret;
    if (length % 8 !== 0 || length > secret.length * 8 || length <= 0) {
      throw failure('OperationError', `${held.kind} derives up to ${secret.length * 8} bits here, in whole bytes, not ${length}`);
    }
    return secret.slice(0, length / 8);
  }

  const agreesOn = (key: unknown) => {
    const held = privateOf(key);
    return held?.kind === 'ECDH' || held?.kind === 'X25519';
  };

  const deriveBits = async (...args: unknown[]): Promise<unknown> => {
    const [algorithm, baseKey, length] = args;
    if (!agreesOn(baseKey)) {
      if (!previousDeriveBits) throw failure('NotSupportedError', `deriveBits does not take ${nameOf(algorithm)} in a capsule`);
      return previousDeriveBits(...args);
    }
    return bufferOf(agreed(algorithm, baseKey, 'deriveBits', length === undefined || length === null ? null : Number(length)));
  };

  const deriveKey = async (...args: unknown[]): Promise<unknown> => {
    const [algorithm, baseKey, derivedKeyType, extractable, usages] = args;
    if (!agreesOn(baseKey)) {
      if (!previousDeriveKey) throw failure('NotSupportedError', `deriveKey does not take ${nameOf(algorithm)} in a capsule`);
      return previousDeriveKey(...args);
    }
    const type = nameOf(derivedKeyType).toUpperCase();
    const parameters = parametersOf(derivedKeyType);
    let length: number | null = null;
    if (type.startsWith('AES-')) length = Number(parameters.length);
    else if (type === 'HMAC')
      length = typeof parameters.length === 'number' ? parameters.length : HASHES[hashOf(parameters.hash, 'HMAC')].blockBits;
    const bits = agreed(algorithm, baseKey, 'deriveKey', length);
    // The whole chain's importKey, which the secret-key layer, installed after this one, heads.
    return (target.importKey as unknown as Method)('raw', bits, derivedKeyType, extractable, usages);
  };

  const verify = async (...args: unknown[]): Promise<unknown> => {
    if (privateOf(args[1])) throw failure('InvalidAccessError', 'a private key cannot verify: use its public key');
    return previousVerify(...args);
  };

  const exportKey = async (format: string, key: CryptoKey): Promise<unknown> => {
    const held = privateOf(key);
    if (!held) {
      if (!previousExportKey) throw failure('NotSupportedError', 'this key cannot be exported in a capsule');
      return previousExportKey(format, key);
    }
    if (!key.extractable) throw failure('InvalidAccessError', 'the key is not extractable');
    if (format === 'pkcs8') return bufferOf(held.info.pkcs8);
    if (format === 'jwk') {
      const jwk = JSON.parse(held.info.jwk) as Record<string, unknown>;
      if (held.kind === 'RSASSA-PKCS1-v1_5' || held.kind === 'RSA-PSS') {
        jwk.alg = jwkAlg(held.kind, held.hash ?? '');
      }
      return { ...jwk, key_ops: [...key.usages], ext: true };
    }
    throw failure('NotSupportedError', `a private key is exported as "pkcs8" or "jwk", not "${format}"`);
  };

  for (const [name, value] of Object.entries({ importKey, generateKey, sign, verify, exportKey, deriveBits, deriveKey })) {
    Object.defineProperty(target, name, { configurable: true, writable: true, value });
  }
}
