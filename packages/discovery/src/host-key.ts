import {
  type Ed25519PrivateJwk,
  type Ed25519PublicJwk,
  publicKeyFromRaw,
  publicPart,
  readKeyFile,
  StratumError,
  signEd25519,
  verifyEd25519,
} from '@stratum/core';
import { normaliseHostName } from './names.ts';
import type { HostRecord } from './records.ts';

/** A host's identity key, as the discovery protocol uses it: the private JWK plus its raw public form. */
export interface HostKey {
  privateJwk: Ed25519PrivateJwk;
  publicJwk: Ed25519PublicJwk;
  /** The 32-byte public key in unpadded base64url, as published in `k=`. */
  publicKey: string;
  /** RFC 7638 thumbprint, used in the challenge's key authorization. */
  thumbprint: string;
}

export function hostKeyFromJwk(privateJwk: Ed25519PrivateJwk): HostKey {
  const publicJwk = publicPart(privateJwk);
  const checked = publicKeyFromRaw(publicJwk.x);
  return { privateJwk, publicJwk: checked, publicKey: checked.x, thumbprint: checked.kid ?? '' };
}

/** Reads a key file written by `stratum host keygen`. */
export async function loadHostKey(path: string): Promise<HostKey> {
  return hostKeyFromJwk(await readKeyFile(path));
}

/**
 * What the current key signs to announce the next one: the host name binds the statement to
 * one host, so an announcement cannot be replayed under another name.
 */
export function rotationStatement(hostName: string, currentKey: string, nextKey: string): Uint8Array {
  return new TextEncoder().encode(`stratum1-rotate:${normaliseHostName(hostName)}:${currentKey}:${nextKey}`);
}

/** The `nk`/`nks` pair a host publishes before moving from `current` to `next`. */
export async function announceNextKey(
  hostName: string,
  current: HostKey,
  next: HostKey,
): Promise<{ publicKey: string; signature: string }> {
  const signature = await signEd25519(current.privateJwk, rotationStatement(hostName, current.publicKey, next.publicKey));
  return { publicKey: next.publicKey, signature: Buffer.from(signature).toString('base64url') };
}

/** True when the record's `nks` is the current key's signature over its `nk`. */
export async function nextKeyIsAuthentic(hostName: string, record: HostRecord): Promise<boolean> {
  if (!record.nextKey) return false;
  return verifyEd25519(
    publicKeyFromRaw(record.publicKey),
    rotationStatement(hostName, record.publicKey, record.nextKey.publicKey),
    Buffer.from(record.nextKey.signature, 'base64url'),
  );
}

/**
 * What a registrar that trusts `trustedKey` for `hostName` may trust after reading `record`
 * (spec section 4.3): the same key; or the record's new `k`, only when the registrar saw it
 * announced as `nk`, signed by the trusted key, in an earlier record. Anything else needs a
 * new challenge.
 */
export async function acceptHostKey(options: {
  hostName: string;
  trustedKey: string;
  /** The last record this registrar read that carried a valid announcement, if any. */
  announced?: HostRecord;
  record: HostRecord;
}): Promise<string> {
  const { hostName, trustedKey, announced, record } = options;
  if (record.publicKey === trustedKey) return trustedKey;
  if (
    announced &&
    announced.publicKey === trustedKey &&
    announced.nextKey?.publicKey === record.publicKey &&
    (await nextKeyIsAuthentic(hostName, announced))
  ) {
    return record.publicKey;
  }
  throw new StratumError('HOST_KEY_CHANGED', `the key published for ${hostName} is not the one this registrar trusts`, {
    details: [`trusted ${trustedKey}`, `published ${record.publicKey}`],
    hint: 'A host rotates keys by announcing nk/nks first; otherwise it has to pass a new verification challenge.',
  });
}
