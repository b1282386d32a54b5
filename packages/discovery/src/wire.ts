import { isIP } from 'node:net';
import { StratumError } from '@stratum/core';
import * as dnsPacket from 'dns-packet';
import { normaliseOwnerName } from './names.ts';

/**
 * DNS wire helpers that dns-packet 5.6 lacks or gets wrong: class NONE (254, which it encodes
 * as 0), RFC 2136 UPDATE sections with arbitrary classes, and a record walker that finds the
 * TSIG record's offset. Queries and answers still go through dns-packet, wrapped so that a
 * malformed packet becomes a clean DNS_PACKET_INVALID error.
 */

export const DNS_CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
export const DNS_TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33, TSIG: 250, ANY: 255 } as const;
export const OPCODE_QUERY = 0;
export const OPCODE_UPDATE = 5;
export const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  6: 'YXDOMAIN',
  7: 'YXRRSET',
  8: 'NXRRSET',
  9: 'NOTAUTH',
  10: 'NOTZONE',
};

/** The record types the discovery protocol reads and writes, with their data. */
export type RecordData =
  | { type: 'A'; data: string }
  | { type: 'AAAA'; data: string }
  | { type: 'CNAME'; data: string }
  | { type: 'PTR'; data: string }
  | { type: 'TXT'; data: readonly string[] }
  | { type: 'SRV'; data: { priority: number; weight: number; port: number; target: string } };

export type RecordType = RecordData['type'];
export const RECORD_TYPES: readonly RecordType[] = ['A', 'AAAA', 'CNAME', 'PTR', 'TXT', 'SRV'];

function packetError(message: string, detail?: string): StratumError {
  return new StratumError('DNS_PACKET_INVALID', message, { details: detail ? [detail] : [], user: true });
}

/** A name in uncompressed wire form, lower case (the canonical form TSIG digests use). */
export function encodeName(name: string): Buffer {
  const normal = name === '.' || name === '' ? '' : normaliseOwnerName(name);
  const parts: Buffer[] = [];
  if (normal) {
    for (const label of normal.split('.')) {
      const bytes = Buffer.from(label, 'ascii');
      parts.push(Buffer.from([bytes.length]), bytes);
    }
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function u16(value: number): Buffer {
  const buf = Buffer.alloc(2);
  buf.writeUInt16BE(value);
  return buf;
}

function u32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(value);
  return buf;
}

/** RDATA without its length prefix. */
export function encodeRdata(record: RecordData): Buffer {
  switch (record.type) {
    case 'TXT': {
      const parts: Buffer[] = [];
      for (const item of record.data) {
        const bytes = Buffer.from(item, 'utf8');
        if (bytes.length > 255)
          throw new StratumError('TXT_STRING_TOO_LONG', 'a TXT string is longer than 255 octets', { details: [item.slice(0, 60)] });
        parts.push(Buffer.from([bytes.length]), bytes);
      }
      return Buffer.concat(parts);
    }
    case 'CNAME':
    case 'PTR':
      return encodeName(record.data);
    case 'SRV':
      return Buffer.concat([u16(record.data.priority), u16(record.data.weight), u16(record.data.port), encodeName(record.data.target)]);
    case 'A':
      return ipv4Bytes(record.data);
    case 'AAAA':
      return ipv6Bytes(record.data);
  }
}

function badAddress(kind: string, address: string): StratumError {
  return new StratumError('DNS_CHANGE_INVALID', `"${String(address).slice(0, 60)}" is not an ${kind} address`, {
    hint: `Give an ${kind} address.`,
  });
}

function ipv4Bytes(address: string): Buffer {
  if (isIP(address) !== 4) throw badAddress('IPv4', address);
  return Buffer.from(address.split('.').map(Number));
}

function ipv6Bytes(address: string): Buffer {
  if (isIP(address) !== 6) throw badAddress('IPv6', address);
  let text = address;
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const bytes = ipv4Bytes(v4[1]);
    text = `${text.slice(0, -v4[1].length)}${bytes.readUInt16BE(0).toString(16)}:${bytes.readUInt16BE(2).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = tail === undefined ? headGroups : [...headGroups, ...new Array<string>(missing).fill('0'), ...tailGroups];
  const out = Buffer.alloc(16);
  groups.forEach((group, index) => {
    out.writeUInt16BE(Number.parseInt(group, 16), index * 2);
  });
  return out;
}

/** One resource record in wire form with an explicit class, so NONE and ANY come out right. */
export function encodeResourceRecord(options: { name: string | Buffer; type: number; klass: number; ttl: number; rdata: Buffer }): Buffer {
  // A Buffer is a name already in wire form, echoed back as received.
  return Buffer.concat([
    typeof options.name === 'string' ? encodeName(options.name) : options.name,
    u16(options.type),
    u16(options.klass),
    u32(options.ttl),
    u16(options.rdata.length),
    options.rdata,
  ]);
}

/** A change in an RFC 2136 update section (section 2.5). */
export type UpdateOperation =
  | { op: 'add'; name: string; ttl: number; record: RecordData }
  | { op: 'delete-rrset'; name: string; type: RecordType }
  | { op: 'delete-name'; name: string }
  | { op: 'delete-record'; name: string; record: RecordData };

export function encodeUpdateOperation(operation: UpdateOperation): Buffer {
  switch (operation.op) {
    case 'add':
      return encodeResourceRecord({
        name: operation.name,
        type: DNS_TYPE[operation.record.type],
        klass: DNS_CLASS.IN,
        ttl: operation.ttl,
        rdata: encodeRdata(operation.record),
      });
    case 'delete-rrset':
      return encodeResourceRecord({
        name: operation.name,
        type: DNS_TYPE[operation.type],
        klass: DNS_CLASS.ANY,
        ttl: 0,
        rdata: Buffer.alloc(0),
      });
    case 'delete-name':
      return encodeResourceRecord({ name: operation.name, type: DNS_TYPE.ANY, klass: DNS_CLASS.ANY, ttl: 0, rdata: Buffer.alloc(0) });
    case 'delete-record':
      return encodeResourceRecord({
        name: operation.name,
        type: DNS_TYPE[operation.record.type],
        klass: DNS_CLASS.NONE,
        ttl: 0,
        rdata: encodeRdata(operation.record),
      });
  }
}

/** An RFC 2136 UPDATE message for `zone` (no prerequisites), unsigned. */
export function encodeUpdateMessage(id: number, zone: string, operations: readonly UpdateOperation[]): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(OPCODE_UPDATE << 11, 2);
  header.writeUInt16BE(1, 4); // ZOCOUNT
  header.writeUInt16BE(0, 6); // PRCOUNT
  header.writeUInt16BE(operations.length, 8); // UPCOUNT
  header.writeUInt16BE(0, 10); // ADCOUNT
  const zoneSection = Buffer.concat([encodeName(zone), u16(DNS_TYPE.SOA), u16(DNS_CLASS.IN)]);
  return Buffer.concat([header, zoneSection, ...operations.map(encodeUpdateOperation)]);
}

/** Skips a (possibly compressed) name; returns the offset after it. Never follows pointers, so it cannot loop. */
function skipName(buf: Buffer, offset: number): number {
  let at = offset;
  for (let labels = 0; labels < 128; labels++) {
    if (at >= buf.length) throw packetError('a name runs past the end of the packet');
    const len = buf[at]!;
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) {
      if (at + 2 > buf.length) throw packetError('a compression pointer runs past the end of the packet');
      return at + 2;
    }
    if ((len & 0xc0) !== 0)
      throw packetError('a name has a label type this implementation does not know', `octet 0x${len.toString(16)} at ${at}`);
    at += 1 + len;
  }
  throw packetError('a name has too many labels');
}

/** Where each resource record starts and what it is, for the sections after the question. */
export interface RecordSpan {
  section: 'answer' | 'authority' | 'additional';
  start: number;
  type: number;
  klass: number;
  ttl: number;
  rdataStart: number;
  end: number;
}

export interface MessageLayout {
  id: number;
  flags: number;
  opcode: number;
  rcode: number;
  questionCount: number;
  records: RecordSpan[];
}

/** Walks a message's sections without interpreting names or data: bounds-checked, never throws anything but DNS_PACKET_INVALID. */
export function messageLayout(buf: Buffer): MessageLayout {
  if (!Buffer.isBuffer(buf) || buf.length < 12) throw packetError('a DNS message is at least 12 octets', `got ${buf?.length ?? 0}`);
  const flags = buf.readUInt16BE(2);
  const counts = [buf.readUInt16BE(4), buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)] as const;
  let at = 12;
  for (let index = 0; index < counts[0]; index++) {
    at = skipName(buf, at) + 4;
    if (at > buf.length) throw packetError('the question section runs past the end of the packet');
  }
  const records: RecordSpan[] = [];
  const sections = ['answer', 'authority', 'additional'] as const;
  sections.forEach((section, sectionIndex) => {
    const count = counts[sectionIndex + 1]!;
    for (let index = 0; index < count; index++) {
      const start = at;
      at = skipName(buf, at);
      if (at + 10 > buf.length) throw packetError(`a record in the ${section} section runs past the end of the packet`);
      const type = buf.readUInt16BE(at);
      const klass = buf.readUInt16BE(at + 2);
      const ttl = buf.readUInt32BE(at + 4);
      const length = buf.readUInt16BE(at + 8);
      const rdataStart = at + 10;
      at = rdataStart + length;
      if (at > buf.length) throw packetError(`a record's data in the ${section} section runs past the end of the packet`);
      records.push({ section, start, type, klass, ttl, rdataStart, end: at });
    }
  });
  if (at !== buf.length) throw packetError('the packet has trailing octets after its last record', `${buf.length - at} octets`);
  return { id: buf.readUInt16BE(0), flags, opcode: (flags >> 11) & 0xf, rcode: flags & 0xf, questionCount: counts[0], records };
}

/**
 * Decodes a whole message with dns-packet after checking its layout, so a malformed packet
 * fails with DNS_PACKET_INVALID rather than a RangeError from deep inside the decoder.
 */
export function decodeMessage(buf: Buffer): dnsPacket.Packet {
  messageLayout(buf);
  try {
    return dnsPacket.decode(buf);
  } catch (error) {
    throw packetError('the DNS message cannot be decoded', (error as Error).message);
  }
}

const TYPE_NAMES = new Map<number, RecordType>(RECORD_TYPES.map((type) => [DNS_TYPE[type], type]));

/**
 * Reads a name at `offset`, following compression pointers only backwards (RFC 1035 section
 * 4.1.4), so a hostile packet cannot make it loop. Returns the lower-case name and the offset
 * after the name's own octets.
 */
export function decodeName(buf: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let at = offset;
  let next: number | undefined;
  let limit = offset;
  let octets = 0;
  for (;;) {
    if (at >= buf.length) throw packetError('a name runs past the end of the packet');
    const len = buf[at]!;
    if (len === 0) {
      next ??= at + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (at + 2 > buf.length) throw packetError('a compression pointer runs past the end of the packet');
      const target = buf.readUInt16BE(at) & 0x3fff;
      if (target >= limit) throw packetError('a compression pointer does not point backwards', `at ${at} to ${target}`);
      next ??= at + 2;
      limit = target;
      at = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw packetError('a name has a label type this implementation does not know');
    if (at + 1 + len > buf.length) throw packetError('a label runs past the end of the packet');
    octets += len + 1;
    if (octets > 255) throw packetError('a name is longer than 255 octets');
    labels.push(buf.toString('latin1', at + 1, at + 1 + len).toLowerCase());
    at += 1 + len;
  }
  return { name: labels.length === 0 ? '.' : labels.join('.'), next };
}

function decodeRdata(type: RecordType, buf: Buffer, start: number, end: number): RecordData {
  const length = end - start;
  const wrongLength = () => packetError(`the ${type} data is ${length} octets long`);
  switch (type) {
    case 'A':
      if (length !== 4) throw wrongLength();
      return { type, data: [...buf.subarray(start, end)].join('.') };
    case 'AAAA': {
      if (length !== 16) throw wrongLength();
      const groups: string[] = [];
      for (let at = start; at < end; at += 2) groups.push(buf.readUInt16BE(at).toString(16));
      return { type, data: groups.join(':') };
    }
    case 'TXT': {
      const strings: string[] = [];
      let at = start;
      while (at < end) {
        const len = buf[at]!;
        if (at + 1 + len > end) throw packetError('a TXT string runs past its record');
        strings.push(buf.toString('utf8', at + 1, at + 1 + len));
        at += 1 + len;
      }
      return { type, data: strings };
    }
    case 'CNAME':
    case 'PTR': {
      const { name, next } = decodeName(buf, start);
      if (next !== end) throw wrongLength();
      return { type, data: name };
    }
    case 'SRV': {
      if (length < 7) throw wrongLength();
      const { name, next } = decodeName(buf, start + 6);
      if (next !== end) throw wrongLength();
      return {
        type,
        data: { priority: buf.readUInt16BE(start), weight: buf.readUInt16BE(start + 2), port: buf.readUInt16BE(start + 4), target: name },
      };
    }
  }
}

/** An RFC 2136 UPDATE message, read back: the inverse of {@link encodeUpdateMessage}. */
export interface DecodedUpdate {
  id: number;
  zone: string;
  prerequisites: number;
  operations: UpdateOperation[];
}

/**
 * Decodes an UPDATE message's zone and update sections. Throws DNS_PACKET_INVALID for a
 * malformed message and DNS_UPDATE_UNSUPPORTED for record types this protocol does not use.
 */
export function decodeUpdateMessage(buf: Buffer): DecodedUpdate {
  const layout = messageLayout(buf);
  if (layout.opcode !== OPCODE_UPDATE) throw packetError('the message is not an UPDATE', `opcode ${layout.opcode}`);
  if (layout.questionCount !== 1) throw packetError('an UPDATE names exactly one zone', `it names ${layout.questionCount}`);
  const zone = decodeName(buf, 12);
  if (zone.next + 4 > buf.length || buf.readUInt16BE(zone.next) !== DNS_TYPE.SOA || buf.readUInt16BE(zone.next + 2) !== DNS_CLASS.IN) {
    throw packetError('the zone section must be type SOA, class IN');
  }
  const prerequisites = layout.records.filter((record) => record.section === 'answer').length;
  const operations = layout.records
    .filter((record) => record.section === 'authority')
    .map((record): UpdateOperation => {
      const { name } = decodeName(buf, record.start);
      const empty = record.end === record.rdataStart;
      if (record.klass === DNS_CLASS.ANY && record.type === DNS_TYPE.ANY && empty) return { op: 'delete-name', name };
      const type = TYPE_NAMES.get(record.type);
      if (!type) {
        throw new StratumError('DNS_UPDATE_UNSUPPORTED', `record type ${record.type} is not one the discovery protocol writes`, {
          details: [`supported: ${RECORD_TYPES.join(', ')}`],
        });
      }
      if (record.klass === DNS_CLASS.ANY && empty) return { op: 'delete-rrset', name, type };
      if (record.klass === DNS_CLASS.NONE && record.ttl === 0) {
        return { op: 'delete-record', name, record: decodeRdata(type, buf, record.rdataStart, record.end) };
      }
      if (record.klass === DNS_CLASS.IN)
        return { op: 'add', name, ttl: record.ttl, record: decodeRdata(type, buf, record.rdataStart, record.end) };
      throw packetError('an update record has a class/TTL/data combination RFC 2136 section 2.5 does not define', `class ${record.klass}`);
    });
  return { id: layout.id, zone: zone.name, prerequisites, operations };
}
