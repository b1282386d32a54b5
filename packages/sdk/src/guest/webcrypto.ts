/// <reference path="../wit/guest.generated.d.ts" />
// WebCrypto as a capsule has it: the engine's digests and HMAC; public keys (crypto-public-keys.ts),
// private keys (crypto-private-keys.ts) and secret keys (crypto-secret-keys.ts), each layer
// checking keys and arguments in the capsule and leaving the cryptography to the host. Each layer
// passes on what it does not know to the one installed before it. The build imports it for this effect, after globals.ts, into a
// bundle that mentions `subtle`. The engine's `subtle` has no generateKey; one that has it is
// taken to be whole, and left alone.
import {
  aesCbcDecrypt,
  aesCbcEncrypt,
  aesGcmDecrypt,
  aesGcmEncrypt,
  deriveSharedSecret,
  generateKeyPair,
  hkdf,
  inspectPrivateKey,
  pbkdf2,
  sign,
  verify,
} from 'stratum:crypto/primitives@0.1.0';
import { addPrivateKeys } from './crypto-private-keys.ts';
import { addPublicKeys } from './crypto-public-keys.ts';
import { addSecretKeys } from './crypto-secret-keys.ts';

const subtle = globalThis.crypto?.subtle;
if (subtle && typeof globalThis.CryptoKey === 'function' && !('generateKey' in subtle)) {
  const publicKeys = addPublicKeys(subtle, subtle, globalThis.CryptoKey.prototype, { verify });
  addPrivateKeys(subtle, { generateKeyPair, inspectPrivateKey, sign, deriveSharedSecret }, globalThis.CryptoKey.prototype, publicKeys);
  addSecretKeys(subtle, { pbkdf2, hkdf, aesGcmEncrypt, aesGcmDecrypt, aesCbcEncrypt, aesCbcDecrypt }, globalThis.CryptoKey.prototype);
}
