import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { jwkThumbprint, StratumError } from '@stratum/core';
import { normaliseHostName } from './names.ts';
import { formatTxtPairs, MAX_STRING_OCTETS, PROTOCOL_VERSION, parseTxtPairs, type TxtPairs } from './txt.ts';

/** A WIT package or interface and the version a host serves, e.g. `stratum:keyvalue/store@0.1.0`. */
export interface WitInterface {
  name: string;
  version: string;
}

/** `_stratum-host.<host-name>` TXT: who the host is and where its control API listens. */
export interface HostRecord {
  version: typeof PROTOCOL_VERSION;
  /** The Ed25519 public key, 32 bytes in unpadded base64url. */
  publicKey: string;
  /** The key's RFC 7638 thumbprint, derived, never published. */
  keyThumbprint: string;
  /** The control API's base URL. */
  api: string;
  interfaces: WitInterface[];
  /** The key the host will rotate to, signed by the current key (spec section 4.3). */
  nextKey?: { publicKey: string; signature: string };
}

/** `_stratum.<domain>` TXT: which host serves the domain, which capsule, on whose say. */
export interface DomainLink {
  version: typeof PROTOCOL_VERSION;
  host: string;
  /** `sha256:` and 64 lower-case hex digits: the capsule component's digest. */
  capsule: string;
  /** The registrar's domain name. */
  registrar: string;
}

/** The TXT record of a DNS-SD `_stratum._tcp` service instance. */
export interface ServiceInstanceInfo {
  version: typeof PROTOCOL_VERSION;
  /** The Stratum host name whose `_stratum-host` record holds the key. */
  host: string;
  /** The control API's path on the SRV target, default `/`. */
  path: string;
}

const BASE64URL_KEY = /^[A-Za-z0-9_-]{43}$/;
const BASE64URL_SIGNATURE = /^[A-Za-z0-9_-]{86}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
// SemVer 2.0.0 without build metadata: no leading zeros, and dot-separated pre-release
// identifiers that are not empty, so that two spellings never name one version.
const SEMVER_NUMBER = '(?:0|[1-9][0-9]*)';
const SEMVER_PRE = `(?:${SEMVER_NUMBER}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)`;
const WIT_ITEM = new RegExp(
  `^([a-z][a-z0-9-]*:[a-z][a-z0-9-]*(?:/[a-z][a-z0-9-]*)?)@(${SEMVER_NUMBER}\\.${SEMVER_NUMBER}\\.${SEMVER_NUMBER}(?:-${SEMVER_PRE}(?:\\.${SEMVER_PRE})*)?)$`,
);
const RELEASE = /^([0-9]+)\.([0-9]+)\.([0-9]+)$/;
const API_PATH = /^\/[\x21-\x7e]*$/;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

function recordError(code: string, what: string, message: string, detail: string): StratumError {
  return new StratumError(code, `${what}: ${message}`, { details: [detail], hint: 'See spec/discovery.md for the record format.' });
}

function one(pairs: TxtPairs, key: string, what: string): string {
  const values = pairs.get(key);
  if (!values || values[0] === undefined)
    throw recordError('RECORD_MISSING_KEY', what, `the required key "${key}" is missing`, `add ${key}=...`);
  return values[0];
}

function optional(pairs: TxtPairs, key: string): string | undefined {
  return pairs.get(key)?.[0];
}

function publicKeyValue(value: string, what: string, key: string): string {
  // Canonical unpadded base64url of exactly 32 bytes: 43 characters whose last carries no stray bits.
  if (!BASE64URL_KEY.test(value) || Buffer.from(value, 'base64url').toString('base64url') !== value) {
    throw recordError('RECORD_BAD_KEY', what, `${key} is not a 32-byte Ed25519 key in unpadded base64url`, `got "${value.slice(0, 60)}"`);
  }
  return value;
}

// Section 4.1's api-url, checked as text: the WHATWG URL parser accepts and rewrites what the
// grammar refuses (`https:h1.example.net`, `http://127.1`, an empty `?`, a space in the path),
// and a second implementation with an RFC 3986 parser must refuse the same records.
const API_URL = /^(https?):\/\/(\[[^\]]*\]|[^/:[\]]*)(?::([0-9]*))?((?:\/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)*)$/;

function isApiDnsName(host: string): boolean {
  const lastLabel = host.slice(host.lastIndexOf('.') + 1);
  // A trailing dot, which normalising would drop, is refused too: certificate matching treats it unevenly.
  if (/^[0-9]*$/.test(lastLabel) || host.endsWith('.')) return false;
  try {
    normaliseHostName(host);
    return true;
  } catch {
    return false;
  }
}

function apiProblem(value: string): string | undefined {
  const scheme = /^(https?):\/\//.exec(value)?.[1];
  if (!scheme) return 'it is not an absolute https URL';
  const rest = value.slice(scheme.length + 3);
  if (rest.slice(0, rest.search(/[/?#]|$/)).includes('@')) return 'it carries credentials';
  if (value.includes('?')) return 'it carries a query';
  if (value.includes('#')) return 'it carries a fragment';
  const match = API_URL.exec(value);
  if (!match) return 'its host, port or path breaks the grammar of spec section 4.1';
  const host = match[2] ?? '';
  const port = match[3];
  if (port !== undefined && (!/^[1-9][0-9]{0,4}$/.test(port) || Number(port) > 65535)) return 'the port is not 1 to 65535';
  if (scheme === 'http')
    return LOOPBACK.has(host.toLowerCase()) ? undefined : 'it must be https (plain http is allowed for a loopback host only)';
  if (host.startsWith('[')) {
    const inner = host.slice(1, -1);
    return isIP(inner) === 6 && !inner.includes('%') ? undefined : 'the bracketed host is not an IPv6 address';
  }
  return isIP(host) === 4 || isApiDnsName(host) ? undefined : 'the host is not a DNS name or an IP address';
}

function apiValue(value: string, what: string): string {
  const problem = apiProblem(value);
  if (problem) throw recordError('RECORD_BAD_API', what, `api is not a usable control API URL: ${problem}`, `got "${value.slice(0, 80)}"`);
  return value;
}

function hostValue(value: string, what: string, key: string): string {
  try {
    return normaliseHostName(value, key);
  } catch (error) {
    throw recordError('RECORD_BAD_NAME', what, `${key} is not a host name`, (error as StratumError).details[0] ?? value);
  }
}

export function parseWitList(value: string, what = 'wit'): WitInterface[] {
  if (value.length === 0) return [];
  return value.split(',').map((item) => {
    const match = WIT_ITEM.exec(item);
    if (!match?.[1] || !match[2]) {
      throw recordError(
        'RECORD_BAD_WIT',
        what,
        `"${item.slice(0, 60)}" is not namespace:package[/interface]@version`,
        'e.g. wasi:http@0.2.0',
      );
    }
    return { name: match[1], version: match[2] };
  });
}

/** Parses a `_stratum-host` TXT record. Throws StratumError (TXT_* or RECORD_*) naming the problem. */
export function parseHostRecord(strings: readonly string[]): HostRecord {
  const what = 'host record';
  const pairs = parseTxtPairs(strings, new Set(['wit']));
  const publicKey = publicKeyValue(one(pairs, 'k', what), what, 'k');
  const record: HostRecord = {
    version: PROTOCOL_VERSION,
    publicKey,
    keyThumbprint: jwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: publicKey }),
    api: apiValue(one(pairs, 'api', what), what),
    interfaces: (pairs.get('wit') ?? []).flatMap((value) => parseWitList(value, what)),
  };
  const nextKey = optional(pairs, 'nk');
  const nextSignature = optional(pairs, 'nks');
  if ((nextKey === undefined) !== (nextSignature === undefined)) {
    throw recordError('RECORD_BAD_ROTATION', what, 'nk and nks go together', "a next key needs the current key's signature over it");
  }
  if (nextKey !== undefined && nextSignature !== undefined) {
    if (publicKeyValue(nextKey, what, 'nk') === publicKey) {
      throw recordError('RECORD_BAD_ROTATION', what, 'nk repeats the current key', 'nk names the key the host will move to');
    }
    if (!BASE64URL_SIGNATURE.test(nextSignature) || Buffer.from(nextSignature, 'base64url').toString('base64url') !== nextSignature) {
      throw recordError(
        'RECORD_BAD_ROTATION',
        what,
        'nks is not a 64-byte signature in unpadded base64url',
        `got "${nextSignature.slice(0, 60)}"`,
      );
    }
    record.nextKey = { publicKey: nextKey, signature: nextSignature };
  }
  return record;
}

/** Formats a host record; `wit` values are split over as many strings as needed. */
export function formatHostRecord(record: Omit<HostRecord, 'version' | 'keyThumbprint'>): string[] {
  const pairs: [string, string][] = [
    ['k', record.publicKey],
    ['api', record.api],
  ];
  let chunk = '';
  for (const item of record.interfaces.map((entry) => `${entry.name}@${entry.version}`)) {
    if (chunk && 4 + chunk.length + 1 + item.length > MAX_STRING_OCTETS) {
      pairs.push(['wit', chunk]);
      chunk = '';
    }
    chunk = chunk ? `${chunk},${item}` : item;
  }
  if (chunk) pairs.push(['wit', chunk]);
  if (record.nextKey) pairs.push(['nk', record.nextKey.publicKey], ['nks', record.nextKey.signature]);
  const strings = formatTxtPairs(pairs);
  parseHostRecord(strings);
  return strings;
}

/** Parses a `_stratum` domain link TXT record. */
export function parseDomainLink(strings: readonly string[]): DomainLink {
  const what = 'domain link';
  const pairs = parseTxtPairs(strings);
  const capsule = one(pairs, 'capsule', what);
  if (!DIGEST.test(capsule)) {
    throw recordError('RECORD_BAD_DIGEST', what, 'capsule is not sha256: and 64 lower-case hex digits', `got "${capsule.slice(0, 80)}"`);
  }
  return {
    version: PROTOCOL_VERSION,
    host: hostValue(one(pairs, 'host', what), what, 'host'),
    capsule,
    registrar: hostValue(one(pairs, 'registrar', what), what, 'registrar'),
  };
}

export function formatDomainLink(link: Omit<DomainLink, 'version'>): string[] {
  const strings = formatTxtPairs([
    ['host', link.host],
    ['capsule', link.capsule],
    ['registrar', link.registrar],
  ]);
  parseDomainLink(strings);
  return strings;
}

/** Parses the TXT record of a `_stratum._tcp` DNS-SD service instance. */
export function parseServiceInstanceTxt(strings: readonly string[]): ServiceInstanceInfo {
  const what = 'service instance';
  const pairs = parseTxtPairs(strings);
  const path = optional(pairs, 'path') ?? '/';
  if (!API_PATH.test(path)) throw recordError('RECORD_BAD_PATH', what, 'path must start with / and hold printable ASCII', `got "${path}"`);
  return { version: PROTOCOL_VERSION, host: hostValue(one(pairs, 'host', what), what, 'host'), path };
}

export function formatServiceInstanceTxt(info: Omit<ServiceInstanceInfo, 'version'>): string[] {
  const strings = formatTxtPairs(
    info.path === '/'
      ? [['host', info.host]]
      : [
          ['host', info.host],
          ['path', info.path],
        ],
  );
  parseServiceInstanceTxt(strings);
  return strings;
}

/**
 * The `_stratum-challenge` TXT value: base64url(SHA-256(token "." thumbprint)), the key
 * authorization digest of ACME DNS-01 (RFC 8555 section 8.4).
 */
export function challengeTxtValue(token: string, keyThumbprint: string): string {
  return createHash('sha256').update(`${token}.${keyThumbprint}`).digest('base64url');
}

/** Parses a `_stratum-challenge` TXT record: exactly one 43-character base64url string. */
export function parseChallengeTxt(strings: readonly string[]): string {
  const what = 'challenge record';
  if (!Array.isArray(strings) || strings.length !== 1) {
    throw recordError(
      'CHALLENGE_TXT_INVALID',
      what,
      'a challenge record holds exactly one string',
      `got ${Array.isArray(strings) ? strings.length : typeof strings}`,
    );
  }
  const value = strings[0];
  if (typeof value !== 'string' || !BASE64URL_KEY.test(value) || Buffer.from(value, 'base64url').toString('base64url') !== value) {
    throw recordError(
      'CHALLENGE_TXT_INVALID',
      what,
      'the value is not a base64url SHA-256 digest (43 characters)',
      `got "${String(value).slice(0, 60)}"`,
    );
  }
  return value;
}

/**
 * True when a host serving `offered` can run a capsule that needs `needed` (spec section 4.1):
 * the same interface, or the package that holds it; and a version on the same compatibility
 * track, at least as new. The tracks are the component model's, as wasmtime links imports: the
 * major version; the minor while the major is 0; the exact version for 0.0.z and for any
 * pre-release, which promises compatibility with nothing but itself (SemVer 2.0.0 item 9).
 */
export function interfaceSatisfies(offered: WitInterface, needed: WitInterface): boolean {
  if (offered.name !== needed.name && !(!offered.name.includes('/') && needed.name.startsWith(`${offered.name}/`))) return false;
  if (offered.version === needed.version) return true;
  const have = RELEASE.exec(offered.version);
  const want = RELEASE.exec(needed.version);
  if (!have || !want) return false;
  // BigInt: the grammar bounds no number, and two past 2^53 must not compare equal.
  const [oMajor, oMinor, oPatch] = have.slice(1).map(BigInt) as [bigint, bigint, bigint];
  const [nMajor, nMinor, nPatch] = want.slice(1).map(BigInt) as [bigint, bigint, bigint];
  if (oMajor !== nMajor) return false;
  if (nMajor > 0n) return oMinor > nMinor || (oMinor === nMinor && oPatch >= nPatch);
  if (oMinor !== nMinor || nMinor === 0n) return false;
  return oPatch >= nPatch;
}

/** The interfaces in `needed` that `record` does not serve (empty when the host is compatible). */
export function missingInterfaces(record: Pick<HostRecord, 'interfaces'>, needed: readonly WitInterface[]): WitInterface[] {
  return needed.filter((item) => !record.interfaces.some((offered) => interfaceSatisfies(offered, item)));
}
