import { readFile, writeFile } from 'node:fs/promises';
import { publicKeyFromRaw, StratumError } from '@stratum/core';
import type { LedgerEntry, UsageReport } from '@stratum/host';
import { booleanOption, type Command, EXIT_OK, paint, stringOption, usageError } from '../command.ts';
import { CONTROL_HELP, CONTROL_OPTIONS, CONTROL_USAGE, connectControl, hostNameOf } from '../control-connection.ts';
import { table, usageCells } from './host-status.ts';

/** The rows of a report's figures: one per registrar, then the totals. */
function usageTable(report: UsageReport): string {
  const rows = [['REGISTRAR', 'CAPSULES', 'REQUESTS', 'CPU', 'MEMORY', 'IN', 'OUT', 'LIMIT HITS']];
  for (const one of report.registrars) rows.push([one.registrar ?? '(none)', String(one.capsules.length), ...usageCells(one.usage)]);
  rows.push(['TOTAL', String(report.registrars.reduce((sum, one) => sum + one.capsules.length, 0)), ...usageCells(report.totals)]);
  return table(rows);
}

/** What a report covers, in a line: its host, month and ledger entries. */
function coverage(report: UsageReport): string {
  const { ledger } = report;
  const entries =
    ledger.entries === 0
      ? 'no ledger entries: a month without usage'
      : `ledger entries ${ledger.first} to ${ledger.last} (${ledger.entries.toLocaleString('en-US')}), the last with hash ${ledger.hash}`;
  return `${report.host}, ${report.month}: ${entries}`;
}

export const hostReportCommand: Command = {
  name: 'host report',
  summary: "fetch a running host's signed usage report for a month that has ended, for the provider portal",
  usage: `host report [--month YYYY-MM] [--out <file>] [--json] ${CONTROL_USAGE}`,
  description: `
Asks the host for its monthly usage report (spec/usage-report.md): its usage ledger's entries
of one UTC calendar month that has ended, summed per registrar and per capsule, signed with the
host's identity key. Only the operator's key may ask: the report names every registrar. The
month defaults to the last one that ended. The report is checked as the portal will check it
(against the key the host's /identity gives), written to --out (default
usage-report-<host>-<month>.json), and its totals per registrar printed. Send that file to the
provider portal; \`stratum host report verify\` checks one.

${CONTROL_HELP}

Examples:
  stratum host report --config /etc/stratum/host.toml
  stratum host report --month 2026-11 --out reports/2026-11.json --url https://h1.example.net/stratum/v1 --audience h1.example.net --key operator-key.json`,
  maxPositionals: 0,
  options: {
    month: { type: 'string', short: 'm', value: 'YYYY-MM', description: 'the month, UTC (default: the last one that ended)' },
    out: {
      type: 'string',
      short: 'o',
      value: 'file',
      description: 'where to write the report (default: usage-report-<host>-<month>.json)',
    },
    json: { type: 'boolean', description: 'print the report as JSON instead of the table (it is written to --out all the same)' },
    ...CONTROL_OPTIONS,
  },
  async run(args, io) {
    const { lastEndedMonth, monthBounds, verifyUsageReport } = await import('@stratum/host');
    const month = stringOption(args, 'month') ?? lastEndedMonth(new Date());
    if (!monthBounds(month)) throw usageError(`--month ${month}: give a month as YYYY-MM, such as 2026-11`);
    const connection = await connectControl(args);
    const body = await connection.client.usageReport(month);
    // Checked as the portal will: a report it would refuse is not worth sending.
    const identity = await connection.client.identity();
    const { report } = await verifyUsageReport(body, { expectedKey: identity.key.x });
    if (report.host !== (await hostNameOf(connection)).toLowerCase() || report.month !== month) {
      throw new StratumError(
        'REPORT_WRONG_HOST',
        `the host answered the report of ${report.host} for ${report.month}, not the one asked for`,
      );
    }
    const out = stringOption(args, 'out') ?? `usage-report-${report.host}-${month}.json`;
    await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
    if (booleanOption(args, 'json')) {
      io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stdout.write(`usage report of ${coverage(report)}\n`);
    io.stdout.write(`${usageTable(report)}\n`);
    io.stdout.write(`signed with the host key ${report.key}; written to ${out}\n`);
    return EXIT_OK;
  },
};

/** The strings of a TXT record as given: quoted ("v=stratum1" "k=...") as in a zone file or dig's answer, or words. */
function recordStrings(text: string): string[] {
  const quoted = [...text.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((match) => (match[1] as string).replace(/\\(.)/g, '$1'));
  return quoted.length > 0 ? quoted : text.split(/\s+/).filter(Boolean);
}

/** A public key from a file: a JWK (a key file, private or public; its `x`) or the raw key in base64url. */
async function keyFromFile(path: string): Promise<string> {
  let text: string;
  try {
    text = (await readFile(path, 'utf8')).trim();
  } catch (error) {
    throw new StratumError('KEY_FILE_UNREADABLE', `cannot read the key file ${path}`, { details: [(error as Error).message] });
  }
  let raw = text;
  if (text.startsWith('{')) {
    const jwk = JSON.parse(text) as { kty?: unknown; crv?: unknown; x?: unknown };
    if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
      throw new StratumError('KEY_FILE_INVALID', `${path} does not hold an Ed25519 key`, {
        details: ['expected a JWK {"kty":"OKP","crv":"Ed25519","x":"..."}, or the raw public key in base64url'],
      });
    }
    raw = jwk.x;
  }
  return publicKeyFromRaw(raw).x;
}

export const hostReportVerifyCommand: Command = {
  name: 'host report verify',
  summary: 'check a signed usage report as the provider portal does, and print what it covers',
  usage:
    "host report verify <file> --host <name> (--key <public key file> | --record '<_stratum-host TXT value>') [--ledger <ledger.jsonl>] [--json]",
  description: `
Checks a monthly usage report (spec/usage-report.md section 6): its form, that it names the
host given and is signed with that host's key, that the signature verifies, that its month has
ended, and that every sum is the sum of its parts. A failure names the problem and the member
at fault as a JSON Pointer. --host names the host whose key is given, as a key file (--key: a
JWK, the host's own key file or its public part, or the raw key in base64url), or as its
_stratum-host TXT record (--record, as \`dig +short TXT _stratum-host.<host>\` prints it, or as
\`stratum host record\` prints it), whose k= is the key: a next key the record announces (nk=)
is the host's only once a record names it as k=. With --ledger, it also checks the
report against the host's ledger as an auditor does (spec/usage-report.md section 8): the
ledger's chain verifies, and its entries of the month make exactly this report.

Examples:
  stratum host report verify usage-report-h1.example.net-2026-11.json --host h1.example.net --key host.key
  stratum host report verify report.json --host h1.example.net --record "$(dig +short TXT _stratum-host.h1.example.net)"`,
  maxPositionals: 1,
  options: {
    host: { type: 'string', value: 'name', description: 'the host whose key is given: the report must name it' },
    key: { type: 'string', short: 'k', value: 'file', description: "the host's key: a key file (JWK) or a file with the raw public key" },
    record: { type: 'string', value: 'TXT', description: "the host's _stratum-host TXT record, whose k= is its key" },
    ledger: { type: 'string', value: 'file', description: "the host's usage ledger (ledger.jsonl), to check the report against" },
    json: { type: 'boolean', description: 'print what the report covers as JSON' },
  },
  async run(args, io) {
    const file = args.positionals[0];
    if (file === undefined) throw usageError('say which report: stratum host report verify <file>');
    const keyFile = stringOption(args, 'key');
    const record = stringOption(args, 'record');
    if ((keyFile === undefined) === (record === undefined)) {
      throw usageError(
        keyFile === undefined
          ? "give the host's key, --key <file> or --record '<_stratum-host TXT>': a report checked against its own key alone proves nothing of who made it"
          : 'give --key or --record, not both',
      );
    }
    const host = stringOption(args, 'host');
    if (host === undefined) {
      throw usageError(
        'give --host <name>: the host whose key --key or --record is; a key proves a report only for the host it is held for',
      );
    }
    const { parseUsageReport, verifyUsageReport } = await import('@stratum/host');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new StratumError('REPORT_UNREADABLE', `cannot read ${file}`, { details: [(error as Error).message] });
    }
    let expectedKey: string;
    if (keyFile !== undefined) expectedKey = await keyFromFile(keyFile);
    else {
      const { parseHostRecord } = await import('@stratum/discovery');
      expectedKey = parseHostRecord(recordStrings(record as string)).publicKey;
    }
    let verified: Awaited<ReturnType<typeof verifyUsageReport>>;
    try {
      verified = await verifyUsageReport(parseUsageReport(text), { expectedKey, expectedHost: host });
    } catch (error) {
      if (error instanceof StratumError) {
        throw new StratumError(error.code, `${file}: ${error.message}`, {
          details: error.details,
          ...(error.hint ? { hint: error.hint } : {}),
        });
      }
      throw error;
    }
    const { report } = verified;
    const ledgerFile = stringOption(args, 'ledger');
    if (ledgerFile !== undefined) await checkAgainstLedger(report, ledgerFile);
    if (booleanOption(args, 'json')) {
      const { host, key, month, ledger, totals } = report;
      io.stdout.write(`${JSON.stringify({ valid: true, host, key, month, ledger, totals }, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stdout.write(`${paint(io.stdout, 32, 'valid:')} usage report of ${coverage(report)}\n`);
    io.stdout.write(`signed with ${report.key}, the host's key\n`);
    if (ledgerFile !== undefined)
      io.stdout.write(`the ledger ${ledgerFile} verifies, and its entries of ${report.month} make this report\n`);
    io.stdout.write(`${usageTable(report)}\n`);
    return EXIT_OK;
  },
};

/** An auditor's check (spec/usage-report.md section 8): the ledger's chain verifies, and its entries of the month make this report. */
async function checkAgainstLedger(report: UsageReport, path: string): Promise<void> {
  const { compareReportWithLedger, verifyLedgerFile } = await import('@stratum/host');
  const chain = await verifyLedgerFile(path);
  if (!chain.ok) {
    throw new StratumError('LEDGER_CORRUPT', `the ledger ${path} does not verify`, { details: [`line ${chain.line}: ${chain.reason}`] });
  }
  const { createReadStream } = await import('node:fs');
  const { createInterface } = await import('node:readline');
  async function* entries() {
    for await (const line of createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Number.POSITIVE_INFINITY }))
      if (line) yield JSON.parse(line) as LedgerEntry;
  }
  const difference = await compareReportWithLedger(report, entries());
  if (difference !== undefined) {
    throw new StratumError('REPORT_LEDGER_MISMATCH', `the report does not match the ledger ${path}`, {
      details: [difference],
      hint: 'The ledger may be of another host, or not the one the report was made from (cut short, or replaced): its entries of the month make another report.',
    });
  }
}
