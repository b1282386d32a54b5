// `stratum host challenge-answer`: a host answers a registrar's verification challenge
// (spec/discovery.md section 6.2), publishing its TXT record by RFC 2136 update when it can.
import { createInterface } from 'node:readline/promises';
import { errorMessage, isStratumError, readKeyFile, StratumError } from '@stratum/core';
import type { HostKey } from '@stratum/discovery';
import {
  asciiDomain,
  booleanOption,
  type Command,
  type CommandIo,
  EXIT_OK,
  type ParsedArgs,
  paint,
  stringOption,
  usageError,
} from '../command.ts';

/** The host's name and key: --host-name and --key, else host.toml's [host] name and key. */
async function hostIdentity(args: ParsedArgs): Promise<{ hostName: string; key: HostKey }> {
  let hostName = stringOption(args, 'host-name');
  let keyFile = stringOption(args, 'key');
  if (hostName === undefined || keyFile === undefined) {
    const { loadHostConfig } = await import('@stratum/host');
    const config = await loadHostConfig(stringOption(args, 'config') ?? 'host.toml');
    hostName ??= config.name;
    keyFile ??= config.keyFile;
  }
  const { hostKeyFromJwk } = await import('@stratum/discovery');
  return { hostName: asciiDomain(hostName, '--host-name'), key: hostKeyFromJwk(await readKeyFile(keyFile)) };
}

/** Without --dns, the operator publishes the record; a terminal waits for them to say it is done. */
async function waitForEnter(io: CommandIo): Promise<void> {
  if (!process.stdin.isTTY || !io.stderr.isTTY) return;
  const lines = createInterface({ input: process.stdin, output: io.stderr });
  try {
    await lines.question('Publish it, wait until the authoritative servers answer with it, then press Enter (Ctrl-C gives up): ');
  } finally {
    lines.close();
  }
}

export const hostChallengeAnswerCommand: Command = {
  name: 'host challenge-answer',
  summary: "answer a registrar's verification challenge: publish the TXT record, print the signed response",
  usage:
    'host challenge-answer --token=<token> --registrar <domain> [--host-name <name>] [--key <host-key.json> | --config <host.toml>] [--dns <ip:port> --zone <zone> [--tsig-key <file>]] [--remove]',
  description: `
Answers a challenge a registrar issued (\`stratum registrar challenge\`, spec/discovery.md
section 6.2), proving that this host controls its name's DNS and its identity key. It computes
the key authorization (token "." the key's thumbprint) and the TXT value for
_stratum-challenge.<host-name>, then prints on the standard output the response to send the
registrar: the token, the host name, the public key and the key's signature over the token, the
host name and the registrar's name. Only the response goes to the standard output, so
\`> response.json\` keeps it.

The host name and key come from --host-name and --key, else from host.toml's [host] name and
key (--config, default ./host.toml).

With --dns and --zone it adds the TXT record on the zone's primary server by RFC 2136 update
(signed with --tsig-key), with a TTL of 60 s, beside any other records there (other registrars
may be challenging the host at the same time). Without --dns it prints the record to publish;
on a terminal it waits until you press Enter, after publishing it.

Once the registrar has answered, run it again with --remove (and the same options) to remove
this record, and only this one.

Examples:
  stratum host challenge-answer --config /etc/stratum/host.toml --token=<token> --registrar registrar.example.org \\
    --dns 192.0.2.53:53 --zone example.net --tsig-key update.key > response.json
  stratum host challenge-answer --config /etc/stratum/host.toml --token=<token> --registrar registrar.example.org \\
    --dns 192.0.2.53:53 --zone example.net --tsig-key update.key --remove`,
  maxPositionals: 0,
  options: {
    token: { type: 'string', value: 'token', description: 'the token the registrar issued (43 characters)' },
    registrar: {
      type: 'string',
      value: 'domain',
      description: "the registrar's name, as its challenge gives it (the signature covers it)",
    },
    'host-name': { type: 'string', value: 'name', description: "this host's name (default: host.toml's [host] name)" },
    key: { type: 'string', short: 'k', value: 'file', description: "this host's identity key file (default: host.toml's [host] key)" },
    config: { type: 'string', short: 'c', value: 'file', description: "the host's host.toml, for its name and key (default: ./host.toml)" },
    dns: {
      type: 'string',
      value: 'ip:port',
      description: "the host name's zone's primary DNS server, which takes RFC 2136 updates: publish the record there",
    },
    zone: { type: 'string', value: 'name', description: 'the zone those updates change (with --dns)' },
    'tsig-key': {
      type: 'string',
      value: 'file',
      description: "the TSIG key the server's update ACL names: keymgr -t or tsig-keygen output, or a line hmac-sha256:<name>:<secret>",
    },
    remove: { type: 'boolean', description: 'remove the record this challenge published, once the registrar has answered' },
  },
  async run(args, io) {
    const token = stringOption(args, 'token');
    const registrarGiven = stringOption(args, 'registrar');
    if (token === undefined || registrarGiven === undefined) {
      throw usageError(
        `--${token === undefined ? 'token' : 'registrar'} is required: the registrar's challenge gives the token and its name`,
        'Give both as `stratum registrar challenge` printed them.',
      );
    }
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) throw usageError(`--token ${token} is not a challenge token (43 base64url characters)`);
    const registrar = asciiDomain(registrarGiven, '--registrar');
    const server = stringOption(args, 'dns');
    const zone = stringOption(args, 'zone');
    if (!server) {
      const orphan = ['zone', 'tsig-key'].find((option) => args.values[option] !== undefined);
      if (orphan) throw usageError(`--${orphan} goes with --dns`, "Give --dns <ip:port> of the host name's zone's primary DNS server.");
    } else if (!zone) throw usageError('--dns needs --zone', 'Name the zone the host name is in, as the DNS server knows it.');
    const { hostName, key } = await hostIdentity(args);
    const { answerChallenge, CHALLENGE_TTL, publishChallenge, Rfc2136Writer, withdrawChallenge, zoneFileTxt } = await import(
      '@stratum/discovery'
    );
    const answer = await answerChallenge({ token, hostName, registrar }, key);
    const line = zoneFileTxt(answer.recordName, [answer.txtValue], CHALLENGE_TTL);
    const remove = booleanOption(args, 'remove');

    if (!server || !zone) {
      if (remove) {
        io.stdout.write(`Remove this record from ${hostName}'s zone (and no other there):\n${line}\n`);
        return EXIT_OK;
      }
      io.stderr.write(`Publish in ${hostName}'s zone, beside any other records at that name:\n${line}\n`);
      await waitForEnter(io);
      io.stderr.write("Send the registrar this response (the standard output), once the record is on the zone's authoritative servers:\n");
      io.stdout.write(`${JSON.stringify(answer.response, null, 2)}\n`);
      return EXIT_OK;
    }

    const { checkZone, readTsigKeyFile } = await import('../link-switch.ts');
    checkZone(zone, [answer.recordName]);
    const tsigFile = stringOption(args, 'tsig-key');
    const tsig = tsigFile ? await readTsigKeyFile(tsigFile) : undefined;
    const writer = new Rfc2136Writer({ server, zone, ...(tsig ? { key: tsig } : {}) });
    try {
      if (remove) await withdrawChallenge(writer, hostName, answer.txtValue);
      else await publishChallenge(writer, hostName, answer.txtValue, CHALLENGE_TTL);
    } catch (error) {
      if (tsig || !isStratumError(error) || error.code !== 'DNS_UPDATE_REFUSED') throw error;
      throw new StratumError(error.code, error.message, {
        details: error.details,
        hint: "Pass --tsig-key <file>: the TSIG key the server's update ACL names.",
        cause: error,
      });
    }
    if (remove) {
      io.stderr.write(`${paint(io.stderr, 32, 'removed')} ${line} on ${server}\n`);
      return EXIT_OK;
    }
    io.stderr.write(`${paint(io.stderr, 32, 'published')} ${line} on ${server}\n`);
    // The registrar's verify also reads the host's own record, and a token fails once, whatever
    // fails it: said now, while the operator can still publish the record before sending.
    const { DiscoveryResolver } = await import('@stratum/discovery');
    const problem = await new DiscoveryResolver({ servers: [server] }).hostRecord(hostName).then(
      (record) =>
        record === undefined
          ? `${server} has no _stratum-host record for ${hostName}`
          : record.publicKey !== key.publicKey
            ? `the _stratum-host record for ${hostName} on ${server} publishes another key (k=${record.publicKey}), not this one`
            : undefined,
      (error: unknown) => `the _stratum-host record for ${hostName} on ${server} does not read: ${errorMessage(error)}`,
    );
    if (problem !== undefined) {
      io.stderr.write(
        `${paint(io.stderr, 33, 'note:')} ${problem}; the registrar's verify fails on it (HOST_RECORD_MISSING or CHALLENGE_KEY_NOT_PUBLISHED) and uses up the token. Publish the record \`stratum host record\` prints first.\n`,
      );
    }
    io.stderr.write(
      'Send the registrar this response (the standard output); once it has answered, remove the record with the same command and --remove.\n',
    );
    io.stdout.write(`${JSON.stringify(answer.response, null, 2)}\n`);
    return EXIT_OK;
  },
};
