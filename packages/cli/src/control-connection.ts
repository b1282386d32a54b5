// How the commands that speak to a running host's control API (`stratum host status`,
// `install`, `uninstall`, `logs`, `usage` and `move`) find it and sign their requests.
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { readKeyFile } from '@stratum/core';
import type { ControlClient, HostConfig, TrustedRegistrar } from '@stratum/host';
import { type OptionSpec, type ParsedArgs, shellWord, stringOption, usageError } from './command.ts';
import { pathExists } from './files.ts';

/** The options every control command takes, in the order --help lists them. */
export const CONTROL_OPTIONS = {
  key: {
    type: 'string',
    short: 'k',
    value: 'file',
    description: "a registrar's key file (an Ed25519 private JWK) the host trusts (default with --config: operator-key.json beside it)",
  },
  config: {
    type: 'string',
    short: 'c',
    value: 'file',
    description: "the host's host.toml, for its control address and name (default without --url: ./host.toml, when there is one)",
  },
  url: { type: 'string', value: 'url', description: "the control API's base URL, such as http://127.0.0.1:7070/v1" },
  audience: {
    type: 'string',
    value: 'name',
    description:
      "the host's name, which requests are signed for (default: from --config; with --url, needed unless it is a loopback address)",
  },
} satisfies Record<string, OptionSpec>;

/** Which key signs a control request, and how another registrar gets one: in every control command's help. */
export const REGISTRAR_KEY_HELP = `Requests are signed with a registrar key the host trusts, one of host.toml's [registrars].
\`stratum host init\` makes one for the operator's own tools, operator-key.json beside host.toml,
which --config finds without --key. \`stratum host keygen --out <file>\` makes one for another
registrar; the public key it prints goes in host.toml as [registrars.<name>] key = "...". A
registrar sees and drives only the capsules it installed; \`operator = true\` beside a key
lets it drive them all, as host init marks the operator's.`;

/** The part of every control command's --help that says how the host is found, and which key signs. */
export const CONTROL_HELP = `${REGISTRAR_KEY_HELP}
With --config, the control address and the host's name come from host.toml; without it or
--url, from ./host.toml when there is one. Otherwise give --url (the API's base URL) and
--audience (the host's name, as its _stratum-host record publishes it): a registrar does not
take a host's name from its unsigned identity endpoint (spec/host-api.md section 5.7), except
from a host on this machine, a loopback --url such as http://127.0.0.1:7070/v1.`;

/** How a control command's usage line says which host: host.toml by default, or its address and a key. */
export const CONTROL_USAGE = '[--config <host.toml> | --url <control API> --audience <host name> --key <registrar key>]';

/** The operator's registrar key that `stratum host init` writes beside host.toml. */
export const OPERATOR_KEY_FILE = 'operator-key.json';

/** The host.toml a control command uses when given no host, as `stratum host start` does. */
const DEFAULT_CONFIG = 'host.toml';

/** The operator key beside a host.toml, when there is one: the default --key with --config. */
async function operatorKeyBeside(configPath: string): Promise<string | undefined> {
  const file = join(dirname(configPath), OPERATOR_KEY_FILE);
  return (await pathExists(file)) ? file : undefined;
}

/** Where to reach a host's control API from its own machine: a wildcard listen address means loopback. */
export function localUrl(listen: { host: string; port: number }, tls: boolean): string {
  const host =
    listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '[::1]' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return `${tls ? 'https' : 'http'}://${host}:${listen.port}`;
}

/**
 * A `stratum` command for the user to run next, with the options that reached the host as they
 * were given (`host move`'s for one of its hosts, with `side`), so that pasted it reaches the
 * same host. Given none (./host.toml), it needs none either.
 *
 * @example
 * nextCommand(args, ['host', 'serve', 'counter']); // "stratum host serve counter --config h1/host.toml"
 */
export function nextCommand(args: ParsedArgs, words: readonly string[], side?: 'from' | 'to'): string {
  const given = (name: string) => stringOption(args, side ? `${side}-${name}` : name);
  const flags = ['config', 'url', 'audience'].flatMap((name) => {
    const value = given(name);
    return value === undefined ? [] : [`--${name}`, value];
  });
  const key = (side ? given('key') : undefined) ?? stringOption(args, 'key');
  return ['stratum', ...words, ...flags, ...(key === undefined ? [] : ['--key', key])].map(shellWord).join(' ');
}

/** `host move`'s options for one of its two hosts: --from-url, --to-config and so on. */
export function sideOptions(side: 'from' | 'to'): Record<string, OptionSpec> {
  const which = side === 'from' ? 'the host it runs on now' : 'the host it moves to';
  return {
    [`${side}-config`]: { type: 'string', value: 'file', description: `${which}: its host.toml, for its control address and name` },
    [`${side}-url`]: { type: 'string', value: 'url', description: `${which}: its control API's base URL` },
    [`${side}-audience`]: {
      type: 'string',
      value: 'name',
      description: `${which}: its name (default: from its host.toml; with a --${side}-url, needed unless it is a loopback address)`,
    },
    [`${side}-key`]: { type: 'string', value: 'file', description: `the registrar key ${which} trusts, when not --key's` },
  };
}

/**
 * A signed client for the host the options name, and its host.toml when one was given, with the
 * [registrars] entry whose key signs (`registrar`), when it has one. With `side`, the options
 * are `host move`'s for that host (`--from-url`, ...), and --key serves both hosts unless
 * --from-key or --to-key is given.
 */
export async function connectControl(
  args: ParsedArgs,
  side?: 'from' | 'to',
): Promise<{
  client: ControlClient;
  config?: HostConfig;
  registrar?: TrustedRegistrar;
  /** The host's name as given (--audience) or read from its host.toml; none when its /identity, on loopback, says it. */
  audience?: string;
}> {
  const option = (name: string) => (side ? `${side}-${name}` : name);
  // Given no host, ./host.toml as `host start` takes it; not for `host move`, whose two hosts it cannot both be.
  const noHost = !side && stringOption(args, 'config') === undefined && stringOption(args, 'url') === undefined;
  const configPath = stringOption(args, option('config')) ?? (noHost && (await pathExists(DEFAULT_CONFIG)) ? DEFAULT_CONFIG : undefined);
  if (noHost && !configPath && stringOption(args, 'key') === undefined) {
    throw usageError(
      `say which host: --config <host.toml> (the ${OPERATOR_KEY_FILE} beside it signs), or --url <control API base URL> and --key <registrar key file>`,
      `There is no ${DEFAULT_CONFIG} here to use. \`stratum host init\` writes one, with ${OPERATOR_KEY_FILE} beside it.`,
    );
  }
  const keyFile =
    (side ? stringOption(args, option('key')) : undefined) ??
    stringOption(args, 'key') ??
    (configPath ? await operatorKeyBeside(configPath) : undefined);
  if (!keyFile) {
    throw usageError(
      `--key is required: control requests are signed with a registrar key the host trusts${configPath ? ` (there is no ${OPERATOR_KEY_FILE} beside ${configPath})` : ''}`,
      configPath
        ? `Give --key <registrar key file>: one of ${configPath}'s [registrars].`
        : `Give --key <registrar key file>, or --${option('config')} <host.toml> to sign with the ${OPERATOR_KEY_FILE} beside it.`,
    );
  }
  const { ControlApiError, createControlClient, loadHostConfig } = await import('@stratum/host');
  let url = stringOption(args, option('url'));
  let audience = stringOption(args, option('audience'));
  let config: HostConfig | undefined;
  if (configPath) {
    config = await loadHostConfig(configPath);
    url ??= `${localUrl(config.control.listen, config.control.tls !== undefined)}/v1`;
    audience ??= config.name;
  }
  if (!url) {
    throw usageError(
      side
        ? `say which host ${side === 'from' ? 'the capsule leaves' : 'it moves to'}: --${option('config')} <host.toml> or --${option('url')} <control API base URL>`
        : 'say which host: --config <host.toml> or --url <control API base URL>',
    );
  }
  if (!audience && !isLoopbackUrl(url)) {
    // The name the requests are signed for is what binds them to this host: one read from the
    // host's unsigned /identity would be whatever answered there (spec/host-api.md section 5.7).
    throw usageError(
      `--${option('audience')} is required with --${option('url')} ${url}: the host's name, which its requests are signed for; a registrar does not take it from the host's unsigned /identity unless the host is on this machine (spec/host-api.md section 5.7)`,
      `Give --${option('audience')} <host name>: its [host] name in host.toml, as its _stratum-host record publishes it (\`stratum dns check <a domain it serves>\` shows the host a link names), or --${option('config')} <host.toml>.`,
    );
  }
  const key = await readKeyFile(keyFile);
  const client = withKeyHint(createControlClient({ url, key, ...(audience ? { audience } : {}) }), key.x, keyFile, ControlApiError);
  const registrar = config?.registrars.find((one) => one.key.x === key.x);
  return { client, ...(config ? { config } : {}), ...(registrar ? { registrar } : {}), ...(audience ? { audience } : {}) };
}

/** The host's name: as given or from host.toml, else (a loopback --url, `connectControl` checked) its /identity. */
export async function hostNameOf(connection: { client: ControlClient; audience?: string }): Promise<string> {
  return connection.audience ?? (await connection.client.identity()).name;
}

/**
 * Whether a control API URL names this machine: 127.0.0.0/8, ::1 or localhost. Only such a
 * host's /identity may say its name: nothing between it and the CLI could answer instead.
 */
export function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase().replace(/^\[|\]$/g, '');
  } catch {
    return false;
  }
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return isIP(host) === 6 && (host === '::1' || host === '0:0:0:0:0:0:0:1');
}

/**
 * The client, its refusals of an unknown key given what the host's operator needs: the public
 * key to add to host.toml (the host names the key by its thumbprint, which cannot be added).
 */
function withKeyHint(
  client: ControlClient,
  publicKey: string,
  keyFile: string,
  ApiError: typeof import('@stratum/host').ControlApiError,
): ControlClient {
  const explain = (error: unknown): never => {
    if (!(error instanceof ApiError) || error.code !== 'AUTH_UNKNOWN_KEY') throw error;
    throw new ApiError(
      error.status,
      error.code,
      error.message,
      [...error.details, `${keyFile}'s public key is ${publicKey}`],
      `The host's operator trusts it by adding to its host.toml\n  [registrars.<name>]\n  key = ${JSON.stringify(publicKey)}\n  domain = "<the registrar's domain, which its links name>"\nand restarting the host; or sign with a key the host trusts (--key).`,
    );
  };
  const wrapped: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(client)) {
    wrapped[name] =
      typeof method === 'function'
        ? (...given: unknown[]) => (method as (...a: unknown[]) => Promise<unknown>).apply(client, given).catch(explain)
        : method;
  }
  return wrapped as unknown as ControlClient;
}
