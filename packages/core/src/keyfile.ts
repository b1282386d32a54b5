import { chmod, readFile, writeFile } from 'node:fs/promises';
import { StratumError } from './errors.ts';
import { type Ed25519PrivateJwk, type Ed25519PublicJwk, jwkThumbprint } from './signing.ts';

/**
 * Key files hold one Ed25519 private key as a JWK (RFC 8037) in JSON, readable by the owner
 * only. Hosts keep their identity key in one; registrars their signing key.
 */
export async function writeKeyFile(path: string, key: Ed25519PrivateJwk): Promise<void> {
  await writeFile(path, `${JSON.stringify(key, null, 2)}\n`, { mode: 0o600, flag: 'wx' }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST') {
      throw new StratumError('KEY_FILE_EXISTS', `${path} already exists`, {
        hint: 'Refusing to overwrite a key: move the old file away first if you really mean to replace it.',
      });
    }
    throw error;
  });
  await chmod(path, 0o600);
}

export async function readKeyFile(path: string): Promise<Ed25519PrivateJwk> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new StratumError('KEY_FILE_UNREADABLE', `cannot read the key file ${path}`, {
      details: [String((error as Error).message)],
      hint: 'Create one with `stratum host keygen`.',
    });
  }
  let value: Partial<Ed25519PrivateJwk>;
  try {
    value = JSON.parse(text) as Partial<Ed25519PrivateJwk>;
  } catch {
    throw new StratumError('KEY_FILE_INVALID', `${path} is not JSON`, { hint: 'A key file holds one Ed25519 private JWK.' });
  }
  if (value.kty !== 'OKP' || value.crv !== 'Ed25519' || typeof value.x !== 'string' || typeof value.d !== 'string') {
    throw new StratumError('KEY_FILE_INVALID', `${path} does not hold an Ed25519 private key`, {
      details: ['expected {"kty":"OKP","crv":"Ed25519","x":"...","d":"..."}'],
    });
  }
  return { kty: 'OKP', crv: 'Ed25519', x: value.x, d: value.d, kid: jwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: value.x }) };
}

export function publicPart(key: Ed25519PrivateJwk): Ed25519PublicJwk {
  return { kty: key.kty, crv: key.crv, x: key.x, kid: key.kid ?? jwkThumbprint(key) };
}
