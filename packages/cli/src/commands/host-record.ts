import { readKeyFile } from '@stratum/core';
import { booleanOption, type Command, EXIT_OK, stringListOption, stringOption, usageError } from '../command.ts';
import { WIT_OPTION, witInterfaces } from './host-keygen.ts';

export const hostRecordCommand: Command = {
  name: 'host record',
  summary: 'print the _stratum-host DNS record of a host set up already, from its host.toml and identity key',
  usage: 'host record [--config <host.toml>] --api <url> [--wit <list>] [--json]',
  description: `
Prints the _stratum-host TXT record by which registrars find a host and check its identity key
(spec/discovery.md section 4): the host's name and key from host.toml ([host] name and key),
the control API's public URL from --api, and the WIT interfaces it serves from --wit (default:
what stratum-host serves). \`host init --api\` and \`host keygen --host --api\`
print it as they make the key; this prints it again, for a host made without --api, a new API
address, or a zone rebuilt. \`stratum dns check <domain>\` says when a linked host publishes none.

Examples:
  stratum host record --config /etc/stratum/host.toml --api https://h1.example.net/stratum/v1
  stratum host record --api https://h1.example.net/v1 --wit wasi:http@0.2.0 --json`,
  maxPositionals: 0,
  options: {
    config: { type: 'string', short: 'c', value: 'file', description: "the host's host.toml (default: ./host.toml)" },
    api: { type: 'string', value: 'url', description: "the control API's public https URL, as registrars reach it" },
    wit: WIT_OPTION,
    json: { type: 'boolean', description: 'print the record, the public key and its thumbprint as JSON' },
  },
  async run(args, io) {
    const api = stringOption(args, 'api');
    if (api === undefined) {
      throw usageError(
        "--api is required: the record gives registrars the control API's public URL",
        'Give the https URL registrars reach the control API at, e.g. --api https://h1.example.net/stratum/v1.',
      );
    }
    const { loadHostConfig } = await import('@stratum/host');
    const config = await loadHostConfig(stringOption(args, 'config') ?? 'host.toml');
    const { formatHostRecord, hostKeyFromJwk, hostRecordName, zoneFileTxt } = await import('@stratum/discovery');
    const interfaces = await witInterfaces(stringListOption(args, 'wit'));
    const key = hostKeyFromJwk(await readKeyFile(config.keyFile));
    const record = { name: hostRecordName(config.name), strings: formatHostRecord({ publicKey: key.publicKey, api, interfaces }) };
    if (booleanOption(args, 'json')) {
      io.stdout.write(`${JSON.stringify({ host: config.name, publicKey: key.publicKey, thumbprint: key.thumbprint, record }, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stdout.write(`Publish in ${config.name}'s zone:\n${zoneFileTxt(record.name, record.strings)}\n`);
    return EXIT_OK;
  },
};
