import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, formatBytes, formatDuration, isStratumError, parseDuration, StratumError } from '@stratum/core';
import type { CapsuleLogEntry, CapsuleStatus, ControlClient, InstallationStatus, InstallOptions, KeptData, StoreRef } from '@stratum/host';
import type { Manifest } from '@stratum/manifest';
import {
  asciiDomain,
  booleanOption,
  type Command,
  type CommandIo,
  counted,
  EXIT_OK,
  type OptionSpec,
  type ParsedArgs,
  paint,
  printable,
  shellWord,
  stringListOption,
  stringOption,
  usageError,
} from '../command.ts';
import {
  CONTROL_HELP,
  CONTROL_OPTIONS,
  CONTROL_USAGE,
  connectControl,
  hostNameOf,
  localUrl,
  nextCommand,
  REGISTRAR_KEY_HELP,
  sideOptions,
} from '../control-connection.ts';
import { VAR_FILE_OPTION, varFlags, varsFor } from '../dev/vars.ts';
import type { LinkSwitch } from '../link-switch.ts';
import { builtComponent, readLocalComponent } from '../local-component.ts';
import { LogLines } from '../log-lines.ts';
import { table, usageCells } from './host-status.ts';
import { manifestPath } from './validate.ts';

/** The TTL `host install --dns` publishes with: discovery's default, for records that stay. */
const INSTALL_TTL = '300s';
/**
 * The TTL `host move --dns` publishes with: short, as the records a move writes are the ones
 * that a rollback, or the next move, must get past resolvers' caches.
 */
const MOVE_TTL = '60s';

/** `host install`'s and `host move`'s --var: config values, secrets too, given with each install. */
const VAR_OPTION: OptionSpec = {
  type: 'string',
  multiple: true,
  value: 'name=value',
  description: "a value for one of the manifest's config variables or secrets (repeat for more)",
};

/**
 * What `host install` and `host move` send: the manifest of the capsule directory `dir`, its
 * component unless [source] is a registry the host pulls from, the capsule's name on the host
 * (--name, else `defaultName`, else the manifest's [capsule] name) and the --var values. With
 * `build` (`host install`), a component whose build inputs changed since it was built is built
 * first (`builtComponent`); `host move` moves the app as it is installed, and sends the file as it is.
 */
async function capsuleToSend(
  args: ParsedArgs,
  dir: string | undefined,
  command: string,
  options: { defaultName?: string; build?: CommandIo } = {},
): Promise<{
  name: string;
  manifest: Manifest;
  describe: string;
  /** The component's digest, `sha256:<hex>`, as a host's status gives it. */
  digest: string;
  install: Omit<InstallOptions, 'domains' | 'start'>;
}> {
  const vars = await varFlags(args);
  // In a --var-file, a line for another capsule is the file serving several; on the command line, a mistake.
  const scoped = vars.find((flag) => flag.capsule !== undefined && flag.from === undefined);
  if (scoped) {
    throw usageError(`--var ${scoped.capsule}:${scoped.name}=... names a capsule; ${command} sends one, so write --var ${scoped.name}=...`);
  }
  const path = await manifestPath(dir);
  const { loadManifest } = await import('@stratum/manifest');
  const { readFile } = await import('node:fs/promises');
  const { manifest } = await loadManifest(path);
  const name = stringOption(args, 'name') ?? options.defaultName ?? manifest.capsule.name;
  const local = manifest.source.kind === 'wasm' ? { ...manifest, source: manifest.source } : undefined;
  const component =
    local === undefined
      ? undefined
      : options.build
        ? await builtComponent(path, local, 'INSTALL_NO_COMPONENT', options.build)
        : await readLocalComponent(path, local, 'INSTALL_NO_COMPONENT');
  const values = varsFor(name, vars);
  let from = '';
  if (manifest.source.kind === 'registry') {
    // By its digest, the pin, and not its tag, which the host does not check (spec/registry.md).
    const { describePinnedSource } = await import('@stratum/registry');
    from = describePinnedSource(manifest.source.registry, manifest.source.digest);
  }
  const { createHash } = await import('node:crypto');
  return {
    name,
    manifest,
    digest: component ? `sha256:${createHash('sha256').update(component.bytes).digest('hex')}` : (manifest.source.digest ?? ''),
    describe: component
      ? `${manifest.capsule.version}, ${formatBytes(component.bytes.length)}`
      : `${manifest.capsule.version}, pulled by the host from ${from}`,
    install: {
      name,
      manifest: await readFile(path, 'utf8'),
      ...(component ? { component: component.bytes } : {}),
      ...(Object.keys(values).length > 0 ? { config: values } : {}),
    },
  };
}

/** The --domain values, as hosts compare them (`asciiDomain`). */
function domainOptions(args: ParsedArgs): string[] {
  return stringListOption(args, 'domain').map((given) => asciiDomain(given, '--domain'));
}

/** `host install`'s and `host move`'s options for pointing the domains' links at the host (link-switch.ts). */
function linkOptions(defaultTtl: string): Record<string, OptionSpec> {
  return { ...LINK_OPTIONS, ttl: { ...TTL_OPTION, description: `${TTL_OPTION.description} (default ${defaultTtl})` } };
}

const TTL_OPTION: OptionSpec = {
  type: 'string',
  value: 'duration',
  description: 'with --dns, the TTL of the records published (and of those put back): how long resolvers may keep them, such as 60s or 5m',
};

const LINK_OPTIONS: Record<string, OptionSpec> = {
  dns: {
    type: 'string',
    value: 'ip:port',
    description:
      "the domains' zone's primary DNS server, which takes RFC 2136 updates: point their links at the host there before starting it",
  },
  zone: { type: 'string', value: 'name', description: 'the zone those updates change (with --dns)' },
  'tsig-key': {
    type: 'string',
    value: 'file',
    description: "the TSIG key the server's update ACL names: keymgr -t or tsig-keygen output, or a line hmac-sha256:<name>:<secret>",
  },
  address: {
    type: 'string',
    multiple: true,
    value: 'ip',
    description: "the host's ingress addresses, for A and AAAA records (default: a CNAME to the host's name)",
  },
  registrar: {
    type: 'string',
    value: 'domain',
    description:
      "the registrar the links name (default: the one the host checks links against for the signing key, its host.toml's [registrars] domain; else the one the current links name)",
  },
  'take-over': {
    type: 'boolean',
    description:
      'with --dns, point domains whose links name another host or another registrar at this one all the same (that host stops serving them at its next check)',
  },
};

/** --ttl in whole seconds, as DNS records carry it: `fallback` without it. */
function ttlOption(args: ParsedArgs, fallback: string): number {
  const text = stringOption(args, 'ttl') ?? fallback;
  const ms = parseDuration(text);
  if (ms % 1000 !== 0 || ms / 1000 > 0x7fffffff) throw usageError(`--ttl ${text}: give whole seconds, such as 60s or 5m`);
  return ms / 1000;
}

/** The link switch LINK_OPTIONS ask for, or undefined without --dns. */
async function linkSwitchOf(args: ParsedArgs, defaultTtl: string): Promise<LinkSwitch | undefined> {
  const server = stringOption(args, 'dns');
  const zone = stringOption(args, 'zone');
  if (!server) {
    const orphan = ['zone', 'tsig-key', 'address', 'registrar', 'ttl', 'take-over'].find((option) => args.values[option] !== undefined);
    if (orphan) throw usageError(`--${orphan} goes with --dns`, "Give --dns <ip:port> of the domains' primary DNS server.");
    return undefined;
  }
  if (!zone) throw usageError('--dns needs --zone', 'Name the zone the domains are in, as the DNS server knows it.');
  const keyFile = stringOption(args, 'tsig-key');
  const { linkSwitcher } = await import('../link-switch.ts');
  return linkSwitcher({
    server,
    zone,
    addresses: stringListOption(args, 'address'),
    ttl: ttlOption(args, defaultTtl),
    ...(keyFile ? { keyFile } : {}),
  });
}

/** Names under the special-use top-level domains, which a host serves without a link (spec/discovery.md section 5.3). */
function isSpecialUse(domain: string): boolean {
  return ['localhost', 'test', 'example', 'invalid'].some((suffix) => domain === suffix || domain.endsWith(`.${suffix}`));
}

/** A count's noun and verb: "www.shop.org is", "a.org, b.org are". */
function listed(domains: readonly string[], one: string, many: string): string {
  return `${domains.join(', ')} ${domains.length === 1 ? one : many}`;
}

/**
 * With --dns, before anything changes: the registrar each domain's new link names, found as
 * `planLinks` says, and a refusal of a switch that the new host's start would refuse (a
 * --registrar it does not check links against; a key it knows no registrar domain for), or that
 * would take a domain from another host or another registrar (unless --take-over): a link
 * switched by mistake takes the site away from the host that serves it, with its data.
 */
async function planLinkSwitch(
  args: ParsedArgs,
  switchLinks: LinkSwitch,
  plan: {
    command: 'install' | 'move';
    domains: readonly string[];
    /** The host the links will name, and its client, which says what its link check expects. */
    host: string;
    client: ControlClient;
    digest: string;
    /** The domain host.toml gives the signing key's registrar (--config). */
    signer?: string;
    /** A move's old host: its links are the ones the move replaces. */
    leaving?: string;
    signal?: AbortSignal;
  },
): Promise<Map<string, string>> {
  const { domains, host } = plan;
  await switchLinks.check(domains);
  // The new host's word on what its start checks, when it gives it (GET /links, spec/host-api.md 5.12).
  const expected = /^sha256:[0-9a-f]{64}$/.test(plan.digest)
    ? await plan.client.links(domains, plan.digest, plan.signal ? { signal: plan.signal } : {}).catch((error: unknown) => {
        if (isStratumError(error) && error.code === 'NOT_FOUND') return undefined;
        throw error;
      })
    : undefined;
  const given = stringOption(args, 'registrar')?.toLowerCase();
  const keyOption = plan.command === 'move' ? '--to-key' : '--key';
  const checksLinks = expected?.checked === true && domains.some((domain) => !isSpecialUse(domain));
  if (checksLinks && expected?.registrar === undefined) {
    throw new StratumError(
      'LINK_REGISTRAR_UNKNOWN',
      `${host} knows no registrar domain for the key that signs there, so its start would refuse every link`,
      {
        details: [`its host.toml gives that key's [registrars] entry no domain, which a link's registrar= must match`],
        hint: `${host}'s operator adds the registrar's domain to that key's entry in its host.toml ([registrars.<name>] domain = "<domain>") and restarts it; or sign with a key it gives a domain (${keyOption}).`,
      },
    );
  }
  if (checksLinks && given !== undefined && expected?.registrar !== undefined && given !== expected.registrar) {
    throw new StratumError(
      'LINK_REGISTRAR_REFUSED',
      `${host} checks the links of the key that signs there against registrar ${expected.registrar}, not ${given} (--registrar): its start would refuse links naming ${given}`,
      {
        hint: `Leave out --registrar (the links then name ${expected.registrar}), or sign with the key of ${given}'s registrar that ${host} trusts (${keyOption}).`,
      },
    );
  }
  const { planLinks } = await import('../link-switch.ts');
  const planned = planLinks({
    domains,
    current: await switchLinks.current(domains),
    host,
    ...(plan.leaving ? { leaving: [plan.leaving] } : {}),
    ...(given ? { given } : {}),
    ...(expected ? { expected } : {}),
    ...(plan.signer ? { signer: plan.signer.toLowerCase() } : {}),
  });
  if (planned.unknown.length > 0) {
    throw new StratumError(
      'LINK_REGISTRAR_UNKNOWN',
      `${listed(planned.unknown, 'has', 'have')} no _stratum link to take its registrar from, and ${host} does not say which registrar its links must name`,
      {
        hint: `Give --registrar <domain>: your registrar's domain, which the new links name (${host}'s host.toml gives it as the signing key's [registrars] domain).`,
      },
    );
  }
  const conflicts = booleanOption(args, 'take-over') ? [] : planned.conflicts;
  const first = conflicts[0];
  if (!first) return planned.registrars;
  const from = (source: string | undefined) =>
    source === 'given'
      ? '--registrar'
      : source === 'host'
        ? `as ${host} checks links for the key that signs there`
        : source === 'config'
          ? "host.toml's [registrars] domain of the signing key"
          : 'the current link';
  const details = conflicts.map(({ domain, link }) => {
    const registrar = planned.registrars.get(domain) ?? '';
    return `_stratum.${domain} names host ${link.host} and registrar ${link.registrar}; the new link would name host ${host} and registrar ${registrar} (${from(planned.sources.get(domain))})`;
  });
  const domainsOf = (which: 'otherHost' | 'otherRegistrar') => conflicts.filter((one) => one[which]).map((one) => one.domain);
  const elsewhere = domainsOf('otherHost');
  const takeOver = 'To point the links at it all the same, pass --take-over.';
  if (elsewhere.length > 0) {
    const other = conflicts.find((one) => one.otherHost)?.link ?? first.link;
    // This host's options, as `host move` takes them for the host it moves to.
    const toHere = ['config', 'url', 'audience', 'key'].flatMap((name) => {
      const value = stringOption(args, name);
      return value === undefined ? [] : [`--to-${name}`, shellWord(value)];
    });
    const moveCommand = [
      'stratum host move <capsule> [dir]',
      `--from-url <${other.host}'s control API>`,
      `--from-audience ${other.host}`,
      ...toHere,
    ];
    const moveIt =
      plan.command === 'install'
        ? `If the capsule ${other.host} serves there should come here, move it with its data: \`${moveCommand.join(' ')}\`, with the same --dns options.`
        : `Check which host serves ${elsewhere.length === 1 ? 'it' : 'them'} before moving.`;
    throw new StratumError(
      'DOMAIN_LINKED_ELSEWHERE',
      `${listed(elsewhere, 'is', 'are')} linked to ${other.host} (registrar ${other.registrar}): ${plan.command === 'install' ? 'installing' : 'moving'} with --dns would point ${elsewhere.length === 1 ? 'it' : 'them'} at ${host}, and ${other.host} would stop serving ${elsewhere.length === 1 ? 'it' : 'them'}${plan.command === 'install' ? ` while ${host} starts without its data` : ''}`,
      { details, hint: `${moveIt} ${takeOver}` },
    );
  }
  const registrarNow = first.link.registrar;
  const registrarNew = planned.registrars.get(first.domain) ?? '';
  const handOver = `To hand ${domainsOf('otherRegistrar').join(', ')} to ${registrarNew} on purpose, pass --take-over.`;
  const source = planned.sources.get(first.domain);
  const fix =
    source === 'given'
      ? `Leave out --registrar, or give --registrar ${registrarNow}.`
      : `Sign with the key of ${registrarNow}'s registrar, which ${host} must trust (${keyOption} <file>).`;
  throw new StratumError(
    'DOMAIN_LINKED_ELSEWHERE',
    `${listed(domainsOf('otherRegistrar'), 'is', 'are')} linked to registrar ${registrarNow}: ${plan.command === 'install' ? 'installing' : 'moving'} with --dns would name ${registrarNew} in ${domainsOf('otherRegistrar').length === 1 ? 'its link' : 'their links'} (${from(source)}), taking ${domainsOf('otherRegistrar').length === 1 ? 'it' : 'them'} from ${registrarNow}`,
    { details, hint: `${fix} ${handOver}` },
  );
}

/** With --dns, what can be refused before the install: a domain outside --zone (the key file is read with the switch). */
async function checkLinkZone(args: ParsedArgs, domains: readonly string[]): Promise<void> {
  const { checkZone } = await import('../link-switch.ts');
  checkZone(stringOption(args, 'zone') ?? '', domains);
}

/**
 * An error of `host install --dns` after the install itself: the capsule stays installed (an
 * uninstall could fail too, and would throw away a replaced installation), so the error says so,
 * and how to go on from there or take it away.
 */
function leftInstalled(error: unknown, installed: CapsuleStatus, records: string, host: string, args: ParsedArgs): StratumError {
  const serve = nextCommand(args, ['host', 'serve', installed.name]);
  const uninstall = nextCommand(args, ['host', 'uninstall', installed.name]);
  const state =
    installed.state === 'running'
      ? `${installed.name} is installed on ${host} and running (it replaced a running installation); ${records}`
      : `${installed.name} is installed on ${host} but not started; ${records}`;
  const next =
    installed.state === 'running'
      ? `run this install again once that is fixed, or remove it with \`${uninstall}\`.`
      : `run this install again once that is fixed, or publish its links and run \`${serve}\`, or remove it with \`${uninstall}\`.`;
  const cause = isStratumError(error) ? error : undefined;
  return new StratumError(cause?.code ?? 'INSTALL_INCOMPLETE', errorMessage(error), {
    details: [...(cause?.details ?? []), state],
    hint: cause?.hint ? `${cause.hint} Then ${next}` : `${next[0]?.toUpperCase()}${next.slice(1)}`,
    user: cause?.user ?? false,
    cause: error,
  });
}

/**
 * Says which stores the installation replaced has data in (as the host answers, spec/host-api.md
 * section 4: those its manifest grants, and those earlier versions had) that the new manifest does
 * not grant. The host takes such an upgrade (a store renamed is one): the data stays under the
 * name, out of the capsule's reach, where a move leaves it and `--delete-data` deletes it.
 */
function droppedStoresNote(args: ParsedArgs, io: CommandIo, existing: InstallationStatus, manifest: Manifest, host: string): void {
  const named = (stores: Partial<Record<'keyvalue' | 'sql' | 'bucket', readonly string[]>> | undefined) =>
    (['keyvalue', 'sql', 'bucket'] as const).flatMap((capability) => (stores?.[capability] ?? []).map((label) => `${capability}/${label}`));
  const granted = new Set(named(manifest.capabilities));
  const dropped = [...new Set([...named(existing.stores), ...named(existing.retainedStores)])].filter((store) => !granted.has(store));
  if (dropped.length === 0) return;
  const deleteData = nextCommand(args, ['host', 'uninstall', existing.name, '--delete-data']);
  io.stderr.write(
    `${paint(io.stderr, 33, 'note:')} ${manifest.capsule.version} does not grant ${dropped.join(', ')}, as ${existing.name} had: what it stored there stays on ${host} under the name, out of the capsule's reach, and is not moved by \`host move\`, until \`${deleteData}\` deletes it (or a version that grants it again uses it)\n`,
  );
}

/** What an install's answer says of the config values it kept (with `keepConfig`). */
type InstalledConfig = { keptConfig?: string[]; droppedConfig?: string[] };

/** Those members of an install's answer, for a status that a later call (a start) answered. */
function installedConfig(answer: InstalledConfig): InstalledConfig {
  return {
    ...(answer.keptConfig ? { keptConfig: answer.keptConfig } : {}),
    ...(answer.droppedConfig ? { droppedConfig: answer.droppedConfig } : {}),
  };
}

/** Variables as the command names them: a secret marked, never its value. */
function variablesNamed(variables: readonly string[], manifest: Manifest): string {
  const declared = manifest.capabilities.config;
  // Own members only: a variable may be named `constructor`, which every object inherits.
  const secret = (variable: string) => Object.hasOwn(declared, variable) && declared[variable]?.secret === true;
  return variables.map((variable) => (secret(variable) ? `${variable} (secret)` : variable)).join(', ');
}

/**
 * Says what an install over `existing` did with its config values: those kept (the host's
 * answer), those dropped as the new manifest no longer declares them, or with --reset-config
 * those that went back to the manifest's defaults (from the names the host says have values).
 */
function configNote(
  io: CommandIo,
  existing: InstallationStatus,
  capsule: { manifest: Manifest; install: { config?: Record<string, string> } },
  carried: InstalledConfig,
  kept: boolean,
): void {
  const { manifest } = capsule;
  const name = existing.name;
  if (kept) {
    if (carried.keptConfig?.length) {
      io.stderr.write(
        `kept the config values ${name} had for ${variablesNamed(carried.keptConfig, manifest)}, which this install does not give (--reset-config drops them)\n`,
      );
    }
    if (carried.droppedConfig?.length) {
      const [one] = carried.droppedConfig;
      const which =
        carried.droppedConfig.length === 1
          ? `${one}, which ${name} had a value for: that value is`
          : `${carried.droppedConfig.join(', ')}, which ${name} had values for: those values are`;
      io.stderr.write(`${paint(io.stderr, 33, 'note:')} ${manifest.capsule.version} no longer declares ${which} dropped\n`);
    }
    return;
  }
  // --reset-config: the values the installation had and this install does not give are gone.
  const given = capsule.install.config ?? {};
  const gone = (existing.config ?? []).filter((variable) => !Object.hasOwn(given, variable));
  if (gone.length === 0) return;
  io.stderr.write(
    `${paint(io.stderr, 33, 'note:')} --reset-config: the values ${name} had for ${variablesNamed(gone, manifest)} are dropped; the manifest's defaults apply\n`,
  );
}

/**
 * A host older than `keepConfig` refuses it as an unknown member: it cannot keep the values, and
 * installing without them would put them back to the manifest's defaults without a word.
 */
function olderHost(error: unknown, existing: InstallationStatus, manifest: Manifest, host: string): unknown {
  if (!isStratumError(error) || error.code !== 'INVALID_REQUEST' || !error.details.some((detail) => detail.startsWith('/keepConfig:'))) {
    return error;
  }
  const had = existing.config ?? [];
  return new StratumError(
    'INSTALL_CANNOT_KEEP_CONFIG',
    `${host} cannot keep ${existing.name}'s config values across an install: its stratum-host is older than that`,
    {
      details: [
        had.length > 0
          ? `${existing.name} has values for ${variablesNamed(had, manifest)}, which an install that does not give them puts back to the manifest's defaults`
          : `installing over ${existing.name} puts every config value it has that this install does not give back to the manifest's defaults`,
        'nothing was changed',
      ],
      hint: `Give every value again (--var name=value, --var-file <file>) and pass --reset-config; or have ${host}'s operator upgrade stratum-host.`,
    },
  );
}

export const hostInstallCommand: Command = {
  name: 'host install',
  summary: 'install a capsule on a running host and start it, over the signed control API',
  usage: `host install [dir] --domain <name> [--domain ...] [--name <capsule>] [--replace] [--var name=value ...] [--var-file <file>] [--reset-config] [--no-start] [--dns <ip:port> --zone <zone> [--tsig-key <file>]] ${CONTROL_USAGE} [--json]`,
  description: `
Sends a capsule to a running host, as a registrar's dashboard does: the manifest, and the
component its [source] wasm names, or only the manifest when [source] names a registry and
digest, which the host then pulls and checks itself. The host checks the manifest and the
component against its own limits, serves the capsule on the domains given, and starts it unless
--no-start. For a manifest with [build], a component not built yet, or built before a change to
a build input (a module under the directory, package.json, tsconfig.json), is built first as
\`stratum build\` builds it, its steps shown on stderr. [dir] is the capsule's directory
(default .) or a manifest file, such as the stratum.pinned.toml that \`stratum push --pin\`
writes, pinned to the build it pushed.

Installing again under the same name replaces that installation (its domains, component and
the config values given); a running one keeps serving until the new one has started. With the same domains that
is an upgrade, and the command says what it replaces. With other domains it is most likely a
second customer's install of the same app under its default name (the manifest's [capsule]
name), which would take the first one's place: the command refuses it, naming the installation
there. Give --name to install beside it, or --replace to replace it on purpose. An upgrade
whose manifest no longer grants a store the installation had (a label renamed or dropped) is
not refused, but the command names that store: what was stored there stays under the name, out
of the capsule's reach and left behind by \`host move\`, until \`host uninstall --delete-data\`
deletes it with the rest.

Installing over an installation keeps its config values: each variable the new manifest still
declares and no --var or --var-file gives keeps the value it had, secrets included, so an
upgrade needs only the values that change (a host never hands a value back, so the command
could not send them again itself). The command names the values it kept, secrets marked, and
those it dropped because the new manifest no longer declares their variables. --reset-config
installs with only the values given and the manifest's defaults, as a first install does (the
way to put a variable back to its default). A host older than this behaviour cannot keep values, and the command refuses to install over an
installation there without --reset-config rather than let its values go back to the defaults.

A name uninstalled without --delete-data keeps what its capsule stored, and installing it again
serves that data: the command says so, with the date of the uninstall.

Before it serves a domain, a host checks that the domain's _stratum link names it, the
component and the registrar (spec/discovery.md section 5.3; names under localhost, test,
example and invalid need none). With --dns and --zone the install publishes those links, and
the domains' routing to the host, on the zone's primary DNS server by RFC 2136 update (signed
with --tsig-key) between installing and starting; if the start fails, the records go back.
The links name the registrar the host checks them against for the key that signs (its
host.toml's [registrars] domain, which the host says), or --registrar. Before installing, the
command refuses a domain whose link names another host (which serves it: \`host move\` brings
the capsule here with its data) or another registrar, unless --take-over says it is meant;
and a --registrar the host would not take.

${CONTROL_HELP}

Examples:
  stratum host install examples/hello --domain hello.localhost --config host.toml
  stratum host install . --domain shop.example.com --var-file shop.env --reset-config --config host.toml
  stratum host install . --domain shop.example.com --var currency=EUR --url https://h1.example.net/stratum/v1 \\
    --audience h1.example.net --key registrar.key --dns 192.0.2.53:53 --zone example.com --tsig-key update.key`,
  maxPositionals: 1,
  options: {
    domain: { type: 'string', short: 'd', multiple: true, value: 'name', description: 'a domain the capsule serves (repeat for more)' },
    name: {
      type: 'string',
      short: 'n',
      value: 'capsule',
      description: "the capsule's name on the host (default: the manifest's [capsule] name)",
    },
    replace: {
      type: 'boolean',
      description: 'replace the installation of that name even when it serves other domains (the same domains: an upgrade, always allowed)',
    },
    var: VAR_OPTION,
    'var-file': VAR_FILE_OPTION,
    'reset-config': {
      type: 'boolean',
      description:
        "over an installation of the name, keep none of its config values: only --var and --var-file values and the manifest's defaults",
    },
    'no-start': {
      type: 'boolean',
      description: 'install without starting it (`host status` says installed; `host serve <capsule>` starts it)',
    },
    ...linkOptions(INSTALL_TTL),
    ...CONTROL_OPTIONS,
    json: { type: 'boolean', description: "print the capsule's status as JSON" },
  },
  async run(args, io) {
    const domains = domainOptions(args);
    if (domains.length === 0) throw usageError('--domain is required: the host routes requests to a capsule by their Host header');
    const switchLinks = await linkSwitchOf(args, INSTALL_TTL);
    if (switchLinks && booleanOption(args, 'no-start')) {
      throw usageError('--dns points the domains at a capsule it starts: leave out --no-start, or --dns');
    }
    if (switchLinks) await checkLinkZone(args, domains);
    const capsule = await capsuleToSend(args, args.positionals[0], 'host install', { build: io });
    const connection = await connectControl(args);
    const { client, config, registrar } = connection;
    // The name the requests are signed for: host.toml's or --audience, or on loopback its /identity's.
    const hostLabel = await hostNameOf(connection);
    // What the DNS update would be refused for, and the links it would take from another host or
    // registrar, are found before the install, not after it.
    const registrars = switchLinks
      ? await planLinkSwitch(args, switchLinks, {
          command: 'install',
          domains,
          host: hostLabel,
          client,
          digest: capsule.digest,
          ...(registrar?.domain ? { signer: registrar.domain } : {}),
        })
      : undefined;
    // The control API replaces an installation of the same name, as an upgrade must; by accident,
    // that takes a customer's domains away (another's install of the same app, under its default name).
    const existing = await client.capsule(capsule.name).catch((error: unknown) => {
      if (isStratumError(error) && error.code === 'CAPSULE_NOT_FOUND') return undefined;
      throw error;
    });
    if (existing) {
      const same = [...existing.domains].sort().join(' ') === [...new Set(domains)].sort().join(' ');
      const serving = `serving ${existing.domains.join(', ') || 'no domain'}`;
      if (!same && !booleanOption(args, 'replace')) {
        throw new StratumError(
          'INSTALL_WOULD_REPLACE',
          `${hostLabel} already has an installation named ${existing.name}: ${existing.version}, ${existing.state}, ${serving}`,
          {
            details: [
              `installing under that name would replace it: ${existing.domains.join(', ') || 'its domains'} would no longer be served`,
            ],
            hint: `Give --name <another name> to install beside it, or --replace to replace it on purpose (it would then serve ${domains.join(', ')}).`,
          },
        );
      }
      io.stderr.write(
        `replacing ${existing.name} ${existing.version} (${existing.state}, ${serving}) with ${capsule.describe} on ${hostLabel}${same ? '' : `, serving ${domains.join(', ')}`}\n`,
      );
      droppedStoresNote(args, io, existing, capsule.manifest, hostLabel);
    } else {
      io.stderr.write(`installing ${capsule.name} (${capsule.describe}) on ${hostLabel}\n`);
    }
    // An upgrade keeps the values it is not given: the host never hands them back, so a user
    // deploying without every secret at hand would otherwise reset them without a word.
    const keepConfig = existing !== undefined && !booleanOption(args, 'reset-config');
    const install = (start: boolean) =>
      client.install({ ...capsule.install, domains, start, ...(keepConfig ? { keepConfig } : {}) }).catch((error: unknown) => {
        throw keepConfig && existing ? olderHost(error, existing, capsule.manifest, hostLabel) : error;
      });
    let status: CapsuleStatus & { keptData?: KeptData };
    let carried: InstalledConfig = {};
    if (switchLinks && registrars) {
      // As a move does: installed, linked, then started (the host checks the links at the start).
      const installed = await install(false);
      carried = installedConfig(installed);
      // From here on a failure leaves the capsule installed, which the error must say.
      let records = "its domains' DNS records were not changed";
      try {
        io.stderr.write(`pointing ${installed.domains.join(', ')} at ${hostLabel} on ${stringOption(args, 'dns')}\n`);
        const unlink = await switchLinks(installed, hostLabel, registrars);
        records = "its domains' DNS records point at it";
        try {
          // The start's answer does not say whose data the install found: the install's does.
          const started = installed.state === 'running' ? installed : await client.start(installed.name);
          status = installed.keptData ? { ...started, keptData: installed.keptData } : started;
        } catch (error) {
          await unlink();
          records = "its domains' DNS records were put back as they were";
          throw error;
        }
      } catch (error) {
        throw leftInstalled(error, installed, records, hostLabel, args);
      }
    } else {
      const answer = await install(!booleanOption(args, 'no-start'));
      status = answer;
      carried = installedConfig(answer);
    }
    if (existing) configNote(io, existing, capsule, carried, keepConfig);
    if (status.keptData) {
      // Plain uninstall keeps a name's data for a reinstall; a new customer's site must not show the last one's.
      io.stderr.write(
        `${paint(io.stderr, 33, 'note:')} ${status.name} finds the data kept under its name since it was uninstalled on ${status.keptData.uninstalledAt}; to start empty instead: ${nextCommand(args, ['host', 'uninstall', status.name, '--delete-data'])}, then install again\n`,
      );
    }
    if (booleanOption(args, 'json')) {
      // With --dns the status is the start's answer, which does not say what the install kept.
      io.stdout.write(`${JSON.stringify({ ...status, ...carried }, null, 2)}\n`);
      return EXIT_OK;
    }
    const domainList = status.domains.join(', ');
    // Only a running capsule serves; one installed with --no-start (or that failed to start) waits for `host serve`.
    const serving =
      status.state === 'running'
        ? `running, serving ${domainList}`
        : `${status.state === 'installed' ? 'installed, not started' : status.state}: will serve ${domainList} once started (${nextCommand(args, ['host', 'serve', status.name])})`;
    io.stdout.write(`${paint(io.stdout, 32, 'installed')} ${status.name} ${status.version} (${status.digest}): ${serving}\n`);
    if (status.lastError) io.stdout.write(`${paint(io.stdout, 33, 'last error:')} ${status.lastError}\n`);
    if (config && status.state === 'running') {
      const domain = status.domains[0] ?? '';
      const { routeExample } = await import('@stratum/manifest');
      io.stdout.write(
        `try: curl -H 'Host: ${domain}' ${localUrl(config.ingress.listen, false)}${routeExample(capsule.manifest.http.routes)}\n`,
      );
    }
    return EXIT_OK;
  },
};

export const hostUninstallCommand: Command = {
  name: 'host uninstall',
  summary: 'stop a capsule on a running host and remove it, over the signed control API',
  usage: `host uninstall <capsule> [--delete-data] ${CONTROL_USAGE} [--json]`,
  description: `
Removes the capsule and its domains from the host, and its component when no other
installation uses it. Its stored data (keyvalue, SQL, buckets) stays on the host's backends
under its name, where an installation of that name by the same registrar finds it again; a move
exports it first (spec/host-api.md section 5.11, spec/snapshot.md). With --delete-data every
store an installation of the name was granted since its data was last deleted is emptied
(an upgrade that dropped a store left that store's data under the name too), and what the host
keeps of it on disk removed, for good: export it first if it may be needed
(\`stratum host export\`). The name is then free for any registrar. --delete-data also deletes
the data a name already uninstalled kept, and finishes a deletion that failed part-way (the
name stays yours until it is done).

${CONTROL_HELP}

Examples:
  stratum host uninstall hello --config host.toml
  stratum host uninstall old-shop --delete-data --config host.toml`,
  maxPositionals: 1,
  options: {
    ...CONTROL_OPTIONS,
    'delete-data': { type: 'boolean', description: 'also delete everything it stored, for good' },
    json: { type: 'boolean', description: 'print what was done as JSON' },
  },
  async run(args, io) {
    const name = args.positionals[0];
    if (!name)
      throw usageError(
        'say which capsule: stratum host uninstall <capsule>',
        `Run \`${nextCommand(args, ['host', 'status'])}\` to list them.`,
      );
    const { client } = await connectControl(args);
    const deleteData = booleanOption(args, 'delete-data');
    // The stores whose data a plain uninstall keeps under the name, to say so: its manifest's,
    // and those earlier versions left (spec/host-api.md section 4). Not worth failing for.
    const before = deleteData
      ? undefined
      : await client.capsule(name).catch((error: unknown) => {
          if (isStratumError(error) && error.code === 'CAPSULE_NOT_FOUND') throw error;
          return undefined;
        });
    const { deleted, installed } = await client.uninstall(name, { deleteData });
    const kept = before
      ? [...storeNames(before.stores), ...storeNames(before.retainedStores)].filter((one, at, all) => all.indexOf(one) === at)
      : [];
    if (booleanOption(args, 'json')) {
      const answer = {
        uninstalled: name,
        ...(installed === false ? { installed } : {}),
        dataDeleted: deleteData,
        ...(deleteData ? { deleted: deleted ?? [] } : { kept }),
      };
      io.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
      return EXIT_OK;
    }
    const stores = deleted?.length ? ` (${deleted.join(', ')})` : '';
    if (installed === false) {
      io.stdout.write(`${paint(io.stdout, 32, 'deleted')} the data ${name} kept since it was uninstalled${stores}\n`);
      return EXIT_OK;
    }
    if (deleteData) {
      io.stdout.write(`${paint(io.stdout, 32, 'uninstalled')} ${name}; its data deleted${stores || ': it stored none'}\n`);
      return EXIT_OK;
    }
    // A capsule granted no store has nothing to keep.
    if (before && kept.length === 0) {
      io.stdout.write(`${paint(io.stdout, 32, 'uninstalled')} ${name}\n`);
      return EXIT_OK;
    }
    // Kept on purpose (a reinstall, or a move, finds it), but a user who meant to be rid of it must hear so.
    const where = kept.length > 0 ? ` (${kept.join(', ')})` : '';
    io.stdout.write(
      `${paint(io.stdout, 32, 'uninstalled')} ${name}; its data stays on the host under the name${where}, for an install of ${name} by the same registrar to find again. To delete it for good: ${nextCommand(args, ['host', 'uninstall', name, '--delete-data'])}\n`,
    );
    return EXIT_OK;
  },
};

/** Store labels by capability, as an installation's status gives them, as `capability/label`. */
function storeNames(stores: Partial<Record<'keyvalue' | 'sql' | 'bucket', readonly string[]>> | undefined): string[] {
  return (['keyvalue', 'sql', 'bucket'] as const).flatMap((capability) =>
    (stores?.[capability] ?? []).map((label) => `${capability}/${label}`),
  );
}

/** A lifecycle call that takes longer than this says what it waits for. */
const SLOW_CALL_MS = 300;

/** The three changes of a capsule's state that the control API offers (spec/host-api.md 5.2-5.4). */
function lifecycleCommand(spec: {
  name: string;
  verb: 'start' | 'drain' | 'stop';
  summary: string;
  description: string;
  /** Printed on stderr once the call has taken a moment (it waits for requests in flight). */
  waiting?: string;
  done: string;
}): Command {
  return {
    name: spec.name,
    summary: spec.summary,
    usage: `${spec.name} <capsule> ${CONTROL_USAGE} [--json]`,
    description: `${spec.description}

${CONTROL_HELP}

Example:
  stratum ${spec.name} hello --config host.toml`,
    maxPositionals: 1,
    options: { ...CONTROL_OPTIONS, json: { type: 'boolean', description: "print the capsule's status as JSON" } },
    async run(args, io) {
      const name = args.positionals[0];
      if (!name)
        throw usageError(
          `say which capsule: stratum ${spec.name} <capsule>`,
          `Run \`${nextCommand(args, ['host', 'status'])}\` to list them.`,
        );
      const { client } = await connectControl(args);
      // Only a call that waits says so: one answered at once (or refused, a capsule not found)
      // printed "draining ..." before its answer, which read as work begun.
      const waiting = spec.waiting;
      const slow = waiting ? setTimeout(() => io.stderr.write(`${waiting.replace('{name}', name)}\n`), SLOW_CALL_MS) : undefined;
      const status = await client[spec.verb](name).finally(() => clearTimeout(slow));
      if (booleanOption(args, 'json')) {
        io.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        return EXIT_OK;
      }
      io.stdout.write(`${paint(io.stdout, 32, spec.done)} ${status.name}: ${status.state}, ${status.domains.join(', ')}\n`);
      if (status.lastError) io.stdout.write(`${paint(io.stdout, 33, 'last error:')} ${status.lastError}\n`);
      if (status.state === 'stopped') {
        io.stdout.write(`out of service until \`${nextCommand(args, ['host', 'serve', name])}\`, also after a restart of the host\n`);
      }
      return EXIT_OK;
    },
  };
}

export const hostServeCommand = lifecycleCommand({
  name: 'host serve',
  verb: 'start',
  summary: 'serve an installed capsule again: one stopped, drained, or installed with --no-start',
  description: `
Starts a capsule on a running host: the host checks its domains' links (spec/discovery.md
section 5.3, as at an install) and serves them again. Its stored data is as it was left.`,
  done: 'serving',
});

export const hostDrainCommand = lifecycleCommand({
  name: 'host drain',
  verb: 'drain',
  summary: 'take a capsule out of service once its requests in flight are done',
  description: `
Drains a capsule on a running host: new requests get 503 at once, and the command returns when
the requests in flight have finished (each within its timeout). The capsule stays installed
with its stored data, and stays out of service across restarts of the host until \`host serve\`.`,
  waiting: 'draining {name}: new requests get 503; waiting for those in flight',
  done: 'drained',
});

export const hostStopCommand = lifecycleCommand({
  name: 'host stop',
  verb: 'stop',
  summary: 'take a capsule out of service at once, ending its requests in flight',
  description: `
Stops a capsule on a running host at once: its instances end, requests in flight with them,
and new requests get 503. It stays installed with its stored data, and out of service across
restarts of the host until \`host serve\`. \`host drain\` lets the requests in flight finish first.`,
  done: 'stopped',
});

const LEVEL_COLOURS: Record<string, number> = { trace: 2, debug: 2, warn: 33, error: 31, critical: 31 };

export const hostLogsCommand: Command = {
  name: 'host logs',
  summary: "show a capsule's recent log lines on a running host, and with --follow the new ones",
  usage: `host logs <capsule> [--lines N] [--follow] [--after <id>] [--json] ${CONTROL_USAGE}`,
  description: `
Prints what a capsule wrote (stdout, stderr, wasi:logging) and what the host said about it
(limit hits, failed starts), as the host keeps them: the last --lines lines, and with --follow
every new one until Ctrl-C. Each line shows its time, level, source, and the request it belongs
to when there is one. When the stream ends under --follow (the host restarts, the connection
drops), it says so and connects again until Ctrl-C, printing no line twice. A reinstall does not
end it: the new version's lines follow. An uninstall does: it says so and stops.

With --json each line carries the host's id for it (spec/host-api.md section 5.8). A follower
started again with --after <the last id it printed> prints the lines after it that the host
still keeps, none twice and none missed; after a restart of the host, all that the host keeps.

${CONTROL_HELP}

Examples:
  stratum host logs hello --config host.toml
  stratum host logs hello -f --lines 0 --json --url https://h1.example.net/stratum/v1 --audience h1.example.net --key registrar.key
  stratum host logs hello -f --json --after 1765130000000-4182 --config host.toml`,
  maxPositionals: 1,
  options: {
    lines: { type: 'string', short: 'n', value: 'N', description: 'how many recent lines to show first (default 100, at most 10000)' },
    follow: { type: 'boolean', short: 'f', description: 'keep printing new lines until Ctrl-C' },
    json: { type: 'boolean', description: 'one JSON object a line, as the control API sends them, with its id' },
    after: { type: 'string', value: 'id', description: 'start after the line with this id (from --json): no line twice, none missed' },
    ...CONTROL_OPTIONS,
  },
  async run(args, io) {
    const name = args.positionals[0];
    if (!name)
      throw usageError('say which capsule: stratum host logs <capsule>', `Run \`${nextCommand(args, ['host', 'status'])}\` to list them.`);
    const linesText = stringOption(args, 'lines') ?? '100';
    const lines = Number(linesText);
    if (!/^\d+$/.test(linesText) || lines > 10_000) throw usageError(`--lines ${linesText}: give a whole number from 0 to 10000`);
    const follow = booleanOption(args, 'follow');
    const json = booleanOption(args, 'json');
    const after = stringOption(args, 'after');
    if (after !== undefined && !/^\d{1,16}-\d{1,16}$/.test(after)) {
      throw usageError(`--after ${after}: give a line's id as --json prints it, such as 1765130000000-4182`);
    }
    const { client } = await connectControl(args);
    const done = new AbortController();
    const stop = () => done.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const print = (entry: CapsuleLogEntry, id: string | undefined) => {
      if (json) {
        io.stdout.write(`${JSON.stringify(id === undefined ? entry : { ...entry, id })}\n`);
        return;
      }
      const level = paint(io.stdout, LEVEL_COLOURS[entry.level] ?? 0, entry.level.padEnd(5));
      const request = entry.requestId ? paint(io.stdout, 2, ` (request ${entry.requestId})`) : '';
      // A message of several lines (an uncaught error and its frames) is a terminal line each.
      for (const line of entry.message.split('\n'))
        io.stdout.write(`${entry.time} ${level} ${entry.source}: ${printable(io.stdout, line)}${request}\n`);
    };
    // A stream opened again sends its backlog again: what was printed is not printed twice.
    const printed = new LogLines();
    let outage: number | undefined;
    // The host ended the stream itself, as it does when the capsule is uninstalled.
    let hostEnded = false;
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const stream = printed.stream();
          const resumeFrom = printed.lastId ?? after;
          await client.logs(name, (entry, id) => stream.admit(entry, id) && print(entry, id), {
            // Resumed after a line: all the host keeps after it, however many.
            backlog: resumeFrom !== undefined && outage === undefined ? 10_000 : outage === undefined ? lines : Math.max(lines, 1000),
            // A host that gives its lines ids sends only those after it.
            ...(resumeFrom === undefined ? {} : { lastEventId: resumeFrom }),
            signal: done.signal,
            onLive: () => {
              stream.live();
              if (!follow) stop();
              else if (outage !== undefined) {
                io.stderr.write(`${paint(io.stderr, 32, 'connected again')} after ${formatDuration(Date.now() - outage)}\n`);
                outage = undefined;
                attempt = 0;
              }
            },
          });
          if (!follow || done.signal.aborted) break;
          // Asked again at once (once), to tell an uninstall from a host going away.
          if (!hostEnded) {
            hostEnded = true;
            continue;
          }
        } catch (error) {
          if (done.signal.aborted) break;
          if ((hostEnded || outage !== undefined) && isStratumError(error) && error.code === 'CAPSULE_NOT_FOUND') {
            io.stderr.write(`${paint(io.stderr, 33, 'the log stream ended')}: ${name} is not installed on the host any more\n`);
            break;
          }
          if (!follow || !isStratumError(error) || !RECONNECT_CODES.has(error.code)) throw error;
        }
        hostEnded = false;
        // With --follow, the stream ended (the host stopped or restarted, or the network): open it again.
        const wait = Math.min(10_000, 500 * 2 ** Math.min(attempt, 5));
        if (outage === undefined) {
          outage = Date.now();
          io.stderr.write(
            `${paint(io.stderr, 33, 'the log stream ended')} (the host stopped or restarted, or the connection dropped); connecting again until Ctrl-C\n`,
          );
        }
        await sleep(wait, undefined, { signal: done.signal }).catch(() => {});
        if (done.signal.aborted) break;
      }
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    return EXIT_OK;
  },
};

/** What `host logs --follow` keeps trying through: the host away, or the stream cut. */
const RECONNECT_CODES = new Set(['CONTROL_STREAM_LOST', 'CONTROL_UNREACHABLE']);

/** An RFC 3339 date-time or a date from an option, or a usage error naming the option. */
function dateOption(text: string | undefined, option: string): Date | undefined {
  if (text === undefined) return undefined;
  const date = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(date.getTime())) {
    throw usageError(`--${option} ${text}: give a date or an RFC 3339 date-time, such as 2026-11-01 or 2026-11-01T00:00:00Z`);
  }
  return date;
}

export const hostUsageCommand: Command = {
  name: 'host usage',
  summary: "show what a running host's capsules used, from its metering ledger",
  usage: `host usage [--month YYYY-MM | --since <date> --until <date>] [--capsule <name>] [--json] ${CONTROL_USAGE}`,
  description: `
Sums the host's metering ledger for each capsule: requests, CPU time, memory held while serving
(GB-seconds), request and response bytes, and requests a limit ended. --month gives one
calendar month in UTC, the period of a monthly usage report; --since and --until any period
(entries whose period overlaps it). It also prints the ledger's length and the hash of its last
entry, which a registrar records to detect a later rewrite (spec/host-api.md section 7).

${CONTROL_HELP}

Examples:
  stratum host usage --month 2026-11 --config host.toml
  stratum host usage --capsule hello --since 2026-12-01 --json --url https://h1.example.net/stratum/v1 --audience h1.example.net --key registrar.key`,
  maxPositionals: 0,
  options: {
    month: { type: 'string', short: 'm', value: 'YYYY-MM', description: 'one calendar month, UTC' },
    since: { type: 'string', value: 'date', description: 'from this date or date-time (RFC 3339)' },
    until: { type: 'string', value: 'date', description: 'until this date or date-time, not included' },
    capsule: { type: 'string', value: 'name', description: 'one capsule only' },
    json: { type: 'boolean', description: 'print the answer of the control API as JSON' },
    ...CONTROL_OPTIONS,
  },
  async run(args, io) {
    const month = stringOption(args, 'month');
    let since = dateOption(stringOption(args, 'since'), 'since');
    let until = dateOption(stringOption(args, 'until'), 'until');
    if (month !== undefined) {
      const match = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(month);
      if (!match) throw usageError(`--month ${month}: give a month as YYYY-MM, such as 2026-11`);
      if (since || until) throw usageError('--month is a period of its own: give it, or --since and --until, not both');
      since = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, 1));
      until = new Date(Date.UTC(Number(match[1]), Number(match[2]), 1));
    }
    const capsule = stringOption(args, 'capsule');
    const { client } = await connectControl(args);
    const usage = await client.usage({ ...(capsule ? { capsule } : {}), ...(since ? { since } : {}), ...(until ? { until } : {}) });
    if (booleanOption(args, 'json')) {
      io.stdout.write(`${JSON.stringify(usage, null, 2)}\n`);
      return EXIT_OK;
    }
    const period = `${since ? since.toISOString() : 'the start'} to ${until ? until.toISOString() : 'now'}`;
    io.stdout.write(`usage from ${period}\n`);
    const rows = [['CAPSULE', 'REQUESTS', 'CPU', 'MEMORY', 'IN', 'OUT', 'LIMIT HITS']];
    for (const [name, used] of Object.entries(usage.capsules).sort(([a], [b]) => a.localeCompare(b)))
      rows.push([name, ...usageCells(used)]);
    io.stdout.write(rows.length > 1 ? `${table(rows)}\n` : 'no usage in that period\n');
    io.stdout.write(`ledger: ${usage.ledger.entries.toLocaleString('en-US')} entries, last ${usage.ledger.hash}\n`);
    return EXIT_OK;
  },
};

export const hostMoveCommand: Command = {
  name: 'host move',
  summary: 'move a capsule and its stored state to another host, as a registrar migrates it',
  usage: 'host move <capsule> [dir] (--from-config <host.toml> | --from-url <url>) (--to-config <host.toml> | --to-url <url>) [options]',
  description: `
Moves a capsule in the order spec/host-api.md section 5.11 gives: installs it on the new host
under the same name (or --name), which must be free there, without starting it (so a refusal
there changes nothing), drains it on the old host (new requests get 503 while the ones in
flight finish), copies each store its manifest grants (keyvalue, sql, bucket) from the old host
to the new one, and starts it there. If a step after the install fails, takes too long
(--timeout) or is interrupted (Ctrl-C, SIGTERM), what the move changed goes back: the links,
the capsule started again on the old host, the copy on the new one removed. A second Ctrl-C
stops that at once, and says what was left and the commands that fix it. The copy's data is
deleted with it only when the name was new on that host. When the new host keeps data under
the name (an installation of it there was uninstalled without --delete-data), the move is
refused before the drain, naming the stores and how to delete that data: --replace-kept-data
replaces it with the copy, and a way back then leaves it rather than delete it. The old installation
is left drained, not removed: remove it with \`stratum host uninstall\` once the domain points at
the new host (its _stratum TXT record, spec/discovery.md; \`stratum dns check <domain>\` shows
it).

Before anything changes, the move refuses: a directory whose manifest does not grant every store
the installation has (its state would stay behind); one holding another app (its [capsule] name
is not the one the old host reports for the installation, and its component is not the one
installed: --different-app if it is meant); and a move that gives no values for the config
variables the installation has values for on the old host (below). With --dns it also sends the DNS server an update that changes
nothing, so that a key or zone it refuses is found then, not after the drain; and it asks the
new host which registrar its links must name for the key that signs there, refusing a move
whose links would name another registrar than they do now (a domain handed to another
registrar: the wrong --to-key, or --take-over if it is meant) or a host other than the two.

A capsule that is not serving on the old host (installed and never started, or stopped: taken
out of service) moves as it is: it is not drained, it is left installed or stopped on the new
host, not started, and a failed move does not start it on the old one. \`host serve\` starts it
on the new host when its registrar means it to serve. One that is draining is refused until the
drain has answered. Only the stores its manifest grants are copied: data that earlier versions
stored in stores this one no longer grants stays on the old host under its name (the move says
so), until \`host uninstall --delete-data\` there deletes it.

Each control call may take --timeout (60s by default); a store's copy may take as long as it
needs, but not --timeout without the old host sending a byte or the new one answering.

A host serves a domain only once its _stratum link names that host (spec/discovery.md section
5; names under localhost, test, example and invalid need none). Without --dns, each domain's
link must already name the new host, the component and the registrar when the move starts, if
the new host checks links ([discovery] verify_links, on by default): the move asks the new host,
after installing there and before draining the old one, and stops if its start would refuse,
with the records to publish. Publish them just before the move: the old host stops serving a
domain once its own check of the link (repeated at least hourly) finds that it names another
host. With --dns and --zone the move points each domain's link and its routing at the new host,
on the zone's primary DNS server by RFC 2136 update (signed with --tsig-key), after copying the
state and before the start; if the start fails, the records go back as they were before the
old host starts again. The records are published with a TTL of 60 s (--ttl): resolvers that
cached the old ones keep sending clients to the old host, which answers 503, for up to the old
records' TTL, so the outage clients see is that long, not the time printed between the drain
and the start. Lower the TTL ahead of a move (an install with the same domains and --dns --ttl
60s publishes them again) to shorten it.

The capsule directory [dir] (default .) gives the manifest and the built component, as for
\`host install\`: a host never hands out a component, and never reads back config values, secrets
or not; it says only which variables have values. Give those again with --var or --var-file, or
pass --no-config to run it with the manifest's defaults. (With a host that does not say, every
variable the manifest declares is asked for.) The domains default to those it serves on the
old host.

${REGISTRAR_KEY_HELP}

Each host is given as for the other control commands, with from- or to- before the option:
--from-config or --from-url, and --to-config or --to-url (neither defaults to ./host.toml: the
two hosts differ); --key signs for both unless --from-key or --to-key is given.

Examples:
  stratum host move counter examples/counter --from-config h1/host.toml --to-config h2/host.toml
  stratum host move shop ./shop --from-url https://h1.example.net/v1 --from-audience h1.example.net \\
    --to-url https://h2.example.net/v1 --to-audience h2.example.net --key registrar.key \\
    --var-file shop.env --dns 192.0.2.53:53 --zone shop.example.com --tsig-key update.key`,
  maxPositionals: 2,
  options: {
    ...sideOptions('from'),
    ...sideOptions('to'),
    key: CONTROL_OPTIONS.key,
    domain: {
      type: 'string',
      short: 'd',
      multiple: true,
      value: 'name',
      description: 'the domains on the new host (default: those on the old one)',
    },
    name: { type: 'string', short: 'n', value: 'capsule', description: 'its name on the new host (default: the same)' },
    var: VAR_OPTION,
    'var-file': VAR_FILE_OPTION,
    'no-config': {
      type: 'boolean',
      description: "the installation has no config values to carry: move it with the manifest's defaults, without --var",
    },
    'different-app': {
      type: 'boolean',
      description: "move it with [dir]'s app even though its [capsule] name and component are not those installed",
    },
    'replace-kept-data': {
      type: 'boolean',
      description: 'the new host keeps data under the name (an installation of it there was uninstalled): replace it with the copy',
    },
    timeout: {
      type: 'string',
      value: 'duration',
      description: "how long each control call may take, and a store's copy without progress (default 60s)",
    },
    ...linkOptions(MOVE_TTL),
    json: { type: 'boolean', description: 'print the result as JSON' },
  },
  async run(args, io) {
    const name = args.positionals[0];
    if (!name)
      throw usageError(
        'say which capsule: stratum host move <capsule> [dir] ...',
        `Run \`${nextCommand(args, ['host', 'status'], 'from')}\` to list them.`,
      );
    const timeoutText = stringOption(args, 'timeout') ?? '60s';
    const timeoutMs = parseDuration(timeoutText);
    if (timeoutMs <= 0) throw usageError(`--timeout ${timeoutText}: give a duration longer than 0, such as 60s or 5m`);
    const dnsServer = stringOption(args, 'dns');
    const switchLinks = await linkSwitchOf(args, MOVE_TTL);
    // The capsule moved keeps its name unless --name: the manifest's [capsule] name may be another installation there.
    const capsule = await capsuleToSend(args, args.positionals[1], 'host move', { defaultName: name });
    const from = await connectControl(args, 'from');
    const to = await connectControl(args, 'to');
    const { moveCapsule, retainedStores, storesOf } = await import('@stratum/host');
    const fromName = from.config?.name ?? 'the old host';
    const toName = to.config?.name ?? 'the new host';
    const current = await timed(`${fromName} did not answer`, timeoutMs, (signal) => from.client.capsule(name, { signal }));
    checkSameApp(args, name, current, capsule, fromName);
    checkConfigCarried(args, name, current, capsule.manifest, capsule.install.config);
    const domains = domainOptions(args);
    const moving = domains.length > 0 ? domains : current.domains;
    const serving = current.state === 'running';
    const asItWas = serving
      ? `${name} serves from ${fromName} as before`
      : `${name} is ${describeResting(current.state)} on ${fromName} as before`;
    let registrars: Map<string, string> | undefined;
    let linkHost = '';
    if (switchLinks) {
      await checkLinkZone(args, moving);
      // A key or zone the server refuses, a registrar the new host would not take and links
      // that name a third host are found now, not after the drain and the copy.
      registrars = await timed(`${toName} did not answer`, timeoutMs, async (signal) => {
        linkHost = await hostNameOf(to);
        return planLinkSwitch(args, switchLinks, {
          command: 'move',
          domains: moving,
          host: linkHost,
          client: to.client,
          digest: capsule.digest,
          leaving: await hostNameOf(from),
          signal,
          ...(to.registrar?.domain ? { signer: to.registrar.domain } : {}),
        });
      }).catch((error: unknown) => {
        throw beforeAnything(error, `nothing was changed: ${asItWas}`);
      });
    }
    if (!serving && current.state !== 'draining') {
      // Taken out of service by its registrar (or never started): a move must not put it back in service.
      io.stderr.write(`${name} is ${describeResting(current.state)} on ${fromName}: it moves as it is, and is not started on ${toName}\n`);
    }
    const leftBehind = retainedStores(current).map((ref) => `${ref.capability}/${ref.label}`);
    if (leftBehind.length > 0) {
      io.stderr.write(
        `${paint(io.stderr, 33, 'note:')} ${name} on ${fromName} holds data in ${leftBehind.join(', ')}, which its manifest no longer grants: ` +
          `a move copies only the stores a manifest grants, so that data stays on ${fromName} under the name, until ` +
          `\`${nextCommand(args, ['host', 'uninstall', name, '--delete-data'], 'from')}\` deletes it with the rest\n`,
      );
    }
    // Ctrl-C (or SIGTERM) puts back what the move changed; a second one stops that too.
    const stop = new AbortController();
    const abandon = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => {
      if (!stop.signal.aborted) {
        io.stderr.write(`\n${signal}: stopping the move and putting back what it changed (${signal} again stops at once)\n`);
        stop.abort(new StratumError('MOVE_INTERRUPTED', `interrupted (${signal})`));
      } else if (!abandon.signal.aborted) {
        io.stderr.write(`\n${signal} again: stopping at once\n`);
        abandon.abort(new StratumError('MOVE_ABANDONED', `stopped before it was done (${signal} again)`));
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const store = (ref: StoreRef) => `${ref.capability}/${ref.label}`;
    let result: Awaited<ReturnType<typeof moveCapsule>>;
    try {
      result = await moveCapsule({
        from: from.client,
        name,
        to: to.client,
        install: { ...capsule.install, domains: moving },
        stores: storesOf(capsule.manifest.capabilities),
        timeoutMs,
        signal: stop.signal,
        abandon: abandon.signal,
        replaceKeptData: booleanOption(args, 'replace-kept-data'),
        // The links name the registrar the new host's host.toml gives the key that signs, as that host checks them.
        // The links name the new host as its requests are signed for, and the registrars planned above.
        ...(switchLinks && registrars
          ? {
              switchLinks: (installed: CapsuleStatus, _host: unknown, prepared: (putBack: () => Promise<void>) => void) =>
                switchLinks(installed, linkHost, registrars, prepared),
            }
          : {}),
        // What a failed move could not put back is said with the command that does it, for the host it is on.
        command: (side, words) => nextCommand(args, words, side),
        onStep: (step) => {
          if (step.step === 'install') io.stderr.write(`installing ${step.name} (${capsule.describe}) on ${toName}, not started\n`);
          if (step.step === 'drain') io.stderr.write(`draining ${step.name} on ${fromName}\n`);
          if (step.step === 'copying') {
            io.stderr.write(
              step.exportedBytes === undefined
                ? `copying ${store(step.store)} from ${fromName}\n`
                : `copying ${store(step.store)}: ${formatBytes(step.exportedBytes)} exported so far\n`,
            );
          }
          if (step.step === 'importing') io.stderr.write(`importing ${store(step.store)} into ${toName}: ${formatBytes(step.bytes)}\n`);
          if (step.step === 'copy')
            io.stderr.write(`copied ${store(step.store)}: ${counted(step.records, 'record')}, ${formatBytes(step.bytes)}\n`);
          if (step.step === 'link') io.stderr.write(`pointing ${step.domains.join(', ')} at ${step.host} on ${dnsServer}\n`);
          if (step.step === 'check-links') {
            const verb = step.domains.length === 1 ? 'links' : 'link';
            io.stderr.write(`asking ${toName} whether ${step.domains.join(', ')} ${verb} to it, as its start will check\n`);
          }
          if (step.step === 'start') io.stderr.write(`starting ${step.name} on ${toName}\n`);
          if (step.step === 'leave') io.stderr.write(`leaving ${step.name} ${step.state} on ${toName}, as it was on ${fromName}\n`);
          if (step.step === 'resume') {
            const next = step.drained ? `starting ${step.name} on ${fromName} again` : `removing what it installed on ${toName}`;
            io.stderr.write(`${paint(io.stderr, 31, 'failed')}: ${step.reason}; ${next}\n`);
          }
          if (step.step === 'undo') {
            // Without deleting data the move did not create: what the name held there before, it holds again.
            const keeping =
              step.keptData === 'kept'
                ? `, keeping the data ${toName} held under the name before the move (in the stores copied so far, the copy replaced it)`
                : step.keptData === 'unknown'
                  ? `, not deleting its data: the install was cut short, and ${toName} may have held data under the name before (\`${nextCommand(args, ['host', 'uninstall', capsule.name, '--delete-data'], 'to')}\` deletes it if not)`
                  : '';
            const done = {
              links: [`its domains' links name ${fromName} again`, `could not point its domains' links back at ${fromName}`],
              start: [`${name} serves from ${fromName} again`, `could not start ${name} on ${fromName} again`],
              remove: [`removed the copy on ${toName}${keeping}`, `could not remove the copy on ${toName}`],
            }[step.what];
            io.stderr.write(step.ok ? `put back: ${done[0]}\n` : `${paint(io.stderr, 31, 'not put back')}: ${done[1]}\n`);
          }
        },
      });
    } catch (error) {
      throw withLinkHint(error, switchLinks !== undefined);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    if (result.keptData) {
      const retained = result.keptData.retained.map(store);
      io.stderr.write(
        `${paint(io.stderr, 33, 'note:')} ${toName} kept data under the name ${result.status.name} since it was uninstalled there on ${result.keptData.uninstalledAt}; the copy from ${fromName} replaced it (--replace-kept-data)` +
          (retained.length > 0
            ? `, except in ${retained.join(', ')}, which the manifest does not grant: that stays under the name, out of the capsule's reach, until \`${nextCommand(args, ['host', 'uninstall', result.status.name, '--delete-data'], 'to')}\` deletes it with the rest`
            : '') +
          '\n',
      );
    }
    if (booleanOption(args, 'json')) {
      io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return EXIT_OK;
    }
    if (!serving) {
      const as =
        result.status.state === current.state ? `as it was on ${fromName}` : `as it was ${describeResting(current.state)} on ${fromName}`;
      io.stdout.write(
        `${paint(io.stdout, 32, 'moved')} ${name} to ${toName}: ${describeResting(result.status.state)}, ${as}; it serves ${result.status.domains.join(', ')} once started:\n` +
          `  ${nextCommand(args, ['host', 'serve', result.status.name], 'to')}\n`,
      );
      io.stdout.write(
        switchLinks
          ? `Its domains' links name ${toName} now, which its start there checks.\n`
          : `Before that start, point each domain's _stratum record and routing at ${toName}: a host that checks links serves a domain only once its link names it.\n`,
      );
      io.stdout.write(
        `It is still ${describeResting(current.state)} on ${fromName}; remove it there, with the copy of its data the move left, once it is not needed:\n`,
      );
      io.stdout.write(`  ${nextCommand(args, ['host', 'uninstall', name, '--delete-data'], 'from')}\n`);
      return EXIT_OK;
    }
    io.stdout.write(
      `${paint(io.stdout, 32, 'moved')} ${name} to ${toName}: ${result.status.state}, serving ${result.status.domains.join(', ')}; ` +
        `no host served it for ${Math.round(result.downtimeMs)} ms\n`,
    );
    // The time above is the hosts'; clients whose resolvers cached the old records wait longer.
    io.stdout.write(
      switchLinks
        ? `Its domains' links name ${toName} now, with a TTL of ${formatTtl(ttlOption(args, MOVE_TTL))} (--ttl). Resolvers that cached the old records send clients to ${fromName}, which answers 503, for up to those records' TTL: for them the move lasts that long.\n` +
            `It is stopped (drained) on ${fromName}; remove it there, with the copy of its data the move left, once that TTL has passed:\n`
        : `It is stopped (drained) on ${fromName}, which answers 503. Point each domain's _stratum record and routing at ${toName}; clients reach ${fromName} until then, and for the old records' TTL after (resolvers cache them). Then remove it there, with the copy of its data the move left:\n`,
    );
    // Its data lives on the new host now. Kept on the old one as well, the stale copy would stand
    // in the way of a move back, which refuses a name whose data the host kept.
    io.stdout.write(`  ${nextCommand(args, ['host', 'uninstall', name, '--delete-data'], 'from')}\n`);
    return EXIT_OK;
  },
};

/** The state of a capsule that is not serving, as a move's lines say it. */
function describeResting(state: CapsuleStatus['state']): string {
  if (state === 'installed') return 'installed, not started';
  if (state === 'failed') return 'not serving (its start failed)';
  return state;
}

/** Seconds as a TTL reads: 60 s, 5 min. */
function formatTtl(seconds: number): string {
  return seconds % 60 === 0 && seconds >= 60 ? `${seconds / 60} min` : `${seconds} s`;
}

/** Runs `op` with a signal that aborts after `ms`, its error then saying `what` and for how long. */
async function timed<T>(what: string, ms: number, op: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const signal = AbortSignal.timeout(ms);
  try {
    return await op(signal);
  } catch (error) {
    if (!signal.aborted) throw error;
    throw new StratumError('MOVE_TIMEOUT', `${what} within ${formatDuration(ms)}`, {
      hint: 'Check that the host is running and reachable; give a slow one longer with --timeout. Nothing was changed.',
    });
  }
}

/** An error of a check before the move, with what it left: nothing. */
function beforeAnything(error: unknown, left: string): StratumError {
  const cause = isStratumError(error) ? error : undefined;
  return new StratumError(cause?.code ?? 'MOVE_CHECK_FAILED', errorMessage(error), {
    details: [...(cause?.details ?? []), left],
    ...(cause?.hint ? { hint: cause.hint } : {}),
    user: cause?.user ?? false,
    cause: error,
  });
}

/**
 * Refuses a move that would drop config values: the host never reads them back (secrets
 * included), so a move given none installs the capsule with the manifest's defaults. The host
 * says which variables have values (spec/host-api.md section 4, `config`); one that does not
 * leaves the user to say, for every variable the manifest declares: values, or --no-config.
 */
function checkConfigCarried(
  args: ParsedArgs,
  name: string,
  current: CapsuleStatus,
  manifest: Manifest,
  values: Record<string, string> | undefined,
): void {
  const given = values ?? {};
  if (booleanOption(args, 'no-config')) {
    if (Object.keys(given).length > 0)
      throw usageError('--no-config says there are no config values to carry, and --var or --var-file gives some: give one or the other');
    return;
  }
  const declared = manifest.capabilities.config;
  const wanted = current.config ?? Object.keys(declared);
  const missing = wanted.filter((variable) => !(variable in given));
  // Without the host's word, any value given is taken as the user's answer for the rest.
  if (missing.length === 0 || (current.config === undefined && Object.keys(given).length > 0)) return;
  const listed = missing.map((variable) => (declared[variable]?.secret ? `${variable} (secret)` : variable)).join(', ');
  throw usageError(
    current.config === undefined
      ? `${name}'s manifest declares config variables (${listed}), and a move cannot carry their values: a host never reads them back, secrets or not`
      : `${name} has config values for ${listed} on the old host, and a move cannot carry them: a host never reads them back, secrets or not`,
    `Give them again, --var name=value or --var-file <file>; or pass --no-config to run it with the manifest's defaults.`,
  );
}

/**
 * Refuses a directory whose manifest is another app than the one installed, as the host names it
 * (spec/host-api.md section 4, `app`). A host that does not say is judged by the name and the
 * component: an installation's name is its [capsule] name unless it was given another, and an
 * unchanged app has the same component.
 */
function checkSameApp(
  args: ParsedArgs,
  name: string,
  current: CapsuleStatus,
  capsule: { manifest: Manifest; digest: string },
  fromName: string,
): void {
  const app = capsule.manifest.capsule.name;
  if (booleanOption(args, 'different-app') || capsule.digest === current.digest) return;
  if (current.app !== undefined ? app === current.app : app === name) return;
  throw new StratumError(
    'MOVE_OTHER_APP',
    `${args.positionals[1] ?? '.'} holds ${app} ${capsule.manifest.capsule.version}, not ${current.app ?? name}, the app installed as ${name} on ${fromName}`,
    {
      details: [
        `its [capsule] name is ${app}, not ${current.app ?? name}`,
        `its component is ${capsule.digest}; ${name} runs ${current.digest} (${current.version})`,
      ],
      hint: `Give the directory of the app ${name} runs. If this is it, renamed, pass --different-app.`,
    },
  );
}

/**
 * A move whose start was refused for its domains' links: the host's hint names the records to
 * publish; without --dns, the move could have published them itself.
 */
function withLinkHint(error: unknown, dns: boolean): unknown {
  if (dns || !isStratumError(error) || error.code !== 'MOVE_FAILED') return error;
  const cause = error.cause;
  if (!isStratumError(cause) || cause.code !== 'DOMAIN_NOT_LINKED') return error;
  const hint =
    'Publish such a link by hand just before the move: the old host stops serving a domain once its own check finds that the link names another host.\n' +
    'Or run the move with --dns <ip:port> --zone <zone> --tsig-key <file>: it points the links at the new host between the copy and the start.';
  return new StratumError(error.code, error.message, {
    details: error.details,
    hint: error.hint ? `${error.hint}\n${hint}` : hint,
    user: error.user,
    cause,
  });
}
