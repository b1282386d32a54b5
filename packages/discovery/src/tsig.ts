import { createHmac, timingSafeEqual } from 'node:crypto';
import { StratumError } from '@stratum/core';
import { DNS_CLASS, DNS_TYPE, encodeName, encodeResourceRecord, messageLayout } from './wire.ts';

/**
 * RFC 8945 transaction signatures with HMAC-SHA256, the one algorithm RFC 8945 section 6 says
 * implementations MUST support alongside HMAC-SHA1 (which Stratum does not offer).
 */

export interface TsigKey {
  /** The key's name, shared with the server's configuration (e.g. `stratum-update`). */
  name: string;
  /** The shared secret, base64 as in Knot and BIND configurations. */
  secret: string;
  algorithm?: 'hmac-sha256';
}

export const TSIG_ALGORITHM = 'hmac-sha256';
export const TSIG_DEFAULT_FUDGE = 300;
export const TSIG_ERRORS: Record<number, string> = { 0: 'NOERROR', 16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME', 22: 'BADTRUNC' };

export interface TsigRecord {
  keyName: Buffer;
  algorithm: Buffer;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  otherData: Buffer;
}

function secretBytes(key: TsigKey): Buffer {
  const bytes = Buffer.from(key.secret, 'base64');
  if (bytes.length === 0)
    throw new StratumError('TSIG_KEY_INVALID', `the TSIG key ${key.name} has an empty secret`, { hint: 'Give the secret in base64.' });
  return bytes;
}

function u48(value: number): Buffer {
  const buf = Buffer.alloc(6);
  buf.writeUIntBE(value, 0, 6);
  return buf;
}

function u16(value: number): Buffer {
  const buf = Buffer.alloc(2);
  buf.writeUInt16BE(value);
  return buf;
}

/** RFC 8945 section 4.3.3: the TSIG variables that follow the message in the digest. */
function tsigVariables(keyName: Buffer, algorithm: Buffer, timeSigned: number, fudge: number, error: number, otherData: Buffer): Buffer {
  return Buffer.concat([
    keyName,
    u16(DNS_CLASS.ANY),
    Buffer.alloc(4), // TTL 0
    algorithm,
    u48(timeSigned),
    u16(fudge),
    u16(error),
    u16(otherData.length),
    otherData,
  ]);
}

function hmac(key: TsigKey, parts: readonly Buffer[]): Buffer {
  const mac = createHmac('sha256', secretBytes(key));
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/**
 * Appends a TSIG record to `message` (whose ADCOUNT does not count it yet). For a response,
 * pass the request's MAC. Returns the signed message and its MAC (needed to check the reply).
 */
export function signMessage(
  message: Buffer,
  key: TsigKey,
  options: { timeSigned?: number; fudge?: number; requestMac?: Buffer; error?: number } = {},
): { message: Buffer; mac: Buffer } {
  const timeSigned = options.timeSigned ?? Math.floor(Date.now() / 1000);
  const fudge = options.fudge ?? TSIG_DEFAULT_FUDGE;
  const error = options.error ?? 0;
  const keyName = encodeName(key.name);
  const algorithm = encodeName(TSIG_ALGORITHM);
  const prefix = options.requestMac ? [u16(options.requestMac.length), options.requestMac] : [];
  const mac = hmac(key, [...prefix, message, tsigVariables(keyName, algorithm, timeSigned, fudge, error, Buffer.alloc(0))]);
  const rdata = Buffer.concat([algorithm, u48(timeSigned), u16(fudge), u16(mac.length), mac, message.subarray(0, 2), u16(error), u16(0)]);
  const record = encodeResourceRecord({ name: key.name, type: DNS_TYPE.TSIG, klass: DNS_CLASS.ANY, ttl: 0, rdata });
  const signed = Buffer.concat([message, record]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { message: signed, mac };
}

function readName(buf: Buffer, offset: number, end: number): { name: Buffer; next: number } {
  let at = offset;
  for (let labels = 0; labels < 128 && at < end; labels++) {
    const len = buf[at]!;
    if (len === 0) return { name: Buffer.from(buf.subarray(offset, at + 1)), next: at + 1 };
    // RFC 8945 section 4.2: names in TSIG RDATA are never compressed.
    if (len > 63) break;
    at += 1 + len;
  }
  throw new StratumError('TSIG_INVALID', 'the TSIG record holds a malformed name', { user: false });
}

/** Finds and parses the TSIG record, which RFC 8945 section 5.1 requires to be the last additional record. */
export function findTsig(message: Buffer): { record: TsigRecord; start: number } | undefined {
  const layout = messageLayout(message);
  const last = layout.records.at(-1);
  if (!last || last.type !== DNS_TYPE.TSIG) {
    if (layout.records.some((record) => record.type === DNS_TYPE.TSIG)) {
      throw new StratumError('TSIG_INVALID', 'a TSIG record is present but is not the last record', { user: false });
    }
    return undefined;
  }
  if (last.section !== 'additional')
    throw new StratumError('TSIG_INVALID', 'the TSIG record is not in the additional section', { user: false });
  // The owner name is uncompressed in practice; a compressed one would not match any key anyway.
  const owner = readName(message, last.start, last.rdataStart - 10);
  const algorithm = readName(message, last.rdataStart, last.end);
  let at = algorithm.next;
  if (at + 10 > last.end) throw new StratumError('TSIG_INVALID', 'the TSIG record is truncated', { user: false });
  const timeSigned = message.readUIntBE(at, 6);
  const fudge = message.readUInt16BE(at + 6);
  const macSize = message.readUInt16BE(at + 8);
  at += 10;
  if (at + macSize + 6 > last.end) throw new StratumError('TSIG_INVALID', 'the TSIG MAC runs past its record', { user: false });
  const mac = Buffer.from(message.subarray(at, at + macSize));
  at += macSize;
  const originalId = message.readUInt16BE(at);
  const error = message.readUInt16BE(at + 2);
  const otherLength = message.readUInt16BE(at + 4);
  at += 6;
  if (at + otherLength !== last.end) throw new StratumError('TSIG_INVALID', 'the TSIG other data does not fit its record', { user: false });
  const otherData = Buffer.from(message.subarray(at, at + otherLength));
  return {
    record: { keyName: owner.name, algorithm: algorithm.name, timeSigned, fudge, mac, originalId, error, otherData },
    start: last.start,
  };
}

export type TsigVerdict =
  | { ok: true; mac: Buffer; record: TsigRecord }
  | { ok: false; reason: 'unsigned' | 'BADKEY' | 'BADSIG' | 'BADTIME'; record?: TsigRecord; serverError?: string };

function lowerName(name: Buffer): Buffer {
  return Buffer.from(name.toString('latin1').toLowerCase(), 'latin1');
}

/**
 * Checks a signed message: the key name and algorithm, the MAC (over the message without the
 * TSIG record, with ADCOUNT decremented and the original ID restored), and the time within the fudge.
 */
export function verifyMessage(message: Buffer, key: TsigKey, options: { requestMac?: Buffer; now?: number } = {}): TsigVerdict {
  const found = findTsig(message);
  if (!found) return { ok: false, reason: 'unsigned' };
  const { record, start } = found;
  if (!lowerName(record.keyName).equals(encodeName(key.name)) || !lowerName(record.algorithm).equals(encodeName(TSIG_ALGORITHM))) {
    return { ok: false, reason: 'BADKEY', record };
  }
  if (record.error !== 0) return { ok: false, reason: 'BADSIG', record, serverError: TSIG_ERRORS[record.error] ?? `error ${record.error}` };
  const stripped = Buffer.from(message.subarray(0, start));
  stripped.writeUInt16BE(record.originalId, 0);
  stripped.writeUInt16BE(stripped.readUInt16BE(10) - 1, 10);
  const prefix = options.requestMac ? [u16(options.requestMac.length), options.requestMac] : [];
  const expected = hmac(key, [
    ...prefix,
    stripped,
    tsigVariables(lowerName(record.keyName), lowerName(record.algorithm), record.timeSigned, record.fudge, record.error, record.otherData),
  ]);
  // RFC 8945 section 5.2.2: a MAC shorter than half the hash (or 10 octets) is refused; we take only full MACs.
  if (record.mac.length !== expected.length || !timingSafeEqual(record.mac, expected)) return { ok: false, reason: 'BADSIG', record };
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - record.timeSigned) > record.fudge) return { ok: false, reason: 'BADTIME', record };
  return { ok: true, mac: record.mac, record };
}

/**
 * Appends an unsigned TSIG record carrying only an error (BADKEY, BADSIG), as RFC 8945 section
 * 5.2 has a server answer a request it could not authenticate: the MAC is empty because there
 * is no shared key to make one with.
 */
export function appendTsigError(message: Buffer, request: TsigRecord, error: number, timeSigned = Math.floor(Date.now() / 1000)): Buffer {
  const rdata = Buffer.concat([
    request.algorithm,
    u48(timeSigned),
    u16(request.fudge),
    u16(0),
    u16(request.originalId),
    u16(error),
    u16(0),
  ]);
  // The key name is echoed as received: it may be one this server cannot even represent as text.
  const record = encodeResourceRecord({ name: request.keyName, type: DNS_TYPE.TSIG, klass: DNS_CLASS.ANY, ttl: 0, rdata });
  const out = Buffer.concat([message, record]);
  out.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return out;
}

const BASE64_SECRET = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Reads a TSIG key as DNS servers' tools write it: Knot's (`keymgr -t <name>`: `id:`,
 * `algorithm:`, `secret:` lines), BIND's (`tsig-keygen <name>`: `key "<name>" { algorithm ...;
 * secret "..."; };`), or one line `[hmac-sha256:]<name>:<secret>` as `knsupdate -y` and
 * `nsupdate -y` take it. `source` names the text in errors (a file's path).
 */
export function parseTsigKey(text: string, source: string): TsigKey {
  const bind = /key\s+"?([^"\s{]+)"?\s*\{([^}]*)\}/i.exec(text);
  const knotId = /^\s*-?\s*id:\s*(\S+)\s*$/m.exec(text);
  let name: string | undefined;
  let algorithm: string | undefined;
  let secret: string | undefined;
  if (bind) {
    name = bind[1];
    algorithm = /algorithm\s+"?([\w-]+)"?\s*;/i.exec(bind[2] ?? '')?.[1];
    secret = /secret\s+"([^"]+)"\s*;/i.exec(bind[2] ?? '')?.[1];
  } else if (knotId) {
    name = knotId[1];
    algorithm = /^\s*algorithm:\s*(\S+)\s*$/m.exec(text)?.[1];
    secret = /^\s*secret:\s*(\S+)\s*$/m.exec(text)?.[1];
  } else {
    const line = text
      .split('\n')
      .map((one) => one.trim())
      .find((one) => one !== '' && !one.startsWith('#'));
    const parts = line?.split(':') ?? [];
    if (parts.length === 3) [algorithm, name, secret] = parts;
    else if (parts.length === 2) [name, secret] = parts;
  }
  if (!name || !secret || !/^[A-Za-z0-9._-]{1,253}$/.test(name)) {
    throw new StratumError('TSIG_KEY_INVALID', `${source} holds no TSIG key`, {
      hint: "Give Knot's `keymgr -t <name>` output, BIND's `tsig-keygen <name>` output, or one line hmac-sha256:<name>:<secret>.",
    });
  }
  if (algorithm !== undefined && algorithm.toLowerCase() !== TSIG_ALGORITHM) {
    throw new StratumError('TSIG_KEY_INVALID', `${source}: the key ${name} is ${algorithm}; only ${TSIG_ALGORITHM} is supported`);
  }
  if (!BASE64_SECRET.test(secret) || Buffer.from(secret, 'base64').length < 16) {
    throw new StratumError('TSIG_KEY_INVALID', `${source}: the secret of the key ${name} is not base64 of at least 16 bytes`);
  }
  return { name, secret, algorithm: TSIG_ALGORITHM };
}
