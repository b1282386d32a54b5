import { createHash } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import {
  type Ed25519PrivateJwk,
  errorMessage,
  isStratumError,
  jwkThumbprint,
  type Logger,
  publicPart,
  readKeyFile,
  releaseVersion,
  StratumError,
  signEd25519,
  silentLogger,
} from '@stratum/core';
import { type BackendCheckRun, type BackendSections, changedBackendTables, startBackendChecks } from '../capabilities/backend-check.ts';
import { parseBucketHostConfig } from '../capabilities/bucket/index.ts';
import { parseKeyValueHostConfig } from '../capabilities/keyvalue/index.ts';
import { parseOutboundHostConfig } from '../capabilities/outbound/index.ts';
import { parseSqlHostConfig, withSqlHost } from '../capabilities/sql/index.ts';
import type { HostConfig, ListenAddress, TrustedRegistrar } from '../config/types.ts';
import { UsageLedger } from '../metering/ledger.ts';
import { createHostRuntime, toOriginForm } from '../runtime.ts';
import type { HostRuntime } from '../runtime-types.ts';
import { createRequestVerifier, NonceStore } from './auth.ts';
import { DEFAULT_CONNECTIONS_PER_CLIENT, defaultMaxConnections, limitConnections, openFileLimit } from './connection-limits.ts';
import { checkDataFormat } from './data-format.ts';
import { lockDataDir } from './data-lock.ts';
import { createLinkChecker, LinkWatch } from './domain-links.ts';
import { InstallationStore } from './installations.ts';
import { CONTROL_BASE_PATH, createControlHandler, type PullComponent, restoreInstallation, STATE_UPLOADS_DIR } from './server.ts';

const version = releaseVersion();

/** A connection that has sent no request this long after it opened is closed (`silentConnectionMs`). */
const FIRST_REQUEST_MS = 15_000;

/**
 * Closes connections that send nothing. Node.js times out a request head that is slow to come
 * (`headersTimeout`) and a kept-alive connection between requests (`keepAliveTimeout`), but not a
 * connection that never sends a byte: 500 of those stayed open for minutes in a walkthrough, and
 * a few hundred used up the process's file descriptors, the control API's too. The timer is the
 * socket's own, cleared once a request comes (its own limits then apply; Node.js sets its
 * keep-alive timer after the response).
 */
function closeSilentConnections(server: Server, ms: number, tls = false): void {
  // Over TLS, the socket requests come on is the TLS one (the handshake has its own timeout).
  server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => socket.setTimeout(ms));
  server.on('request', (request: IncomingMessage) => request.socket.setTimeout(0));
}

/** How long a stopping host waits for its requests in flight before it ends them (systemd's stop timeout is 90 s). */
const SHUTDOWN_DRAIN_MS = 60_000;
/** How long a stopping host leaves open connections whose answers have just been sent. */
const CLOSE_GRACE_MS = 1000;

/**
 * Drains every serving capsule at once: new requests get 503, those in flight finish. At most
 * SHUTDOWN_DRAIN_MS: a capsule whose timeout is longer (up to 15 minutes) would hold the stop
 * past what a service manager waits before it kills the host, ledger unwritten.
 */
async function drainAll(runtime: HostRuntime, logger: Logger): Promise<void> {
  const serving = runtime.status().filter((capsule) => capsule.state === 'running' && capsule.inFlight > 0);
  if (serving.length === 0) return;
  const inFlight = serving.reduce((sum, capsule) => sum + capsule.inFlight, 0);
  logger.info({ requests: inFlight, capsules: serving.length }, 'stopping: waiting for the requests in flight');
  let timer: NodeJS.Timeout | undefined;
  const waited = await Promise.race([
    Promise.all(serving.map((capsule) => runtime.drain(capsule.name).catch(() => undefined))).then(() => 'drained' as const),
    new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), SHUTDOWN_DRAIN_MS);
    }),
  ]);
  clearTimeout(timer);
  if (waited === 'late') {
    const left = runtime.status().reduce((sum, capsule) => sum + capsule.inFlight, 0);
    logger.warn({ requests: left }, `stopping: requests still in flight after ${SHUTDOWN_DRAIN_MS / 1000} s are ended`);
  }
}

/** Capsules with usage this recent when a host starts have their code compiled ahead of their first request. */
const RECENTLY_ACTIVE_MS = 60 * 60 * 1000;

/** What a runtime factory is given: the host's validated config and where the runtime keeps its files. */
export interface RuntimeContext {
  config: HostConfig;
  /** `<dataDir>/runtime`: the runtime's own directory (transpile cache, capsule data). */
  dataDir: string;
  logger: Logger;
}

export type RuntimeFactory = (context: RuntimeContext) => HostRuntime | Promise<HostRuntime>;

/** The real runtime, with host.toml's limits and capability backend tables. */
export const createConfiguredRuntime: RuntimeFactory = ({ config, dataDir, logger }) =>
  createHostRuntime({
    dataDir,
    limits: config.limits,
    ...(config.instances.max !== undefined ? { maxInstances: config.instances.max } : {}),
    ...(config.instances.waitingPerCapsule !== undefined ? { asyncInstancesPerCapsule: config.instances.waitingPerCapsule } : {}),
    logger,
    capabilityConfig: config.capabilities,
    trustedProxies: config.ingress.trustedProxies,
  });

/**
 * Pulls a registry source into `<dataDir>/registry` through @stratum/registry, pinned by the
 * manifest's digest (the component's own sha256, as the manifest spec defines it), and checks
 * the bytes once more before the runtime sees them.
 */
export function registryPuller(cacheDir: string, logger: Logger = silentLogger, host?: string): PullComponent {
  return async (reference, digest) => {
    // Loaded by the first pull: a host whose capsules come uploaded never needs the registry client.
    const { pullComponent } = await import('@stratum/registry');
    // The host's name goes into its errors: a registry it cannot reach is reached from here, not from the registrar.
    const pulled = await pullComponent({ reference, digest, cacheDir, logger, ...(host !== undefined ? { host } : {}) });
    const bytes = await readFile(pulled.path);
    // The installation store keeps the bytes it installs: a copy here would stay for good, one
    // per version ever pulled (the registry client's cache never forgets), and a later pull of
    // the same digest just downloads it again.
    await rm(pulled.path, { force: true });
    const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (actual !== digest) {
      throw new StratumError('DIGEST_MISMATCH', `${reference} holds another component than the manifest pins`, {
        details: [`manifest: ${digest}`, `pulled: ${actual}`],
        hint: "Push the component the manifest names, or update the manifest's [source] digest.",
      });
    }
    return bytes;
  };
}

export interface StartHostOptions {
  /** Default: {@link createConfiguredRuntime}. */
  createRuntime?: RuntimeFactory;
  logger?: Logger;
  /** Pulls registry-sourced components; default: {@link registryPuller} under `<dataDir>/registry`. `false`: installs must upload. */
  pullComponent?: PullComponent | false;
  /** The identity key, when the caller already holds it; default: read from `config.keyFile`. */
  identityKey?: Ed25519PrivateJwk;
  /** How long a connection may stay open without sending a request (ingress and control API). Default 15 s. */
  silentConnectionMs?: number;
  /** How long each backend in host.toml has to answer the check after the start or a reload. Default 5 s. */
  backendCheckMs?: number;
}

export interface RunningHost {
  config: HostConfig;
  runtime: HostRuntime;
  ledger: UsageLedger;
  /** The ingress URL, with the port actually bound. */
  ingressUrl: URL;
  /** The control API's base URL (`http://127.0.0.1:7070/v1`), with the port actually bound. */
  controlUrl: URL;
  /** Installations brought back from the data directory at start, and those that failed. */
  restored: { name: string; error?: string }[];
  /** The checks of served domains' links (`[discovery] verify_links`), when on. */
  links?: LinkWatch;
  /**
   * Applies host.toml read again (SIGHUP): its `[registrars]` at once, for the next request, so
   * that a registrar is trusted or no longer trusted without stopping every capsule. Any other
   * table that changed is named in `restartNeeded`, and takes effect only at the next start.
   */
  reload(next: HostConfig): HostReload;
  close(): Promise<void>;
}

/** What a reload changed: registrars by name, and the tables that wait for a restart. */
export interface HostReload {
  added: string[];
  removed: string[];
  changed: string[];
  restartNeeded: string[];
  /**
   * The installations of each removed registrar, by its name (none listed for one without any).
   * They stay, serving as before: only an operator's key can drive or uninstall them now.
   */
  leftBehind: Record<string, string[]>;
  /**
   * The installations of each registrar whose name now comes with another key (changed in place,
   * or taken out and added again): installations belong to a registrar's name in host.toml, so
   * the new key drives them.
   */
  newKey: Record<string, string[]>;
}

/** The tables of host.toml a reload cannot apply, by the HostConfig member they become. */
const RESTART_TABLES: Record<string, (config: HostConfig) => unknown> = {
  host: (config) => [config.name, config.keyFile, config.dataDir],
  ingress: (config) => config.ingress,
  control: (config) => config.control,
  limits: (config) => config.limits,
  instances: (config) => config.instances,
  metering: (config) => config.metering,
  discovery: (config) => config.discovery,
  outbound: (config) => config.capabilities.outbound,
};

/**
 * The store tables (`keyvalue.cache`) a reload added, removed or changed: each by name, so that an
 * operator who changed one password is not told every capability's tables changed.
 */
function changedStoreTables(running: HostConfig, next: HostConfig): string[] {
  const changed: string[] = [];
  for (const capability of ['keyvalue', 'sql', 'bucket'] as const) {
    const before = running.capabilities[capability] ?? {};
    const after = next.capabilities[capability] ?? {};
    for (const label of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
      if (JSON.stringify(before[label]) !== JSON.stringify(after[label])) changed.push(`${capability}.${label}`);
    }
  }
  return changed;
}

function reloadRegistrars(
  registrars: TrustedRegistrar[],
  running: HostConfig,
  next: HostConfig,
  installations: ReadonlyMap<string, string | undefined>,
): HostReload {
  const before = new Map(registrars.map((registrar) => [registrar.name, JSON.stringify(registrar)]));
  const after = new Map(next.registrars.map((registrar) => [registrar.name, JSON.stringify(registrar)]));
  const result: HostReload = {
    added: [...after.keys()].filter((name) => !before.has(name)),
    removed: [...before.keys()].filter((name) => !after.has(name)),
    changed: [...after.keys()].filter((name) => before.has(name) && before.get(name) !== after.get(name)),
    restartNeeded: [
      ...Object.entries(RESTART_TABLES)
        .filter(([, part]) => JSON.stringify(part(running)) !== JSON.stringify(part(next)))
        .map(([table]) => table),
      ...changedStoreTables(running, next),
    ],
    leftBehind: {},
    newKey: {},
  };
  const of = (registrar: string) =>
    [...installations]
      .filter(([, owner]) => owner === registrar)
      .map(([name]) => name)
      .sort();
  for (const registrar of result.removed) {
    const names = of(registrar);
    if (names.length > 0) result.leftBehind[registrar] = names;
  }
  const keyOf = (list: readonly TrustedRegistrar[], name: string) => list.find((one) => one.name === name)?.key.x;
  for (const registrar of [...result.added, ...result.changed]) {
    if (keyOf(registrars, registrar) === keyOf(next.registrars, registrar)) continue;
    const names = of(registrar);
    if (names.length > 0) result.newKey[registrar] = names;
  }
  // In place: the request verifier, the control API and the link checks all read this array.
  registrars.splice(0, registrars.length, ...next.registrars);
  return result;
}

/**
 * Starts a whole host from its config: the runtime, every installation kept in the data
 * directory, the usage ledger, the HTTP ingress and the signed control API.
 *
 * @example
 * const host = await startHost(await loadHostConfig('host.toml'), { createRuntime, logger });
 * console.log(`ingress on ${host.ingressUrl}, control API on ${host.controlUrl}`);
 */
export async function startHost(config: HostConfig, options: StartHostOptions = {}): Promise<RunningHost> {
  const logger = options.logger ?? silentLogger;
  checkCapabilityConfig(config);
  const identityKey = options.identityKey ?? (await readKeyFile(config.keyFile));
  // A PostgreSQL database and schema_prefix are one host's: its sql stores claim them for this key.
  const capabilities = withSqlHost(config.capabilities, { key: jwkThumbprint(identityKey), name: config.name });
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const runtimeDir = join(config.dataDir, 'runtime');
  await mkdir(runtimeDir, { recursive: true });

  if (config.discovery.verifyLinks) {
    for (const registrar of config.registrars.filter((one) => one.domain === undefined)) {
      logger.warn(
        { registrar: registrar.name },
        `registrar "${registrar.name}" has no domain in host.toml: no domain link can name it, so it can start capsules only on names under localhost, test, example and invalid ([discovery] in spec/host-config/README.md)`,
      );
    }
  }
  if (!config.registrars.some((registrar) => registrar.operator)) {
    // A host.toml from before keys were scoped: its operator's key is a registrar like any other.
    logger.warn(
      { registrars: config.registrars.map((registrar) => registrar.name) },
      "no registrar in host.toml is marked operator = true: no key reads the usage ledger or drives the capsules other registrars installed; add operator = true under the operator's [registrars.<name>] (spec/host-api.md section 3.3)",
    );
  }
  /** host.toml's [registrars], replaced in place by a reload. */
  const registrars: TrustedRegistrar[] = [...config.registrars];
  const lock = lockDataDir(config.dataDir, config.name, { logger, flushIntervalMs: config.metering.flushIntervalMs });
  const store = new InstallationStore(config.dataDir, logger);
  let ledger: UsageLedger | undefined;
  let runtime: HostRuntime;
  try {
    // Before anything in the directory is read or removed: a newer host's may mean otherwise.
    await checkDataFormat(config.dataDir, version);
    // Snapshots a stopped host was receiving: their imports never ran.
    await rm(join(runtimeDir, STATE_UPLOADS_DIR), { recursive: true, force: true });
    await store.init();
    ledger = await UsageLedger.open(join(config.dataDir, 'metering', 'ledger.jsonl'), {
      logger: logger.child({ component: 'metering' }),
    });
    const createRuntime = options.createRuntime ?? createConfiguredRuntime;
    runtime = await createRuntime({
      config: { ...config, capabilities },
      dataDir: runtimeDir,
      logger: logger.child({ component: 'runtime' }),
    });
  } catch (error) {
    await ledger?.close();
    lock.release({ started: false });
    throw error;
  }
  const nonces = new NonceStore(join(config.dataDir, 'control', 'nonces'));
  const pullComponent =
    options.pullComponent === false
      ? undefined
      : (options.pullComponent ?? registryPuller(join(config.dataDir, 'registry'), logger.child({ component: 'registry' }), config.name));
  // The ingress's access log, one line a request at debug (`--log-level debug`). Its path
  // without the query, where tokens travel. Not subscribed at all when debug is off (pino's
  // `isLevelEnabled`), so that a request costs nothing more then.
  const accessLog = (logger as Partial<{ isLevelEnabled(level: string): boolean }>).isLevelEnabled?.('debug') ?? true;
  const unsubscribe = runtime.onRequest((record) => {
    ledger.record(record, store.registrarOf(record.capsule));
    if (!accessLog) return;
    const query = record.path.indexOf('?');
    logger.debug(
      {
        capsule: record.capsule,
        domain: record.domain,
        requestId: record.requestId,
        method: record.method,
        path: query === -1 ? record.path : record.path.slice(0, query),
        status: record.status,
        ms: Math.round((record.wallMs + (record.queuedMs ?? 0)) * 10) / 10,
        cpuMs: record.cpuMs,
        bytesIn: record.bytesIn,
        bytesOut: record.bytesOut,
        ...(record.limit ? { limit: record.limit } : {}),
      },
      'request',
    );
  });
  const flushTimer = setInterval(() => {
    ledger.flush().catch((error: unknown) => {
      // A ledger whose chain does not verify said so once, when its check failed.
      if (error !== ledger.broken) logger.error({ err: error }, 'writing the usage ledger failed');
    });
  }, config.metering.flushIntervalMs);
  flushTimer.unref();

  const checkLinks = config.discovery.verifyLinks
    ? createLinkChecker({ hostName: config.name, ...(config.discovery.resolver ? { resolver: config.discovery.resolver } : {}) })
    : undefined;
  const links = checkLinks
    ? new LinkWatch(
        checkLinks,
        async () =>
          (await store.list())
            .filter((installation) => installation.desired === 'running')
            .map((installation) => {
              const registrar = registrars.find((one) => one.name === installation.registrar);
              return {
                name: installation.name,
                domains: installation.domains,
                capsule: installation.digest,
                ...(registrar ? { registrar } : {}),
              };
            }),
        logger.child({ component: 'links' }),
        (installation, domain, problem) => runtime.domainLink?.(installation, domain, problem),
      )
    : undefined;

  const servers: Server[] = [];
  /** The checks of host.toml's backends still under way: one at the start, one for each reload that changed a table. */
  const backendChecks = new Set<BackendCheckRun>();
  const checkBackends = (sections: BackendSections) => {
    const run = startBackendChecks(sections, {
      logger: logger.child({ component: 'backends' }),
      ...(options.backendCheckMs !== undefined ? { timeoutMs: options.backendCheckMs } : {}),
    });
    backendChecks.add(run);
    void run.done.then(() => backendChecks.delete(run));
  };
  const close = async () => {
    clearInterval(flushTimer);
    links?.stop();
    await Promise.all([...backendChecks].map((run) => run.stop()));
    // Requests in flight finish first, each within its capsule's timeout (README's "Run a host"
    // promises it for SIGTERM; they were cut off): no new connection is taken, idle ones close,
    // a request on one still open gets the 503 of a draining capsule.
    const closed = servers.map((server) => {
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      return done;
    });
    await drainAll(runtime, logger);
    // What is left open (a client that keeps its connection) is closed once the answers have
    // had a moment to leave: closing at once cut the last bytes of a response just ended.
    for (const server of servers) server.closeIdleConnections();
    const grace = setTimeout(() => {
      for (const server of servers) server.closeAllConnections();
    }, CLOSE_GRACE_MS);
    await Promise.all(closed);
    clearTimeout(grace);
    unsubscribe();
    await runtime.close();
    await ledger.close();
    lock.release();
  };

  try {
    const restored = await restore(store, runtime, logger);
    // The capsules that served requests in the hour before this start get their code compiled in
    // the background, and the spare thread loads what they need, so their first requests after
    // a restart do not wait for it (about 100 ms for a JS capsule on a small VM); the others
    // compile when a request comes.
    const serving = new Set(runtime.status().flatMap((capsule) => (capsule.state === 'running' ? [capsule.name] : [])));
    const recent = ledger.activeSince(new Date(Date.now() - RECENTLY_ACTIVE_MS)).filter((name) => serving.has(name));
    runtime
      .prepare?.(recent)
      .catch((error: unknown) => logger.warn({ err: errorMessage(error) }, 'preparing for the first requests failed'));
    const removed = await store.prune();
    if (removed > 0) logger.info({ removed }, 'removed component files no installation uses');
    const pruned = await runtime.pruneCache?.();
    if (pruned) logger.info({ removed: pruned }, 'removed transpile cache entries no installation uses');

    // Not `import { createServer } from 'node:http'`: an ES module import of node:http reads every
    // export, and its WebSocket getters load Node.js's bundled undici (about 50 ms of a fresh
    // host's start here); node:https and its TLS load only for a control API that uses them.
    const { createServer: createHttpServer } = process.getBuiltinModule('node:http');
    const ingress = createHttpServer((request, response) => {
      if (!toOriginForm(request, response)) return;
      if (!links?.answerHeld(request, response)) runtime.handleRequest(request, response);
    });
    const silentMs = options.silentConnectionMs ?? FIRST_REQUEST_MS;
    closeSilentConnections(ingress, silentMs);
    limitConnections(ingress, {
      max: config.ingress.maxConnections ?? defaultMaxConnections(openFileLimit()),
      perClient: config.ingress.maxConnectionsPerClient ?? DEFAULT_CONNECTIONS_PER_CLIENT,
      exempt: config.ingress.trustedProxies,
      logger,
    });
    servers.push(ingress);
    const ingressUrl = await listen(ingress, config.ingress.listen, 'http', 'ingress');

    const handler = createControlHandler({
      name: config.name,
      identity: publicPart(identityKey),
      sign: (data) => signEd25519(identityKey, data),
      version,
      runtime,
      store,
      ledger,
      verify: createRequestVerifier({ audience: config.name, registrars, nonces }),
      maxBodyBytes: config.control.maxBodyBytes,
      maxStateBytes: config.control.maxStateBytes,
      logger: logger.child({ component: 'control' }),
      ...(pullComponent ? { pullComponent } : {}),
      ...(checkLinks && links ? { checkLinks, onLinked: (domains: readonly string[]) => links.linked(domains) } : {}),
      registrars,
      unrestored: new Map(restored.flatMap((item) => (item.error === undefined ? [] : [[item.name, item.error] as const]))),
      state: { capabilityConfig: capabilities, dataDir: runtimeDir, logger: logger.child({ component: 'state' }) },
    });
    let control: Server;
    if (config.control.tls) {
      const [cert, key] = await Promise.all([readFile(config.control.tls.certFile), readFile(config.control.tls.keyFile)]);
      control = process
        .getBuiltinModule('node:https')
        .createServer({ cert, key }, handler as (request: IncomingMessage, response: ServerResponse) => void);
    } else {
      control = createHttpServer(handler);
    }
    closeSilentConnections(control, silentMs, config.control.tls !== undefined);
    servers.push(control);
    const loopback = /^(127\.|::1$|localhost$)/.test(config.control.listen.host);
    if (!config.control.tls && !loopback) {
      logger.warn(
        { listen: `${config.control.listen.host}:${config.control.listen.port}` },
        'the control API speaks plain HTTP on a non-loopback address: install requests carry secrets; set [control] tls_cert and tls_key, or put a TLS proxy in front',
      );
    }
    const controlUrl = new URL(
      CONTROL_BASE_PATH,
      await listen(control, config.control.listen, config.control.tls ? 'https' : 'http', 'control API'),
    );
    logger.info(
      {
        ingress: ingressUrl.href,
        control: controlUrl.href,
        capsules: restored.length,
        registrars: config.registrars.map((r) => r.name),
      },
      'host started',
    );
    // The first pass now, in the background: installations restored from before are checked too.
    links?.recheck().catch((error: unknown) => logger.error({ err: errorMessage(error) }, 'checking domain links failed'));
    links?.start(config.discovery.recheckMs);
    // Once the host serves, in the background: a backend that does not answer stops nothing else.
    checkBackends(config.capabilities);
    let backendsRead = config.capabilities;
    const reload = (next: HostConfig) => {
      const result = reloadRegistrars(registrars, config, next, store.registrars());
      // A changed table waits for a restart, which it should not fail: checked now, while the operator is there to read it.
      try {
        checkCapabilityConfig(next);
        checkBackends(changedBackendTables(backendsRead, next.capabilities));
      } catch (error) {
        if (!isStratumError(error)) throw error;
        logger.warn({ problems: error.details }, `${error.message}: the next start refuses it`);
      }
      backendsRead = next.capabilities;
      return result;
    };
    return { config, runtime, ledger, ingressUrl, controlUrl, restored, ...(links ? { links } : {}), reload, close };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}

/**
 * `line:column:` of what a capability's settings error names: `[keyvalue.default] unknown key
 * "urll"` is that key's line, `[sql.default] url must be ...` the url's, else the table's; empty
 * when the config was not read from a file.
 */
function placeOf(problem: string, config: HostConfig): string {
  const named = /^\[([a-z]+)(?:\.([^\]]+))?\] (?:unknown key "([^"]+)"|([a-z_]+) )?/.exec(problem);
  const positions = config.capabilityPositions ?? {};
  if (!named?.[1]) return '';
  const table = named[2] === undefined ? named[1] : `${named[1]}.${named[2]}`;
  const key = named[3] ?? named[4];
  const position = (key !== undefined ? positions[`${table}.${key}`] : undefined) ?? positions[table];
  return position === undefined ? '' : `${position}:`;
}

/**
 * Checks host.toml's capability tables with each capability's own parser before anything
 * starts, so that a typo in `[keyvalue.cache]` stops the host at once instead of failing the
 * first install that uses the label.
 */
export function checkCapabilityConfig(config: HostConfig): void {
  const parsers: [(hostConfig: unknown) => unknown, unknown][] = [
    [parseKeyValueHostConfig, config.capabilities.keyvalue],
    [parseSqlHostConfig, config.capabilities.sql],
    [parseBucketHostConfig, config.capabilities.bucket],
    [parseOutboundHostConfig, config.capabilities.outbound],
  ];
  const details: string[] = [];
  for (const [parse, section] of parsers) {
    try {
      parse(section);
    } catch (error) {
      if (!isStratumError(error)) throw error;
      details.push(
        ...(error.details.length > 0 ? error.details : [error.message]).map((line) => `${config.file}:${placeOf(line, config)} ${line}`),
      );
    }
  }
  if (details.length > 0) {
    throw new StratumError('HOST_CONFIG_INVALID', `${config.file} has capability settings this host cannot use`, {
      details,
      hint: 'spec/host-config/README.md lists each backend type and its keys.',
    });
  }
}

/** Installs every kept installation again, one at a time; one that fails is logged and left out. */
async function restore(store: InstallationStore, runtime: HostRuntime, logger: Logger): Promise<{ name: string; error?: string }[]> {
  const out: { name: string; error?: string }[] = [];
  for (const installation of await store.list()) {
    const log = logger.child({ capsule: installation.name });
    try {
      await restoreInstallation(store, runtime, installation);
      out.push({ name: installation.name });
      log.info({ digest: installation.digest, desired: installation.desired }, 'capsule restored');
    } catch (error) {
      out.push({ name: installation.name, error: errorMessage(error) });
      log.error({ err: error }, 'could not restore the capsule; it stays installed on disk and can be installed again');
    }
  }
  // Files that are not records at all (list logged each): failed too, for the operator to remove.
  for (const [name, problem] of store.damaged) out.push({ name, error: problem });
  return out;
}

function listen(server: Server, address: ListenAddress, scheme: 'http' | 'https', what: string): Promise<URL> {
  return new Promise((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      const where = `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
      reject(
        new StratumError('LISTEN_FAILED', `the ${what} cannot listen on ${where}`, {
          details: [
            error.code === 'EADDRINUSE'
              ? 'another process listens there'
              : error.code === 'EADDRNOTAVAIL'
                ? 'that address is not on this machine'
                : error.message,
          ],
          hint: `Change [${what === 'ingress' ? 'ingress' : 'control'}] listen in host.toml, or stop what holds the port.`,
          cause: error,
        }),
      );
    };
    server.once('error', failed);
    server.listen(address.port, address.host, () => {
      server.off('error', failed);
      const bound = server.address() as AddressInfo;
      const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
      resolve(new URL(`${scheme}://${host}:${bound.port}/`));
    });
  });
}
