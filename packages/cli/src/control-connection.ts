// How the commands that speak to a running host's control API (`stratum host status`,
// `host install`, `host uninstall`) find it and sign their requests.
import { readKeyFile } from '@stratum/core';
import type { ControlClient, HostConfig } from '@stratum/host';
import { type OptionSpec, type ParsedArgs, stringOption, usageError } from './command.ts';

/** The options every control command takes, in the order --help lists them. */
export const CONTROL_OPTIONS: Record<string, OptionSpec> = {
  key: { type: 'string', short: 'k', value: 'file', description: "a registrar's key file (an Ed25519 private JWK) the host trusts" },
  config: { type: 'string', short: 'c', value: 'file', description: "the host's host.toml, for its control address and name" },
  url: { type: 'string', value: 'url', description: "the control API's base URL, such as http://127.0.0.1:7070/v1" },
  audience: { type: 'string', value: 'name', description: "the host's name (default: from --config, else asked of the host)" },
};

/** The part of every control command's --help that says how the host is found. */
export const CONTROL_HELP = `Requests are signed with a registrar key the host trusts, one of host.toml's [registrars]. An
operator adds one for their own tools: \`stratum host keygen --out operator-key.json\` makes a
key, and the public key it prints goes in host.toml as [registrars.operator] key = "...".
With --config, the control address and the host's name come from host.toml; otherwise give
--url (the API's base URL) and, unless the host's own identity endpoint should be trusted for
it, --audience.`;

/** Where to reach a host's control API from its own machine: a wildcard listen address means loopback. */
export function localUrl(listen: { host: string; port: number }, tls: boolean): string {
  const host =
    listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '[::1]' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return `${tls ? 'https' : 'http'}://${host}:${listen.port}`;
}

/** A signed client for the host the options name, and its host.toml when --config gave one. */
export async function connectControl(args: ParsedArgs): Promise<{ client: ControlClient; config?: HostConfig }> {
  const keyFile = stringOption(args, 'key');
  if (!keyFile) throw usageError('--key is required: control requests are signed with a registrar key the host trusts');
  const configPath = stringOption(args, 'config');
  const { createControlClient, loadHostConfig } = await import('@stratum/host');
  let url = stringOption(args, 'url');
  let audience = stringOption(args, 'audience');
  let config: HostConfig | undefined;
  if (configPath) {
    config = await loadHostConfig(configPath);
    url ??= `${localUrl(config.control.listen, config.control.tls !== undefined)}/v1`;
    audience ??= config.name;
  }
  if (!url) throw usageError('say which host: --config <host.toml> or --url <control API base URL>');
  const client = createControlClient({ url, key: await readKeyFile(keyFile), ...(audience ? { audience } : {}) });
  return { client, ...(config ? { config } : {}) };
}
