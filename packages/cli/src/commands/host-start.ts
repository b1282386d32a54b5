import { relative } from 'node:path';
import type { Writable } from 'node:stream';
import { formatDuration, isStratumError, StratumError } from '@stratum/core';
import type { HostRuntime } from '@stratum/host';
import { type Command, counted, EXIT_FAILURE, EXIT_OK, paint, shellWord, stringOption, usageError } from '../command.ts';
import { leaveIfThreadsStuck } from '../stuck-threads.ts';

const LEVELS: Record<number, [string, number]> = {
  10: ['TRACE', 90],
  20: ['DEBUG', 90],
  30: ['INFO ', 32],
  40: ['WARN ', 33],
  50: ['ERROR', 31],
  60: ['FATAL', 31],
};

/**
 * Turns pino's JSON lines into one readable line each: time, level, message, then the fields as
 * key=value. pino-pretty would do it with more options than a host needs.
 */
export function prettyLogStream(out: NodeJS.WritableStream & { isTTY?: boolean }): { write(line: string): void } {
  return {
    write(line: string) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      const { level, time, msg, pid: _pid, hostname: _hostname, err, ...fields } = entry;
      const [name, colour] = LEVELS[Number(level)] ?? ['?', 0];
      const clock = new Date(Number(time)).toISOString().slice(11, 23);
      const rest = Object.entries(fields)
        .map(([key, value]) => `${key}=${typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value)}`)
        .join(' ');
      const error = err && typeof err === 'object' ? ` ${paint(out, 31, String((err as { message?: unknown }).message ?? ''))}` : '';
      out.write(`${paint(out, 90, clock)} ${paint(out, colour, name)} ${msg ?? ''}${error}${rest ? ` ${paint(out, 90, rest)}` : ''}\n`);
    },
  };
}

/**
 * A host's missing identity key, with the keygen command that writes it where host.toml looks:
 * the one the key reader suggests writes ./host-key.json, which a host.toml elsewhere never reads.
 */
/** A start that failed and was logged as such (JSON logs): nothing more to print. */
class StartLogged extends Error {}

function withKeygenHint(error: unknown, keyFile: string): unknown {
  if (!isStratumError(error) || error.code !== 'KEY_FILE_UNREADABLE' || !error.message.endsWith(keyFile)) return error;
  const fromHere = relative(process.cwd(), keyFile);
  const shown = fromHere.startsWith('..') ? keyFile : fromHere;
  return new StratumError(error.code, error.message, {
    details: error.details,
    hint: `Create it with \`stratum host keygen --out ${shellWord(shown)}\`, or name the host's key file in [host] key.`,
    cause: error,
  });
}

export const hostStartCommand: Command = {
  name: 'host start',
  summary: 'run a Stratum host: the runtime, its HTTP ingress and the signed control API',
  usage: 'host start [--config <host.toml>] [--log-format pretty|json] [--log-level <level>]',
  description: `
Starts stratum-host as host.toml describes (spec/host-config/README.md): it brings back every
capsule installed in its data directory, serves their HTTP traffic on the ingress address, and
takes signed requests from its registrars on the control API (spec/host-api.md). It runs until
SIGINT or SIGTERM, then stops taking requests, lets those in flight finish (each within its
capsule's timeout, all within 60 s) and writes the usage ledger. A second Ctrl-C leaves at once.
SIGHUP (systemctl reload) reads host.toml again and applies its [registrars] at once, so that a
registrar is trusted, or no longer, without stopping the capsules (a removed registrar's
installations keep serving, logged by name, and only an operator key drives them); a change to any other table is
logged as waiting for the next start, and a host.toml with errors is logged and not applied.

Logs go to stderr: readable lines on a terminal, pino's JSON lines otherwise (--log-format).
At --log-level debug they include the access log: a "request" line for each request served,
with its capsule, domain, method, path (without its query), status, time, CPU and bytes.
Once the host is up it prints its listen addresses to stdout, or with JSON logs says so in a
log line ("stratum-host is up", with ingress, control, dataDir, restored and startedMs), so
that a log shipper reads nothing but JSON.

On Linux with glibc, run it with MALLOC_ARENA_MAX=2 and GLIBC_TUNABLES=glibc.malloc.hugetlb=1 in
its environment (README.md, "Run a host"): less memory per instance, faster compiles. glibc
reads them when the process starts; the host logs the ones it misses.

Examples:
  stratum host init /etc/stratum --name h1.example.net
  stratum host start --config /etc/stratum/host.toml
  stratum host start --config host.toml --log-format json --log-level debug`,
  maxPositionals: 0,
  options: {
    config: { type: 'string', short: 'c', value: 'file', description: 'the host configuration (default: ./host.toml)' },
    'log-format': { type: 'string', value: 'format', description: 'pretty (default on a terminal) or json' },
    'log-level': { type: 'string', value: 'level', description: 'trace, debug, info (default), warn or error' },
  },
  async run(args, io) {
    const configPath = stringOption(args, 'config') ?? 'host.toml';
    const format = stringOption(args, 'log-format') ?? (io.stderr.isTTY ? 'pretty' : 'json');
    if (format !== 'pretty' && format !== 'json') throw usageError(`--log-format must be pretty or json, not "${format}"`);
    const level = stringOption(args, 'log-level') ?? 'info';
    if (!['trace', 'debug', 'info', 'warn', 'error'].includes(level))
      throw usageError(`--log-level must be trace, debug, info, warn or error, not "${level}"`);

    const { HostConfigError, loadHostConfig, missingHostEnv, processLibc, startHost } = await import('@stratum/host');
    let config: Awaited<ReturnType<typeof loadHostConfig>>;
    const { pino } = await import('pino');
    try {
      config = await loadHostConfig(configPath);
    } catch (error) {
      const invalid = error instanceof HostConfigError;
      if (format === 'json' && isStratumError(error)) {
        // A log shipper reads one stream of JSON lines: what stops the start is one of them too.
        const early = pino({ level, base: null }, io.stderr as unknown as Writable);
        const about = invalid
          ? { problems: error.details }
          : { ...(error.details.length ? { details: error.details } : {}), ...(error.hint ? { hint: error.hint } : {}) };
        early.fatal({ code: error.code, config: configPath, ...about }, error.message);
        early.flush();
        return EXIT_FAILURE;
      }
      if (!invalid) throw error;
      for (const line of error.details) io.stderr.write(`${line}\n`);
      return EXIT_FAILURE;
    }
    const destination = format === 'json' ? (io.stderr as unknown as Writable) : prettyLogStream(io.stderr);
    const logger = pino({ level, base: { host: config.name } }, destination);
    // Listening from before the start: a stop asked while the host restores its capsules waits
    // for that to finish, then stops it cleanly, instead of killing it halfway.
    let stopping = false;
    let stopAsked = () => {};
    const asked = new Promise<void>((resolve) => {
      stopAsked = resolve;
    });
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        // A second Ctrl-C is someone insisting: leave now, as CLIs do. A second SIGTERM is the
        // same stop asked again (systemd signals every process of the unit, the launcher passes
        // its own on), and must not cut short the shutdown that writes the usage ledger.
        if (signal === 'SIGINT') process.exit(130);
        logger.info({ signal }, 'already stopping');
        return;
      }
      stopping = true;
      logger.info({ signal }, 'stopping');
      stopAsked();
    };
    // SIGHUP reads host.toml again (systemctl reload): Node.js's default for it is to exit.
    let reload: (() => Promise<void>) | undefined;
    let reloadAsked = false;
    const onReload = () => {
      if (stopping) return;
      if (reload) void reload();
      else reloadAsked = true;
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onReload);
    let runtime: HostRuntime | undefined;
    try {
      // performance.now() counts from the process's start: Node.js and the modules are part of
      // what an operator waits for, and the part startHost itself takes is the smaller one.
      const host = await startHost(config, { logger }).catch((error: unknown) => {
        const failure = withKeygenHint(error, config.keyFile);
        if (format === 'json' && isStratumError(failure)) {
          logger.fatal(
            {
              code: failure.code,
              ...(failure.details.length ? { details: failure.details } : {}),
              ...(failure.hint ? { hint: failure.hint } : {}),
            },
            failure.message,
          );
          logger.flush();
          throw new StartLogged();
        }
        throw failure;
      });
      const failed = host.restored.filter((item) => item.error !== undefined);
      const restored = host.restored.length - failed.length;
      const startedMs = performance.now();
      if (format === 'json') {
        // One stream of JSON lines for a log shipper (systemd's journal takes stdout and stderr alike).
        logger.info(
          {
            ingress: host.ingressUrl.href,
            control: host.controlUrl.href,
            dataDir: config.dataDir,
            restored,
            failed: failed.length,
            startedMs,
          },
          'stratum-host is up',
        );
      } else {
        io.stdout.write(
          [
            `${paint(io.stdout, 32, 'stratum-host')} ${config.name} is up in ${formatDuration(startedMs)} (${counted(restored, 'capsule')} restored${failed.length ? `, ${failed.length} failed` : ''})`,
            `  ingress      ${host.ingressUrl.href}`,
            `  control API  ${host.controlUrl.href}`,
            `  data         ${config.dataDir}`,
            '',
          ].join('\n'),
        );
      }
      const missing = missingHostEnv(process.env, processLibc());
      if (missing.length > 0) {
        logger.info(
          { add: missing.join(' ') },
          'glibc\'s malloc is not set up for a host: start it with these in its environment for less memory per instance and faster compiles (README.md, "Run a host")',
        );
      }
      reload = async () => {
        let next: typeof config;
        try {
          next = await loadHostConfig(configPath);
        } catch (error) {
          const problems = error instanceof HostConfigError ? error.details : [String(error)];
          logger.error({ problems }, `${configPath} not reloaded: the host runs on as it was`);
          return;
        }
        const { added, removed, changed, restartNeeded, leftBehind, newKey } = host.reload(next);
        logger.info({ added, removed, changed }, `${configPath} reloaded: its [registrars] apply from the next request`);
        for (const [registrar, installations] of Object.entries(leftBehind)) {
          logger.warn(
            { registrar, installations },
            `registrar "${registrar}" is no longer trusted, and its ${installations.length === 1 ? 'installation keeps' : `${installations.length} installations keep`} serving: ${installations.join(', ')}; only an operator key drives ${installations.length === 1 ? 'it' : 'them'} now (stratum host uninstall <name>, or trust the registrar again)`,
          );
        }
        for (const [registrar, installations] of Object.entries(newKey)) {
          logger.warn(
            { registrar, installations },
            `registrar "${registrar}" now has another key, which drives its ${installations.length === 1 ? 'installation' : `${installations.length} installations`}: ${installations.join(', ')} (installations belong to a registrar's name in host.toml, whatever key it has)`,
          );
        }
        if (restartNeeded.length > 0) {
          logger.warn({ tables: restartNeeded }, `${configPath} changed tables that take effect only when the host starts again`);
        }
      };
      if (reloadAsked) await reload();
      await asked;
      await host.close();
      runtime = host.runtime;
    } catch (error) {
      if (error instanceof StartLogged) return EXIT_FAILURE;
      throw error;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onReload);
    }
    logger.info('stopped');
    logger.flush();
    if (runtime) {
      leaveIfThreadsStuck([runtime], (line) => {
        logger.error(line);
        logger.flush();
      });
    }
    return EXIT_OK;
  },
};
