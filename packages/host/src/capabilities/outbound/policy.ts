import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { StratumError } from '@stratum/core';
import { originMatch } from '@stratum/manifest/rules';
import { addressRanges, embeddedIPv4 } from '../../address-ranges.ts';

/**
 * Where a capsule may send HTTP requests: only to the manifest's `outbound` origins, and never
 * (unless the host explicitly allows the range) to loopback, private, link-local or otherwise
 * special addresses. The name is resolved first and every address it has is checked; the
 * caller then connects to the checked address only, so a DNS answer that changes between the
 * check and the connection (DNS rebinding) cannot take the request elsewhere.
 */
export interface OutboundPolicy {
  /** The manifest's `[capabilities] outbound` origins. */
  origins: readonly string[];
  /** CIDR ranges the host allows despite being special (`127.0.0.1/32`, `10.1.0.0/16`). */
  allowAddresses?: readonly string[];
  /** Resolves a name to its addresses; node's resolver by default (tests inject their own). */
  resolve?: (hostname: string) => Promise<{ address: string; family: 4 | 6 }[]>;
  /** The host's own addresses; its interfaces' by default (tests inject their own). */
  ownAddresses?: readonly string[];
}

export interface CheckedTarget {
  url: URL;
  /** The address to connect to: checked, and the only one used. */
  address: string;
  family: 4 | 6;
}

export type RefusalReason = 'origin' | 'address' | 'dns' | 'scheme';

export class OutboundRefused extends StratumError {
  readonly reason: RefusalReason;
  constructor(reason: RefusalReason, message: string) {
    super('OUTBOUND_REFUSED', message, reason === 'origin' ? { hint: 'Add the origin to [capabilities] outbound in stratum.toml.' } : {});
    this.name = 'OutboundRefused';
    this.reason = reason;
  }
}

/** Ranges no capsule reaches unless the host allows them: RFC 6890's special-purpose blocks. */
const SPECIAL: [string, number, 'ipv4' | 'ipv6'][] = [
  ['0.0.0.0', 8, 'ipv4'],
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'],
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['192.0.2.0', 24, 'ipv4'],
  ['192.88.99.0', 24, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'],
  ['198.51.100.0', 24, 'ipv4'],
  ['203.0.113.0', 24, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'],
  ['240.0.0.0', 4, 'ipv4'],
  // The unspecified address, loopback, and the deprecated IPv4-compatible ::a.b.c.d, which a host
  // that still routes it sends to the IPv4 address inside.
  ['::', 96, 'ipv6'],
  // SIIT's IPv4-translated addresses (RFC 2765) and the local-use NAT64 prefix (RFC 8215): on a
  // network that translates them they lead to whatever IPv4 address they carry.
  ['::ffff:0:0:0', 96, 'ipv6'],
  ['64:ff9b:1::', 48, 'ipv6'],
  ['fc00::', 7, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
  ['100::', 64, 'ipv6'],
  ['2001::', 23, 'ipv6'],
  ['2001:db8::', 32, 'ipv6'],
  ['2002::', 16, 'ipv6'],
];

const special = new BlockList();
for (const [network, prefix, type] of SPECIAL) special.addSubnet(network, prefix, type);

/**
 * The host's own addresses, on every interface: a public one is no special-purpose address, yet
 * through it a capsule reached whatever listens on all of the host's addresses (the ingress
 * itself, for a loop of requests; a database; the control API). Read again after a while, as
 * interfaces come and go.
 */
let own: { addresses: Set<string>; readAt: number } | undefined;
const OWN_ADDRESSES_MS = 30_000;

function ownAddress(address: string, given?: readonly string[]): boolean {
  if (given) return given.includes(address.toLowerCase());
  const now = Date.now();
  if (!own || now - own.readAt > OWN_ADDRESSES_MS) {
    const addresses = new Set<string>();
    for (const entries of Object.values(networkInterfaces())) {
      for (const entry of entries ?? []) addresses.add(entry.address.toLowerCase().replace(/%.*$/, ''));
    }
    own = { addresses, readAt: now };
  }
  return own.addresses.has(address.toLowerCase());
}

/** True when the address is special-purpose or the host's own, and not in the host's allowed ranges. */
export function addressRefused(address: string, family: 4 | 6, allowed: BlockList, ownAddresses?: readonly string[]): boolean {
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (allowed.check(address, type)) return false;
  if (family === 6) {
    const inner = embeddedIPv4(address);
    if (inner !== undefined) return addressRefused(inner, 4, allowed, ownAddresses);
  }
  return special.check(address, type) || ownAddress(address, ownAddresses);
}

/**
 * Whether a host refuses the address by default (special-purpose: loopback, private, link-local
 * and the rest), before its `[outbound] allow_addresses` and its own addresses are counted.
 */
export function specialAddress(address: string): boolean {
  const family = isIP(address);
  return family !== 0 && addressRefused(address, family === 6 ? 6 : 4, new BlockList(), []);
}

async function systemResolve(hostname: string): Promise<{ address: string; family: 4 | 6 }[]> {
  const answers = await lookup(hostname, { all: true, verbatim: true });
  return answers.map((answer) => ({ address: answer.address, family: answer.family === 6 ? 6 : 4 }));
}

/** Checks a request's URL against the policy; resolves with the one address to connect to. */
export async function checkOutbound(url: URL, policy: OutboundPolicy): Promise<CheckedTarget> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new OutboundRefused('scheme', `${url.protocol} requests are not allowed; only http and https`);
  if (url.username || url.password) throw new OutboundRefused('origin', 'URLs with credentials in them are not allowed');
  const match = originMatch(policy.origins, url);
  if (match === 'bad-port') {
    throw new OutboundRefused(
      'origin',
      `${url.origin} is refused: port ${url.port} is one browsers never fetch from (SMTP's, SSH's and the like), which a wildcard port (:*) does not cover; an origin that names the port allows it`,
    );
  }
  if (match !== 'allowed') {
    throw new OutboundRefused(
      'origin',
      `${url.origin} is not one of the manifest's outbound origins (${policy.origins.join(', ') || 'none'})`,
    );
  }
  const allowed = addressRanges(policy.allowAddresses ?? []);
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: { address: string; family: 4 | 6 }[];
  const literal = isIP(hostname);
  if (literal !== 0) addresses = [{ address: hostname, family: literal === 6 ? 6 : 4 }];
  else {
    try {
      addresses = await (policy.resolve ?? systemResolve)(hostname);
    } catch (error) {
      throw new OutboundRefused('dns', `${hostname} does not resolve: ${(error as { code?: string }).code ?? 'no address'}`);
    }
  }
  if (addresses.length === 0) throw new OutboundRefused('dns', `${hostname} has no address`);
  const refused = addresses.filter((entry) => addressRefused(entry.address, entry.family, allowed, policy.ownAddresses));
  if (refused.length > 0) {
    throw new OutboundRefused(
      'address',
      `${hostname} resolves to ${refused.map((entry) => entry.address).join(', ')}, a loopback, private or special address, or the host's own, which the host does not allow`,
    );
  }
  const first = addresses[0] as { address: string; family: 4 | 6 };
  return { url, address: first.address, family: first.family };
}
