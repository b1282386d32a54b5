import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { type Logger, StratumError, silentLogger } from '@stratum/core';
import type * as dnsPacket from 'dns-packet';
import { encode as encodePacket } from 'dns-packet';
import { isWithin, normaliseOwnerName } from './names.ts';
import { appendTsigError, findTsig, signMessage, type TsigKey, verifyMessage } from './tsig.ts';
import {
  decodeMessage,
  decodeName,
  decodeUpdateMessage,
  encodeName,
  encodeRdata,
  OPCODE_QUERY,
  OPCODE_UPDATE,
  type RecordData,
  type RecordType,
  type UpdateOperation,
} from './wire.ts';
import { DEFAULT_TTL, type DnsChange, type DnsWriter, validateChanges } from './writer.ts';

export interface EmbeddedDnsServerOptions {
  /** The zones this server is authoritative for, e.g. `['stratum.example']`. */
  zones: readonly string[];
  /** Loopback by default; a registrar serving the Internet sets `0.0.0.0` or `::`. */
  host?: string;
  /** 0 (the default) picks a free port; UDP and TCP share it. */
  port?: number;
  /** The SOA MNAME; `ns1.<zone>` by default. */
  primaryNameServer?: string;
  /** Negative-answer TTL (the SOA MINIMUM, RFC 2308). */
  negativeTtl?: number;
  /**
   * TSIG keys (HMAC-SHA256) allowed to change the zones through RFC 2136 UPDATE messages, e.g.
   * for hosts that publish their own challenge records. Without keys, UPDATE gets NOTIMP.
   */
  updateKeys?: readonly TsigKey[];
  logger?: Logger;
}

interface RecordSet {
  ttl: number;
  records: RecordData[];
}

type ZoneData = Map<string, Map<RecordType, RecordSet>>;

const MAX_UDP_PAYLOAD = 1232;
const CLASSIC_UDP_PAYLOAD = 512;
const MAX_CNAME_CHAIN = 8;
const TCP_IDLE_MS = 10_000;

function sameRecord(a: RecordData, b: RecordData): boolean {
  return a.type === b.type && encodeRdata(a).equals(encodeRdata(b));
}

function toAnswer(name: string, ttl: number, record: RecordData): dnsPacket.Answer {
  // dns-packet converts TXT strings to buffers in place, so hand it a copy.
  const data = record.type === 'TXT' ? [...record.data] : record.data;
  return { name, type: record.type, class: 'IN', ttl, data } as dnsPacket.Answer;
}

/**
 * The registrar's default DNS: an authoritative server for its zones over UDP and TCP, held in
 * memory and written through the {@link DnsWriter} interface. It answers with AA set, NXDOMAIN
 * or NODATA with the SOA (RFC 2308), follows CNAMEs inside its zones, REFUSED outside them, and
 * sets TC when a UDP answer does not fit (RFC 1035, RFC 6891).
 */
export class EmbeddedDnsServer implements DnsWriter {
  readonly zones: readonly string[];
  readonly host: string;
  port = 0;
  #data: ZoneData = new Map();
  #nonTerminals: Set<string> | undefined;
  #serial = 1;
  #udp: Socket | undefined;
  #tcp: Server | undefined;
  #connections = new Set<TcpSocket>();
  readonly #logger: Logger;
  readonly #options: EmbeddedDnsServerOptions;

  constructor(options: EmbeddedDnsServerOptions) {
    if (options.zones.length === 0) throw new StratumError('DNS_CONFIG_INVALID', 'the embedded DNS server needs at least one zone');
    this.zones = options.zones.map((zone) => normaliseOwnerName(zone, 'zone'));
    this.host = options.host ?? '127.0.0.1';
    this.#logger = options.logger ?? silentLogger;
    this.#options = options;
  }

  get description(): string {
    return `embedded ${this.host}:${this.port} zones ${this.zones.join(', ')}`;
  }

  /** `host:port`, the form resolvers' `servers` option takes. */
  get address(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  async start(): Promise<void> {
    // With port 0 the OS picks a free UDP port, which TCP may hold already: try a few.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#listen();
        return;
      } catch (error) {
        const retry =
          (this.#options.port ?? 0) === 0 && attempt < 5 && (error as StratumError).details?.some((line) => line.includes('EADDRINUSE'));
        if (!retry) throw error;
      }
    }
  }

  async #listen(): Promise<void> {
    const udp = createSocket(this.host.includes(':') ? 'udp6' : 'udp4');
    udp.on('message', (message, remote) => this.#onUdp(udp, message, remote));
    udp.on('error', (error) => this.#logger.warn({ err: error }, 'embedded DNS: UDP socket error'));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.#options.port ?? 0, this.host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    this.#udp = udp;
    this.port = udp.address().port;
    const tcp = createServer((socket) => this.#onTcp(socket));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(this.port, this.host, () => {
        tcp.off('error', reject);
        resolve();
      });
    }).catch((error: unknown) => {
      udp.close();
      throw new StratumError('DNS_LISTEN_FAILED', `the embedded DNS server cannot listen on TCP ${this.host}:${this.port}`, {
        details: [(error as Error).message],
        hint: 'Pick another port, or stop whatever holds this one.',
      });
    });
    this.#tcp = tcp;
    this.#logger.info({ address: this.address, zones: this.zones }, 'embedded DNS server listening');
  }

  async stop(): Promise<void> {
    for (const socket of this.#connections) socket.destroy();
    const udp = this.#udp;
    const tcp = this.#tcp;
    this.#udp = undefined;
    this.#tcp = undefined;
    await Promise.all([
      udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : undefined,
      tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined,
    ]);
  }

  /** Applies the changes atomically: on any error none of them takes effect. */
  async apply(changes: readonly DnsChange[]): Promise<void> {
    this.#applyNow(changes);
  }

  #applyNow(changes: readonly DnsChange[]): void {
    validateChanges(changes);
    const next: ZoneData = new Map(
      [...this.#data].map(([name, sets]) => [name, new Map([...sets].map(([type, set]) => [type, { ...set, records: [...set.records] }]))]),
    );
    for (const change of changes) {
      const name = normaliseOwnerName(change.name, 'record name');
      if (!this.zones.some((zone) => isWithin(name, zone))) {
        throw new StratumError('DNS_NOT_IN_ZONE', `${name} is outside the zones this server holds`, {
          details: [`zones: ${this.zones.join(', ')}`],
        });
      }
      const sets = next.get(name) ?? new Map<RecordType, RecordSet>();
      next.set(name, sets);
      switch (change.op) {
        case 'replace':
          if (change.records.length === 0) sets.delete(change.type);
          else sets.set(change.type, { ttl: change.ttl ?? DEFAULT_TTL, records: dedupe(change.records) });
          break;
        case 'add': {
          const set = sets.get(change.record.type);
          const ttl = change.ttl ?? DEFAULT_TTL;
          if (!set) sets.set(change.record.type, { ttl, records: [change.record] });
          else {
            set.ttl = ttl;
            if (!set.records.some((record) => sameRecord(record, change.record))) set.records.push(change.record);
          }
          break;
        }
        case 'remove': {
          const set = sets.get(change.record.type);
          if (set) {
            set.records = set.records.filter((record) => !sameRecord(record, change.record));
            if (set.records.length === 0) sets.delete(change.record.type);
          }
          break;
        }
        case 'delete':
          if (change.type) sets.delete(change.type);
          else sets.clear();
          break;
      }
      if (sets.has('CNAME') && sets.size > 1) {
        throw new StratumError('DNS_CNAME_CONFLICT', `${name} would hold a CNAME beside other records`, {
          details: [[...sets.keys()].join(', ')],
          hint: 'RFC 1034 section 3.6.2: a name with a CNAME holds nothing else; delete the other records in the same change.',
        });
      }
      if (sets.size === 0) next.delete(name);
    }
    this.#data = next;
    this.#nonTerminals = undefined;
    this.#serial = (this.#serial + 1) >>> 0;
    this.#logger.debug({ changes: changes.length, serial: this.#serial }, 'embedded DNS: zone changed');
  }

  /** The records at a name, for inspection (e.g. a registrar's UI). */
  records(name: string): RecordData[] {
    const sets = this.#data.get(normaliseOwnerName(name));
    return sets ? [...sets.values()].flatMap((set) => set.records) : [];
  }

  /** Builds the answer to one query message; undefined when the message does not merit one. */
  answer(message: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    if (message.length >= 12 && (message.readUInt16BE(2) & 0x8000) === 0 && ((message.readUInt16BE(2) >> 11) & 0xf) === OPCODE_UPDATE) {
      return this.#update(message);
    }
    let query: dnsPacket.Packet;
    try {
      query = decodeMessage(message);
    } catch {
      // A header we can read gets FORMERR (RFC 1035 section 4.1.1); anything shorter is dropped.
      if (message.length < 12 || (message.readUInt16BE(2) & 0x8000) !== 0) return undefined;
      return this.#bare(message.readUInt16BE(0), message.readUInt16BE(2), 1);
    }
    if (query.type === 'response') return undefined;
    const flags = query.flags ?? 0;
    const opcode = (flags >> 11) & 0xf;
    if (opcode !== OPCODE_QUERY) return this.#bare(query.id ?? 0, flags, 4);
    const question = query.questions?.[0];
    if (!question || query.questions?.length !== 1 || question.class !== 'IN') return this.#bare(query.id ?? 0, flags, 1);
    const opt = query.additionals?.find((record) => record.type === 'OPT') as dnsPacket.OptAnswer | undefined;
    const response = this.#resolve(question);
    const packet: dnsPacket.Packet = {
      id: query.id ?? 0,
      type: 'response',
      // QR, AA, the query's RD, and the rcode.
      flags: (1 << 10) | (flags & (1 << 8)) | response.rcode,
      questions: [question],
      answers: response.answers,
      authorities: response.authorities,
      additionals: opt ? [{ type: 'OPT', name: '.', udpPayloadSize: MAX_UDP_PAYLOAD } as dnsPacket.OptAnswer] : [],
    };
    let encoded = encodePacket(packet);
    const limit =
      transport === 'tcp' ? 0xffff : Math.max(CLASSIC_UDP_PAYLOAD, Math.min(opt?.udpPayloadSize ?? CLASSIC_UDP_PAYLOAD, MAX_UDP_PAYLOAD));
    if (encoded.length > limit) {
      encoded = encodePacket({ ...packet, flags: (packet.flags ?? 0) | (1 << 9), answers: [], authorities: [] });
    }
    return encoded;
  }

  /**
   * RFC 2136 UPDATE, authenticated with TSIG (RFC 8945): NOTAUTH for unsigned or badly signed
   * messages (with the TSIG error), NOTZONE for names outside the zone, REFUSED for changes
   * this server will not make; otherwise the change list is applied atomically. Prerequisites
   * (section 2.4) are not supported and get NOTIMP.
   */
  #update(message: Buffer): Buffer {
    const id = message.readUInt16BE(0);
    const flags = message.readUInt16BE(2);
    const keys = this.#options.updateKeys ?? [];
    if (keys.length === 0) return this.#bare(id, flags, 4);
    let tsig: ReturnType<typeof findTsig>;
    let zoneEnd: number;
    try {
      tsig = findTsig(message);
      zoneEnd = decodeName(message, 12).next + 4;
      if (zoneEnd > message.length) return this.#bare(id, flags, 1);
    } catch {
      return this.#bare(id, flags, 1);
    }
    // The reply echoes the zone section (RFC 2136 section 3.8).
    const reply = (rcode: number) => {
      const out = Buffer.concat([this.#bare(id, flags, rcode), message.subarray(12, zoneEnd)]);
      out.writeUInt16BE(1, 4);
      return out;
    };
    if (!tsig) {
      this.#logger.warn('embedded DNS: refused an unsigned UPDATE');
      return reply(9);
    }
    const key = keys.find((candidate) =>
      encodeName(candidate.name).equals(Buffer.from(tsig.record.keyName.toString('latin1').toLowerCase(), 'latin1')),
    );
    if (!key) return appendTsigError(reply(9), tsig.record, 17);
    const verdict = verifyMessage(message, key);
    if (!verdict.ok) {
      this.#logger.warn({ key: key.name, reason: verdict.reason }, 'embedded DNS: refused a badly signed UPDATE');
      return appendTsigError(reply(9), tsig.record, verdict.reason === 'BADTIME' ? 18 : 16);
    }
    const signed = (rcode: number) => signMessage(reply(rcode), key, { requestMac: verdict.mac }).message;
    let operations: UpdateOperation[];
    let zone: string;
    try {
      const update = decodeUpdateMessage(stripTsig(message));
      if (update.prerequisites > 0) return signed(4);
      operations = update.operations;
      zone = update.zone;
    } catch (error) {
      this.#logger.warn({ err: error }, 'embedded DNS: malformed UPDATE');
      return signed(1);
    }
    if (!this.zones.includes(zone)) return signed(9);
    if (operations.some((operation) => !isWithin(operation.name, zone))) return signed(10);
    try {
      this.#applyNow(operations.map(toChange));
    } catch (error) {
      this.#logger.warn({ err: error, key: key.name }, 'embedded DNS: refused an UPDATE');
      return signed(5);
    }
    this.#logger.info({ key: key.name, zone, changes: operations.length }, 'embedded DNS: applied an UPDATE');
    return signed(0);
  }

  /** Names with records only below them answer NODATA, not NXDOMAIN (RFC 8020); built once per zone change. */
  #isNonTerminal(name: string): boolean {
    if (!this.#nonTerminals) {
      const names = new Set<string>();
      for (const owner of this.#data.keys()) {
        for (let dot = owner.indexOf('.'); dot >= 0; dot = owner.indexOf('.', dot + 1)) names.add(owner.slice(dot + 1));
      }
      this.#nonTerminals = names;
    }
    return this.#nonTerminals.has(name);
  }

  #bare(id: number, queryFlags: number, rcode: number): Buffer {
    const header = Buffer.alloc(12);
    header.writeUInt16BE(id, 0);
    header.writeUInt16BE(0x8000 | (queryFlags & 0x7900) | rcode, 2);
    return header;
  }

  #soa(zone: string): dnsPacket.Answer {
    const minimum = this.#options.negativeTtl ?? 60;
    return {
      name: zone,
      type: 'SOA',
      class: 'IN',
      ttl: minimum,
      data: {
        mname: this.#options.primaryNameServer ?? `ns1.${zone}`,
        rname: `hostmaster.${zone}`,
        serial: this.#serial,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum,
      },
    };
  }

  #resolve(question: dnsPacket.Question): { rcode: number; answers: dnsPacket.Answer[]; authorities: dnsPacket.Answer[] } {
    // dns-packet's Question type leaves out ANY, which resolvers do send.
    const qtype: string = question.type;
    let owner = question.name;
    let name = owner.toLowerCase().replace(/\.$/, '');
    const zone = this.zones.filter((candidate) => isWithin(name, candidate)).sort((a, b) => b.length - a.length)[0];
    if (!zone) return { rcode: 5, answers: [], authorities: [] };
    const answers: dnsPacket.Answer[] = [];
    for (let hops = 0; hops <= MAX_CNAME_CHAIN; hops++) {
      const sets = this.#data.get(name);
      const apex = name === zone;
      if (!sets && !apex) {
        if (answers.length > 0) return { rcode: 0, answers, authorities: [] };
        return { rcode: this.#isNonTerminal(name) ? 0 : 3, answers, authorities: [this.#soa(zone)] };
      }
      const cname = sets?.get('CNAME');
      if (cname && qtype !== 'CNAME') {
        const target = cname.records[0];
        if (target?.type !== 'CNAME') break;
        answers.push(toAnswer(owner, cname.ttl, target));
        owner = target.data;
        name = target.data.toLowerCase().replace(/\.$/, '');
        // Outside our zones the resolver continues the chase itself.
        if (!this.zones.some((candidate) => isWithin(name, candidate))) return { rcode: 0, answers, authorities: [] };
        continue;
      }
      for (const [type, set] of sets ?? []) {
        if (qtype === type || qtype === 'ANY') answers.push(...set.records.map((record) => toAnswer(owner, set.ttl, record)));
      }
      if (apex && (qtype === 'SOA' || qtype === 'ANY')) answers.push({ ...this.#soa(zone), name: owner });
      if (apex && (qtype === 'NS' || qtype === 'ANY')) {
        answers.push({ name: owner, type: 'NS', class: 'IN', ttl: DEFAULT_TTL, data: this.#options.primaryNameServer ?? `ns1.${zone}` });
      }
      return answers.length > 0 ? { rcode: 0, answers, authorities: [] } : { rcode: 0, answers, authorities: [this.#soa(zone)] };
    }
    return { rcode: 2, answers: [], authorities: [] };
  }

  #onUdp(socket: Socket, message: Buffer, remote: RemoteInfo): void {
    let reply: Buffer | undefined;
    try {
      reply = this.answer(message, 'udp');
    } catch (error) {
      this.#logger.error({ err: error, from: remote.address }, 'embedded DNS: failed to answer a UDP query');
      return;
    }
    if (reply) socket.send(reply, remote.port, remote.address);
  }

  #onTcp(socket: TcpSocket): void {
    this.#connections.add(socket);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('close', () => this.#connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const message = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        let reply: Buffer | undefined;
        try {
          reply = this.answer(Buffer.from(message), 'tcp');
        } catch (error) {
          this.#logger.error({ err: error }, 'embedded DNS: failed to answer a TCP query');
        }
        if (!reply) {
          socket.destroy();
          return;
        }
        const frame = Buffer.alloc(2);
        frame.writeUInt16BE(reply.length);
        socket.write(Buffer.concat([frame, reply]));
      }
    });
  }
}

/** The message without its trailing TSIG record, ADCOUNT adjusted, for the update decoder. */
function stripTsig(message: Buffer): Buffer {
  const found = findTsig(message);
  if (!found) return message;
  const stripped = Buffer.from(message.subarray(0, found.start));
  stripped.writeUInt16BE(stripped.readUInt16BE(10) - 1, 10);
  return stripped;
}

function toChange(operation: UpdateOperation): DnsChange {
  switch (operation.op) {
    case 'add':
      return { op: 'add', name: operation.name, ttl: operation.ttl, record: operation.record };
    case 'delete-record':
      return { op: 'remove', name: operation.name, record: operation.record };
    case 'delete-rrset':
      return { op: 'delete', name: operation.name, type: operation.type };
    default:
      return { op: 'delete', name: operation.name };
  }
}

function dedupe(records: readonly RecordData[]): RecordData[] {
  const kept: RecordData[] = [];
  for (const record of records) if (!kept.some((existing) => sameRecord(existing, record))) kept.push(record);
  return kept;
}

/**
 * Starts an embedded authoritative DNS server; stop it with `server.stop()`.
 *
 * @example
 * const dns = await startEmbeddedDnsServer({ zones: ['stratum.example'] });
 * const resolver = new DiscoveryResolver({ servers: [dns.address] });
 */
export async function startEmbeddedDnsServer(options: EmbeddedDnsServerOptions): Promise<EmbeddedDnsServer> {
  const server = new EmbeddedDnsServer(options);
  await server.start();
  return server;
}
