import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import { booleanOption, type Command, EXIT_OK, paint, shellWord, stringListOption, stringOption, usageError } from '../command.ts';

/**
 * What to do with the key once written. A host refuses a registrar's requests until its operator
 * trusts the key in host.toml, which the host reads only at start: the step a new registrar key
 * needs and a new user missed.
 */
function nextStep(out: string, publicKey: string, hostName: string | undefined): string {
  if (hostName !== undefined)
    return `Next: name it in ${hostName}'s host.toml as [host] key = ${JSON.stringify(out)}, and publish the record above.`;
  return [
    "Next, as a registrar's key: the operator of each host it drives adds its public key to that host's host.toml",
    `  [registrars.<name>]`,
    `  key = ${JSON.stringify(publicKey)}`,
    `  domain = "<the registrar's domain>"`,
    `and reloads the host (SIGHUP: systemctl reload, kill -HUP); then sign with --key ${shellWord(out)}.`,
    "The domain is what the registrar= of its domains' _stratum links names: without it the host",
    'serves that registrar only names under localhost, test, example and invalid, which need no link.',
    `As a host's identity key: host.toml's [host] key = ${JSON.stringify(out)}.`,
  ].join('\n');
}

/** `--wit`: the interfaces a host's _stratum-host record says it serves (spec/discovery.md section 4). */
export const WIT_OPTION = {
  type: 'string',
  multiple: true,
  value: 'list',
  description: 'WIT interfaces served, e.g. wasi:http@0.2.0 (repeat or comma-separate; default: what stratum-host serves)',
} as const;

/**
 * The interfaces a record lists: --wit's, else what stratum-host serves. A record without `wit=`
 * says the host serves nothing, which a registrar matching capsules to hosts takes at its word.
 */
export async function witInterfaces(values: readonly string[]) {
  const { parseWitList } = await import('@stratum/discovery');
  const { HOST_INTERFACES } = await import('../host-interfaces.ts');
  return (values.length > 0 ? values : [HOST_INTERFACES.join(',')]).flatMap((value) => parseWitList(value, '--wit'));
}

export const hostKeygenCommand: Command = {
  name: 'host keygen',
  summary: "create an Ed25519 key: a host's identity key (and the DNS record to publish), or a registrar's",
  usage: 'host keygen [--out host-key.json] [--host <name> --api <url> [--wit <list>]] [--json]',
  description: `
Creates an Ed25519 key in a key file readable by its owner only, and prints its public key and
RFC 7638 thumbprint. It never overwrites an existing key file. The key serves either role:

- a host's identity key (host.toml's [host] key). A registrar trusts it for the host's name
  once the host passes the verification challenge (spec/discovery.md section 6).
- a registrar's key, which signs control requests: its public key goes in a host's host.toml
  as [registrars.<name>] key = "...", and --key names the file.

With --host and --api it also prints the _stratum-host TXT record to publish in the host's
zone (spec/discovery.md section 4).

Examples:
  stratum host keygen
  stratum host keygen --out registrar-key.json
  stratum host keygen --out /etc/stratum/host-key.json --host h1.example.net \\
    --api https://h1.example.net/stratum/v1 --wit stratum:keyvalue@0.1.0,wasi:http@0.2.0`,
  maxPositionals: 0,
  options: {
    out: { type: 'string', short: 'o', value: 'file', description: 'where to write the key (default: host-key.json)' },
    host: { type: 'string', value: 'name', description: 'the host name, to print its _stratum-host record' },
    api: { type: 'string', value: 'url', description: "the control API's https URL, for the record" },
    wit: WIT_OPTION,
    json: { type: 'boolean', description: 'print the public key, thumbprint and record as JSON' },
  },
  async run(args, io) {
    const out = stringOption(args, 'out') ?? 'host-key.json';
    const hostName = stringOption(args, 'host');
    const api = stringOption(args, 'api');
    if ((hostName === undefined) !== (api === undefined)) throw usageError('--host and --api go together: the record needs both');
    const { formatHostRecord, hostKeyFromJwk, hostRecordName, zoneFileTxt } = await import('@stratum/discovery');
    const interfaces = await witInterfaces(stringListOption(args, 'wit'));
    // Build the record before writing anything, so a bad --api leaves no key file behind.
    const pair = await generateEd25519KeyPair();
    const key = hostKeyFromJwk(pair.privateJwk);
    const record =
      hostName !== undefined && api !== undefined
        ? { name: hostRecordName(hostName), strings: formatHostRecord({ publicKey: key.publicKey, api, interfaces }) }
        : undefined;
    await writeKeyFile(out, pair.privateJwk);
    const next = nextStep(out, key.publicKey, record ? hostName : undefined);
    if (booleanOption(args, 'json')) {
      const printed = { keyFile: out, publicKey: key.publicKey, thumbprint: key.thumbprint, ...(record ? { record } : {}), next };
      io.stdout.write(`${JSON.stringify(printed, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stderr.write(`${paint(io.stderr, 32, 'created')} ${out} (owner read/write only; keep it secret, keep a backup)\n`);
    io.stdout.write(`public key  ${key.publicKey}\nthumbprint  ${key.thumbprint}\n`);
    if (record) io.stdout.write(`\nPublish in the host's zone:\n${zoneFileTxt(record.name, record.strings)}\n`);
    io.stdout.write(`\n${next}\n`);
    return EXIT_OK;
  },
};
