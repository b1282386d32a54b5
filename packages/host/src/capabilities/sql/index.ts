import { parseSize, StratumError, silentLogger } from '@stratum/core';
import { nearest } from '@stratum/manifest/nearest';
import { BackendCache } from '../backend-cache.ts';
import type { BackendCheck } from '../backend-check.ts';
import { type BackendPlace, openForInstance } from '../backend-failure.ts';
import type { Capability, ConfigureContext } from '../contract.ts';
import { notGranted } from '../granted-labels.ts';
import type { SnapshotSource } from '../snapshot-lines.ts';
import { sqlAsyncImports, sqlImports } from './bindings.ts';
import { exportSql, importSql } from './snapshot.ts';
import type { SqlBackend, SqlDatabase, SqlHostIdentity, SqlLimits } from './types.ts';

export type { SqlHostIdentity } from './types.ts';

/**
 * Where host.toml's [sql] section carries the host's identity: a symbol, which no TOML can
 * write, so that a host.toml copied to another host does not carry the first host's.
 */
const SQL_HOST = Symbol.for('stratum.sql.host');

/**
 * The capabilities' config with the host's identity on its `sql` section, for the runtime's
 * `capabilityConfig` and the state access alike: a PostgreSQL backend then claims its database
 * and schema_prefix for this host, and refuses one another host claimed.
 *
 * @example
 * const capabilities = withSqlHost(config.capabilities, { key: jwkThumbprint(identityKey), name: config.name });
 */
export function withSqlHost<T extends { sql?: unknown }>(capabilities: T, host: SqlHostIdentity): T {
  const section = capabilities.sql;
  const copy: Record<string | symbol, unknown> =
    typeof section === 'object' && section !== null && !Array.isArray(section) ? { ...section } : {};
  // JSON (a reload's comparison of host.toml's tables) and structuredClone leave a symbol out;
  // a spread copy of the section keeps it.
  copy[SQL_HOST] = { key: host.key, name: host.name };
  return { ...capabilities, sql: copy };
}

/**
 * SQL databases: `stratum:sql`. Each label the manifest grants gets the backend host.toml
 * names for it (`[sql.<label>] type = "postgres"`), or an embedded SQLite file.
 */
export const SQL_BACKEND_KEYS: Record<string, readonly string[]> = {
  sqlite: ['max_size', 'max_rows'],
  postgres: ['url', 'schema_prefix', 'max_connections', 'max_size', 'max_rows'],
};

export interface SqlLabelSettings {
  type: 'sqlite' | 'postgres';
  url?: string;
  schemaPrefix?: string;
  maxConnections?: number;
  limits: Partial<SqlLimits>;
  /** From `withSqlHost`, never from host.toml; postgres only. */
  host?: SqlHostIdentity;
}

export interface SqlSettings {
  labels: Record<string, SqlLabelSettings>;
  /** The manifest's `[resources] timeout`: no statement runs longer (`DatabaseScope.statementTimeoutMs`). */
  timeoutMs?: number;
}

function configError(problems: string[]): StratumError {
  return new StratumError('HOST_CONFIG_INVALID', 'host.toml: the [sql] backends are not valid', {
    details: problems,
    hint: `Each [sql.<label>] takes type = "sqlite" or "postgres" and that backend's keys: ${Object.entries(SQL_BACKEND_KEYS)
      .map(([type, keys]) => `${type}: ${keys.join(', ')}`)
      .join('; ')}.`,
  });
}

/** Validates host.toml's `[sql.*]` tables; unknown keys are errors, with a did-you-mean. */
/**
 * A URL with libpq's `?user=` and `?password=` (`postgres://db/stratum?user=u&password=p`), with
 * them moved into its userinfo, where postgres.js reads them. It takes any other query member
 * for a server setting: it logged in without the password, and sent it to the server as a
 * setting, in the clear where the connection has no TLS. A URL that cannot carry a userinfo (a
 * socket path, several hosts) is left as it is.
 */
export function credentialsInUserinfo(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text;
  }
  if (!url.hostname) return text;
  for (const [param, field] of [
    ['user', 'username'],
    ['password', 'password'],
  ] as const) {
    const value = url.searchParams.get(param);
    if (value === null) continue;
    if (!url[field]) url[field] = encodeURIComponent(value);
    url.searchParams.delete(param);
  }
  return url.href;
}

export function parseSqlHostConfig(hostConfig: unknown): Record<string, SqlLabelSettings> {
  if (hostConfig === undefined || hostConfig === null) return {};
  if (typeof hostConfig !== 'object' || Array.isArray(hostConfig)) throw configError(['[sql] must be a table of labels']);
  const problems: string[] = [];
  const labels: Record<string, SqlLabelSettings> = {};
  for (const [label, raw] of Object.entries(hostConfig as Record<string, unknown>)) {
    const where = `[sql.${label}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push(`${where} must be a table`);
      continue;
    }
    const table = raw as Record<string, unknown>;
    const type = table.type;
    if (typeof type !== 'string' || !(type in SQL_BACKEND_KEYS)) {
      const guess = typeof type === 'string' ? nearest(type, Object.keys(SQL_BACKEND_KEYS)) : undefined;
      problems.push(`${where} type = ${JSON.stringify(type)} is not an SQL backend${guess ? ` (did you mean "${guess}"?)` : ''}`);
      continue;
    }
    const allowed = SQL_BACKEND_KEYS[type] ?? [];
    for (const key of Object.keys(table)) {
      if (key === 'type' || allowed.includes(key)) continue;
      const guess = nearest(key, allowed);
      problems.push(`${where} unknown key "${key}" for type "${type}"${guess ? ` (did you mean "${guess}"?)` : ''}`);
    }
    const settings: SqlLabelSettings = { type: type as SqlLabelSettings['type'], limits: {} };
    if (type === 'postgres') {
      if (typeof table.url !== 'string' || !/^postgres(ql)?:\/\//.test(table.url)) problems.push(`${where} url must be a postgres:// URL`);
      else {
        settings.url = credentialsInUserinfo(table.url);
        const query = new URLSearchParams(settings.url.split('?')[1] ?? '');
        if (query.has('password') || query.has('user'))
          problems.push(
            `${where} url: give the user and password in the URL's userinfo (postgres://user:password@host/db): ?user= and ?password= are read only beside a host name`,
          );
      }
    }
    if (table.schema_prefix !== undefined) {
      if (typeof table.schema_prefix !== 'string' || !/^[a-z][a-z0-9_]{0,19}$/.test(table.schema_prefix)) {
        problems.push(`${where} schema_prefix must be 1 to 20 lowercase letters, digits or _, starting with a letter`);
      } else settings.schemaPrefix = table.schema_prefix;
    }
    if (table.max_connections !== undefined) {
      if (!Number.isSafeInteger(table.max_connections) || (table.max_connections as number) < 1)
        problems.push(`${where} max_connections must be a positive integer`);
      else settings.maxConnections = table.max_connections as number;
    }
    if (table.max_rows !== undefined) {
      if (!Number.isSafeInteger(table.max_rows) || (table.max_rows as number) < 1)
        problems.push(`${where} max_rows must be a positive integer`);
      else settings.limits.maxRows = table.max_rows as number;
    }
    if (table.max_size !== undefined) {
      try {
        settings.limits.maxDatabaseBytes = typeof table.max_size === 'number' ? table.max_size : parseSize(String(table.max_size));
      } catch {
        problems.push(`${where} max_size = ${JSON.stringify(table.max_size)} is not a size such as "256mb"`);
      }
    }
    const host = (hostConfig as { [SQL_HOST]?: SqlHostIdentity })[SQL_HOST];
    if (type === 'postgres' && host) settings.host = { key: host.key, name: host.name };
    labels[label] = settings;
  }
  if (problems.length > 0) throw configError(problems);
  return labels;
}

function configure(context: ConfigureContext) {
  if (context.imports.length === 0) return { settings: { labels: {} } };
  const granted = context.manifest.capabilities.sql;
  if (granted.length === 0) {
    throw new StratumError('CAPABILITY_NOT_GRANTED', `${context.capsule} imports stratum:sql but its manifest grants no database`, {
      details: context.imports.map((name) => `import ${name}`),
      hint: 'Add sql = ["default"] under [capabilities] in stratum.toml.',
    });
  }
  const configured = parseSqlHostConfig(context.hostConfig);
  const labels: Record<string, SqlLabelSettings> = {};
  for (const label of granted) labels[label] = configured[label] ?? { type: 'sqlite', limits: {} };
  const plan: { settings: SqlSettings; asyncImports?: string[] } = {
    settings: { labels, timeoutMs: context.manifest.resources.timeoutMs },
  };
  if (Object.values(labels).some((settings) => settings.type !== 'sqlite')) plan.asyncImports = sqlAsyncImports(context.imports);
  return plan;
}

const backends = new BackendCache<SqlBackend>();

/** A backend for one label's settings (not cached: the caller closes it); its module is loaded only when used (see BackendCache). */
export async function createSqlBackend(
  settings: SqlLabelSettings,
  dataDir: string,
  logger: ConfigureContext['logger'],
): Promise<SqlBackend> {
  if (settings.type === 'postgres') {
    const { postgresSql } = await import('./backends/postgres.ts');
    return postgresSql({
      url: settings.url ?? '',
      limits: settings.limits,
      logger,
      // Connections scale with workers: keep each worker's pool small.
      maxConnections: settings.maxConnections ?? 2,
      ...(settings.schemaPrefix ? { schemaPrefix: settings.schemaPrefix } : {}),
      ...(settings.host ? { host: settings.host } : {}),
    });
  }
  const { sqliteSql } = await import('./backends/sqlite.ts');
  return sqliteSql({ dataDir, limits: settings.limits });
}

function backendFor(settings: SqlLabelSettings, dataDir: string, logger: ConfigureContext['logger']): Promise<SqlBackend> {
  const identity = JSON.stringify([settings, settings.type === 'sqlite' ? dataDir : '']);
  return backends.get(identity, () => createSqlBackend(settings, dataDir, logger));
}

/** A label's backend as a failed start and the host's check name it. */
function sqlPlace(label: string, settings: SqlLabelSettings, dataDir: string): BackendPlace {
  return { capability: 'sql', noun: 'database', label, type: settings.type, where: settings.url ?? dataDir };
}

/**
 * The host's check of each PostgreSQL table (backend-check.ts): a login as the host's user and
 * `SELECT 1`. Not through the backend, whose first open claims the database for this host and
 * makes a capsule's schema and role.
 */
export function sqlBackendChecks(hostConfig: unknown): BackendCheck[] {
  return Object.entries(parseSqlHostConfig(hostConfig)).flatMap(([label, settings]) =>
    settings.type === 'postgres'
      ? [
          {
            place: sqlPlace(label, settings, ''),
            load: () => import('postgres'),
            probe: (signal) => probePostgres(settings.url ?? '', signal),
          },
        ]
      : [],
  );
}

async function probePostgres(url: string, signal: AbortSignal): Promise<void> {
  const { default: postgres } = await import('postgres');
  const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { application_name: 'stratum' } });
  // A login refused after a dead connection is retried by the client without end: only ending it stops that.
  const ending = () => void sql.end({ timeout: 0 }).catch(() => {});
  signal.addEventListener('abort', ending, { once: true });
  try {
    await sql`SELECT 1`;
  } finally {
    signal.removeEventListener('abort', ending);
    await sql.end({ timeout: 0 });
  }
}

const sql: Capability<SqlSettings> = {
  name: 'sql',
  interfaces: ['stratum:sql/database'],
  configure,
  async prepare(context) {
    const databases = new Map<string, SqlDatabase>();
    let synchronous = true;
    for (const [label, settings] of Object.entries(context.settings.labels)) {
      const place = sqlPlace(label, settings, context.dataDir);
      const database = await openForInstance(place, async () => {
        const backend = await backendFor(settings, context.dataDir, context.logger);
        synchronous &&= backend.synchronous;
        const { timeoutMs } = context.settings;
        return backend.open({ capsule: context.capsule, label, ...(timeoutMs !== undefined ? { statementTimeoutMs: timeoutMs } : {}) });
      });
      databases.set(label, database);
    }
    const onQuota = (message: string) => context.quotaExceeded(`quota: ${message}`);
    const onNotGranted = (label: string) =>
      context.log('warn', notGranted('sql', 'sql databases', 'no-such-database', label, Object.keys(context.settings.labels)), 'host');
    return { imports: sqlImports({ databases, logger: context.logger, onQuota, synchronous, onNotGranted }) };
  },
  shutdown: () => backends.closeAll(),
};

export default sql;

/** Where a capsule's sql state is, for a snapshot taken on the host's main thread. */
export interface SqlStateOptions {
  /** host.toml's [sql] section, as `configure` gets it. */
  hostConfig: unknown;
  /** The capsule's directory for this capability: `<dataDir>/capsules/<capsule>/sql`. */
  dataDir: string;
  capsule: string;
  label: string;
  logger?: ConfigureContext['logger'];
}

function stateBackend(options: SqlStateOptions) {
  const settings = parseSqlHostConfig(options.hostConfig)[options.label] ?? { type: 'sqlite' as const, limits: {} };
  return createSqlBackend(settings, options.dataDir, options.logger ?? silentLogger);
}

/**
 * A capsule's sql state under one label as a portable snapshot (spec/snapshot.md), read from
 * whichever backend host.toml binds the label to. For migration: the control API's export.
 */
export async function* exportSqlState(options: SqlStateOptions): AsyncIterable<string> {
  const backend = await stateBackend(options);
  try {
    yield* exportSql(await backend.open({ capsule: options.capsule, label: options.label }), options.label);
  } finally {
    await backend.close();
  }
}

/**
 * Removes a capsule's sql database under one label and what its backend made for it (a file; a
 * schema and its cluster-wide role), on whichever backend host.toml binds it to: for deleting an
 * uninstalled capsule's data, where an empty import left an empty schema and a login role behind.
 */
export async function dropSqlState(options: SqlStateOptions): Promise<void> {
  const backend = await stateBackend(options);
  try {
    await backend.drop({ capsule: options.capsule, label: options.label });
  } finally {
    await backend.close();
  }
}

/** Replaces a capsule's sql state under one label with a snapshot's, on whichever backend host.toml binds it to. */
export async function importSqlState(options: SqlStateOptions, source: SnapshotSource): Promise<{ records: number; skipped: number }> {
  const backend = await stateBackend(options);
  try {
    return await importSql(await backend.open({ capsule: options.capsule, label: options.label }), source);
  } finally {
    await backend.close();
  }
}
