import { defaultMaxInstances } from '../instance-limit.ts';
import { DEFAULT_CONTROL_LISTEN, DEFAULT_INGRESS_LISTEN, hostConfigSchema } from './parse.ts';

export interface HostConfigTemplate {
  /** `[host] name`: the host's DNS name. */
  name: string;
  /** `[host] key`, relative to host.toml. */
  keyFile: string;
  /** The operator's own registrar: its raw public key and the key file it was written to. */
  operator: { publicKey: string; keyFile: string; domain?: string };
  ingress?: string;
  control?: string;
}

/**
 * A host.toml for a new host (`stratum host init`): the keys a host needs, the defaults written
 * out and limits no stranger's capsule goes past, each with a line saying what it is, so that an
 * operator reads the file instead of the spec to change it. The caller parses it before writing it (`parseHostConfig`), which
 * checks the values given.
 */
export function hostConfigTemplate(options: HostConfigTemplate): string {
  const quote = (value: string) => JSON.stringify(value);
  const schemaId = String(hostConfigSchema.$id);
  const domain = options.operator.domain;
  return [
    `#:schema ${schemaId}`,
    '# Made by `stratum host init`. Every table and key: spec/host-config/README.md.',
    'stratum = 1',
    '',
    '[host]',
    '# The DNS name registrars reach this host by; every control request must name it.',
    `name = ${quote(options.name)}`,
    '# The identity key: keep it secret and keep a backup (the DNS record names its public key).',
    `key = ${quote(options.keyFile)}`,
    "# Installations, capsules' state and the usage ledger.",
    'data = "data"',
    '',
    '[ingress]',
    "# Capsules' HTTP traffic; the Host header picks the capsule.",
    `listen = ${quote(options.ingress ?? DEFAULT_INGRESS_LISTEN)}`,
    '# Behind a TLS-terminating proxy, its address: its X-Forwarded-Proto then gives the scheme.',
    '# trusted_proxies = ["127.0.0.1/32"]',
    '',
    '[control]',
    '# The signed control API. Off loopback, give it TLS: tls_cert = "...", tls_key = "...".',
    `listen = ${quote(options.control ?? DEFAULT_CONTROL_LISTEN)}`,
    '',
    // Without them a stranger's manifest gets whatever its class gives, up to "large" (4 GiB an
    // instance, 5 s of CPU a request); a new host should let in only what it means to.
    '# The most one capsule may use, whatever its manifest asks: the "small" resource class',
    '# (spec/capsule/README.md section 7). An install whose stratum.toml [resources] asks for more',
    '# (cpu = "medium" or "large", or more memory, timeout or concurrency) is refused with',
    "# RESOURCES_UNAVAILABLE; a key it leaves out gets its class's value, cut down to these. Raise",
    '# one to let bigger capsules in. Other limits, left at their defaults: queue, request_body,',
    '# response_body, outbound_requests, idle, log_lines.',
    '[limits]',
    '# The largest linear memory of one instance.',
    'memory = "256mib"',
    '# CPU time one request may use (504 past it).',
    'cpu = "200ms"',
    '# Wall-clock time one request may run (504 past it); one that waits as long for an instance gets 503.',
    'timeout = "30s"',
    '# Requests one capsule serves at once; more wait in its queue.',
    'concurrency = 32',
    '',
    '# Instances (each a thread with its own engine) all capsules together run at once. At the',
    '# limit a new one takes the place of the one idle longest; with none idle, requests wait.',
    "# The default is one per 32 MiB of this machine's memory, the figure below; a JS capsule's",
    '# instance can grow to 80 MiB under load, and a host sharing the machine needs room too.',
    '# [instances]',
    `# max = ${defaultMaxInstances()}`,
    '',
    '# The registrars this host takes control requests from. "operator" is you: your tools sign',
    `# with ${options.operator.keyFile} (\`stratum host status --key ${options.operator.keyFile}\`).`,
    '# An operator key drives every installation; any other registrar sees only those it made.',
    '[registrars.operator]',
    `key = ${quote(options.operator.publicKey)}`,
    'operator = true',
    '# The registrar= name the _stratum links of your domains carry (spec/discovery.md); without',
    '# it, you can start capsules only on names under localhost, test, example and invalid.',
    domain ? `domain = ${quote(domain)}` : '# domain = "registrar.example.net"',
    '',
    '# Backends: SQLite and a local directory under data/ by default. For example:',
    '# [keyvalue.default]',
    '# type = "redis"',
    '# url = "redis://127.0.0.1:6379/0"',
    '',
  ].join('\n');
}
