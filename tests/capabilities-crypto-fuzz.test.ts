// stratum:crypto takes keys, ciphertexts and lengths from untrusted capsules. Whatever they pass,
// a call must end in a result: the value, or one of the interface's errors. Any other exception
// from a host import would trap the instance.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { WitError } from '../packages/host/src/capabilities/contract.ts';
import crypto from '../packages/host/src/capabilities/crypto/index.ts';

type Call = (...args: unknown[]) => unknown;

async function primitives(): Promise<Record<string, Call>> {
  const prepared = await crypto.prepare({} as never);
  return prepared.imports['stratum:crypto/primitives'] as Record<string, Call>;
}

/** xorshift32: the same bytes on every run, so a failure names a case that comes back. */
function bytesFrom(seed: number, length: number): Uint8Array {
  let state = seed * 2_654_435_761 + 1 || 1;
  return Uint8Array.from({ length }, () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state & 0xff;
  });
}

function outcome(call: () => unknown): string {
  try {
    call();
    return 'value';
  } catch (error) {
    if (error instanceof WitError) return (error.payload as { tag: string }).tag;
    return `THROWN ${String(error)}`;
  }
}

test('keys of kinds WebCrypto does not take are refused as invalid-input, not thrown: id-RSASSA-PSS, DSA, X448, secp256k1', async () => {
  const call = await primitives();
  const pkcs8 = (key: KeyObject) => new Uint8Array(key.export({ type: 'pkcs8', format: 'der' }));
  const cases: [string, Uint8Array, string][] = [
    ['rsa-pss', pkcs8(generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey), 'rsa'],
    ['dsa', pkcs8(generateKeyPairSync('dsa', { modulusLength: 2048, divisorLength: 256 }).privateKey), 'rsa'],
    ['x448', pkcs8(generateKeyPairSync('x448').privateKey), 'x25519'],
    ['secp256k1', pkcs8(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey), 'p256'],
  ];
  for (const [label, key, type] of cases) {
    assert.equal(
      outcome(() => call.inspectPrivateKey?.({ tag: 'pkcs8', val: key }, type)),
      'invalid-input',
      label,
    );
    assert.equal(
      outcome(() => call.sign?.('ecdsa', 'sha256', key, new Uint8Array(3), 0)),
      'invalid-input',
      label,
    );
  }
});

test('hostile arguments to every primitive end in a value or an interface error (fuzzed)', async () => {
  const call = await primitives();
  const seen = new Map<string, number>();
  for (let round = 0; round < 250; round++) {
    const bytes = bytesFrom(round, round % 200);
    const other = bytesFrom(round + 7_919, (round * 13) % 90);
    const attempts: [string, () => unknown][] = [
      ['inspect pkcs8', () => call.inspectPrivateKey?.({ tag: 'pkcs8', val: bytes }, 'p256')],
      ['inspect jwk text', () => call.inspectPrivateKey?.({ tag: 'jwk', val: Buffer.from(bytes).toString('latin1') }, 'rsa')],
      [
        'inspect jwk',
        () =>
          call.inspectPrivateKey?.(
            {
              tag: 'jwk',
              val: JSON.stringify({
                kty: ['EC', 'RSA', 'OKP', 'oct'][round % 4],
                crv: ['P-256', 'Ed25519', 'X25519', 'P-384'][round % 4],
                d: Buffer.from(bytes).toString('base64url'),
                x: Buffer.from(other).toString('base64url'),
                y: 'AA',
                n: Buffer.from(bytes).toString('base64url'),
                e: 'AQAB',
              }),
            },
            (['p256', 'ed25519', 'x25519', 'rsa'] as const)[round % 4],
          ),
      ],
      ['derive', () => call.deriveSharedSecret?.(bytes, other)],
      [
        'verify',
        () =>
          call.verify?.(
            ['ecdsa', 'rsassa-pkcs1-v1-5', 'ed25519', 'nope'][round % 4],
            ['sha256', 'md5'][round % 2],
            bytes,
            other,
            bytes,
            round,
          ),
      ],
      [
        'sign',
        () => call.sign?.(['ecdsa', 'rsa-pss', 'ed25519', 'nope'][round % 4], ['sha256', 'md5'][round % 2], bytes, other, round * 1_000),
      ],
      [
        'gcm',
        () =>
          call.aesGcmDecrypt?.(
            bytesFrom(round, [16, 24, 32, 7][round % 4] ?? 16),
            other.subarray(0, round % 20),
            bytes,
            other,
            [16, 4, 3, 200][round % 4],
          ),
      ],
      [
        'cbc',
        () => call.aesCbcDecrypt?.(bytesFrom(round, [16, 24, 32, 0][round % 4] ?? 16), bytesFrom(round, [16, 15][round % 2] ?? 16), bytes),
      ],
      ['hkdf', () => call.hkdf?.(['sha1', 'sha512', 'md5'][round % 3], bytes, other, bytesFrom(round, round * 5), round * 7)],
      ['pbkdf2', () => call.pbkdf2?.('sha256', bytes, other, [0, 1, 10][round % 3], [0, 16, 5_000][round % 3])],
      [
        'generate',
        () =>
          call.generateKeyPair?.(
            ['p256', 'x25519', 'nope', 'rsa'][round % 4],
            [100, 2_048, 0, 2_049][round % 4],
            [1, 65_537, 17, 3][round % 4],
          ),
      ],
    ];
    for (const [label, attempt] of attempts) {
      const result = outcome(attempt);
      assert.ok(!result.startsWith('THROWN'), `${label}, round ${round}: ${result}`);
      seen.set(`${label} ${result}`, (seen.get(`${label} ${result}`) ?? 0) + 1);
    }
  }
  // The rounds reach both ends: values and errors (so the mutants are not all refused at once).
  assert.ok(
    [...seen.keys()].some((key) => key.endsWith(' value')),
    [...seen.keys()].join(', '),
  );
  assert.ok([...seen.keys()].some((key) => key.endsWith(' invalid-input')));
  assert.ok([...seen.keys()].some((key) => key.endsWith(' operation-failed')));
});
