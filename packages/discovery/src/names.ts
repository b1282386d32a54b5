import { StratumError } from '@stratum/core';

/** The owner-name labels this protocol uses, RFC 8552 "underscored" names. */
export const HOST_LABEL = '_stratum-host';
export const LINK_LABEL = '_stratum';
export const CHALLENGE_LABEL = '_stratum-challenge';
export const SERVICE_LABELS = '_stratum._tcp';

const MAX_NAME_OCTETS = 253;
const MAX_LABEL_OCTETS = 63;
const HOSTNAME_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
// Owner names may carry RFC 8552 underscore labels and DNS-SD instance labels; those are checked
// by the code that builds them, so here a label only has to be printable and not contain a dot.
const OWNER_LABEL = /^[\x21-\x2d\x2f-\x7e]+$/;

function badName(what: string, name: string, problem: string): StratumError {
  return new StratumError('DNS_NAME_INVALID', `${what} "${name.slice(0, 80)}" is not a valid DNS name`, {
    details: [problem],
    hint: 'Use a fully qualified name such as host1.example.net (letters, digits and hyphens, dot-separated).',
  });
}

function splitName(name: string, what: string): string[] {
  if (typeof name !== 'string' || name.length === 0) throw badName(what, String(name), 'it is empty');
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  if (trimmed.length === 0) throw badName(what, name, 'the root name cannot be used here');
  if (Buffer.byteLength(trimmed) > MAX_NAME_OCTETS) throw badName(what, name, `it is longer than ${MAX_NAME_OCTETS} octets`);
  const labels = trimmed.toLowerCase().split('.');
  for (const label of labels) {
    if (label.length === 0) throw badName(what, name, 'it has an empty label (two dots in a row, or a leading dot)');
    if (Buffer.byteLength(label) > MAX_LABEL_OCTETS)
      throw badName(what, name, `the label "${label.slice(0, 20)}..." is longer than 63 octets`);
  }
  return labels;
}

/**
 * A host name as used in Stratum records: RFC 1123 letters-digits-hyphens labels, lower case,
 * without the trailing dot. Throws DNS_NAME_INVALID naming the problem.
 */
export function normaliseHostName(name: string, what = 'host name'): string {
  const labels = splitName(name, what);
  for (const label of labels) {
    if (!HOSTNAME_LABEL.test(label)) throw badName(what, name, `the label "${label}" may only hold letters, digits and inner hyphens`);
  }
  return labels.join('.');
}

/** Any owner name (underscore labels allowed), lower case, without the trailing dot. */
export function normaliseOwnerName(name: string, what = 'name'): string {
  const labels = splitName(name, what);
  for (const label of labels) {
    if (!OWNER_LABEL.test(label)) throw badName(what, name, `the label "${label.slice(0, 20)}" holds a character DNS names here cannot`);
  }
  return labels.join('.');
}

// The prefix counts against the 253 octets too: a host name near the limit is a valid name,
// but it has no `_stratum-host` name in DNS, so it cannot take part in the protocol.
function underscored(prefix: string, name: string, what: string): string {
  const owner = `${prefix}.${normaliseHostName(name, what)}`;
  if (owner.length > MAX_NAME_OCTETS) {
    throw badName(what, name, `${prefix}.<${what}> would be ${owner.length} octets, more than ${MAX_NAME_OCTETS}`);
  }
  return owner;
}

/** `_stratum-host.<host-name>`: where a host publishes its key and control API. */
export function hostRecordName(hostName: string): string {
  return underscored(HOST_LABEL, hostName, 'host name');
}

/** `_stratum.<domain>`: where a domain names the host and capsule that serve it. */
export function linkRecordName(domain: string): string {
  return underscored(LINK_LABEL, domain, 'domain');
}

/** `_stratum-challenge.<host-name>`: where a host answers a registrar's verification challenge. */
export function challengeRecordName(hostName: string): string {
  return underscored(CHALLENGE_LABEL, hostName, 'host name');
}

/** `_stratum._tcp.<domain>`: the DNS-SD service type name that lists control API instances. */
export function serviceTypeName(domain: string): string {
  return underscored(SERVICE_LABELS, domain, 'domain');
}

/** True when `name` equals `zone` or lies below it (both already normalised). */
export function isWithin(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}
