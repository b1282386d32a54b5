import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage, isStratumError, type Logger } from '@stratum/core';
import type { DiscoveryResolver } from '@stratum/discovery';
import type { TrustedRegistrar } from '../config/types.ts';
import { hostName } from '../runtime.ts';

/**
 * Top-level names that cannot be delegated in the public DNS (RFC 6761, RFC 2606): nobody can
 * publish a link for them that a host could check, and nobody can take them from anyone either,
 * so a host serves them without one (spec/discovery.md section 5.3). They are what local hosts,
 * tests and walkthroughs use: `hello.localhost`, `shop.test`.
 */
const SPECIAL_USE = ['localhost', 'test', 'example', 'invalid'];

function isSpecialUseDomain(domain: string): boolean {
  const name = domain.toLowerCase().replace(/\.$/, '');
  return SPECIAL_USE.some((suffix) => name === suffix || name.endsWith(`.${suffix}`));
}

/** What a domain's link must say for this host to serve a capsule on it. */
export interface ExpectedLink {
  /** The component's digest, `sha256:<hex>`. */
  capsule: string;
  /**
   * The registrar whose signed request asks the host to serve it. None for an installation made
   * before hosts recorded it: its link is then checked for the host and the capsule only.
   */
  registrar?: TrustedRegistrar;
}

/** One way a domain's link fails to name this host, this capsule and the registrar. */
export interface LinkProblem {
  domain: string;
  problem: string;
  /** The lookup failed (a DNS server down, a timeout): the link may be right. */
  lookupFailed?: boolean;
}

/**
 * Checks that each domain's `_stratum` record names this host, this capsule and the registrar
 * asking (spec/discovery.md section 5.3): pointing DNS at a host, or a registrar's word alone,
 * must not make it serve a domain. Resolves to the problems found; none when every domain is
 * linked. Names under the special-use domains are not looked up.
 */
export type LinkChecker = (domains: readonly string[], expected: ExpectedLink) => Promise<LinkProblem[]>;

/** `resolver`: the DNS server to ask, `ip:port`; the system's resolvers when left out. */
export function createLinkChecker(options: { hostName: string; resolver?: string }): LinkChecker {
  const ownName = options.hostName.toLowerCase();
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
      linked.map(async (domain): Promise<LinkProblem[]> => {
        const record = linkRecordName(domain);
        let link: Awaited<ReturnType<DiscoveryResolver['domainLink']>>;
        try {
          link = await lookups.domainLink(domain);
        } catch (error) {
          const lookupFailed = isStratumError(error) && error.code === 'DNS_LOOKUP_FAILED';
          return [{ domain, problem: `${record}: ${errorMessage(error)}`, ...(lookupFailed ? { lookupFailed } : {}) }];
        }
        if (!link) return [{ domain, problem: `${record} has no v=stratum1 TXT record` }];
        const problems: string[] = [];
        if (link.host.toLowerCase() !== ownName) problems.push(`${record} names host ${link.host}, not this host (${ownName})`);
        if (link.capsule !== expected.capsule) problems.push(`${record} names capsule ${link.capsule}, not ${expected.capsule}`);
        if (registrar?.domain === undefined) {
          if (registrar)
            problems.push(
              `${record} names registrar ${link.registrar}; host.toml gives registrar "${registrar.name}" no domain to compare`,
            );
        } else if (link.registrar.toLowerCase() !== registrar.domain) {
          problems.push(`${record} names registrar ${link.registrar}, not ${registrar.domain} (registrar "${registrar.name}")`);
        }
        return problems.map((problem) => ({ domain, problem }));
      }),
    );
    return checked.flat();
  };
}

/** What a served installation's domains must link to. */
export interface ServedDomains extends ExpectedLink {
  /** The installation's name. */
  name: string;
  domains: readonly string[];
}

/** A served domain held back (`problem`) or served again (none), for its installation's log and status. */
export type LinkChange = (installation: string, domain: string, problem?: string) => void;

/**
 * Checks the links of the domains a host serves again, every `intervalMs` (spec/discovery.md
 * section 5.3: at least as often as the records' TTL, at the latest hourly), and holds back a
 * domain whose link no longer names this host, its capsule or its registrar, until it does
 * again or a start checks it afresh. A lookup that fails holds nothing back: a DNS server that
 * is down must not take the capsules down with it.
 */
export class LinkWatch {
  readonly #held = new Map<string, string>();
  readonly #check: LinkChecker;
  readonly #served: () => Promise<ServedDomains[]>;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  readonly #onChange: LinkChange | undefined;
  /** Which installation each held-back domain belongs to, to tell it when the domain is served again. */
  readonly #heldFor = new Map<string, string>();

  constructor(check: LinkChecker, served: () => Promise<ServedDomains[]>, logger: Logger, onChange?: LinkChange) {
    this.#check = check;
    this.#served = served;
    this.#logger = logger;
    this.#onChange = onChange;
  }

  /**
   * Answers a request for a held-back domain with 421 Misdirected Request (spec/discovery.md
   * section 5.3 allows it: the link names another host) and says true; false for any other.
   */
  answerHeld(request: IncomingMessage, response: ServerResponse): boolean {
    if (this.#held.size === 0) return false;
    const domain = hostName(request.headers.host ?? '');
    if (!this.#held.has(domain)) return false;
    const body = `${domain} is not linked to this host\n`;
    response.writeHead(421, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    response.end(body);
    request.resume();
    return true;
  }

  /** A start found these domains linked: they are served again at once. */
  linked(domains: readonly string[]): void {
    for (const domain of domains) {
      if (!this.#held.delete(domain)) continue;
      this.#logger.info({ domain }, `${domain} is served again: its link names this host`);
      const installation = this.#heldFor.get(domain);
      this.#heldFor.delete(domain);
      if (installation !== undefined) this.#onChange?.(installation, domain);
    }
  }

  /** One pass over every served domain; a pass already under way is waited for, not doubled. */
  recheck(): Promise<void> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #pass(): Promise<void> {
    const served = await this.#served();
    const current = new Set(served.flatMap((one) => one.domains));
    for (const domain of this.#held.keys()) {
      if (current.has(domain)) continue;
      this.#held.delete(domain);
      this.#heldFor.delete(domain);
    }
    for (const { domains, name, ...expected } of served) {
      const problems = await this.#check(domains, expected);
      for (const domain of domains) {
        const found = problems.filter((one) => one.domain === domain);
        const definite = found.find((one) => !one.lookupFailed);
        if (definite) {
          if (this.#held.get(domain) !== definite.problem) {
            this.#logger.warn({ domain, problem: definite.problem }, `${domain} is no longer served: ${definite.problem}`);
            this.#onChange?.(name, domain, definite.problem);
          }
          this.#held.set(domain, definite.problem);
          this.#heldFor.set(domain, name);
        } else if (found.length > 0) {
          this.#logger.warn(
            { domain, problem: found[0]?.problem },
            `could not check the link of ${domain}; nothing changes until a check succeeds`,
          );
        } else {
          this.linked([domain]);
        }
      }
    }
  }

  start(intervalMs: number): void {
    this.#timer = setInterval(() => {
      this.recheck().catch((error: unknown) => this.#logger.error({ err: errorMessage(error) }, 'checking domain links failed'));
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
