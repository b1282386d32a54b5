import { errorMessage, StratumError } from '@stratum/core';
import { linkRecordName, normaliseHostName } from './names.ts';
import type { DomainLink, HostRecord } from './records.ts';
import type { DiscoveryResolver } from './resolver.ts';

/** What `stratum dns check` shows: the link, the host record, the routing, and whether they agree. */
export interface DomainCheck {
  domain: string;
  link?: DomainLink;
  linkError?: string;
  host?: HostRecord;
  hostError?: string;
  routing: { cname?: string; a: string[]; aaaa: string[] };
  /** Where the linked host's own name resolves, to compare the domain's addresses with. */
  hostAddresses?: { a: string[]; aaaa: string[] };
  /** Empty when everything agrees. */
  problems: string[];
}

/**
 * Reads everything that links `domain` to a host and says what disagrees. It never throws for
 * bad records (they become problems); DNS failures still throw DNS_LOOKUP_FAILED.
 */
export async function checkDomain(resolver: DiscoveryResolver, domainInput: string): Promise<DomainCheck> {
  const domain = normaliseHostName(domainInput, 'domain');
  const problems: string[] = [];
  const check: DomainCheck = { domain, routing: await resolver.routing(domain), problems };
  try {
    const link = await resolver.domainLink(domain);
    if (link) check.link = link;
    else problems.push(`${linkRecordName(domain)} has no v=stratum1 TXT record`);
  } catch (error) {
    check.linkError = errorMessage(error);
    problems.push(`${linkRecordName(domain)}: ${check.linkError}`);
  }
  if (check.link) {
    const hostName = check.link.host;
    try {
      const host = await resolver.hostRecord(hostName);
      if (host) check.host = host;
      else
        problems.push(
          `the linked host ${hostName} publishes no _stratum-host record (its operator prints it with \`stratum host record --api <url>\`)`,
        );
    } catch (error) {
      check.hostError = errorMessage(error);
      problems.push(`_stratum-host.${hostName}: ${check.hostError}`);
    }
    const { routing } = check;
    if (routing.cname) {
      if (routing.cname !== hostName && !routing.cname.endsWith(`.${hostName}`)) {
        problems.push(`${domain} is a CNAME to ${routing.cname}, not to the linked host ${hostName}`);
      }
    } else if (routing.a.length === 0 && routing.aaaa.length === 0) {
      problems.push(`${domain} has no A, AAAA or CNAME record, so no traffic reaches ${hostName}`);
    } else {
      const hostRouting = await resolver.routing(hostName);
      check.hostAddresses = { a: hostRouting.a, aaaa: hostRouting.aaaa };
      const hostAll = new Set([...hostRouting.a, ...hostRouting.aaaa]);
      const stray = [...routing.a, ...routing.aaaa].filter((address) => !hostAll.has(address));
      if (stray.length > 0) problems.push(`${domain} points at ${stray.join(', ')}, which ${hostName} does not resolve to`);
    }
  }
  return check;
}

/**
 * What a host MUST check before serving a domain (spec section 5.2): the domain's link names
 * this host, the capsule it was told to run and the registrar that told it. Pointing DNS at a
 * host therefore cannot make it serve someone else's capsule. Returns the link.
 */
export async function assertDomainLinked(
  resolver: DiscoveryResolver,
  expected: { domain: string; hostName: string; capsule: string; registrar: string },
): Promise<DomainLink> {
  const domain = normaliseHostName(expected.domain, 'domain');
  const link = await resolver.domainLink(domain);
  const refuse = (code: string, message: string, details: string[]) =>
    new StratumError(code, message, {
      details,
      hint: `The domain's registrar publishes ${linkRecordName(domain)}; the host only serves what it names.`,
    });
  if (!link) throw refuse('DOMAIN_NOT_LINKED', `${domain} has no Stratum link record`, []);
  if (link.host !== normaliseHostName(expected.hostName)) {
    throw refuse('DOMAIN_LINKED_ELSEWHERE', `${domain} is linked to ${link.host}, not to this host`, [`this host is ${expected.hostName}`]);
  }
  if (link.capsule !== expected.capsule) {
    throw refuse('DOMAIN_CAPSULE_MISMATCH', `${domain} is linked to another capsule`, [
      `link: ${link.capsule}`,
      `asked to serve: ${expected.capsule}`,
    ]);
  }
  if (link.registrar !== normaliseHostName(expected.registrar, 'registrar')) {
    throw refuse('DOMAIN_REGISTRAR_MISMATCH', `${domain} is managed by ${link.registrar}, not ${expected.registrar}`, []);
  }
  return link;
}
