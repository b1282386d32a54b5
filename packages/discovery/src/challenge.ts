import { randomBytes } from 'node:crypto';
import { publicKeyFromRaw, StratumError, signEd25519, verifyEd25519 } from '@stratum/core';
import type { HostKey } from './host-key.ts';
import { challengeRecordName, normaliseHostName } from './names.ts';
import { challengeTxtValue, type HostRecord } from './records.ts';
import type { DiscoveryResolver } from './resolver.ts';

/** What a registrar hands a host to prove itself: spec/discovery.md section 6. */
export interface Challenge {
  /** 32 random octets, unpadded base64url (43 characters). */
  token: string;
  hostName: string;
  /** The registrar's domain name; bound into the signature so it cannot be replayed to another registrar. */
  registrar: string;
  /** Milliseconds since the epoch. */
  issuedAt: number;
  expiresAt: number;
}

/** What the host sends back once its TXT record is published. */
export interface ChallengeResponse {
  token: string;
  hostName: string;
  /** The host's Ed25519 public key, 32 bytes unpadded base64url. */
  publicKey: string;
  /** Ed25519 signature over {@link challengeSigningInput}, unpadded base64url. */
  signature: string;
}

/** What the registrar may trust once a challenge passes. */
export interface VerifiedHost {
  hostName: string;
  publicKey: string;
  keyThumbprint: string;
  record: HostRecord;
  verifiedAt: number;
}

/**
 * Where a registrar keeps issued challenges. `take` consumes a challenge atomically, so a
 * token verifies at most once; it reports `used` for a token already taken (a replay).
 */
export interface ChallengeStore {
  save(challenge: Challenge): Promise<void>;
  take(token: string): Promise<{ state: 'pending'; challenge: Challenge } | { state: 'used' } | undefined>;
}

/** An in-memory store for one registrar process; remembers used tokens until they would have expired. */
export class MemoryChallengeStore implements ChallengeStore {
  readonly #pending = new Map<string, Challenge>();
  readonly #used = new Map<string, number>();
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  async save(challenge: Challenge): Promise<void> {
    this.#pending.set(challenge.token, challenge);
  }

  async take(token: string) {
    const now = this.#now();
    for (const [used, until] of this.#used) if (until < now) this.#used.delete(used);
    if (this.#used.has(token)) return { state: 'used' as const };
    const challenge = this.#pending.get(token);
    if (!challenge) return undefined;
    this.#pending.delete(token);
    // Kept a little past expiry so that a late replay still reads as a replay, not as unknown.
    this.#used.set(token, challenge.expiresAt + 3_600_000);
    return { state: 'pending' as const, challenge };
  }
}

export const DEFAULT_CHALLENGE_TTL_MS = 10 * 60 * 1000;
export const MAX_CHALLENGE_TTL_MS = 24 * 60 * 60 * 1000;
const TOKEN = /^[A-Za-z0-9_-]{43}$/;
const SIGNATURE = /^[A-Za-z0-9_-]{86}$/;

/** The octets the host signs: the token bound to its host name and to the registrar. */
export function challengeSigningInput(challenge: Pick<Challenge, 'token' | 'hostName' | 'registrar'>): Uint8Array {
  return new TextEncoder().encode(
    `stratum1-challenge:${challenge.token}:${normaliseHostName(challenge.hostName)}:${normaliseHostName(challenge.registrar, 'registrar')}`,
  );
}

/** Registrar side: issues and stores a fresh challenge for `hostName`. */
export async function issueChallenge(
  store: ChallengeStore,
  options: { hostName: string; registrar: string; ttlMs?: number; now?: number },
): Promise<Challenge> {
  const ttlMs = options.ttlMs ?? DEFAULT_CHALLENGE_TTL_MS;
  if (!Number.isFinite(ttlMs) || ttlMs <= 0 || ttlMs > MAX_CHALLENGE_TTL_MS) {
    throw new StratumError('CHALLENGE_TTL_INVALID', `a challenge lives more than 0 ms and at most 24 hours, not ${ttlMs} ms`, {
      hint: 'spec/discovery.md section 6.1 recommends 10 minutes.',
    });
  }
  const issuedAt = options.now ?? Date.now();
  const challenge: Challenge = {
    token: randomBytes(32).toString('base64url'),
    hostName: normaliseHostName(options.hostName),
    registrar: normaliseHostName(options.registrar, 'registrar'),
    issuedAt,
    expiresAt: issuedAt + ttlMs,
  };
  await store.save(challenge);
  return challenge;
}

/**
 * Host side: the TXT value to publish at `_stratum-challenge.<host>` and the signed response
 * to send to the registrar once it is published.
 */
export async function answerChallenge(
  challenge: Pick<Challenge, 'token' | 'hostName' | 'registrar'>,
  key: HostKey,
): Promise<{ recordName: string; txtValue: string; response: ChallengeResponse }> {
  const signature = await signEd25519(key.privateJwk, challengeSigningInput(challenge));
  return {
    recordName: challengeRecordName(challenge.hostName),
    txtValue: challengeTxtValue(challenge.token, key.thumbprint),
    response: {
      token: challenge.token,
      hostName: normaliseHostName(challenge.hostName),
      publicKey: key.publicKey,
      signature: Buffer.from(signature).toString('base64url'),
    },
  };
}

function failure(code: string, message: string, details: string[], hint: string): StratumError {
  return new StratumError(code, message, { details, hint });
}

/**
 * Registrar side: checks a host's response (spec section 6.3) and returns what it may now
 * trust. Every failure is a StratumError whose code names it: CHALLENGE_RESPONSE_INVALID,
 * CHALLENGE_UNKNOWN, CHALLENGE_REPLAYED, CHALLENGE_HOST_MISMATCH, CHALLENGE_EXPIRED,
 * CHALLENGE_BAD_SIGNATURE, CHALLENGE_RECORD_MISSING, CHALLENGE_RECORD_MISMATCH,
 * HOST_RECORD_MISSING, CHALLENGE_KEY_NOT_PUBLISHED.
 */
export async function verifyChallenge(options: {
  store: ChallengeStore;
  resolver: DiscoveryResolver;
  response: ChallengeResponse;
  now?: () => number;
}): Promise<VerifiedHost> {
  const { store, resolver, response } = options;
  const now = options.now ?? Date.now;
  if (
    typeof response !== 'object' ||
    response === null ||
    typeof response.token !== 'string' ||
    !TOKEN.test(response.token) ||
    typeof response.signature !== 'string' ||
    !SIGNATURE.test(response.signature) ||
    typeof response.hostName !== 'string' ||
    typeof response.publicKey !== 'string'
  ) {
    throw failure(
      'CHALLENGE_RESPONSE_INVALID',
      'the challenge response is malformed',
      ['expected {token: 43 base64url chars, hostName, publicKey, signature: 86 base64url chars}'],
      'Send the response that answerChallenge() built.',
    );
  }
  let hostName: string;
  let publicJwk: ReturnType<typeof publicKeyFromRaw>;
  try {
    hostName = normaliseHostName(response.hostName);
    publicJwk = publicKeyFromRaw(response.publicKey);
  } catch (error) {
    throw failure(
      'CHALLENGE_RESPONSE_INVALID',
      'the challenge response is malformed',
      [(error as Error).message],
      'Send the response that answerChallenge() built.',
    );
  }
  const taken = await store.take(response.token);
  if (!taken)
    throw failure('CHALLENGE_UNKNOWN', 'this registrar did not issue that challenge token', [], 'Ask the registrar for a new challenge.');
  if (taken.state === 'used') {
    throw failure(
      'CHALLENGE_REPLAYED',
      'that challenge token has already been used',
      [],
      'Each token verifies once; ask for a new challenge.',
    );
  }
  const { challenge } = taken;
  if (challenge.hostName !== hostName) {
    throw failure(
      'CHALLENGE_HOST_MISMATCH',
      `the challenge was issued for ${challenge.hostName}, not ${hostName}`,
      [],
      'Answer with the host name the challenge names.',
    );
  }
  const expired = () => {
    const at = now();
    if (at > challenge.expiresAt) {
      throw failure(
        'CHALLENGE_EXPIRED',
        `the challenge for ${hostName} expired`,
        [`expired at ${new Date(challenge.expiresAt).toISOString()}, checked at ${new Date(at).toISOString()}`],
        'Ask for a new challenge and answer it within its time limit.',
      );
    }
  };
  expired();
  const signatureOk = await verifyEd25519(publicJwk, challengeSigningInput(challenge), Buffer.from(response.signature, 'base64url'));
  if (!signatureOk) {
    throw failure(
      'CHALLENGE_BAD_SIGNATURE',
      `the signature does not verify with the key ${response.publicKey}`,
      [],
      'Sign the challenge with the host key whose thumbprint the TXT record uses.',
    );
  }
  const expected = challengeTxtValue(challenge.token, publicJwk.kid ?? '');
  const records = await resolver.challengeValues(hostName);
  const recordName = challengeRecordName(hostName);
  if (records.length === 0) {
    throw failure(
      'CHALLENGE_RECORD_MISSING',
      `there is no TXT record at ${recordName}`,
      [],
      'Publish the challenge record, wait for it to reach the authoritative servers, then answer.',
    );
  }
  if (!records.some((strings) => strings.length === 1 && strings[0] === expected)) {
    throw failure(
      'CHALLENGE_RECORD_MISMATCH',
      `no TXT record at ${recordName} matches this token and key`,
      [`expected "${expected}"`, ...records.map((strings) => `found "${strings.join('" "').slice(0, 100)}"`)],
      'The record is base64url(SHA-256(token "." key thumbprint)) for the key that signs the response.',
    );
  }
  const record = await resolver.hostRecord(hostName);
  if (!record) {
    throw failure(
      'HOST_RECORD_MISSING',
      `${hostName} publishes no _stratum-host record`,
      [],
      'Publish the host record (key and API endpoint) before asking to be verified.',
    );
  }
  if (record.publicKey !== publicJwk.x) {
    throw failure(
      'CHALLENGE_KEY_NOT_PUBLISHED',
      `the key that answered is not the key ${hostName} publishes`,
      [`answered with ${publicJwk.x}`, `_stratum-host has k=${record.publicKey}`],
      'Answer with the key in the host record, or update the record first.',
    );
  }
  expired();
  return { hostName, publicKey: publicJwk.x, keyThumbprint: record.keyThumbprint, record, verifiedAt: now() };
}
