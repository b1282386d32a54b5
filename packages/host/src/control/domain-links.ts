import { errorMessage } from '@stratum/core';
import type { DiscoveryResolver } from '@stratum/discovery';
import type { TrustedRegistrar } from '../config/types.ts';

/**
 * Top-level names that cannot be delegated in the public DNS (RFC 6761, RFC 2606): nobody can
 * publish a link for them that a host could check, and nobody can take them from anyone either,
 * so a host serves them without one (spec/discovery.md section 5.3). They are what local hosts,
 * tests and walkthroughs use: `hello.localhost`, `shop.test`.
 */
const SPECIAL_USE = ['localhost', 'test', 'example', 'invalid'];

export function isSpecialUseDomain(domain: string): boolean {
  const name = domain.toLowerCase().replace(/\.$/, '');
  return SPECIAL_USE.some((suffix) => name === suffix || name.endsWith(`.${suffix}`));
}

/** What a domain's link must say for this host to serve a capsule on it. */
export interface ExpectedLink {
  /** The component's digest, `sha256:<hex>`. */
  capsule: string;
  /** The registrar whose signed request asks the host to serve it. */
  registrar: TrustedRegistrar;
}

/**
 * Checks, before a host first serves a capsule on its domains, that each domain's `_stratum`
 * record names this host, this capsule and the registrar asking (spec/discovery.md section 5.3):
 * pointing DNS at a host, or a registrar's word alone, must not make it serve a domain.
 * Resolves to the problems found, one line each; none when every domain is linked.
 */
export type LinkChecker = (domains: readonly string[], expected: ExpectedLink) => Promise<string[]>;

/** `resolver`: the DNS server to ask, `ip:port`; the system's resolvers when left out. */
export function createLinkChecker(options: { hostName: string; resolver?: string }): LinkChecker {
  const hostName = options.hostName.toLowerCase();
  let resolver: DiscoveryResolver | undefined;
  return async (domains, expected) => {
    const { registrar } = expected;
    const linked = domains.filter((domain) => !isSpecialUseDomain(domain));
    if (linked.length === 0) return [];
    // Loaded on first use: a host start does not wait for the discovery package.
    const { DiscoveryResolver, linkRecordName } = await import('@stratum/discovery');
    resolver ??= new DiscoveryResolver(options.resolver ? { servers: [options.resolver] } : {});
    const lookups = resolver;
    const checked = await Promise.all(
      linked.map(async (domain): Promise<string[]> => {
        const record = linkRecordName(domain);
        let link: Awaited<ReturnType<DiscoveryResolver['domainLink']>>;
        try {
          link = await lookups.domainLink(domain);
        } catch (error) {
          return [`${record}: ${errorMessage(error)}`];
        }
        if (!link) return [`${record} has no v=stratum1 TXT record`];
        const problems: string[] = [];
        if (link.host.toLowerCase() !== hostName) problems.push(`${record} names host ${link.host}, not this host (${hostName})`);
        if (link.capsule !== expected.capsule) problems.push(`${record} names capsule ${link.capsule}, not ${expected.capsule}`);
        if (registrar.domain === undefined) {
          problems.push(`${record} names registrar ${link.registrar}; host.toml gives registrar "${registrar.name}" no domain to compare`);
        } else if (link.registrar.toLowerCase() !== registrar.domain) {
          problems.push(`${record} names registrar ${link.registrar}, not ${registrar.domain} (registrar "${registrar.name}")`);
        }
        return problems;
      }),
    );
    return checked.flat();
  };
}
