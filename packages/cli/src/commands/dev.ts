import { spawn } from 'node:child_process';
import { booleanOption, type Command, EXIT_FAILURE, EXIT_OK, stringListOption, stringOption, usageError } from '../command.ts';
import { type BackendFlag, parseBackendFlag, unusedFlags } from '../dev/backends.ts';
import type { DevCapsule } from '../dev/capsule.ts';
import { DevOutput } from '../dev/output.ts';
import { VAR_FILE_OPTION, varFlags } from '../dev/vars.ts';
import { leaveIfThreadsStuck } from '../stuck-threads.ts';

/** Port 8800: free on most laptops (8080 is a host's own default, 3000 and 8000 are taken by many dev servers). */
export const DEFAULT_DEV_PORT = 8800;

function parsePort(text: string | undefined): number {
  if (text === undefined) return DEFAULT_DEV_PORT;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535)
    throw usageError(`--port ${text} is not a port number`, 'Use a number from 1 to 65535, or 0 for any free port.');
  return port;
}

/** Opens a URL in the desktop's browser; a machine without one just says so. */
function openInBrowser(url: string, onError: (message: string) => void): void {
  const [command, args] =
    process.platform === 'darwin'
      ? ['open', [url]]
      : process.platform === 'win32'
        ? ['cmd', ['/c', 'start', '', url]]
        : ['xdg-open', [url]];
  const child = spawn(command, args, { stdio: 'ignore', detached: true });
  child.on('error', (error) => onError(`could not open a browser (${command}: ${error.message}); open ${url} yourself`));
  child.unref();
}

export const devCommand: Command = {
  name: 'dev',
  summary: 'run capsules on this machine: build, serve, and rebuild on every change',
  usage:
    'dev [dir...] [--port <n>] [--backend <kind>=<url>] [--config host.toml] [--var [capsule:]name=value ...] [--var-file <file>] [--full-build] [--no-watch] [--open] [--json]',
  description: `
Builds each capsule (when it has JavaScript or TypeScript sources), runs it in the same runtime
a Stratum host uses, and serves it at http://<capsule>.localhost:<port>/ (and, when there is only
one, at http://127.0.0.1:<port>/ and http://localhost:<port>/). State (key-value, SQL, buckets,
builds, the transpile cache) lives in <dir>/.stratum/ and is kept from one run to the next.

On every change to the sources or the manifest it rebuilds and swaps the running version without
dropping a request: the new version starts, takes the traffic, and the old one finishes what it
was serving. A build error or an invalid manifest is shown, and the last good version keeps
serving until the next save fixes it.

A rebuild takes about a second: the code is only bundled (esbuild), and runs on a "dev engine",
a component made once for the interfaces the code imports and kept in ~/.cache/stratum/ (or
$XDG_CACHE_HOME/stratum/) for every project. Importing another interface (a first use of
@stratum/sdk/sql, say) makes a new engine once, about 20 s. One difference from a production
build: the capsule's top-level code runs on each instance's first request, not at build time.
Dev runs it once on the new version before swapping it in (on a runtime of its own, with empty
embedded stores, and without calling fetch), so a top-level throw is shown with where it threw
while the last good version keeps serving.
--full-build makes the production component (componentize-js, as stratum build does, 20 s or
more) on every change instead.

Each request is logged (method, path, status, time, capsule) with the capsule's own log lines in
between; limit hits stand out. An uncaught error shows its message and its frames at the lines
of the sources, not of the bundle. A path that no [http] route of stratum.toml serves is answered
404 with the routes it missed, and logged so, without reaching the capsule (as on a host).

Config values come from --var name=value, or from --var-file, a file of name=value lines that
keeps secrets off the command line. The file is read again at every reload: one in the project
directory is watched like the sources, so an edit to it is served within a second. Without
--var-file, a project whose manifest declares config variables has its .env read that way (as
wrangler reads .dev.vars); --var wins over a line of it. Each line must be a config variable's
lowercase name=value: another tool's line there (NODE_ENV=...) stops dev.

Stores get embedded backends (SQLite, a local directory) unless --backend binds them to a real
service:
  --backend keyvalue=redis://127.0.0.1:6379/0      every keyvalue store of every capsule
  --backend keyvalue.cache=nats://127.0.0.1:4222   only the store labelled "cache"
  --backend sql=postgres://postgres@127.0.0.1:5432/test
  --backend bucket=s3://<bucket>?endpoint=http://127.0.0.1:9000&region=us-east-1
With --config, a host.toml (spec/host-config/README.md) gives the limits and backends a real host
would apply; only its [limits], [instances], store tables, [outbound] and [ingress]
trusted_proxies (a TLS proxy in front of dev) are used, and --backend flags override it. It may hold only those: a
file with just [limits] request_body = "64mib" will do.

An outbound fetch() reaches only the origins the manifest grants ([capabilities] outbound). Unlike
a host, dev lets those reach this machine's loopback (127.0.0.0/8, ::1), where the API a capsule
calls often runs while it is developed: outbound = ["http://localhost:3000"] works in dev, and a
host refuses it unless its [outbound] allow_addresses lists the range.

Ctrl-C stops everything cleanly.

Examples:
  stratum dev examples/counter
  stratum dev examples/counter examples/notes --port 9000
  stratum dev . --backend keyvalue=redis://127.0.0.1:6379/0 --json`,
  options: {
    port: {
      type: 'string',
      short: 'p',
      value: 'n',
      description: `the port to serve on, on loopback (default ${DEFAULT_DEV_PORT}; 0 for any free port)`,
    },
    backend: {
      type: 'string',
      multiple: true,
      value: 'kind[.label]=url',
      description: 'bind stores to a real service instead of the embedded default (repeatable)',
    },
    config: {
      type: 'string',
      value: 'host.toml',
      description: "run with a host's config: its [limits] and its [keyvalue|sql|bucket.<label>] backends",
    },
    var: {
      type: 'string',
      multiple: true,
      value: '[capsule:]name=value',
      description: "a value for a manifest's config variable, for every capsule or one (repeatable)",
    },
    'var-file': VAR_FILE_OPTION,
    'full-build': {
      type: 'boolean',
      description: 'build the production component on every change (slow) instead of bundling for the dev engine',
    },
    'no-watch': { type: 'boolean', description: 'build and serve once; do not rebuild on changes' },
    open: { type: 'boolean', description: 'open the first capsule in the browser once it serves' },
    json: { type: 'boolean', description: 'print one JSON object per line (requests, logs, reloads, errors)' },
  },
  async run(args, io) {
    const dirs = args.positionals.length > 0 ? args.positionals : ['.'];
    const port = parsePort(stringOption(args, 'port'));
    const flags: BackendFlag[] = stringListOption(args, 'backend').map(parseBackendFlag);
    // Read now, so that a bad --var or --var-file stops dev before it starts; each reload reads the files again.
    await varFlags(args);
    const readVars = () => varFlags(args);
    const watching = !booleanOption(args, 'no-watch');
    const configFile = stringOption(args, 'config');
    const { CAPABILITY_MODULES, loadHostConfig } = await import('@stratum/host');
    const { DevCapsule } = await import('../dev/capsule.ts');
    const { startIngress } = await import('../dev/ingress.ts');
    const hostConfig = configFile === undefined ? undefined : await loadHostConfig(configFile, { partial: true });
    const output = new DevOutput(io.stdout, { json: booleanOption(args, 'json'), watching });

    let stop: () => void = () => {};
    const stopped = new Promise<'stop'>((resolve) => {
      stop = () => resolve('stop');
    });
    // A second Ctrl-C leaves at once; a second SIGTERM (a process manager, the launcher passing
    // its own on) is the same stop asked again, and lets the shutdown finish.
    process.once('SIGINT', stop);
    process.on('SIGTERM', stop);

    const capsules: DevCapsule[] = [];
    const ingress = await startIngress(port, () => capsules);
    const shutdown = async () => {
      await Promise.all(capsules.map((capsule) => capsule.close()));
      await ingress.close();
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    };
    try {
      for (const dir of dirs) {
        const capsule = await DevCapsule.open({
          dir,
          alone: dirs.length === 1,
          port: ingress.port,
          flags,
          output,
          ...(hostConfig ? { hostConfig } : {}),
          vars: readVars,
          projectVarFile: stringListOption(args, 'var-file').length === 0,
          fullBuild: booleanOption(args, 'full-build'),
        });
        const twin = capsules.find((other) => other.name === capsule.name);
        if (twin) {
          await capsule.close();
          throw usageError(
            `${dir} and ${twin.shownDir} are both capsule "${capsule.name}"`,
            'Each capsule is served at <name>.localhost, so the names must differ: rename one in its stratum.toml.',
          );
        }
        capsules.push(capsule);
      }
    } catch (error) {
      await shutdown();
      throw error;
    }
    output.setCapsules(capsules.map((capsule) => capsule.name));
    const linked = new Set(CAPABILITY_MODULES.map((module) => module.name));
    for (const flag of flags) {
      if (!linked.has(flag.kind)) output.notice(`--backend ${flag.text} has no effect: this host does not serve ${flag.kind} yet`);
    }
    for (const flag of unusedFlags(
      flags,
      capsules.map((capsule) => capsule.manifest),
    )) {
      output.notice(`--backend ${flag.text} has no effect: no capsule here grants ${flag.kind}${flag.label ? `:${flag.label}` : ''}`);
    }

    // Watching starts before the first build: a save made while it runs, or just after its
    // `started` line (a test edits at once), is built next instead of being missed.
    if (watching) for (const capsule of capsules) capsule.watch();
    const started = Promise.all(capsules.map((capsule) => capsule.reload('starting'))).then(() => 'started' as const);
    if ((await Promise.race([started, stopped])) === 'stop') {
      await shutdown();
      output.stopped(capsules.map((capsule) => capsule.served().stateDir));
      return EXIT_OK;
    }
    if (!watching && capsules.some((capsule) => !capsule.serving)) {
      await shutdown();
      return EXIT_FAILURE;
    }
    output.ready(
      capsules.map((capsule) => capsule.served()),
      { watching, port: ingress.port },
    );
    const first = capsules[0]?.served().urls[0];
    if (booleanOption(args, 'open') && first) openInBrowser(first, (message) => output.notice(message));

    await stopped;
    await shutdown();
    output.stopped(capsules.map((capsule) => capsule.served().stateDir));
    leaveIfThreadsStuck(
      capsules.map((capsule) => capsule.runtime),
      (line) => output.notice(line),
    );
    return EXIT_OK;
  },
};
