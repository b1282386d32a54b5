import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { generateEd25519KeyPair, isStratumError, StratumError, writeKeyFile } from '@stratum/core';
import { type Command, EXIT_OK, paint, shellWord, stringOption, usageError } from '../command.ts';
import { OPERATOR_KEY_FILE } from '../control-connection.ts';
import { pathExists } from '../files.ts';
import { witInterfaces } from './host-keygen.ts';

const CONFIG_FILE = 'host.toml';
const HOST_KEY_FILE = 'host-key.json';

export const hostInitCommand: Command = {
  name: 'host init',
  summary: "set up a new host: host.toml, the host's identity key and the operator's key",
  usage: 'host init [dir] [--name <host name>] [--ingress <address>] [--control <address>] [--operator-domain <name>] [--api <url>]',
  description: `
Writes what \`stratum host start\` needs into the directory (default: the current one):
  host.toml          the configuration: the keys a host needs, with comments
                     (spec/host-config/README.md lists every key), and [limits] at the
                     "small" resource class: a capsule that asks for more is refused
  host-key.json      the host's Ed25519 identity key
  operator-key.json  your own registrar key, trusted in host.toml as [registrars.operator]: it
                     signs \`host status\`, \`host install\` and the rest
host.toml and both keys are readable by their owner only (host.toml comes to hold store
passwords), and a directory it creates is too: run it as the user the host runs as. It never
overwrites a file: it refuses if any of the three exists.

With --api it also prints the _stratum-host TXT record to publish in the host's zone
(spec/discovery.md section 4), as \`host keygen\` does.

Examples:
  stratum host init my-host
  stratum host init /etc/stratum --name h1.example.net --ingress 0.0.0.0:80 \\
    --api https://h1.example.net/stratum/v1 --operator-domain example.net`,
  maxPositionals: 1,
  options: {
    name: { type: 'string', value: 'name', description: "the host's DNS name (default: this machine's name)" },
    ingress: { type: 'string', value: 'address', description: "where capsules' HTTP traffic arrives (default: 0.0.0.0:8080)" },
    control: { type: 'string', value: 'address', description: 'where the control API listens (default: 127.0.0.1:7070)' },
    'operator-domain': {
      type: 'string',
      value: 'name',
      description: 'the registrar= name your domain links carry, for [registrars.operator] domain',
    },
    api: { type: 'string', value: 'url', description: "the control API's public https URL, to print the host's DNS record" },
  },
  async run(args, io) {
    const dir = args.positionals[0] ?? '.';
    const name = stringOption(args, 'name') ?? hostname().toLowerCase();
    const api = stringOption(args, 'api');
    const configPath = join(dir, CONFIG_FILE);
    const existing: string[] = [];
    for (const file of [CONFIG_FILE, HOST_KEY_FILE, OPERATOR_KEY_FILE])
      if (await pathExists(join(dir, file))) existing.push(join(dir, file));
    if (existing.length > 0) {
      throw new StratumError('HOST_INIT_EXISTS', `${dir} already holds a host's files`, {
        details: existing.map((file) => `${file} exists`),
        hint: 'Pick a new directory, or move those files away first: host init never overwrites a key or a configuration.',
      });
    }
    const { hostConfigTemplate, parseHostConfig } = await import('@stratum/host');
    const { formatHostRecord, hostKeyFromJwk, hostRecordName, zoneFileTxt } = await import('@stratum/discovery');
    const interfaces = await witInterfaces([]);
    const identity = await generateEd25519KeyPair();
    const operator = await generateEd25519KeyPair();
    const operatorDomain = stringOption(args, 'operator-domain');
    const ingress = stringOption(args, 'ingress');
    const control = stringOption(args, 'control');
    const text = hostConfigTemplate({
      name,
      keyFile: HOST_KEY_FILE,
      operator: { publicKey: operator.publicJwk.x, keyFile: OPERATOR_KEY_FILE, ...(operatorDomain ? { domain: operatorDomain } : {}) },
      ...(ingress ? { ingress } : {}),
      ...(control ? { control } : {}),
    });
    // Everything checked before anything is written: the options as the host will read them.
    let parsed: ReturnType<typeof parseHostConfig>;
    try {
      parsed = parseHostConfig(text, configPath);
    } catch (error) {
      if (!isStratumError(error)) throw error;
      throw usageError(
        `these options make a host.toml the host would refuse: ${error.details.map((line) => line.replace(/^.*?: /, '')).join('; ')}`,
        'Check --name (a DNS name such as h1.example.net), --ingress and --control (host:port), and --operator-domain.',
      );
    }
    const key = hostKeyFromJwk(identity.privateJwk);
    const record = api
      ? { name: hostRecordName(name), strings: formatHostRecord({ publicKey: key.publicKey, api, interfaces }) }
      : undefined;
    // Its keys and host.toml are the owner's alone, whatever the umask.
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeKeyFile(join(dir, HOST_KEY_FILE), identity.privateJwk);
    await writeKeyFile(join(dir, OPERATOR_KEY_FILE), operator.privateJwk);
    // Its store tables come to hold passwords and S3 keys (a PostgreSQL url, secret_access_key).
    await writeFile(configPath, text, { flag: 'wx', mode: 0o600 });

    // As the directory was given: relative to here, or absolute (not ../../tmp/h1 for /tmp/h1).
    const place = (path: string) => (isAbsolute(dir) ? path : relative(process.cwd(), path));
    const shown = (file: string) => place(join(dir, file)) || file;
    const config = shellWord(shown(CONFIG_FILE));
    const operatorKey = shown(OPERATOR_KEY_FILE);
    const address = ({ host, port }: { host: string; port: number }) => `${host.includes(':') ? `[${host}]` : host}:${port}`;
    io.stdout.write(
      [
        `${paint(io.stdout, 32, 'created')} host ${name} in ${place(dir) || '.'}`,
        `  ${config.padEnd(operatorKey.length)}  the configuration`,
        `  ${shown(HOST_KEY_FILE).padEnd(operatorKey.length)}  the host's identity key (keep it secret, keep a backup)`,
        `  ${operatorKey}  your registrar key: signs host status, install, logs, usage`,
        '',
        `  ingress  ${address(parsed.ingress.listen)}`,
        `  control  ${address(parsed.control.listen)}`,
        `  key      ${key.publicKey} (thumbprint ${key.thumbprint})`,
        ...(record ? ['', "Publish in the host's zone:", zoneFileTxt(record.name, record.strings)] : []),
        '',
        'Next:',
        `  stratum host start --config ${config}`,
        `  stratum host install examples/hello --domain hello.localhost --config ${config}`,
        `  stratum host status --config ${config}`,
        `  (--config finds ${operatorKey} beside host.toml to sign with)`,
        '',
      ].join('\n'),
    );
    return EXIT_OK;
  },
};
