// Signature verification with public keys, on BigInt: ECDSA on the NIST curves (FIPS 186-5),
// RSASSA-PKCS1-v1_5 and RSA-PSS (RFC 8017) and Ed25519 (RFC 8032). StarlingMonkey's
// `crypto.subtle` has none of them (see crypto-public-keys.ts), and a capsule needs them to check
// a JWT or a webhook signed by someone else. Only verification is here: it handles public values
// alone, so the variable timing of BigInt arithmetic gives nothing away, which it would when
// signing with a private key. Every function answers false for a signature that does not check
// out, as WebCrypto's `verify` does, and never throws for one.

export type Digest = (algorithm: string, data: Uint8Array) => Promise<Uint8Array>;

export function bytesToBigInt(bytes: Uint8Array): bigint {
  let hex = '0x0';
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0');
  return BigInt(hex);
}

// Big-endian, exactly `length` bytes, or undefined when the value needs more.
export function bigIntToBytes(value: bigint, length: number): Uint8Array | undefined {
  const hex = value.toString(16);
  if (hex.length > length * 2) return undefined;
  const padded = hex.padStart(length * 2, '0');
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = Number.parseInt(padded.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

export function bitLength(value: bigint): number {
  return value === 0n ? 0 : value.toString(2).length;
}

function mod(value: bigint, modulus: bigint): bigint {
  const rest = value % modulus;
  return rest < 0n ? rest + modulus : rest;
}

function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let square = mod(base, modulus);
  let rest = exponent;
  while (rest > 0n) {
    if (rest & 1n) result = (result * square) % modulus;
    rest >>= 1n;
    if (rest > 0n) square = (square * square) % modulus;
  }
  return result;
}

// Extended Euclid: faster than Fermat's modPow(value, p - 2) for one inversion.
function invert(value: bigint, modulus: bigint): bigint {
  let oldRest = mod(value, modulus);
  let rest = modulus;
  let oldFactor = 1n;
  let factor = 0n;
  while (rest !== 0n) {
    const quotient = oldRest / rest;
    const nextRest = oldRest - quotient * rest;
    oldRest = rest;
    rest = nextRest;
    const nextFactor = oldFactor - quotient * factor;
    oldFactor = factor;
    factor = nextFactor;
  }
  if (oldRest !== 1n) throw new RangeError('the value has no inverse');
  return mod(oldFactor, modulus);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return difference === 0;
}

// ---- ECDSA on the NIST prime curves (a = -3), Jacobian coordinates ----

export interface Curve {
  readonly name: 'P-256' | 'P-384' | 'P-521';
  readonly p: bigint;
  readonly n: bigint;
  readonly b: bigint;
  readonly gx: bigint;
  readonly gy: bigint;
  /** Bytes of one coordinate, and of r and s in a WebCrypto signature. */
  readonly size: number;
}

// The domain parameters of FIPS 186-5 / SP 800-186. The tests check each against Node.js's own
// curves (the generator is the public key of private key 1, n times it is the point at infinity).
export const CURVES: Readonly<Record<Curve['name'], Curve>> = {
  'P-256': {
    name: 'P-256',
    p: 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
    gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
    gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
    size: 32,
  },
  'P-384': {
    name: 'P-384',
    p: 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
    gx: 0xaa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7n,
    gy: 0x3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5fn,
    size: 48,
  },
  'P-521': {
    name: 'P-521',
    p: 2n ** 521n - 1n,
    n: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
    b: 0x0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
    gx: 0x00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66n,
    gy: 0x011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650n,
    size: 66,
  },
};

export function isOnCurve(curve: Curve, x: bigint, y: bigint): boolean {
  const { p, b } = curve;
  if (x < 0n || x >= p || y < 0n || y >= p) return false;
  return mod(y * y - (x * x * x - 3n * x + b), p) === 0n;
}

interface Jacobian {
  x: bigint;
  y: bigint;
  z: bigint; // 0 at infinity
}

interface Affine {
  readonly x: bigint;
  readonly y: bigint;
}

function jacobianDouble(point: Jacobian, p: bigint): Jacobian {
  if (point.z === 0n || point.y === 0n) return { x: 0n, y: 1n, z: 0n };
  const delta = (point.z * point.z) % p;
  const gamma = (point.y * point.y) % p;
  const beta = (point.x * gamma) % p;
  const alpha = mod(3n * (point.x - delta) * (point.x + delta), p);
  const x = mod(alpha * alpha - 8n * beta, p);
  const z = mod((point.y + point.z) * (point.y + point.z) - gamma - delta, p);
  const y = mod(alpha * (4n * beta - x) - 8n * ((gamma * gamma) % p), p);
  return { x, y, z };
}

function jacobianAddAffine(point: Jacobian, other: Affine, p: bigint): Jacobian {
  if (point.z === 0n) return { x: other.x, y: other.y, z: 1n };
  const zz = (point.z * point.z) % p;
  const u2 = (other.x * zz) % p;
  const s2 = (((other.y * point.z) % p) * zz) % p;
  const h = mod(u2 - point.x, p);
  const r = mod(s2 - point.y, p);
  if (h === 0n) return r === 0n ? jacobianDouble(point, p) : { x: 0n, y: 1n, z: 0n };
  const hh = (h * h) % p;
  const hhh = (h * hh) % p;
  const v = (point.x * hh) % p;
  const x = mod(r * r - hhh - 2n * v, p);
  const y = mod(r * (v - x) - point.y * hhh, p);
  return { x, y, z: (point.z * h) % p };
}

function toAffine(point: Jacobian, p: bigint): Affine | undefined {
  if (point.z === 0n) return undefined;
  const inverse = invert(point.z, p);
  const inverse2 = (inverse * inverse) % p;
  return { x: (point.x * inverse2) % p, y: (((point.y * inverse2) % p) * inverse) % p };
}

// a·P + b·Q in one pass over the bits (Shamir's trick): about half the additions of two.
function shamir(a: bigint, pointP: Affine, b: bigint, pointQ: Affine, p: bigint): Affine | undefined {
  const sum = toAffine(jacobianAddAffine({ x: pointP.x, y: pointP.y, z: 1n }, pointQ, p), p);
  let result: Jacobian = { x: 0n, y: 1n, z: 0n };
  for (let bit = Math.max(bitLength(a), bitLength(b)) - 1; bit >= 0; bit--) {
    result = jacobianDouble(result, p);
    const inA = (a >> BigInt(bit)) & 1n;
    const inB = (b >> BigInt(bit)) & 1n;
    if (inA && inB) {
      if (sum) result = jacobianAddAffine(result, sum, p);
    } else if (inA) result = jacobianAddAffine(result, pointP, p);
    else if (inB) result = jacobianAddAffine(result, pointQ, p);
  }
  return toAffine(result, p);
}

export function ecdsaVerify(curve: Curve, publicKey: Affine, hash: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== curve.size * 2) return false;
  const { n, p } = curve;
  const r = bytesToBigInt(signature.subarray(0, curve.size));
  const s = bytesToBigInt(signature.subarray(curve.size));
  if (r < 1n || r >= n || s < 1n || s >= n) return false;
  const orderBits = bitLength(n);
  let e = bytesToBigInt(hash);
  if (hash.length * 8 > orderBits) e >>= BigInt(hash.length * 8 - orderBits);
  const w = invert(s, n);
  const point = shamir((e * w) % n, { x: curve.gx, y: curve.gy }, (r * w) % n, publicKey, p);
  return point !== undefined && point.x % n === r;
}

// ---- RSA (RFC 8017) ----

export interface RsaPublicKey {
  readonly n: bigint;
  readonly e: bigint;
}

// The DER of DigestInfo before the hash (RFC 8017, section 9.2, note 1).
const DIGEST_INFO: Readonly<Record<string, string>> = {
  'SHA-1': '3021300906052b0e03021a05000414',
  'SHA-256': '3031300d060960864801650304020105000420',
  'SHA-384': '3041300d060960864801650304020205000430',
  'SHA-512': '3051300d060960864801650304020305000440',
};

export const HASH_BYTES: Readonly<Record<string, number>> = { 'SHA-1': 20, 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 };

// The signature as a number raised to e, as the encoded message of `length` bytes.
function rsaOpen(key: RsaPublicKey, signature: Uint8Array, length: number): Uint8Array | undefined {
  const modulusBytes = Math.ceil(bitLength(key.n) / 8);
  if (signature.length !== modulusBytes) return undefined;
  const s = bytesToBigInt(signature);
  if (s >= key.n) return undefined;
  return bigIntToBytes(modPow(s, key.e, key.n), length);
}

export function rsaPkcs1Verify(key: RsaPublicKey, hashName: string, hash: Uint8Array, signature: Uint8Array): boolean {
  const prefix = DIGEST_INFO[hashName];
  if (!prefix) return false;
  const length = Math.ceil(bitLength(key.n) / 8);
  const digestInfo = prefix.length / 2 + hash.length;
  if (length < digestInfo + 11) return false;
  const encoded = rsaOpen(key, signature, length);
  if (!encoded) return false;
  // Built whole and compared whole, never parsed: parsing is how PKCS#1 v1.5 checks got forged.
  const expected = new Uint8Array(length);
  expected[1] = 0x01;
  expected.fill(0xff, 2, length - digestInfo - 1);
  for (let i = 0; i < prefix.length / 2; i++) {
    expected[length - digestInfo + i] = Number.parseInt(prefix.slice(i * 2, i * 2 + 2), 16);
  }
  expected.set(hash, length - hash.length);
  return sameBytes(encoded, expected);
}

async function mgf1(digest: Digest, hashName: string, seed: Uint8Array, length: number): Promise<Uint8Array> {
  const mask = new Uint8Array(length);
  const input = new Uint8Array(seed.length + 4);
  input.set(seed);
  let filled = 0;
  for (let counter = 0; filled < length; counter++) {
    new DataView(input.buffer).setUint32(seed.length, counter);
    const block = await digest(hashName, input);
    mask.set(block.subarray(0, Math.min(block.length, length - filled)), filled);
    filled += block.length;
  }
  return mask;
}

export async function rsaPssVerify(
  key: RsaPublicKey,
  hashName: string,
  digest: Digest,
  messageHash: Uint8Array,
  signature: Uint8Array,
  saltLength: number,
): Promise<boolean> {
  const hashLength = messageHash.length;
  const emBits = bitLength(key.n) - 1;
  const emLength = Math.ceil(emBits / 8);
  if (emLength < hashLength + saltLength + 2) return false;
  const encoded = rsaOpen(key, signature, emLength);
  if (encoded?.[emLength - 1] !== 0xbc) return false;
  const maskedLength = emLength - hashLength - 1;
  const masked = encoded.subarray(0, maskedLength);
  const h = encoded.subarray(maskedLength, maskedLength + hashLength);
  const unusedBits = 8 * emLength - emBits;
  const topMask = 0xff >> unusedBits;
  if (((masked[0] ?? 0) & ~topMask) !== 0) return false;
  const mask = await mgf1(digest, hashName, h, maskedLength);
  const db = new Uint8Array(maskedLength);
  for (let i = 0; i < maskedLength; i++) db[i] = (masked[i] ?? 0) ^ (mask[i] ?? 0);
  db[0] = (db[0] ?? 0) & topMask;
  const separator = maskedLength - saltLength - 1;
  for (let i = 0; i < separator; i++) if (db[i] !== 0) return false;
  if (db[separator] !== 0x01) return false;
  const prime = new Uint8Array(8 + hashLength + saltLength);
  prime.set(messageHash, 8);
  prime.set(db.subarray(maskedLength - saltLength), 8 + hashLength);
  return sameBytes(await digest(hashName, prime), h);
}

// ---- Ed25519 (RFC 8032), extended coordinates ----

const ED_P = 2n ** 255n - 19n;
const ED_L = 2n ** 252n + 27742317777372353535851937790883648493n;

// Worked out on first use, not when the SDK loads: every capsule loads this module, and two of
// these are a modPow each in StarlingMonkey's interpreter.
let edConstants: { d: bigint; d2: bigint; sqrtM1: bigint; base: Extended } | undefined;
function ed() {
  if (!edConstants) {
    const d = mod(-121665n * invert(121666n, ED_P), ED_P);
    const partial = { d, d2: (2n * d) % ED_P, sqrtM1: modPow(2n, (ED_P - 1n) / 4n, ED_P) };
    const baseY = (bigIntToBytes((4n * invert(5n, ED_P)) % ED_P, 32) ?? new Uint8Array(32)).reverse();
    edConstants = { ...partial, base: decodeWith(partial, baseY) as Extended };
  }
  return edConstants;
}

interface Extended {
  readonly x: bigint;
  readonly y: bigint;
  readonly z: bigint;
  readonly t: bigint;
}

function edAdd(a: Extended, b: Extended): Extended {
  const p = ED_P;
  const aa = mod((a.y - a.x) * (b.y - b.x), p);
  const bb = ((a.y + a.x) * (b.y + b.x)) % p;
  const c = (((a.t * ed().d2) % p) * b.t) % p;
  const d = (2n * a.z * b.z) % p;
  const e = mod(bb - aa, p);
  const f = mod(d - c, p);
  const g = (d + c) % p;
  const h = (bb + aa) % p;
  return { x: (e * f) % p, y: (g * h) % p, t: (e * h) % p, z: (f * g) % p };
}

function edDouble(a: Extended): Extended {
  const p = ED_P;
  const aa = (a.x * a.x) % p;
  const bb = (a.y * a.y) % p;
  const c = (2n * a.z * a.z) % p;
  const h = (aa + bb) % p;
  const sum = a.x + a.y;
  const e = mod(h - sum * sum, p);
  const g = mod(aa - bb, p);
  const f = (c + g) % p;
  return { x: (e * f) % p, y: (g * h) % p, t: (e * h) % p, z: (f * g) % p };
}

function littleEndian(bytes: Uint8Array): bigint {
  return bytesToBigInt(Uint8Array.from(bytes).reverse());
}

/** A point from its 32-byte encoding, or undefined when the bytes are no point of the curve. */
export function edDecode(bytes: Uint8Array): Extended | undefined {
  return decodeWith(ed(), bytes);
}

function decodeWith(constants: { d: bigint; sqrtM1: bigint }, bytes: Uint8Array): Extended | undefined {
  if (bytes.length !== 32) return undefined;
  const copy = Uint8Array.from(bytes);
  const sign = BigInt((copy[31] ?? 0) >> 7);
  copy[31] = (copy[31] ?? 0) & 0x7f;
  const y = littleEndian(copy);
  if (y >= ED_P) return undefined;
  const yy = (y * y) % ED_P;
  const u = mod(yy - 1n, ED_P);
  const v = (constants.d * yy + 1n) % ED_P;
  const v3 = (((v * v) % ED_P) * v) % ED_P;
  const v7 = (((v3 * v3) % ED_P) * v) % ED_P;
  let x = (((u * v3) % ED_P) * modPow((u * v7) % ED_P, (ED_P - 5n) / 8n, ED_P)) % ED_P;
  const vxx = (((v * x) % ED_P) * x) % ED_P;
  if (vxx === mod(-u, ED_P)) x = (x * constants.sqrtM1) % ED_P;
  else if (vxx !== u) return undefined;
  if (x === 0n && sign === 1n) return undefined;
  if ((x & 1n) !== sign) x = ED_P - x;
  return { x, y, z: 1n, t: (x * y) % ED_P };
}

function edEncode(point: Extended): Uint8Array {
  const inverse = invert(point.z, ED_P);
  const x = (point.x * inverse) % ED_P;
  const y = (point.y * inverse) % ED_P;
  const bytes = (bigIntToBytes(y, 32) ?? new Uint8Array(32)).reverse();
  bytes[31] = (bytes[31] ?? 0) | (Number(x & 1n) << 7);
  return bytes;
}

export async function ed25519Verify(publicKey: Uint8Array, signature: Uint8Array, message: Uint8Array, digest: Digest): Promise<boolean> {
  if (signature.length !== 64) return false;
  const a = edDecode(publicKey);
  if (!a) return false;
  const s = littleEndian(signature.subarray(32));
  if (s >= ED_L) return false;
  const input = new Uint8Array(64 + message.length);
  input.set(signature.subarray(0, 32));
  input.set(publicKey, 32);
  input.set(message, 64);
  const k = littleEndian(await digest('SHA-512', input)) % ED_L;
  // [s]B - [k]A, whose encoding must be R's: the check RFC 8032 gives, and OpenSSL makes.
  const minusA: Extended = { x: mod(-a.x, ED_P), y: a.y, z: a.z, t: mod(-a.t, ED_P) };
  const base = ed().base;
  const both = edAdd(base, minusA);
  let result: Extended = { x: 0n, y: 1n, z: 1n, t: 0n };
  for (let bit = Math.max(bitLength(s), bitLength(k)) - 1; bit >= 0; bit--) {
    result = edDouble(result);
    const inS = (s >> BigInt(bit)) & 1n;
    const inK = (k >> BigInt(bit)) & 1n;
    if (inS && inK) result = edAdd(result, both);
    else if (inS) result = edAdd(result, base);
    else if (inK) result = edAdd(result, minusA);
  }
  return sameBytes(edEncode(result), signature.subarray(0, 32));
}
