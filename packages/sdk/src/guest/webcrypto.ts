/// <reference path="../wit/guest.generated.d.ts" />
// WebCrypto as a capsule has it: the engine's digests and HMAC, public-key verification computed
// by the SDK (crypto-public-keys.ts), and secret-key encryption and derivation computed by the
// host (crypto-secret-keys.ts). The build imports it for this effect, after globals.ts, into a
// bundle that mentions `subtle`. The engine's `subtle` has no generateKey; one that has it is
// taken to be whole, and left alone.
import { aesCbcDecrypt, aesCbcEncrypt, aesGcmDecrypt, aesGcmEncrypt, hkdf, pbkdf2 } from 'stratum:crypto/primitives@0.1.0';
import { addPublicKeys } from './crypto-public-keys.ts';
import { addSecretKeys } from './crypto-secret-keys.ts';

const subtle = globalThis.crypto?.subtle;
if (subtle && typeof globalThis.CryptoKey === 'function' && !('generateKey' in subtle)) {
  addPublicKeys(subtle, subtle, globalThis.CryptoKey.prototype);
  addSecretKeys(subtle, { pbkdf2, hkdf, aesGcmEncrypt, aesGcmDecrypt, aesCbcEncrypt, aesCbcDecrypt }, globalThis.CryptoKey.prototype);
}
