import { formatBytes } from '@stratum/core';
import { booleanOption, type Command, EXIT_OK, paint, stringListOption, stringOption, usageError } from '../command.ts';
import { CONTROL_HELP, CONTROL_OPTIONS, connectControl, localUrl } from '../control-connection.ts';
import { parseVarFlag, varsFor } from '../dev/vars.ts';
import { readLocalComponent } from '../local-component.ts';
import { manifestPath } from './validate.ts';

export const hostInstallCommand: Command = {
  name: 'host install',
  summary: 'install a capsule on a running host and start it, over the signed control API',
  usage:
    'host install [dir] --domain <name> [--domain ...] [--name <capsule>] [--var name=value ...] [--no-start] --key <registrar key> (--config <host.toml> | --url <control API>) [--json]',
  description: `
Sends a capsule to a running host, as a registrar's dashboard does: the manifest, and the
component its [source] wasm names (build it first), or only the manifest when [source] names a
registry and digest, which the host then pulls and checks itself. The host checks the manifest
and the component against its own limits, serves the capsule on the domains given, and starts
it unless --no-start. Installing again under the same name replaces that installation (its
domains, component and config); a running one keeps serving until the new one has started.

${CONTROL_HELP}

Examples:
  stratum host install examples/hello --domain hello.localhost --config host.toml --key operator-key.json
  stratum host install . --domain shop.example.com --var currency=EUR --url https://h1.example.net/stratum/v1 \\
    --audience h1.example.net --key registrar.key`,
  maxPositionals: 1,
  options: {
    domain: { type: 'string', short: 'd', multiple: true, value: 'name', description: 'a domain the capsule serves (repeat for more)' },
    name: {
      type: 'string',
      short: 'n',
      value: 'capsule',
      description: "the capsule's name on the host (default: the manifest's [capsule] name)",
    },
    var: {
      type: 'string',
      multiple: true,
      value: 'name=value',
      description: "a value for one of the manifest's config variables or secrets (repeat for more)",
    },
    'no-start': { type: 'boolean', description: 'install only; `stratum host status` shows it stopped' },
    ...CONTROL_OPTIONS,
    json: { type: 'boolean', description: "print the capsule's status as JSON" },
  },
  async run(args, io) {
    const domains = stringListOption(args, 'domain');
    if (domains.length === 0) throw usageError('--domain is required: the host routes requests to a capsule by their Host header');
    const vars = stringListOption(args, 'var').map(parseVarFlag);
    const scoped = vars.find((flag) => flag.capsule !== undefined);
    if (scoped)
      throw usageError(
        `--var ${scoped.capsule}:${scoped.name}=... names a capsule; host install installs one, so write --var ${scoped.name}=...`,
      );
    const path = await manifestPath(args.positionals[0]);
    const { loadManifest } = await import('@stratum/manifest');
    const { readFile } = await import('node:fs/promises');
    const { manifest } = await loadManifest(path);
    const name = stringOption(args, 'name') ?? manifest.capsule.name;
    const component =
      manifest.source.kind === 'wasm'
        ? await readLocalComponent(path, { ...manifest, source: manifest.source }, 'INSTALL_NO_COMPONENT')
        : undefined;
    const { client, config } = await connectControl(args);
    const host = config?.name ?? 'the host';
    io.stderr.write(
      component
        ? `installing ${name} (${manifest.capsule.version}, ${formatBytes(component.bytes.length)}) on ${host}\n`
        : `installing ${name} (${manifest.capsule.version}, pulled by the host from ${manifest.source.kind === 'registry' ? manifest.source.registry : ''}) on ${host}\n`,
    );
    const values = varsFor(name, vars);
    const status = await client.install({
      name,
      domains,
      manifest: await readFile(path, 'utf8'),
      ...(component ? { component: component.bytes } : {}),
      ...(Object.keys(values).length > 0 ? { config: values } : {}),
      start: !booleanOption(args, 'no-start'),
    });
    if (booleanOption(args, 'json')) {
      io.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stdout.write(
      `${paint(io.stdout, 32, 'installed')} ${status.name} ${status.version} (${status.digest}): ${status.state}, serving ${status.domains.join(', ')}\n`,
    );
    if (status.lastError) io.stdout.write(`${paint(io.stdout, 33, 'last error:')} ${status.lastError}\n`);
    if (config && status.state === 'running') {
      const domain = status.domains[0] ?? '';
      io.stdout.write(`try: curl -H 'Host: ${domain}' ${localUrl(config.ingress.listen, false)}/\n`);
    }
    return EXIT_OK;
  },
};

export const hostUninstallCommand: Command = {
  name: 'host uninstall',
  summary: 'stop a capsule on a running host and remove it, over the signed control API',
  usage: 'host uninstall <capsule> --key <registrar key> (--config <host.toml> | --url <control API>)',
  description: `
Removes the capsule and its domains from the host, and its component when no other
installation uses it. Its stored data (keyvalue, SQL, buckets) stays on the host's backends:
moving a capsule to another host exports it first (spec/host-api.md section 5.11,
spec/snapshot.md).

${CONTROL_HELP}

Example:
  stratum host uninstall hello --config host.toml --key operator-key.json`,
  maxPositionals: 1,
  options: { ...CONTROL_OPTIONS },
  async run(args, io) {
    const name = args.positionals[0];
    if (!name) throw usageError('say which capsule: stratum host uninstall <capsule>', 'Run `stratum host status` to list them.');
    const { client } = await connectControl(args);
    await client.uninstall(name);
    io.stdout.write(`${paint(io.stdout, 32, 'uninstalled')} ${name}\n`);
    return EXIT_OK;
  },
};
