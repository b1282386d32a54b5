import { formatBytes } from '@stratum/core';
import type { CapsuleStatus, Usage } from '@stratum/host';
import { booleanOption, type Command, EXIT_OK, paint } from '../command.ts';
import { CONTROL_HELP, CONTROL_OPTIONS, connectControl } from '../control-connection.ts';

/** One usage's figures as the usage tables show them: requests, CPU, memory, bytes in and out, limit hits. */
export function usageCells(used: Usage): string[] {
  const hits = Object.entries(used.limitHits).filter(([, count]) => count > 0);
  return [
    used.requests.toLocaleString('en-US'),
    `${(used.cpuMs / 1000).toFixed(used.cpuMs < 10_000 ? 3 : 1)} s`,
    `${(used.memoryMbSeconds / 1000).toFixed(3)} GB-s`,
    formatBytes(used.bytesIn),
    formatBytes(used.bytesOut),
    hits.length ? hits.map(([kind, count]) => `${kind}:${count}`).join(',') : '-',
  ];
}

/** Rows as columns padded to their widest cell, two spaces apart; the first row is the header. */
export function table(rows: string[][]): string {
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
  usage: 'host status [--config <host.toml> | --url <control API> [--audience <host name>] --key <registrar key>] [--json]',
  description: `
Asks a running host for its status over the control API. It asks the live host rather than
reading its data directory because only the running process knows what the runtime is doing
now: instances, requests in flight, limit hits, back-off; and because it works the same from
another machine.

${CONTROL_HELP}

Examples:
  stratum host status --config /etc/stratum/host.toml    # signs with /etc/stratum/operator-key.json
  stratum host status --url https://h1.example.net/stratum/v1 --audience h1.example.net --key registrar.key --json`,
  maxPositionals: 0,
  options: {
    ...CONTROL_OPTIONS,
    json: { type: 'boolean', description: 'print the status as JSON' },
  },
  async run(args, io) {
    const { client } = await connectControl(args);
    const status = await client.status();
    if (booleanOption(args, 'json')) {
      io.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      return EXIT_OK;
    }
    const { host, capsules } = status;
    io.stdout.write(
      `${paint(io.stdout, 1, host.name)}  stratum-host ${host.version}, up since ${host.startedAt}, key ${host.key.kid ?? host.key.x}\n`,
    );
    const runtime = status.runtime;
    if (typeof runtime?.instances === 'number' && typeof runtime.maxInstances === 'number') {
      const evicted = runtime.instancesEvicted ?? 0;
      const waits = runtime.instanceWaits ?? 0;
      const atLimit =
        evicted || waits ? ` (at the limit: ${evicted} idle ended for another capsule's, requests waited for room ${waits} times)` : '';
      io.stdout.write(`instances: ${runtime.instances} of ${runtime.maxInstances}${atLimit}\n`);
    }
    const ledger = status.metering?.ledger;
    if (ledger === 'checking') io.stdout.write('usage ledger: being checked after the start; usage is written once the check passes\n');
    if (ledger === 'broken') {
      io.stdout.write(
        `${paint(io.stdout, 31, 'usage ledger: broken')}: its hash chain does not verify, or it was changed while the host ran; no usage is written until it is repaired and the host restarted (the host's log says what and where)\n`,
      );
    }
    if (capsules.length === 0) {
      io.stdout.write('no capsules installed\n');
      return EXIT_OK;
    }
    // An operator key sees every registrar's capsules: whose each is.
    const registrars = new Set(capsules.map((capsule) => capsule.registrar)).size > 1;
    const rows = [
      ['CAPSULE', ...(registrars ? ['REGISTRAR'] : []), 'STATE', 'VERSION', 'DOMAINS', 'INSTANCES', 'IN FLIGHT', 'LIMIT HITS', 'DIGEST'],
    ];
    for (const capsule of capsules) {
      rows.push([
        capsule.name,
        ...(registrars ? [capsule.registrar ?? '-'] : []),
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
