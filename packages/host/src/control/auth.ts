import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { type Ed25519PrivateJwk, type Ed25519PublicJwk, newId, StratumError } from '@stratum/core';
import type { JWTPayload } from 'jose';
import type { TrustedRegistrar } from '../config/types.ts';

/**
 * Control requests are authenticated by a JWS (RFC 7515, compact serialisation, EdDSA over
 * Ed25519) in the `Authorization: Stratum-JWS <token>` header. Its claims bind the request: the
 * host it is for (`aud`), its lifetime (`iat`, `exp`), a nonce (`jti`), the method (`htm`), the
 * path and query (`htu`) and the SHA-256 of the exact body bytes (`bh`). spec/host-api.md is
 * the normative text.
 */
export const AUTH_SCHEME = 'Stratum-JWS';
export const TOKEN_TYPE = 'stratum-control+jwt';
/** A token may live this long at most, so the nonces a host must remember stay few. */
export const MAX_TOKEN_LIFETIME_SECONDS = 300;
export const DEFAULT_TOKEN_LIFETIME_SECONDS = 60;
export const CLOCK_TOLERANCE_SECONDS = 30;

/**
 * jose, loaded by the first request signed or checked: its 46 modules took about 50 ms of every
 * host's start (on a small VM), before the host could serve the capsules it brought back.
 */
let joseModule: Promise<typeof import('jose')> | undefined;
const jose = () => {
  joseModule ??= import('jose');
  return joseModule;
};

/** Why a control request was refused; each is a 401 with this code. */
export type AuthFailure =
  | 'AUTH_MISSING'
  | 'AUTH_MALFORMED'
  | 'AUTH_UNKNOWN_KEY'
  | 'AUTH_BAD_SIGNATURE'
  | 'AUTH_EXPIRED'
  | 'AUTH_NOT_YET_VALID'
  | 'AUTH_LIFETIME'
  | 'AUTH_WRONG_AUDIENCE'
  | 'AUTH_WRONG_REQUEST'
  | 'AUTH_BODY_MISMATCH'
  | 'AUTH_REPLAY';

export class ControlAuthError extends StratumError {
  override readonly code: AuthFailure;

  constructor(code: AuthFailure, message: string, hint = 'Control requests are signed as spec/host-api.md section 3 describes.') {
    super(code, message, { hint });
    this.code = code;
  }
}

/** `bh`: the unpadded base64url SHA-256 of the body bytes (of nothing, for a request with none). */
export function bodyHash(body: Uint8Array | string): string {
  return createHash('sha256').update(body).digest('base64url');
}

export interface SignRequestOptions {
  /** The registrar's private key; `kid` defaults to its RFC 7638 thumbprint. */
  key: Ed25519PrivateJwk;
  /** The host's name, as in its host.toml `[host] name`. */
  audience: string;
  method: string;
  /** The path and query relative to the API's base URL, exactly as sent (`/capsules/hello/start`). */
  path: string;
  body?: Uint8Array | string;
  /** The body's `bh` ({@link bodyHash}), for a body too large to hold (a state snapshot read from a file); instead of `body`. */
  bodyHash?: string;
  lifetimeSeconds?: number;
  /** Seconds since the epoch; for tests. */
  now?: number;
  nonce?: string;
}

/**
 * The value of the Authorization header for one control request.
 *
 * @example
 * const authorization = await signControlRequest({ key, audience: 'host1.example.net', method: 'GET', path: '/status' });
 * await fetch('https://host1.example.net:7070/v1/status', { headers: { authorization } });
 */
export async function signControlRequest(options: SignRequestOptions): Promise<string> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const lifetime = options.lifetimeSeconds ?? DEFAULT_TOKEN_LIFETIME_SECONDS;
  const { kid } = options.key;
  const { importJWK, SignJWT } = await jose();
  const privateKey = await importJWK({ kty: 'OKP', crv: 'Ed25519', x: options.key.x, d: options.key.d }, 'EdDSA');
  const bh = options.bodyHash ?? bodyHash(options.body ?? '');
  const token = await new SignJWT({ htm: options.method.toUpperCase(), htu: options.path, bh })
    .setProtectedHeader({ alg: 'EdDSA', typ: TOKEN_TYPE, ...(kid ? { kid } : {}) })
    .setAudience(options.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + lifetime)
    .setJti(options.nonce ?? newId())
    .sign(privateKey);
  return `${AUTH_SCHEME} ${token}`;
}

/**
 * Remembers the nonces of accepted requests until they expire, in memory and (given a file)
 * on disk, so that a restarted host still refuses a replay of a request it accepted before.
 */
export class NonceStore {
  readonly #seen = new Map<string, number>();
  readonly #file: string | undefined;
  #appendsSinceCompaction = 0;

  constructor(file?: string, now = Math.floor(Date.now() / 1000)) {
    this.#file = file;
    if (!file) return;
    mkdirSync(dirname(file), { recursive: true });
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    for (const line of text.split('\n')) {
      const [nonce, expiry] = line.split(' ');
      const expires = Number(expiry);
      if (nonce && Number.isFinite(expires) && expires >= now - CLOCK_TOLERANCE_SECONDS) this.#seen.set(nonce, expires);
    }
    this.#compact();
  }

  /** Records a nonce; false when it was already used (a replay). */
  use(nonce: string, expires: number, now = Math.floor(Date.now() / 1000)): boolean {
    if (this.#seen.has(nonce)) return false;
    this.#seen.set(nonce, expires);
    if (this.#file) {
      // Written before the request is served: a crash just after must not open a replay window.
      appendFileSync(this.#file, `${nonce} ${expires}\n`, { mode: 0o600 });
      if (++this.#appendsSinceCompaction >= 10_000) this.#prune(now, true);
    } else if (this.#seen.size % 1000 === 0) {
      this.#prune(now, false);
    }
    return true;
  }

  get size(): number {
    return this.#seen.size;
  }

  #prune(now: number, compact: boolean): void {
    for (const [nonce, expires] of this.#seen) if (expires < now - CLOCK_TOLERANCE_SECONDS) this.#seen.delete(nonce);
    if (compact) this.#compact();
  }

  #compact(): void {
    if (!this.#file) return;
    const lines = [...this.#seen].map(([nonce, expires]) => `${nonce} ${expires}\n`).join('');
    writeFileSync(this.#file, lines, { mode: 0o600 });
    this.#appendsSinceCompaction = 0;
  }
}

export interface VerifierOptions {
  /** The host's name: the only audience it accepts. */
  audience: string;
  /** Read at each request: a host that reloads host.toml changes it in place. */
  registrars: readonly TrustedRegistrar[];
  nonces: NonceStore;
  /** Seconds since the epoch; for tests. */
  now?: () => number;
}

export interface VerifiedRequest {
  registrar: TrustedRegistrar;
  claims: JWTPayload;
  /** `bh`, the hash of the body that was signed: a `deferred` body must match it once it is read. */
  bodyHash: string;
}

export interface RequestToVerify {
  method: string;
  /** The path and query as received, relative to the API's base path. */
  path: string;
  authorization: string | undefined;
  /**
   * The body as received, or `deferred` for one too large to hold (a state import): the token
   * is then checked before the body is read, and the caller compares the body's hash with
   * `bodyHash` once it has it, and acts only if they match.
   */
  body: Uint8Array | 'deferred';
}

/** Checks control requests; throws {@link ControlAuthError} for every refusal. */
export function createRequestVerifier(options: VerifierOptions): (request: RequestToVerify) => Promise<VerifiedRequest> {
  const keys = new Map<string, ReturnType<typeof import('jose').importJWK>>();
  const keyFor = (jwk: Ed25519PublicJwk & { kid: string }, { importJWK }: typeof import('jose')) => {
    let key = keys.get(jwk.kid);
    if (!key) {
      key = importJWK({ kty: 'OKP', crv: 'Ed25519', x: jwk.x }, 'EdDSA');
      keys.set(jwk.kid, key);
    }
    return key;
  };
  const clock = options.now ?? (() => Math.floor(Date.now() / 1000));

  return async (request) => {
    const header = request.authorization?.trim();
    if (!header) throw new ControlAuthError('AUTH_MISSING', `no Authorization header; send "${AUTH_SCHEME} <token>"`);
    const [scheme, token, ...rest] = header.split(/\s+/);
    // An authentication scheme is case-insensitive (RFC 9110 section 11.1).
    if (scheme?.toLowerCase() !== AUTH_SCHEME.toLowerCase() || !token || rest.length > 0) {
      throw new ControlAuthError('AUTH_MALFORMED', `the Authorization header must be "${AUTH_SCHEME} <compact JWS>"`);
    }
    const segments = token.split('.');
    if (segments.length !== 3) throw new ControlAuthError('AUTH_MALFORMED', 'the token is not a compact JWS');
    const protectedHeader = jsonObject(Buffer.from(segments[0] as string, 'base64url'));
    if (!protectedHeader) throw new ControlAuthError('AUTH_MALFORMED', 'the token is not a compact JWS');
    if (protectedHeader.alg !== 'EdDSA' && protectedHeader.alg !== 'Ed25519') {
      throw new ControlAuthError('AUTH_MALFORMED', `the token's alg must be EdDSA, not ${String(protectedHeader.alg).slice(0, 40)}`);
    }
    // Every other header member would change how the token is read (crit, b64), or point at a key
    // (jku, jwk, x5u, x5c) that a verifier might be tempted to use: none is needed, so none passes.
    const extra = Object.keys(protectedHeader).find((member) => !HEADER_MEMBERS.includes(member));
    if (extra !== undefined) {
      throw new ControlAuthError(
        'AUTH_MALFORMED',
        `the token's header has a member "${extra.slice(0, 40)}"; only ${HEADER_MEMBERS.join(', ')} are allowed`,
      );
    }
    const kid = protectedHeader.kid;
    if (typeof kid !== 'string')
      throw new ControlAuthError('AUTH_MALFORMED', "the token's header has no kid (the registrar key's thumbprint)");
    // base64url leaves spare bits in a segment's last character, so one signature has several
    // spellings that decode alike: only the canonical one is taken, so a token verifies as the
    // exact text that was signed and sent.
    if (segments.some((segment) => Buffer.from(segment, 'base64url').toString('base64url') !== segment))
      throw new ControlAuthError('AUTH_MALFORMED', 'the token is not canonical base64url');
    const registrar = options.registrars.find((one) => one.key.kid === kid);
    if (!registrar) throw unknownKey(kid.slice(0, 64), options.audience);

    const joseApi = await jose();
    let payload: Uint8Array;
    try {
      ({ payload } = await joseApi.compactVerify(token, await keyFor(registrar.key, joseApi), { algorithms: ['EdDSA', 'Ed25519'] }));
    } catch (error) {
      throw refusalFor(error);
    }
    // In spec/host-api.md section 3.2's order, so that a client is told the same reason by any host.
    if (typeof protectedHeader.typ !== 'string' || !TOKEN_TYPES.includes(protectedHeader.typ)) {
      throw new ControlAuthError('AUTH_MALFORMED', `the token's typ must be ${TOKEN_TYPE}`);
    }
    const claims = jsonObject(payload);
    if (!claims) throw new ControlAuthError('AUTH_MALFORMED', "the token's payload is not a JSON object");
    for (const [claim, type] of CLAIM_TYPES) {
      const value = claims[claim];
      const ok = type === 'string' ? typeof value === 'string' : Number.isSafeInteger(value);
      if (!ok)
        throw new ControlAuthError(
          'AUTH_MALFORMED',
          `the token's ${claim} claim is missing or not ${type === 'string' ? 'a string' : 'an integer'}`,
        );
    }
    // Not required, but a JWT library may add it by default, and its issuer meant it.
    if (claims.nbf !== undefined && !Number.isSafeInteger(claims.nbf))
      throw new ControlAuthError('AUTH_MALFORMED', "the token's nbf claim is not an integer");
    const { iat, exp, nbf } = claims as { iat: number; exp: number; nbf?: number };
    const now = clock();
    if (exp < now - CLOCK_TOLERANCE_SECONDS) throw new ControlAuthError('AUTH_EXPIRED', 'the token has expired');
    // A name as discovery compares names (spec/discovery.md section 1.2): in any case, with or
    // without the root's dot.
    if (typeof claims.aud !== 'string' || claims.aud.toLowerCase().replace(/\.$/, '') !== options.audience.toLowerCase()) {
      // Both names are public (the host's is its identity's); a registrar with several hosts
      // otherwise cannot tell which key file or --audience it got wrong.
      throw new ControlAuthError(
        'AUTH_WRONG_AUDIENCE',
        `the token is addressed to ${String(claims.aud).slice(0, 253)}, not to this host (${options.audience})`,
        'Sign for the host name its host.toml [host] name gives (stratum host status --audience <name>).',
      );
    }
    if (iat > now + CLOCK_TOLERANCE_SECONDS)
      throw new ControlAuthError('AUTH_NOT_YET_VALID', 'the token was issued in the future; check the clocks');
    if (nbf !== undefined && nbf > now + CLOCK_TOLERANCE_SECONDS)
      throw new ControlAuthError('AUTH_NOT_YET_VALID', "the token's nbf is in the future; check the clocks");
    if (exp < iat || exp - iat > MAX_TOKEN_LIFETIME_SECONDS) {
      throw new ControlAuthError(
        'AUTH_LIFETIME',
        exp < iat
          ? 'the token expires before it was issued (exp < iat)'
          : `the token lives ${exp - iat} s; at most ${MAX_TOKEN_LIFETIME_SECONDS} s is accepted`,
      );
    }
    if (claims.htm !== request.method.toUpperCase() || claims.htu !== request.path) {
      throw new ControlAuthError(
        'AUTH_WRONG_REQUEST',
        `the token was signed for ${String(claims.htm).slice(0, 16)} ${String(claims.htu).slice(0, 200)}, not this request`,
      );
    }
    const nonce = claims.jti as string;
    if (nonce.length < 16 || nonce.length > 128 || !/^[A-Za-z0-9_-]+$/.test(nonce)) {
      throw new ControlAuthError('AUTH_MALFORMED', 'jti must be 16 to 128 base64url characters');
    }
    // Used up here, before the body is compared, which for a large body (a state import) comes
    // once it has been read: a second use of the token must be refused while the first reads it.
    if (!options.nonces.use(`${kid}.${nonce}`, exp, now))
      throw new ControlAuthError('AUTH_REPLAY', 'this request was already received once');
    if (request.body !== 'deferred' && claims.bh !== bodyHash(request.body)) throw bodyMismatch();
    return { registrar, claims: claims as JWTPayload, bodyHash: String(claims.bh) };
  };
}

/** The JOSE header's only members (spec/host-api.md section 3.1). */
const HEADER_MEMBERS = ['alg', 'typ', 'kid'];
/** RFC 7515 section 4.1.9: a `typ` without a slash means the same as with `application/` before it. */
const TOKEN_TYPES = [TOKEN_TYPE, `application/${TOKEN_TYPE}`];
/** The claims every token carries, and their JSON types; any other claim but `nbf` is ignored. */
const CLAIM_TYPES = [
  ['aud', 'string'],
  ['iat', 'integer'],
  ['exp', 'integer'],
  ['jti', 'string'],
  ['htm', 'string'],
  ['htu', 'string'],
  ['bh', 'string'],
] as const;

/** The JSON object in `bytes`; undefined for anything else. */
function jsonObject(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The refusal of a key the host does not trust. The token carries only the key's thumbprint, so
 * the hint names it as `stratum host keygen` printed it beside the public key the operator adds.
 */
function unknownKey(kid: string, host: string): ControlAuthError {
  return new ControlAuthError(
    'AUTH_UNKNOWN_KEY',
    `key ${kid} is not a registrar that host ${host} trusts`,
    `${host}'s operator adds the key's public part to that host's host.toml as [registrars.<name>] key = "<public key>" and reloads it (SIGHUP: \`systemctl reload\`, \`kill -HUP\`). The public key is the one \`stratum host keygen\` printed with thumbprint ${kid}.`,
  );
}

/** The refusal of a body whose hash is not the signed `bh`. */
export function bodyMismatch(): ControlAuthError {
  return new ControlAuthError('AUTH_BODY_MISMATCH', 'the body is not the one that was signed');
}

function refusalFor(error: unknown): ControlAuthError {
  if ((error as { code?: string }).code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED')
    return new ControlAuthError('AUTH_BAD_SIGNATURE', 'the signature does not verify with the named key');
  return new ControlAuthError('AUTH_MALFORMED', 'the token is not a valid compact JWS');
}
