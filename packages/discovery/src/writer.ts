import { StratumError } from '@stratum/core';
import { challengeRecordName, hostRecordName, linkRecordName, normaliseHostName, normaliseOwnerName, serviceTypeName } from './names.ts';
import {
  type DomainLink,
  formatDomainLink,
  formatHostRecord,
  formatServiceInstanceTxt,
  type HostRecord,
  type ServiceInstanceInfo,
} from './records.ts';
import { encodeRdata, type RecordData, type RecordType } from './wire.ts';

/** One change to a zone. A list of changes is applied atomically (all or none). */
export type DnsChange =
  /** Makes `records` the whole set of their type at `name` (all of one type). */
  | { op: 'replace'; name: string; type: RecordType; ttl?: number; records: readonly RecordData[] }
  | { op: 'add'; name: string; ttl?: number; record: RecordData }
  | { op: 'remove'; name: string; record: RecordData }
  /** Deletes the records of `type` at `name`, or every record at `name` when no type is given. */
  | { op: 'delete'; name: string; type?: RecordType };

/**
 * Where a registrar writes DNS: its embedded authoritative server, or an external one through
 * RFC 2136 dynamic updates. Both pass the same conformance suite (tests/discovery-writers.test.ts).
 *
 * @example
 * await writer.apply([{ op: 'replace', name: '_stratum.shop.example', type: 'TXT', records: [{ type: 'TXT', data: link }] }]);
 */
export interface DnsWriter {
  /** A short description for logs and errors, e.g. `rfc2136 127.0.0.1:53 zone example.net`. */
  readonly description: string;
  apply(changes: readonly DnsChange[]): Promise<void>;
}

export const DEFAULT_TTL = 300;

/**
 * A TXT record as a zone file line, for people to publish by hand:
 * `_stratum.shop.example. 300 IN TXT "v=stratum1" "host=..."`.
 */
export function zoneFileTxt(name: string, strings: readonly string[], ttl = DEFAULT_TTL): string {
  const quoted = strings.map((item) => `"${item.replace(/["\\]/g, (char) => `\\${char}`)}"`).join(' ');
  return `${name}. ${ttl} IN TXT ${quoted}`;
}
/** Challenge records live briefly: they only have to outlast one verification. */
export const CHALLENGE_TTL = 60;

/** Checks a change list before any writer acts on it, so both writers refuse the same input the same way. */
export function validateChanges(changes: readonly DnsChange[]): void {
  if (!Array.isArray(changes) || changes.length === 0) {
    throw new StratumError('DNS_CHANGE_INVALID', 'there are no DNS changes to apply', { hint: 'Pass at least one change.' });
  }
  for (const change of changes) {
    normaliseOwnerName(change.name, 'record name');
    if (change.op === 'replace') {
      for (const record of change.records) {
        if (record.type !== change.type) {
          throw new StratumError('DNS_CHANGE_INVALID', `a replace of ${change.type} at ${change.name} holds a ${record.type} record`, {
            details: ['replace sets the records of one type'],
          });
        }
      }
    }
    const records = change.op === 'replace' ? change.records : change.op === 'delete' ? [] : [change.record];
    for (const record of records) {
      if (record.type === 'SRV') {
        for (const field of ['priority', 'weight', 'port'] as const) {
          const value = record.data[field];
          if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
            throw new StratumError('DNS_CHANGE_INVALID', `the SRV ${field} at ${change.name} is not 0 to 65535`, {
              details: [`got ${value}`],
            });
          }
        }
      }
      // Encoding checks addresses, TXT string lengths and target names, the same for every writer.
      encodeRdata(record);
    }
    const ttl = 'ttl' in change ? change.ttl : undefined;
    if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff)) {
      throw new StratumError('DNS_CHANGE_INVALID', `TTL ${ttl} at ${change.name} is not a whole number of seconds`, {
        details: ['0 to 2147483647'],
      });
    }
  }
}

/** Publishes (or replaces) a host's `_stratum-host` record. */
export async function publishHostRecord(
  writer: DnsWriter,
  hostName: string,
  record: Omit<HostRecord, 'version' | 'keyThumbprint'>,
  ttl = DEFAULT_TTL,
): Promise<void> {
  await writer.apply([
    { op: 'replace', name: hostRecordName(hostName), type: 'TXT', ttl, records: [{ type: 'TXT', data: formatHostRecord(record) }] },
  ]);
}

/**
 * The changes that link a domain to a host: the `_stratum` TXT record and the routing record
 * (addresses, or a CNAME to the host's ingress name), to apply together, atomically.
 */
export function domainLinkChanges(
  domain: string,
  link: Omit<DomainLink, 'version'>,
  routing: { cname: string } | { addresses: readonly string[] },
  ttl = DEFAULT_TTL,
): DnsChange[] {
  return [
    { op: 'replace', name: linkRecordName(domain), type: 'TXT', ttl, records: [{ type: 'TXT', data: formatDomainLink(link) }] },
    ...routingChanges(domain, routing, ttl),
  ];
}

/** The changes that route a domain's traffic: a CNAME, or A and AAAA records (none: no route). */
export function routingChanges(
  domain: string,
  routing: { cname: string } | { addresses: readonly string[] },
  ttl = DEFAULT_TTL,
): DnsChange[] {
  if ('cname' in routing) {
    return [
      { op: 'delete', name: domain, type: 'A' },
      { op: 'delete', name: domain, type: 'AAAA' },
      { op: 'replace', name: domain, type: 'CNAME', ttl, records: [{ type: 'CNAME', data: routing.cname }] },
    ];
  }
  const v4 = routing.addresses.filter((address) => !address.includes(':'));
  const v6 = routing.addresses.filter((address) => address.includes(':'));
  return [
    { op: 'delete', name: domain, type: 'CNAME' },
    { op: 'replace', name: domain, type: 'A', ttl, records: v4.map((data) => ({ type: 'A', data }) as const) },
    { op: 'replace', name: domain, type: 'AAAA', ttl, records: v6.map((data) => ({ type: 'AAAA', data }) as const) },
  ];
}

/** Links a domain to a host: `domainLinkChanges`, applied. */
export async function publishDomainLink(
  writer: DnsWriter,
  domain: string,
  link: Omit<DomainLink, 'version'>,
  routing: { cname: string } | { addresses: readonly string[] },
  ttl = DEFAULT_TTL,
): Promise<void> {
  await writer.apply(domainLinkChanges(domain, link, routing, ttl));
}

/** Publishes one challenge answer beside any others (several registrars may challenge at once). */
export async function publishChallenge(writer: DnsWriter, hostName: string, value: string, ttl = CHALLENGE_TTL): Promise<void> {
  await writer.apply([{ op: 'add', name: challengeRecordName(hostName), ttl, record: { type: 'TXT', data: [value] } }]);
}

/** Withdraws one challenge answer once the registrar has checked it. */
export async function withdrawChallenge(writer: DnsWriter, hostName: string, value: string): Promise<void> {
  await writer.apply([{ op: 'remove', name: challengeRecordName(hostName), record: { type: 'TXT', data: [value] } }]);
}

/**
 * Advertises a control API with DNS-SD (spec section 7): the PTR from `_stratum._tcp.<domain>`
 * to `<instance>._stratum._tcp.<domain>`, and that instance's SRV and TXT records.
 */
export async function publishServiceInstance(
  writer: DnsWriter,
  domain: string,
  instance: { label: string; target: string; port: number; priority?: number; weight?: number; info: Omit<ServiceInstanceInfo, 'version'> },
  ttl = DEFAULT_TTL,
): Promise<string> {
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(instance.label)) {
    throw new StratumError('DNS_NAME_INVALID', `the instance label "${instance.label}" is not letters, digits and inner hyphens`);
  }
  const typeName = serviceTypeName(domain);
  const name = `${instance.label.toLowerCase()}.${typeName}`;
  const srv = {
    priority: instance.priority ?? 10,
    weight: instance.weight ?? 10,
    port: instance.port,
    target: normaliseHostName(instance.target, 'SRV target'),
  };
  await writer.apply([
    { op: 'add', name: typeName, ttl, record: { type: 'PTR', data: name } },
    { op: 'replace', name, type: 'SRV', ttl, records: [{ type: 'SRV', data: srv }] },
    { op: 'replace', name, type: 'TXT', ttl, records: [{ type: 'TXT', data: formatServiceInstanceTxt(instance.info) }] },
  ]);
  return name;
}
