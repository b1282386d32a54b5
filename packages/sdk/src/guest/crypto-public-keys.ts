// StarlingMonkey's `crypto.subtle` (componentize-js 0.23) has digests and HMAC only. It refuses
// RSA-PSS and Ed25519, and it aborts the whole instance (a WebAssembly trap, no exception) when
// asked to import an ECDSA or RSASSA-PKCS1-v1_5 key. So a capsule could not check a JWT signed
// with ES256, RS256, PS256 or EdDSA, nor a webhook signed with Ed25519. This module gives
// `importKey`, `verify` and `exportKey` those four algorithms for public keys (JWK, SPKI, and raw
// where WebCrypto has it): the key is parsed and checked here (key-math.ts), the signature is
// verified by the host (stratum:crypto's `verify`, OpenSSL), as the SPKI this layer writes.
// Private keys are crypto-private-keys.ts's. Installed by webcrypto.ts. Drop it once the engine
// has them.

import { bigIntToBytes, bitLength, bytesToBigInt, CURVES, type Curve, isEdPoint, isOnCurve, type RsaPublicKey } from './key-math.ts';
import {
  base64Url,
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
  SCHEMES,
  type Scheme,
  type SubtleCrypto,
  type WitHash,
} from './webcrypto-support.ts';

type Material =
  | { readonly kind: 'ECDSA' | 'ECDH'; readonly curve: Curve; readonly point: { readonly x: bigint; readonly y: bigint } }
  | { readonly kind: 'RSASSA-PKCS1-v1_5' | 'RSA-PSS'; readonly key: RsaPublicKey; readonly hash: HashName }
  | { readonly kind: 'Ed25519' | 'X25519'; readonly raw: Uint8Array };

type PublicAlgorithm = Material['kind'];

// ECDH and X25519 public keys are here too: the private-key layer agrees on secrets with them.
const PUBLIC_ALGORITHMS: Readonly<Record<string, PublicAlgorithm>> = {
  ECDSA: 'ECDSA',
  ECDH: 'ECDH',
  'RSASSA-PKCS1-V1_5': 'RSASSA-PKCS1-v1_5',
  'RSA-PSS': 'RSA-PSS',
  ED25519: 'Ed25519',
  X25519: 'X25519',
};
const AGREEMENT = new Set<PublicAlgorithm>(['ECDH', 'X25519']);

// Bounds that keep a hostile key from costing a capsule's whole time limit in one modPow, as
// BoringSSL bounds them (an exponent of at most 33 bits, a modulus of at most 16,384).
const RSA_MAX_MODULUS_BITS = 16_384;
const RSA_MIN_MODULUS_BITS = 512;
const RSA_MAX_EXPONENT_BITS = 33;

// DER object identifiers, as the hex of their contents octets.
const OID = {
  rsaEncryption: '2a864886f70d010101',
  ecPublicKey: '2a8648ce3d0201',
  ed25519: '2b6570',
  x25519: '2b656e',
} as const;
const CURVE_OIDS: Readonly<Record<string, Curve['name']>> = {
  '2a8648ce3d030107': 'P-256',
  '2b81040022': 'P-384',
  '2b81040023': 'P-521',
};

// ---- DER, as much of it as a SubjectPublicKeyInfo needs ----

interface Element {
  readonly tag: number;
  readonly contents: Uint8Array;
  readonly end: number;
}

function readElement(bytes: Uint8Array, offset: number, what: string): Element {
  const tag = bytes[offset];
  let length = bytes[offset + 1];
  if (tag === undefined || length === undefined) throw failure('DataError', `the SPKI ends inside ${what}`);
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw failure('DataError', `the SPKI's length of ${what} is not DER`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (bytes[start + i] ?? Number.NaN);
    start += count;
  }
  const end = start + length;
  if (!Number.isFinite(end) || end > bytes.length) throw failure('DataError', `the SPKI ends inside ${what}`);
  return { tag, contents: bytes.subarray(start, end), end };
}

function expectElement(bytes: Uint8Array, offset: number, tag: number, what: string): Element {
  const element = readElement(bytes, offset, what);
  if (element.tag !== tag) throw failure('DataError', `the SPKI has no ${what} where one belongs`);
  return element;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

function parseSpki(data: Uint8Array): { algorithm: string; parameter: string | undefined; key: Uint8Array } {
  const outer = expectElement(data, 0, 0x30, 'the outer SEQUENCE');
  if (outer.end !== data.length) throw failure('DataError', 'the SPKI has bytes after its end');
  const identifier = expectElement(outer.contents, 0, 0x30, 'the AlgorithmIdentifier');
  const algorithm = expectElement(identifier.contents, 0, 0x06, 'the algorithm OID');
  let parameter: string | undefined;
  if (algorithm.end < identifier.contents.length) {
    const next = readElement(identifier.contents, algorithm.end, 'the algorithm parameters');
    if (next.tag === 0x06) parameter = hex(next.contents);
  }
  const bits = expectElement(outer.contents, identifier.end, 0x03, 'the public key BIT STRING');
  if (bits.contents[0] !== 0) throw failure('DataError', 'the SPKI public key is not whole bytes');
  return { algorithm: hex(algorithm.contents), parameter, key: bits.contents.subarray(1) };
}

function derInteger(bytes: Uint8Array, offset: number, what: string): { value: bigint; end: number } {
  const element = expectElement(bytes, offset, 0x02, what);
  if (element.contents.length === 0 || (element.contents[0] ?? 0) & 0x80) throw failure('DataError', `${what} is not a positive integer`);
  return { value: bytesToBigInt(element.contents), end: element.end };
}

function derElement(tag: number, contents: Uint8Array): Uint8Array {
  const length = contents.length;
  const head: number[] = [tag];
  if (length < 0x80) head.push(length);
  else {
    const bytes: number[] = [];
    for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
    head.push(0x80 | bytes.length, ...bytes);
  }
  const out = new Uint8Array(head.length + length);
  out.set(head);
  out.set(contents, head.length);
  return out;
}

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function fromHex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g) ?? [], (pair) => Number.parseInt(pair, 16));
}

function unsignedBytes(value: bigint): Uint8Array {
  return bigIntToBytes(value, Math.max(1, Math.ceil(bitLength(value) / 8))) ?? new Uint8Array(1);
}

/** A SubjectPublicKeyInfo: the algorithm's OID and parameters, and the key as a BIT STRING. */
function spkiOf(algorithm: string, parameters: Uint8Array, key: Uint8Array): Uint8Array {
  const identifier = derElement(0x30, concatBytes(derElement(0x06, fromHex(algorithm)), parameters));
  return derElement(0x30, concatBytes(identifier, derElement(0x03, concatBytes(new Uint8Array([0]), key))));
}

function derUnsigned(value: bigint): Uint8Array {
  const bytes = unsignedBytes(value);
  return derElement(0x02, (bytes[0] ?? 0) & 0x80 ? concatBytes(new Uint8Array([0]), bytes) : bytes);
}

// ---- Each kind of key, from its key data ----

function rsaKey(n: bigint, e: bigint): RsaPublicKey {
  const bits = bitLength(n);
  if ((n & 1n) === 0n || bits < RSA_MIN_MODULUS_BITS || bits > RSA_MAX_MODULUS_BITS) {
    throw failure(
      'DataError',
      `the RSA modulus must be odd and of ${RSA_MIN_MODULUS_BITS} to ${RSA_MAX_MODULUS_BITS} bits (it has ${bits})`,
    );
  }
  if ((e & 1n) === 0n || e < 3n || bitLength(e) > RSA_MAX_EXPONENT_BITS) {
    throw failure('DataError', `the RSA public exponent must be odd, at least 3 and at most ${RSA_MAX_EXPONENT_BITS} bits`);
  }
  return { n, e };
}

function ecPoint(curve: Curve, x: bigint, y: bigint) {
  if (!isOnCurve(curve, x, y)) throw failure('DataError', `the key is not a point of ${curve.name}`);
  return { x, y };
}

// An uncompressed (04 x y) or compressed (02/03 x) point, as `raw` and SPKI keys carry them.
function ecPointBytes(curve: Curve, bytes: Uint8Array) {
  const size = curve.size;
  if (bytes[0] === 0x04 && bytes.length === 1 + 2 * size) {
    return ecPoint(curve, bytesToBigInt(bytes.subarray(1, 1 + size)), bytesToBigInt(bytes.subarray(1 + size)));
  }
  if ((bytes[0] === 0x02 || bytes[0] === 0x03) && bytes.length === 1 + size) {
    const { p, b } = curve;
    const x = bytesToBigInt(bytes.subarray(1));
    if (x >= p) throw failure('DataError', `the key is not a point of ${curve.name}`);
    // p is 3 mod 4 for all three curves, so a square root is one power.
    const right = (((x * x) % p) * x - 3n * x + b) % p;
    let y = 1n;
    let base = ((right % p) + p) % p;
    for (let exponent = (p + 1n) / 4n; exponent > 0n; exponent >>= 1n) {
      if (exponent & 1n) y = (y * base) % p;
      base = (base * base) % p;
    }
    if ((y & 1n) !== BigInt(bytes[0] & 1)) y = p - y;
    return ecPoint(curve, x, y % p);
  }
  throw failure(
    'DataError',
    `the key is not an encoded point of ${curve.name} (${1 + 2 * size} bytes starting 04, or ${1 + size} starting 02 or 03)`,
  );
}

function importMaterial(kind: PublicAlgorithm, format: string, keyData: unknown, algorithm: unknown): Material {
  const parameters = (typeof algorithm === 'object' && algorithm !== null ? algorithm : {}) as Record<string, unknown>;
  const jwk = format === 'jwk' ? (keyData as Record<string, unknown>) : undefined;
  if (format === 'jwk' && (typeof keyData !== 'object' || keyData === null)) throw new TypeError('a JWK must be an object');
  if (format !== 'jwk' && format !== 'spki' && format !== 'raw') {
    throw failure('NotSupportedError', `a ${kind} key is imported as "jwk", "spki" or "raw" here, not "${format}"`);
  }
  const bytes = format === 'jwk' ? new Uint8Array() : bytesOf(keyData, `a ${format} key`);
  switch (kind) {
    case 'ECDSA':
    case 'ECDH': {
      const curveName = parameters.namedCurve;
      const curve = typeof curveName === 'string' ? CURVES[curveName as Curve['name']] : undefined;
      if (!curve) throw failure('NotSupportedError', `${kind} needs a namedCurve of P-256, P-384 or P-521 (it got ${String(curveName)})`);
      if (jwk) {
        if (jwk.kty !== 'EC') throw failure('DataError', `the JWK's "kty" is ${JSON.stringify(jwk.kty)}, not "EC"`);
        if (jwk.crv !== curve.name)
          throw failure('DataError', `the JWK's "crv" is ${JSON.stringify(jwk.crv)}, but the algorithm asks for ${curve.name}`);
        const x = fromBase64Url(jwk.x, 'x');
        const y = fromBase64Url(jwk.y, 'y');
        if (x.length !== curve.size || y.length !== curve.size)
          throw failure('DataError', `the JWK's "x" and "y" must be ${curve.size} bytes each for ${curve.name}`);
        return { kind, curve, point: ecPoint(curve, bytesToBigInt(x), bytesToBigInt(y)) };
      }
      if (format === 'spki') {
        const spki = parseSpki(bytes);
        if (spki.algorithm !== OID.ecPublicKey) throw failure('DataError', 'the SPKI does not hold an EC public key');
        if (CURVE_OIDS[spki.parameter ?? ''] !== curve.name) throw failure('DataError', `the SPKI's curve is not ${curve.name}`);
        return { kind, curve, point: ecPointBytes(curve, spki.key) };
      }
      return { kind, curve, point: ecPointBytes(curve, bytes) };
    }
    case 'RSASSA-PKCS1-v1_5':
    case 'RSA-PSS': {
      const hash = hashOf(parameters.hash, kind);
      if (format === 'raw') throw failure('NotSupportedError', `an ${kind} key is imported as "jwk" or "spki"`);
      if (jwk) {
        if (jwk.kty !== 'RSA') throw failure('DataError', `the JWK's "kty" is ${JSON.stringify(jwk.kty)}, not "RSA"`);
        const expected = jwkAlg(kind, hash);
        if (jwk.alg !== undefined && jwk.alg !== expected)
          throw failure('DataError', `the JWK's "alg" is ${JSON.stringify(jwk.alg)}, but ${kind} with ${hash} is ${expected}`);
        return { kind, hash, key: rsaKey(bytesToBigInt(fromBase64Url(jwk.n, 'n')), bytesToBigInt(fromBase64Url(jwk.e, 'e'))) };
      }
      const spki = parseSpki(bytes);
      if (spki.algorithm !== OID.rsaEncryption) throw failure('DataError', 'the SPKI does not hold an RSA public key');
      const sequence = expectElement(spki.key, 0, 0x30, 'the RSAPublicKey SEQUENCE');
      const n = derInteger(sequence.contents, 0, 'the RSA modulus');
      const e = derInteger(sequence.contents, n.end, 'the RSA public exponent');
      return { kind, hash, key: rsaKey(n.value, e.value) };
    }
    case 'Ed25519': {
      let raw = bytes;
      if (jwk) {
        if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') throw failure('DataError', 'an Ed25519 JWK has "kty": "OKP" and "crv": "Ed25519"');
        if (jwk.alg !== undefined && jwk.alg !== 'EdDSA' && jwk.alg !== 'Ed25519')
          throw failure('DataError', `the JWK's "alg" is ${JSON.stringify(jwk.alg)}, not "EdDSA"`);
        raw = fromBase64Url(jwk.x, 'x');
      } else if (format === 'spki') {
        const spki = parseSpki(bytes);
        if (spki.algorithm !== OID.ed25519) throw failure('DataError', 'the SPKI does not hold an Ed25519 public key');
        raw = spki.key;
      }
      if (raw.length !== 32 || !isEdPoint(raw))
        throw failure('DataError', 'the key is not an Ed25519 public key (32 bytes, a point of the curve)');
      return { kind, raw: Uint8Array.from(raw) };
    }
    case 'X25519': {
      let raw = bytes;
      if (jwk) {
        if (jwk.kty !== 'OKP' || jwk.crv !== 'X25519') throw failure('DataError', 'an X25519 JWK has "kty": "OKP" and "crv": "X25519"');
        raw = fromBase64Url(jwk.x, 'x');
      } else if (format === 'spki') {
        const spki = parseSpki(bytes);
        if (spki.algorithm !== OID.x25519) throw failure('DataError', 'the SPKI does not hold an X25519 public key');
        raw = spki.key;
      }
      // Any 32 bytes are an X25519 public key (RFC 7748): the function takes every u-coordinate.
      if (raw.length !== 32) throw failure('DataError', `an X25519 public key is 32 bytes, not ${raw.length}`);
      return { kind, raw: Uint8Array.from(raw) };
    }
  }
}

function publicAlgorithm(material: Material): Record<string, unknown> {
  switch (material.kind) {
    case 'ECDSA':
    case 'ECDH':
      return { name: material.kind, namedCurve: material.curve.name };
    case 'RSASSA-PKCS1-v1_5':
    case 'RSA-PSS': {
      const exponent = material.key.e;
      return {
        name: material.kind,
        modulusLength: bitLength(material.key.n),
        publicExponent: bigIntToBytes(exponent, Math.ceil(bitLength(exponent) / 8)),
        hash: { name: material.hash },
      };
    }
    case 'Ed25519':
    case 'X25519':
      return { name: material.kind };
  }
}

function isPrivate(format: string, keyData: unknown): boolean {
  return format === 'pkcs8' || (format === 'jwk' && typeof keyData === 'object' && keyData !== null && 'd' in keyData);
}

const CURVE_OID_OF: Readonly<Record<Curve['name'], string>> = { 'P-256': '2a8648ce3d030107', 'P-384': '2b81040022', 'P-521': '2b81040023' };

function pointBytes(material: Extract<Material, { kind: 'ECDSA' | 'ECDH' }>): Uint8Array {
  const { curve, point } = material;
  return concatBytes(
    new Uint8Array([4]),
    bigIntToBytes(point.x, curve.size) ?? new Uint8Array(),
    bigIntToBytes(point.y, curve.size) ?? new Uint8Array(),
  );
}

/** A public key as WebCrypto's exportKey gives it, in `format`. */
function exported(material: Material, format: string, usages: readonly string[]): ArrayBuffer | Record<string, unknown> {
  const buffer = (bytes: Uint8Array) => bytes.slice().buffer;
  switch (material.kind) {
    case 'ECDSA':
    case 'ECDH': {
      const { curve, point } = material;
      if (format === 'raw') return buffer(pointBytes(material));
      if (format === 'spki')
        return buffer(spkiOf(OID.ecPublicKey, derElement(0x06, fromHex(CURVE_OID_OF[curve.name])), pointBytes(material)));
      if (format === 'jwk') {
        const coordinate = (value: bigint) => base64Url(bigIntToBytes(value, curve.size) ?? new Uint8Array());
        return { kty: 'EC', crv: curve.name, x: coordinate(point.x), y: coordinate(point.y), key_ops: [...usages], ext: true };
      }
      break;
    }
    case 'RSASSA-PKCS1-v1_5':
    case 'RSA-PSS': {
      const { n, e } = material.key;
      if (format === 'spki')
        return buffer(spkiOf(OID.rsaEncryption, new Uint8Array([5, 0]), derElement(0x30, concatBytes(derUnsigned(n), derUnsigned(e)))));
      if (format === 'jwk') {
        const alg = jwkAlg(material.kind, material.hash);
        return { kty: 'RSA', n: base64Url(unsignedBytes(n)), e: base64Url(unsignedBytes(e)), alg, key_ops: [...usages], ext: true };
      }
      break;
    }
    case 'Ed25519':
    case 'X25519':
      if (format === 'raw') return buffer(material.raw);
      if (format === 'spki') return buffer(spkiOf(material.kind === 'Ed25519' ? OID.ed25519 : OID.x25519, new Uint8Array(), material.raw));
      if (format === 'jwk') return { kty: 'OKP', crv: material.kind, x: base64Url(material.raw), key_ops: [...usages], ext: true };
      break;
  }
  throw failure(
    'NotSupportedError',
    `a public ${material.kind} key is exported as ${material.kind.startsWith('RS') ? '"spki" or "jwk"' : '"raw", "spki" or "jwk"'}, not "${format}"`,
  );
}

/** What the host verifies (`stratum:crypto/primitives`); a test gives the host's own. */
export interface VerifyPrimitives {
  verify(scheme: Scheme, hash: WitHash, publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array, saltLength: number): boolean;
}

/** What the other layers may ask of this one about its keys. */
export interface PublicKeys {
  /** A public key of this layer as SPKI (whether or not it is extractable), or undefined. */
  spkiOf(key: unknown): Uint8Array | undefined;
}

/**
 * Gives `target` an importKey, verify and sign that handle public ECDSA, RSASSA-PKCS1-v1_5,
 * RSA-PSS and Ed25519 keys, and pass every other call on to `platform`. In a capsule both are
 * `crypto.subtle`; a test gives an empty object and Node.js's, to compare the two.
 */
export function addPublicKeys(
  target: object,
  platform: SubtleCrypto,
  cryptoKeyPrototype: object,
  primitives: VerifyPrimitives,
): PublicKeys {
  const materials = new WeakMap<object, Material>();
  // Written once a key is first used: an RSA key's DER takes BigInt work in the interpreter.
  const spkis = new WeakMap<Material, Uint8Array>();
  const spkiOf = (material: Material): Uint8Array => {
    let spki = spkis.get(material);
    if (!spki) {
      spki = new Uint8Array(exported(material, 'spki', []) as ArrayBuffer);
      spkis.set(material, spki);
    }
    return spki;
  };
  const platformImportKey = platform.importKey.bind(platform);
  const platformVerify = platform.verify.bind(platform);
  const platformSign = platform.sign.bind(platform);

  const importKey = async (...args: Parameters<typeof platformImportKey>): Promise<CryptoKey> => {
    const [format, keyData, algorithm, extractable, usages] = args as unknown as [string, unknown, unknown, boolean, string[]];
    const kind = PUBLIC_ALGORITHMS[nameOf(algorithm).toUpperCase()];
    if (!kind) return platformImportKey(...args);
    // Private keys are the private-key layer's, installed after this one; never the engine's,
    // which would abort the instance.
    if (isPrivate(format, keyData)) throw failure('NotSupportedError', `this layer imports public ${kind} keys, not private ones`);
    const asked = Array.from(usages ?? []);
    // A public key that agrees on secrets has no usage of its own: the private key derives.
    const allowed = AGREEMENT.has(kind) ? [] : ['verify'];
    const refused = asked.filter((usage) => !allowed.includes(usage));
    if (refused.length > 0) {
      const can = allowed.length > 0 ? 'can only "verify"' : 'has no usages';
      throw failure('SyntaxError', `a public ${kind} key ${can}, not ${refused.map((usage) => `"${usage}"`).join(', ')}`);
    }
    if (format === 'jwk') checkJwkUse(keyData as Record<string, unknown>, AGREEMENT.has(kind) ? 'enc' : 'sig', Boolean(extractable), asked);
    const material = importMaterial(kind, format, keyData, algorithm);
    const key = makeCryptoKey(cryptoKeyPrototype, {
      type: 'public',
      extractable: Boolean(extractable),
      algorithm: publicAlgorithm(material),
      usages: asked,
    });
    materials.set(key, material);
    return key;
  };

  const verify = async (...args: Parameters<typeof platformVerify>): Promise<boolean> => {
    const [algorithm, key, signatureData, data] = args;
    const material = typeof key === 'object' && key !== null ? materials.get(key) : undefined;
    if (!material) return platformVerify(...args);
    const name = nameOf(algorithm);
    if (name.toUpperCase() !== material.kind.toUpperCase()) {
      throw failure('InvalidAccessError', `the key is a ${material.kind} key, not ${name}`);
    }
    if (!key.usages.includes('verify')) throw failure('InvalidAccessError', 'the key was not imported for "verify"');
    const signature = bytesOf(signatureData, 'the signature');
    const message = bytesOf(data, 'the data');
    const parameters = (typeof algorithm === 'object' ? algorithm : {}) as Record<string, unknown>;
    let hash: HashName = 'SHA-256';
    let saltLength = 0;
    switch (material.kind) {
      case 'ECDSA':
        hash = hashOf(parameters.hash, 'ECDSA');
        break;
      case 'RSASSA-PKCS1-v1_5':
        hash = material.hash;
        break;
      case 'RSA-PSS': {
        const salt = parameters.saltLength;
        if (typeof salt !== 'number' || !Number.isInteger(salt) || salt < 0) {
          throw new TypeError('RSA-PSS needs a saltLength (a whole number of bytes; 32 for PS256)');
        }
        hash = material.hash;
        saltLength = salt;
        break;
      }
      case 'Ed25519':
        break;
      case 'ECDH':
      case 'X25519':
        throw failure('InvalidAccessError', `a ${material.kind} key does not verify`);
    }
    const scheme = SCHEMES[material.kind] ?? 'ed25519';
    // The key was checked at import, so the host refusing it is not the capsule's doing.
    return fromHost('OperationError', `${material.kind} verify`, () =>
      primitives.verify(scheme, HASHES[hash].wit, spkiOf(material), message, signature, saltLength),
    );
  };

  const platformExportKey = typeof platform.exportKey === 'function' ? platform.exportKey.bind(platform) : undefined;
  const exportKey = async (format: string, key: CryptoKey): Promise<unknown> => {
    const material = typeof key === 'object' && key !== null ? materials.get(key) : undefined;
    if (!material) {
      if (!platformExportKey) throw failure('NotSupportedError', 'this key cannot be exported in a capsule');
      return (platformExportKey as (format: string, key: CryptoKey) => Promise<unknown>)(format, key);
    }
    if (!key.extractable) throw failure('InvalidAccessError', 'the key is not extractable');
    return exported(material, format, key.usages);
  };

  const sign = async (...args: Parameters<typeof platformSign>): Promise<ArrayBuffer> => {
    const key = args[1];
    if (typeof key === 'object' && key !== null && materials.has(key)) {
      throw failure('InvalidAccessError', 'a public key cannot sign');
    }
    return platformSign(...args);
  };

  for (const [name, value] of Object.entries({ importKey, verify, sign, exportKey })) {
    Object.defineProperty(target, name, { configurable: true, writable: true, value });
  }
  return {
    spkiOf(key) {
      const material = typeof key === 'object' && key !== null ? materials.get(key) : undefined;
      return material ? spkiOf(material) : undefined;
    },
  };
}
