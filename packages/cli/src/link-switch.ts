import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isStratumError, StratumError } from '@stratum/core';
import type { DnsChange, DomainLink, TsigKey } from '@stratum/discovery';
import type { CapsuleStatus } from '@stratum/host';
import { usageError } from './command.ts';

/**
 * Points an installation's domains at the host named `host`, each domain's link naming the
 * registrar `registrars` gives it (`planLinks`); resolves to what puts the records back as they
 * were.
 */
export interface LinkSwitch {
  /**
   * `prepared` is given the put-back as soon as the records before are read, before the update
   * is sent: an update cut short (a timeout, Ctrl-C) may still be applied by the server, and
   * putting back must not wait on it having answered.
   */
  (
    installed: CapsuleStatus,
    host: string,
    registrars: ReadonlyMap<string, string>,
    prepared?: (putBack: () => Promise<void>) => void,
  ): Promise<() => Promise<void>>;
  /**
   * Sends the server a signed update that changes nothing, at the names the switch would change
   * for `domains`, to learn before anything else changes whether it takes this key for this zone.
   */
  check(domains: readonly string[]): Promise<void>;
  /** The domains' `_stratum` links as the zone's primary has them now (none: no link). */
  current(domains: readonly string[]): Promise<Map<string, DomainLink | undefined>>;
}

/** Where the registrar a new link names came from, for what a refusal says of it. */
export type RegistrarSource = 'given' | 'host' | 'config' | 'link';

/** What `planLinks` is given: the links now, and what each source says the new ones name. */
export interface LinkPlanInput {
  domains: readonly string[];
  current: ReadonlyMap<string, DomainLink | undefined>;
  /** The host the new links name. */
  host: string;
  /** Other hosts whose links the switch replaces as a matter of course: a move's old host. */
  leaving?: readonly string[];
  /** --registrar. */
  given?: string;
  /**
   * The new host's word on its link check (GET /links, spec/host-api.md section 5.12): whether
   * it checks links, and the registrar domain they must name for the key that signs there.
   * Undefined when it did not say (a host older than that endpoint).
   */
  expected?: { checked: boolean; registrar?: string };
  /** The domain host.toml (--config) gives the signing key's registrar. */
  signer?: string;
}

/** A domain whose link names another host or another registrar than the switch would write. */
export interface LinkConflict {
  domain: string;
  link: DomainLink;
  /** The link names a host other than the new one (and than a move's old one). */
  otherHost: boolean;
  /** The link names another registrar than the new link would. */
  otherRegistrar: boolean;
}

export interface LinkPlan {
  /** The registrar each domain's new link names. */
  registrars: Map<string, string>;
  /** Where each of those came from. */
  sources: Map<string, RegistrarSource>;
  /** Domains no source names a registrar for. */
  unknown: string[];
  /** Domains whose link the switch would take from another host or registrar. */
  conflicts: LinkConflict[];
}

const lower = (name: string) => name.toLowerCase().replace(/\.$/, '');

/**
 * The registrar each domain's new link names (--registrar; else the one the new host checks
 * against for the signing key, its own word; else host.toml's for that key; else the one the
 * current link names), and the links the switch would take from another host or registrar.
 */
export function planLinks(input: LinkPlanInput): LinkPlan {
  const registrars = new Map<string, string>();
  const sources = new Map<string, RegistrarSource>();
  const unknown: string[] = [];
  const conflicts: LinkConflict[] = [];
  const hosts = new Set([input.host, ...(input.leaving ?? [])].map(lower));
  for (const domain of input.domains) {
    const link = input.current.get(domain);
    const candidates: [RegistrarSource, string | undefined][] = [
      ['given', input.given],
      ['host', input.expected?.registrar],
      ['config', input.signer],
      ['link', link?.registrar],
    ];
    const found = candidates.find(([, registrar]) => registrar !== undefined);
    if (!found?.[1]) {
      unknown.push(domain);
      continue;
    }
    const registrar = lower(found[1]);
    registrars.set(domain, registrar);
    sources.set(domain, found[0]);
    if (!link) continue;
    const otherHost = !hosts.has(lower(link.host));
    const otherRegistrar = lower(link.registrar) !== registrar;
    if (otherHost || otherRegistrar) conflicts.push({ domain, link, otherHost, otherRegistrar });
  }
  return { registrars, sources, unknown, conflicts };
}

export interface LinkSwitchOptions {
  /** The zone's primary server, `ip:port`, taking RFC 2136 updates. */
  server: string;
  zone: string;
  /** A file holding the TSIG key the server's update ACL names. */
  keyFile?: string;
  /** The new host's ingress addresses; none: a CNAME to the new host's name. */
  addresses: string[];
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

/** --tsig-key's file: `keymgr -t` or `tsig-keygen` output, or a line `hmac-sha256:<name>:<secret>`. */
export async function readTsigKeyFile(keyFile: string): Promise<TsigKey> {
  const text = await readFile(keyFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
    const missing = error.code === 'ENOENT';
    throw new StratumError(
      'TSIG_KEY_INVALID',
      `cannot read the TSIG key file ${keyFile}: ${missing ? 'there is no such file' : (error.code ?? error.message)}`,
      {
        hint: missing
          ? "Give --tsig-key the key the zone's primary server takes updates with, as `keymgr -t <name>` (Knot) or `tsig-keygen <name>` (BIND) writes it, or a line `hmac-sha256:<name>:<secret>`."
          : 'Check that this user may read it.',
      },
    );
  });
  const { parseTsigKey } = await import('@stratum/discovery');
  return parseTsigKey(text, keyFile);
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
  const { DEFAULT_TTL, DiscoveryResolver, Rfc2136Writer, domainLinkChanges, linkRecordName, routingChanges } = await import(
    '@stratum/discovery'
  );
  const ttl = options.ttl ?? DEFAULT_TTL;
  const key = options.keyFile ? await readTsigKeyFile(options.keyFile) : undefined;
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
    host: string,
    registrars: ReadonlyMap<string, string>,
    prepared?: (putBack: () => Promise<void>) => void,
  ) => {
    const before = await Promise.all(
      installed.domains.map(async (domain) => ({
        domain,
        link: await resolver.domainLink(domain),
        routing: await resolver.routing(domain),
      })),
    );
    const changes = before.flatMap(({ domain }): DnsChange[] => {
      const registrar = registrars.get(domain);
      // planLinks named one for every domain it was given; a domain it was not is a mistake here.
      if (!registrar) throw new StratumError('LINK_REGISTRAR_UNKNOWN', `no registrar was planned for ${domain}'s link`, { user: false });
      const routing = options.addresses.length > 0 ? { addresses: options.addresses } : { cname: host };
      return domainLinkChanges(domain, { host, capsule: installed.digest, registrar }, routing, ttl);
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
  const current = async (domains: readonly string[]) =>
    new Map(await Promise.all(domains.map(async (domain) => [domain, await resolver.domainLink(domain)] as const)));
  return Object.assign(switchLinks, { check, current });
}
