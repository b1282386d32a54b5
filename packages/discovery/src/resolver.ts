import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { type Logger, StratumError, silentLogger } from '@stratum/core';
import { challengeRecordName, hostRecordName, linkRecordName, normaliseHostName, serviceTypeName } from './names.ts';
import {
  type DomainLink,
  type HostRecord,
  parseDomainLink,
  parseHostRecord,
  parseServiceInstanceTxt,
  type ServiceInstanceInfo,
} from './records.ts';
import { chooseStratumRecord } from './txt.ts';

export interface DiscoveryResolverOptions {
  /**
   * Servers to ask, `host:port` or `[v6]:port` (port 53 when left out). Defaults to the system's
   * resolvers; tests and registrars point it at their own server.
   */
  servers?: readonly string[];
  /** Per-try timeout. */
  timeoutMs?: number;
  tries?: number;
  logger?: Logger;
}

/** Splits `host:port`, `[v6]:port`, or a bare address (port 53). */
export function parseServerAddress(server: string): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(server);
  const plain = /^([^:]+)(?::(\d+))?$/.exec(server);
  const host = bracketed?.[1] ?? (isIP(server) === 6 ? server : plain?.[1]);
  const portText = bracketed ? bracketed[2] : isIP(server) === 6 ? undefined : plain?.[2];
  const port = portText === undefined ? 53 : Number(portText);
  if (!host || isIP(host) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new StratumError('DNS_SERVER_INVALID', `"${server}" is not a DNS server address`, {
      hint: 'Give an IP address and port, e.g. 127.0.0.1:5353 or [::1]:5353.',
    });
  }
  return { host, port };
}

/** A DNS-SD instance of the `_stratum._tcp` service (RFC 6763). */
export interface ServiceInstance {
  /** The instance name, e.g. `host1._stratum._tcp.example.net`. */
  instance: string;
  target: string;
  port: number;
  priority: number;
  weight: number;
  info: ServiceInstanceInfo;
}

const NO_DATA = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME']);

/**
 * Reads discovery records through Node.js `dns` (c-ares). Each lookup uses a fresh channel so
 * that c-ares's answer cache never hides a record a registrar has just written.
 *
 * @example
 * const resolver = new DiscoveryResolver({ servers: ['127.0.0.1:5353'] });
 * const link = await resolver.domainLink('shop.example');
 */
export class DiscoveryResolver {
  readonly #servers: string[] | undefined;
  readonly #options: DiscoveryResolverOptions;
  readonly #logger: Logger;

  constructor(options: DiscoveryResolverOptions = {}) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    this.#servers = options.servers?.map((server) => {
      const { host, port } = parseServerAddress(server);
      return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
    });
  }

  #channel(): Resolver {
    const resolver = new Resolver({ timeout: this.#options.timeoutMs ?? 2000, tries: this.#options.tries ?? 2 });
    if (this.#servers) resolver.setServers(this.#servers);
    return resolver;
  }

  async #lookup<T>(name: string, kind: string, run: (resolver: Resolver) => Promise<T[]>): Promise<T[]> {
    try {
      return await run(this.#channel());
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (NO_DATA.has(code)) return [];
      this.#logger.debug({ name, kind, code }, 'DNS lookup failed');
      throw new StratumError('DNS_LOOKUP_FAILED', `the ${kind} lookup for ${name} failed (${code || 'error'})`, {
        details: [(error as Error).message, `servers: ${(this.#servers ?? this.#channel().getServers()).join(', ')}`],
        hint:
          code === 'ECONNREFUSED' || code === 'ETIMEOUT'
            ? 'Check that the DNS server is running and reachable.'
            : 'Check the name and the zone.',
        user: false,
      });
    }
  }

  /** Every TXT record at `name`, each as its list of strings; [] when there is none. */
  txt(name: string): Promise<string[][]> {
    return this.#lookup(name, 'TXT', (resolver) => resolver.resolveTxt(name));
  }

  a(name: string): Promise<string[]> {
    return this.#lookup(name, 'A', (resolver) => resolver.resolve4(name));
  }

  aaaa(name: string): Promise<string[]> {
    return this.#lookup(name, 'AAAA', (resolver) => resolver.resolve6(name));
  }

  async cname(name: string): Promise<string | undefined> {
    const targets = await this.#lookup(name, 'CNAME', (resolver) => resolver.resolveCname(name));
    return targets[0]?.toLowerCase().replace(/\.$/, '');
  }

  srv(name: string) {
    return this.#lookup(name, 'SRV', (resolver) => resolver.resolveSrv(name));
  }

  ptr(name: string): Promise<string[]> {
    return this.#lookup(name, 'PTR', (resolver) => resolver.resolvePtr(name));
  }

  /** Where a name routes: its CNAME target if any, and the addresses it resolves to. */
  async routing(name: string): Promise<{ cname?: string; a: string[]; aaaa: string[] }> {
    const [cname, a, aaaa] = await Promise.all([this.cname(name), this.a(name), this.aaaa(name)]);
    return { ...(cname ? { cname } : {}), a: a.sort(), aaaa: aaaa.sort() };
  }

  /** The one `v=stratum1` record at `name` (spec section 3.4), parsed; undefined when there is none. */
  async #stratumRecord<T>(name: string, parse: (strings: readonly string[]) => T): Promise<T | undefined> {
    const chosen = chooseStratumRecord(await this.txt(name), name);
    return chosen === undefined ? undefined : parse(chosen);
  }

  /** The host's `_stratum-host` record, or undefined when it publishes none. */
  hostRecord(hostName: string): Promise<HostRecord | undefined> {
    return this.#stratumRecord(hostRecordName(hostName), parseHostRecord);
  }

  /** The domain's `_stratum` link, or undefined when it has none. */
  domainLink(domain: string): Promise<DomainLink | undefined> {
    return this.#stratumRecord(linkRecordName(domain), parseDomainLink);
  }

  /** Every single-string TXT value at `_stratum-challenge.<host>` (malformed ones are skipped by the verifier). */
  async challengeValues(hostName: string): Promise<string[][]> {
    return this.txt(challengeRecordName(hostName));
  }

  /** Browses `_stratum._tcp.<domain>` (RFC 6763 section 4): PTR to instances, then SRV and TXT of each. */
  async services(domain: string): Promise<ServiceInstance[]> {
    const instances = await this.ptr(serviceTypeName(domain));
    const found: ServiceInstance[] = [];
    for (const instance of instances) {
      const [srv, txt] = await Promise.all([this.srv(instance), this.txt(instance)]);
      const target = srv[0];
      const strings = chooseStratumRecord(txt, instance);
      if (!target || !strings) continue;
      found.push({
        instance: instance.toLowerCase(),
        target: normaliseHostName(target.name, 'SRV target'),
        port: target.port,
        priority: target.priority,
        weight: target.weight,
        info: parseServiceInstanceTxt(strings),
      });
    }
    return found.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
  }
}
