// The arithmetic that checks a public key before the SDK takes it: an ECDSA or ECDH point is on
// its NIST curve (FIPS 186-5), an Ed25519 key is a point of its curve (RFC 8032). Signatures are
// verified by the host (stratum:crypto's `verify`, OpenSSL); a key that is no key is refused at
// import here, with a DataError that says so, as WebCrypto does.

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

export function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
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

export interface Curve {
  readonly name: 'P-256' | 'P-384' | 'P-521';
  readonly p: bigint;
  readonly n: bigint;
  readonly b: bigint;
  readonly gx: bigint;
  readonly gy: bigint;
  /** Bytes of one coordinate. */
  readonly size: number;
}

// The domain parameters of FIPS 186-5 / SP 800-186. The tests check each against Node.js's own
// curves (the generator is the public key of private key 1, n - 1 times it is its negation).
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

export interface RsaPublicKey {
  readonly n: bigint;
  readonly e: bigint;
}

// ---- Ed25519 (RFC 8032) ----

const ED_P = 2n ** 255n - 19n;

// Worked out on first use, not when the SDK loads: each is a modPow in StarlingMonkey's interpreter.
let edConstants: { d: bigint; sqrtM1: bigint } | undefined;
function ed(): { d: bigint; sqrtM1: bigint } {
  if (!edConstants) {
    edConstants = { d: mod(-121665n * modPow(121666n, ED_P - 2n, ED_P), ED_P), sqrtM1: modPow(2n, (ED_P - 1n) / 4n, ED_P) };
  }
  return edConstants;
}

/** Whether 32 bytes encode a point of the Ed25519 curve (RFC 8032, section 5.1.3). */
export function isEdPoint(bytes: Uint8Array): boolean {
  if (bytes.length !== 32) return false;
  const { d, sqrtM1 } = ed();
  const copy = Uint8Array.from(bytes).reverse();
  const sign = BigInt((copy[0] ?? 0) >> 7);
  copy[0] = (copy[0] ?? 0) & 0x7f;
  const y = bytesToBigInt(copy);
  if (y >= ED_P) return false;
  const yy = (y * y) % ED_P;
  const u = mod(yy - 1n, ED_P);
  const v = (d * yy + 1n) % ED_P;
  const v3 = (((v * v) % ED_P) * v) % ED_P;
  const v7 = (((v3 * v3) % ED_P) * v) % ED_P;
  let x = (((u * v3) % ED_P) * modPow((u * v7) % ED_P, (ED_P - 5n) / 8n, ED_P)) % ED_P;
  const vxx = (((v * x) % ED_P) * x) % ED_P;
  if (vxx === mod(-u, ED_P)) x = (x * sqrtM1) % ED_P;
  else if (vxx !== u) return false;
  return !(x === 0n && sign === 1n);
}
