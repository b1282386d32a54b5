import { readKeyFile } from '@stratum/core';
import type { CapsuleStatus } from '@stratum/host';
import { booleanOption, type Command, EXIT_OK, paint, stringOption, usageError } from '../command.ts';

/** Where to reach a host's control API from its own machine: a wildcard listen address means loopback. */
function localControlUrl(listen: { host: string; port: number }, tls: boolean): string {
  const host =
    listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '[::1]' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return `${tls ? 'https' : 'http'}://${host}:${listen.port}/v1`;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function limitHits(status: CapsuleStatus): string {
  const hits = Object.entries(status.limitHits).filter(([, count]) => count > 0);
  return hits.length ? hits.map(([kind, count]) => `${kind}:${count}`).join(',') : '-';
}

export const hostStatusCommand: Command = {
  name: 'host status',
  summary: "show a running host's capsules, asking its control API with a signed request",
  usage: 'host status --key <registrar key> (--config <host.toml> | --url <control API> [--audience <host name>]) [--json]',
  description: `
Asks a running host for its status over the control API, signing the request with a registrar
key the host trusts (one of host.toml's [registrars]; an operator adds one for their own
tools). It asks the live host rather than reading its data directory because only the running
process knows what the runtime is doing now: instances, requests in flight, limit hits,
back-off; and because it works the same from another machine.

With --config, the control address and the host's name come from host.toml; otherwise give
--url (the API's base URL) and, unless the host's own identity endpoint should be trusted for
it, --audience.

Examples:
  stratum host status --config /etc/stratum/host.toml --key ~/.stratum/operator.key
  stratum host status --url https://h1.example.net/stratum/v1 --audience h1.example.net --key registrar.key --json`,
  maxPositionals: 0,
  options: {
    key: { type: 'string', short: 'k', value: 'file', description: "a registrar's key file (an Ed25519 private JWK) the host trusts" },
    config: { type: 'string', short: 'c', value: 'file', description: "the host's host.toml, for its control address and name" },
    url: { type: 'string', value: 'url', description: "the control API's base URL, such as http://127.0.0.1:7070/v1" },
    audience: { type: 'string', value: 'name', description: "the host's name (default: from --config, else asked of the host)" },
    json: { type: 'boolean', description: 'print the status as JSON' },
  },
  async run(args, io) {
    const keyFile = stringOption(args, 'key');
    if (!keyFile) throw usageError('--key is required: control requests are signed with a registrar key the host trusts');
    const configPath = stringOption(args, 'config');
    const { createControlClient, loadHostConfig } = await import('@stratum/host');
    let url = stringOption(args, 'url');
    let audience = stringOption(args, 'audience');
    if (configPath) {
      const config = await loadHostConfig(configPath);
      url ??= localControlUrl(config.control.listen, config.control.tls !== undefined);
      audience ??= config.name;
    }
    if (!url) throw usageError('say which host: --config <host.toml> or --url <control API base URL>');
    const client = createControlClient({ url, key: await readKeyFile(keyFile), ...(audience ? { audience } : {}) });
    const status = await client.status();
    if (booleanOption(args, 'json')) {
      io.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      return EXIT_OK;
    }
    const { host, capsules } = status;
    io.stdout.write(
      `${paint(io.stdout, 1, host.name)}  stratum-host ${host.version}, up since ${host.startedAt}, key ${host.key.kid ?? host.key.x}\n`,
    );
    const ledger = status.metering?.ledger;
    if (ledger === 'checking') io.stdout.write('usage ledger: being checked after the start; usage is written once the check passes\n');
    if (ledger === 'broken') {
      io.stdout.write(
        `${paint(io.stdout, 31, 'usage ledger: broken')}: its hash chain does not verify, and no usage is written until it is repaired (the host's log says where)\n`,
      );
    }
    if (capsules.length === 0) {
      io.stdout.write('no capsules installed\n');
      return EXIT_OK;
    }
    const rows = [['CAPSULE', 'STATE', 'VERSION', 'DOMAINS', 'INSTANCES', 'IN FLIGHT', 'LIMIT HITS', 'DIGEST']];
    for (const capsule of capsules) {
      rows.push([
        capsule.name,
        capsule.backedOffUntil ? `${capsule.state} (backed off until ${capsule.backedOffUntil})` : capsule.state,
        capsule.version,
        capsule.domains.join(','),
        String(capsule.instances),
        String(capsule.inFlight),
        limitHits(capsule),
        capsule.digest.slice(0, 19),
      ]);
    }
    io.stdout.write(`${table(rows)}\n`);
    for (const capsule of capsules)
      if (capsule.lastError) io.stdout.write(`${paint(io.stdout, 33, `${capsule.name}:`)} ${capsule.lastError}\n`);
    return EXIT_OK;
  },
};
