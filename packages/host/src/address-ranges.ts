// CIDR ranges the operator names in host.toml (`[outbound] allow_addresses`, `[ingress]
// trusted_proxies`), and the address checks against them. Shared runtime code, not a capability.
import { BlockList, isIP } from 'node:net';
import { StratumError } from '@stratum/core';

/** A list of CIDR ranges ("10.1.0.0/16", "::1/128"; a bare address is one host). */
export function addressRanges(ranges: readonly string[]): BlockList {
  const list = new BlockList();
  for (const range of ranges) {
    const [network, bits] = range.split('/');
    const family = network ? isIP(network) : 0;
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
    if (!network || family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
      throw new StratumError('HOST_CONFIG_INVALID', `"${range}" is not an address range`, {
        hint: 'Write a CIDR range such as "10.1.0.0/16" or "127.0.0.1/32".',
      });
    }
    list.addSubnet(network, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
}

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::/96) IPv6 address. */
export function embeddedIPv4(address: string): string | undefined {
  const lower = address.toLowerCase();
  const dotted = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted?.[1]) return dotted[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (!hex?.[1] || !hex[2]) return undefined;
  const high = Number.parseInt(hex[1], 16);
  const low = Number.parseInt(hex[2], 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/**
 * Whether a peer's address is in the ranges: an IPv4 peer of a dual-stack socket (::ffff:a.b.c.d)
 * is checked as the IPv4 address it is.
 */
export function peerInRanges(address: string | undefined, ranges: BlockList): boolean {
  if (!address) return false;
  const family = isIP(address);
  if (family === 4) return ranges.check(address, 'ipv4');
  if (family !== 6) return false;
  if (ranges.check(address, 'ipv6')) return true;
  const inner = address.toLowerCase().startsWith('::ffff:') ? embeddedIPv4(address) : undefined;
  return inner !== undefined && ranges.check(inner, 'ipv4');
}
