// `stratum registrar challenge` and `registrar verify`: a registrar checks, before it trusts a
// host's key, that the host controls its name's DNS and that key (spec/discovery.md section 6).
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { formatDuration, isStratumError, parseDuration, readKeyFile, StratumError } from '@stratum/core';
import type { ChallengeResponse, VerifiedHost } from '@stratum/discovery';
import {
  asciiDomain,
  booleanOption,
  type Command,
  type CommandIo,
  EXIT_OK,
  type ParsedArgs,
  paint,
  shellWord,
  stringListOption,
  stringOption,
  usageError,
} from '../command.ts';

const STATE_OPTION = {
  type: 'string',
  value: 'file',
  description: 'where issued challenges are kept (default: $XDG_STATE_HOME/stratum/challenges.json, else ~/.local/state/stratum/)',
} as const;

async function stateStore(args: ParsedArgs) {
  const { defaultChallengeStateFile, FileChallengeStore } = await import('../challenge-state.ts');
  return new FileChallengeStore(stringOption(args, 'state') ?? defaultChallengeStateFile());
}

/** A challenge's time limit as given: "10 min", "2 h", else formatDuration's "1 min 30 s". */
function lifetime(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return formatDuration(ms);
}

export const registrarChallengeCommand: Command = {
  name: 'registrar challenge',
  summary: "issue a verification challenge to a host, before trusting its key (registrar's side)",
  usage: 'registrar challenge <host-name> --registrar <domain> [--ttl 10m] [--state <file>] [--json]',
  description: `
Issues a challenge (spec/discovery.md section 6.1): a random token bound to the host name and to
this registrar's name, valid for --ttl (10 minutes by default, at most 24 hours). It keeps the
challenge in a state file readable by its owner only, for \`stratum registrar verify\`, and prints
the token and the command the host's operator runs to answer it: that command publishes a TXT
record at _stratum-challenge.<host-name> and writes a response signed with the host key, which
the operator sends back (over a channel authenticated by TLS to the registrar).

Examples:
  stratum registrar challenge h1.example.net --registrar registrar.example.org
  stratum registrar challenge h1.example.net --registrar registrar.example.org --ttl 30m --state ./challenges.json`,
  maxPositionals: 1,
  options: {
    registrar: { type: 'string', value: 'domain', description: "this registrar's name, which the host's signature covers" },
    ttl: { type: 'string', value: 'duration', description: 'how long the host has to answer (default 10m, at most 24h)' },
    state: STATE_OPTION,
    json: { type: 'boolean', description: 'print the challenge as JSON' },
  },
  async run(args, io) {
    const given = args.positionals[0];
    if (given === undefined) throw usageError('registrar challenge needs the host name, such as h1.example.net');
    const hostName = asciiDomain(given, 'the host name');
    const registrarGiven = stringOption(args, 'registrar');
    if (registrarGiven === undefined) {
      throw usageError(
        "--registrar is required: the host signs the challenge for this registrar's name",
        "Give the domain this registrar is known by, e.g. --registrar registrar.example.org (the one its domains' _stratum links name).",
      );
    }
    const registrar = asciiDomain(registrarGiven, '--registrar');
    const ttlText = stringOption(args, 'ttl');
    const ttlMs = ttlText === undefined ? undefined : parseDuration(ttlText);
    const { issueChallenge } = await import('@stratum/discovery');
    const store = await stateStore(args);
    const challenge = await issueChallenge(store, { hostName, registrar, ...(ttlMs === undefined ? {} : { ttlMs }) });
    const answer = [
      'stratum host challenge-answer',
      // A token may begin with '-', which an option's separate argument may not.
      `--token=${challenge.token}`,
      `--registrar ${challenge.registrar}`,
      `--host-name ${challenge.hostName}`,
    ].join(' ');
    const statePart = stringOption(args, 'state') === undefined ? '' : ` --state ${shellWord(store.file)}`;
    const verify = `stratum registrar verify response.json${statePart}`;
    if (booleanOption(args, 'json')) {
      io.stdout.write(`${JSON.stringify({ ...challenge, stateFile: store.file, answer, verify }, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stderr.write(`${paint(io.stderr, 32, 'issued')} a challenge for ${challenge.hostName}, kept in ${store.file}\n`);
    io.stdout.write(
      [
        `token      ${challenge.token}`,
        `host name  ${challenge.hostName}`,
        `registrar  ${challenge.registrar}`,
        `expires    ${new Date(challenge.expiresAt).toISOString()} (in ${lifetime(challenge.expiresAt - challenge.issuedAt)})`,
        '',
        "Send these to the host's operator, who answers on the host (with its host.toml, or --key <host-key.json>):",
        `  ${answer} \\`,
        '    --dns <primary ip:port> --zone <zone> --tsig-key <file> > response.json',
        '(without --dns it prints the TXT record to publish by hand), and sends response.json back. Then:',
        `  ${verify} --dns <the zone's primary ip:port>`,
        '',
      ].join('\n'),
    );
    return EXIT_OK;
  },
};

/** What a registrar does about each failure of section 6.3, from its command line. */
const HINTS: Record<string, string> = {
  CHALLENGE_RESPONSE_INVALID:
    'The response is the JSON `stratum host challenge-answer` prints on its standard output: {token, hostName, publicKey, signature}.',
  CHALLENGE_UNKNOWN:
    'This state file holds no challenge with that token: it was issued elsewhere (another --state), or long expired. Issue a new one with `stratum registrar challenge`.',
  CHALLENGE_REPLAYED: 'Each token verifies once, pass or fail. Issue a new challenge with `stratum registrar challenge`.',
  CHALLENGE_HOST_MISMATCH:
    'The host answered a challenge issued for another host name; issue one for the name it answers for, if that is meant.',
  CHALLENGE_EXPIRED: 'Issue a new challenge (a longer --ttl gives the host more time, at most 24h), and have the host answer it in time.',
  CHALLENGE_BAD_SIGNATURE:
    "The host signed for another token, host name or registrar name, or with another key: it must answer with --registrar exactly this registrar's name, and its own host key.",
  CHALLENGE_RECORD_MISSING:
    'The host has not published its _stratum-challenge TXT record, or it has not reached the server asked yet: have it run challenge-answer with --dns, or publish the record it printed; query the authoritative server with --dns <ip:port>.',
  CHALLENGE_RECORD_MISMATCH:
    'The TXT record there is for another token or another key: the host must publish the value challenge-answer computed with the key that signed.',
  HOST_RECORD_MISSING:
    'The host must publish its _stratum-host record (key, control API, interfaces) first: `stratum host record --api <url>` prints it.',
  CHALLENGE_KEY_NOT_PUBLISHED:
    "The key that answered is not the k= of the host's _stratum-host record: the host answers with the key in its record, or updates the record first. Do not trust either key until they agree.",
};

async function readResponse(source: string): Promise<ChallengeResponse> {
  let body: string;
  try {
    body = source === '-' ? await text(process.stdin) : await readFile(source, 'utf8');
  } catch (error) {
    throw new StratumError(
      'CHALLENGE_RESPONSE_INVALID',
      `cannot read the response ${source}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      {
        hint: 'Give the file the host sent, or - to read it from the standard input.',
      },
    );
  }
  try {
    return JSON.parse(body) as ChallengeResponse;
  } catch (error) {
    throw new StratumError('CHALLENGE_RESPONSE_INVALID', `the response ${source} is not JSON: ${(error as Error).message}`, {
      hint: HINTS.CHALLENGE_RESPONSE_INVALID as string,
    });
  }
}

/** The registrar's next steps once a host is verified: what to keep, and the lines to hand on. */
function verifiedText(
  verified: VerifiedHost,
  registrar: string,
  registrarKey: { file: string; publicKey: string | undefined } | undefined,
  io: CommandIo,
): string {
  const { record } = verified;
  const registrarKeyFile = registrarKey?.file ?? '<registrar-key.json>';
  return [
    `${paint(io.stdout, 32, 'verified')} ${verified.hostName}: it controls its DNS and the key below`,
    `  key          ${verified.publicKey}`,
    `  thumbprint   ${verified.keyThumbprint}`,
    `  control API  ${record.api}`,
    `  serves       ${record.interfaces.map((item) => `${item.name}@${item.version}`).join(', ') || '(no wit= interfaces)'}`,
    ...(record.nextKey ? [`  next key     ${record.nextKey.publicKey} (announced for rotation)`] : []),
    '',
    `Trust this key for ${verified.hostName}, and drive the host at its control API with your registrar key:`,
    `  stratum host status --url ${shellWord(record.api)} --audience ${verified.hostName} --key ${shellWord(registrarKeyFile)}`,
    "The host's operator lists your registrar key in its host.toml, then reloads the host (SIGHUP):",
    `  [registrars.${registrar.split('.')[0]}]`,
    `  key = ${JSON.stringify(registrarKey?.publicKey ?? '<your registrar public key, from stratum host keygen>')}`,
    `  domain = ${JSON.stringify(registrar)}`,
    `The host can now remove its record: stratum host challenge-answer --remove ... (the same options it answered with).`,
  ].join('\n');
}

export const registrarVerifyCommand: Command = {
  name: 'registrar verify',
  summary: "check a host's answer to a challenge against DNS, and print the key to trust (registrar's side)",
  usage: 'registrar verify <response.json|-> [--dns <ip:port> ...] [--state <file>] [--key <registrar-key.json>] [--json]',
  description: `
Runs every check of spec/discovery.md section 6.3, in order, on the response a host sent for a
challenge \`stratum registrar challenge\` issued: the response is well-formed; the token is one
issued here and not used before (it is marked used now, whatever the outcome); it was issued for
the host name answering, and has not expired; the signature verifies, under the response's key,
over the token, the host name and this registrar's name; _stratum-challenge.<host-name> holds
the TXT value for that token and key; and the host's _stratum-host record publishes that very
key. Each failure prints its code (CHALLENGE_BAD_SIGNATURE, ...) and what to do about it.

On success it prints the key to trust for the host name, the control API URL and the WIT
interfaces from the host record, and the lines to use next.

Query the host zone's authoritative server with --dns (section 6.3 says the registrar SHOULD),
or a resolver that does not cache: a caching resolver may still hold an answer from before the
host published its record. Without --dns it asks the system resolvers.

Exit status: 0 verified, 1 a check failed, 2 a usage error.

Examples:
  stratum registrar verify response.json --dns 192.0.2.53:53
  ssh h1 stratum host challenge-answer ... | stratum registrar verify - --dns 127.0.0.1:5353`,
  maxPositionals: 1,
  options: {
    dns: {
      type: 'string',
      multiple: true,
      value: 'ip:port',
      description: "ask this DNS server: the host zone's authoritative server (default: the system resolvers)",
    },
    resolver: { type: 'string', multiple: true, value: 'ip:port', description: 'the same as --dns, as `stratum dns check` names it' },
    state: STATE_OPTION,
    key: {
      type: 'string',
      short: 'k',
      value: 'file',
      description: "this registrar's key file, to print its public key in the host.toml lines",
    },
    json: { type: 'boolean', description: 'print what was verified as JSON' },
  },
  async run(args, io) {
    const source = args.positionals[0];
    if (source === undefined) throw usageError("registrar verify needs the host's response: a file, or - for the standard input");
    const servers = [...stringListOption(args, 'dns'), ...stringListOption(args, 'resolver')];
    const keyFile = stringOption(args, 'key');
    const registrarKey =
      keyFile === undefined ? undefined : { file: keyFile, publicKey: ((await readKeyFile(keyFile)) as { x?: string }).x };
    const { DiscoveryResolver, verifyChallenge } = await import('@stratum/discovery');
    const resolver = new DiscoveryResolver(servers.length > 0 ? { servers } : {});
    const store = await stateStore(args);
    let registrar: string | undefined;
    const recording = {
      save: store.save.bind(store),
      async take(token: string) {
        const taken = await store.take(token);
        if (taken?.state === 'pending') registrar = taken.challenge.registrar;
        return taken;
      },
    };
    let verified: VerifiedHost;
    try {
      const response = await readResponse(source);
      verified = await verifyChallenge({ store: recording, resolver, response });
    } catch (error) {
      if (!isStratumError(error) || error.code === 'USAGE') throw error;
      throw new StratumError(error.code, `${error.code}: ${error.message}`, {
        details: error.details,
        hint: HINTS[error.code] ?? error.hint ?? 'Ask the host to answer a new challenge.',
        cause: error,
      });
    }
    if (booleanOption(args, 'json')) {
      io.stdout.write(`${JSON.stringify({ ...verified, registrar }, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stdout.write(`${verifiedText(verified, registrar ?? '<registrar>', registrarKey, io)}\n`);
    return EXIT_OK;
  },
};
