import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isStratumError, StratumError } from '@stratum/core';
import type { DnsChange, TsigKey } from '@stratum/discovery';
import type { CapsuleStatus, HostIdentity } from '@stratum/host';
import { usageError } from './command.ts';

/**
 * Points an installation's domains at `host`; resolves to what puts the records back as they
 * were. `registrar`: the domain the host's host.toml gives the registrar whose key signs, which
 * the links name unless the switch was given one (--registrar).
 */
export interface LinkSwitch {
  /**
   * `prepared` is given the put-back as soon as the records before are read, before the update
   * is sent: an update cut short (a timeout, Ctrl-C) may still be applied by the server, and
   * putting back must not wait on it having answered.
   */
  (
    installed: CapsuleStatus,
    host: HostIdentity,
    registrar?: string,
    prepared?: (putBack: () => Promise<void>) => void,
  ): Promise<() => Promise<void>>;
  /**
   * Sends the server a signed update that changes nothing, at the names the switch would change
   * for `domains`, to learn before anything else changes whether it takes this key for this zone.
   */
  check(domains: readonly string[]): Promise<void>;
  /**
   * Refuses, before anything changes, domains whose new link could name no registrar: none given
   * (--registrar, or `registrar`, host.toml's for the signing key) and no link there to take it from.
   */
  checkRegistrar(domains: readonly string[], registrar?: string): Promise<void>;
}

export interface LinkSwitchOptions {
  /** The zone's primary server, `ip:port`, taking RFC 2136 updates. */
  server: string;
  zone: string;
  /** A file holding the TSIG key the server's update ACL names. */
  keyFile?: string;
  /** The new host's ingress addresses; none: a CNAME to the new host's name. */
  addresses: string[];
  /** The registrar the links name; by default the switch's `registrar`, else the one each current link names. */
  registrar?: string;
  /** The TTL, in seconds, of the records the switch writes and of those it puts back (discovery's DEFAULT_TTL by default). */
  ttl?: number;
}

/**
 * Refuses, before anything is installed, a domain that the zone given with --zone does not hold:
 * its update could only be refused. Domains as `asciiDomain` gives them.
 */
export function checkZone(zone: string, domains: readonly string[]): void {
  const apex = zone.toLowerCase().replace(/\.$/, '');
  const outside = domains.find((domain) => domain !== apex && !domain.endsWith(`.${apex}`));
  if (outside !== undefined) {
    throw usageError(`${outside} is not in the zone ${apex} (--zone)`, `Give --zone the zone that holds ${outside}.`);
  }
}

/**
 * `host install --dns` and `host move --dns`: point a capsule's domains at its host on their
 * zone's primary server, each domain's `_stratum` link (the host, the installation's digest,
 * the registrar) and its routing in one RFC 2136 update, which the server applies whole or not
 * at all. The switch resolves to what puts back the records read before, as they were.
 */
export async function linkSwitcher(options: LinkSwitchOptions): Promise<LinkSwitch> {
  for (const address of options.addresses) {
    if (isIP(address) === 0)
      throw usageError(
        `--address ${address} is not an IP address`,
        "Give the new host's ingress addresses, or leave --address out for a CNAME to its name.",
      );
  }
  const { DEFAULT_TTL, DiscoveryResolver, Rfc2136Writer, domainLinkChanges, linkRecordName, parseTsigKey, routingChanges } = await import(
    '@stratum/discovery'
  );
  const ttl = options.ttl ?? DEFAULT_TTL;
  let key: TsigKey | undefined;
  if (options.keyFile) {
    const text = await readFile(options.keyFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
      const missing = error.code === 'ENOENT';
      throw new StratumError(
        'TSIG_KEY_INVALID',
        `cannot read the TSIG key file ${options.keyFile}: ${missing ? 'there is no such file' : (error.code ?? error.message)}`,
        {
          hint: missing
            ? "Give --tsig-key the key the zone's primary server takes updates with, as `keymgr -t <name>` (Knot) or `tsig-keygen <name>` (BIND) writes it, or a line `hmac-sha256:<name>:<secret>`."
            : 'Check that this user may read it.',
        },
      );
    });
    key = parseTsigKey(text, options.keyFile);
  }
  const writer = new Rfc2136Writer({ server: options.server, zone: options.zone, ...(key ? { key } : {}) });
  // An unsigned update the server refuses: what to give is an option of this command.
  const apply = (changes: DnsChange[]) =>
    writer.apply(changes).catch((error: unknown) => {
      if (key || !isStratumError(error) || error.code !== 'DNS_UPDATE_REFUSED') throw error;
      throw new StratumError(error.code, error.message, {
        details: error.details,
        hint: "Pass --tsig-key <file>: the TSIG key the server's update ACL names.",
        cause: error,
      });
    });
  // The primary itself answers: no cache between what was there and what is put back.
  const resolver = new DiscoveryResolver({ servers: [options.server] });
  const switchLinks = async (
    installed: CapsuleStatus,
    host: HostIdentity,
    signer?: string,
    prepared?: (putBack: () => Promise<void>) => void,
  ) => {
    const before = await Promise.all(
      installed.domains.map(async (domain) => ({
        domain,
        link: await resolver.domainLink(domain),
        routing: await resolver.routing(domain),
      })),
    );
    const changes = before.flatMap(({ domain, link }): DnsChange[] => {
      const registrar = options.registrar ?? signer ?? link?.registrar;
      if (!registrar) {
        throw new StratumError('LINK_REGISTRAR_UNKNOWN', `${domain} has no _stratum link to take its registrar from`, {
          hint: 'Give --registrar <domain>: the registrar the new link names.',
        });
      }
      const routing = options.addresses.length > 0 ? { addresses: options.addresses } : { cname: host.name };
      return domainLinkChanges(domain, { host: host.name, capsule: installed.digest, registrar }, routing, ttl);
    });
    const putBack = async () => {
      await apply(
        before.flatMap(({ domain, link, routing }): DnsChange[] => {
          const route = routing.cname ? { cname: routing.cname } : { addresses: [...routing.a, ...routing.aaaa] };
          if (link) return domainLinkChanges(domain, link, route, ttl);
          return [{ op: 'delete', name: linkRecordName(domain), type: 'TXT' }, ...routingChanges(domain, route, ttl)];
        }),
      );
    };
    prepared?.(putBack);
    await apply(changes);
    return putBack;
  };
  // Removing a record that is not there is a no-op (RFC 2136 section 3.4.2.4), and the server
  // checks the key, the zone and its update ACL for these names as for the real update.
  const nothing = `stratum-check ${randomUUID()}`;
  const check = (domains: readonly string[]) =>
    apply(domains.map((domain): DnsChange => ({ op: 'remove', name: linkRecordName(domain), record: { type: 'TXT', data: [nothing] } })));
  const checkRegistrar = async (domains: readonly string[], registrar?: string) => {
    if (options.registrar ?? registrar) return;
    const unlinked: string[] = [];
    for (const domain of domains) if (!(await resolver.domainLink(domain))) unlinked.push(domain);
    if (unlinked.length > 0) {
      throw new StratumError('LINK_REGISTRAR_UNKNOWN', `${unlinked.join(', ')} has no _stratum link to take its registrar from`, {
        hint: "Give --registrar <domain>: your registrar's domain, which the new link names (with --config it comes from host.toml's [registrars] domain of the signing key; with --url there is none to read).",
      });
    }
  };
  return Object.assign(switchLinks, { check, checkRegistrar });
}
