import type { DomainCheck } from '@stratum/discovery';
import {
  asciiDomain,
  booleanOption,
  type Command,
  type CommandIo,
  EXIT_FAILURE,
  EXIT_OK,
  paint,
  stringListOption,
  usageError,
} from '../command.ts';

function describe(check: DomainCheck, io: CommandIo, linkRecordName: (domain: string) => string): string[] {
  const { link, host, routing } = check;
  const lines = [`${check.domain}`];
  lines.push(
    link
      ? `  link      ${linkRecordName(check.domain)}: host ${link.host}, capsule ${link.capsule}, registrar ${link.registrar}`
      : `  link      ${check.linkError ?? 'none'}`,
  );
  if (link) {
    lines.push(
      host
        ? `  host      _stratum-host.${link.host}: key ${host.publicKey} (thumbprint ${host.keyThumbprint}), api ${host.api}`
        : `  host      ${check.hostError ?? 'none'}`,
    );
    if (host && host.interfaces.length > 0)
      lines.push(`  serves    ${host.interfaces.map((item) => `${item.name}@${item.version}`).join(', ')}`);
    if (host?.nextKey) lines.push(`  next key  ${host.nextKey.publicKey} (announced for rotation)`);
  }
  const addresses = [...routing.a, ...routing.aaaa];
  lines.push(
    `  routing   ${routing.cname ? `CNAME ${routing.cname}${addresses.length ? ` -> ${addresses.join(', ')}` : ''}` : addresses.join(', ') || 'none'}`,
  );
  if (check.problems.length === 0) lines.push(`  ${paint(io.stdout, 32, 'agree')}     the link, the host record and the routing agree`);
  else for (const problem of check.problems) lines.push(`  ${paint(io.stdout, 31, 'problem')}   ${problem}`);
  return lines;
}

export const dnsCheckCommand: Command = {
  name: 'dns check',
  summary: "show a domain's Stratum link, its host's record, and whether they agree",
  usage: 'dns check <domain> [--resolver host:port] [--json]',
  description: `
Reads the discovery records for a domain (spec/discovery.md): the _stratum TXT link (host,
capsule digest, registrar), the linked host's _stratum-host record (key, control API, WIT
interfaces), and the domain's A/AAAA or CNAME, then says whether they agree: the domain must
route to the host the link names, and that host must publish a valid record.

Exit status: 0 when everything agrees, 1 when something does not (each problem is listed),
2 for a usage error.

Examples:
  stratum dns check shop.example.com
  stratum dns check shop.example.com --resolver 127.0.0.1:5353 --json`,
  maxPositionals: 1,
  options: {
    resolver: {
      type: 'string',
      multiple: true,
      value: 'host:port',
      description: "ask this DNS server, as host.toml's [discovery] resolver (default: the system resolvers)",
    },
    server: { type: 'string', multiple: true, value: 'host:port', description: 'the same as --resolver' },
    json: { type: 'boolean', description: 'print the findings as JSON' },
  },
  async run(args, io) {
    const given = args.positionals[0];
    if (given === undefined) throw usageError('dns check needs a domain, such as shop.example.com');
    const domain = asciiDomain(given, 'the domain');
    const servers = [...stringListOption(args, 'resolver'), ...stringListOption(args, 'server')];
    const { checkDomain, DiscoveryResolver, linkRecordName } = await import('@stratum/discovery');
    const resolver = new DiscoveryResolver(servers.length > 0 ? { servers } : {});
    const check = await checkDomain(resolver, domain);
    if (booleanOption(args, 'json')) io.stdout.write(`${JSON.stringify(check, null, 2)}\n`);
    else io.stdout.write(`${describe(check, io, linkRecordName).join('\n')}\n`);
    return check.problems.length === 0 ? EXIT_OK : EXIT_FAILURE;
  },
};
