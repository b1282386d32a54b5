import { createHash, type Hash } from 'node:crypto';
import { StratumError } from '@stratum/core';

/** The only digest algorithm Stratum writes and accepts, as the manifest schema does. */
export const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;

export function isDigest(text: string): boolean {
  return DIGEST_PATTERN.test(text);
}

/** Checks a digest that came from the user or the network, naming where it came from. */
export function checkDigest(text: unknown, where: string): string {
  if (typeof text === 'string' && DIGEST_PATTERN.test(text)) return text;
  throw new StratumError('REGISTRY_BAD_DIGEST', `${where} is not a sha256 digest: ${JSON.stringify(String(text).slice(0, 80))}`, {
    hint: 'A digest is "sha256:" followed by 64 lowercase hex digits.',
  });
}

export function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function newDigester(): Hash {
  return createHash('sha256');
}

/** The hex part of a digest, which names the file in the cache. */
export function digestHex(digest: string): string {
  return checkDigest(digest, 'the digest').slice('sha256:'.length);
}
