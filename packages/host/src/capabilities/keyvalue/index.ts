import { parseSize, StratumError, silentLogger } from '@stratum/core';
import { nearest } from '@stratum/manifest/nearest';
import { BackendCache } from '../backend-cache.ts';
import type { BackendCheck } from '../backend-check.ts';
import { type BackendPlace, openForInstance } from '../backend-failure.ts';
import type { Capability, ConfigureContext } from '../contract.ts';
import { notGranted } from '../granted-labels.ts';
import type { SnapshotSource } from '../snapshot-lines.ts';
import { keyValueAsyncImports, keyValueImports } from './bindings.ts';
import { exportKeyValue, importKeyValue } from './snapshot.ts';
import type { KeyValueBackend, KeyValueLimits, KeyValueStore } from './types.ts';

/**
 * Key-value stores: `stratum:keyvalue` and `wasi:keyvalue@0.2.0-draft2` from one
 * implementation. Each label the manifest grants gets the backend host.toml names for it
 * (`[keyvalue.<label>] type = "redis"`), or the embedded SQLite store.
 */
export const KEYVALUE_BACKEND_KEYS: Record<string, readonly string[]> = {
  sqlite: ['max_keys', 'max_value_size'],
  redis: ['url', 'key_prefix', 'max_keys', 'max_value_size'],
  nats: ['url', 'bucket_prefix', 'replicas', 'max_keys', 'max_value_size'],
};

export interface KeyValueLabelSettings {
  type: 'sqlite' | 'redis' | 'nats';
  url?: string;
  prefix?: string;
  replicas?: number;
  limits: Partial<KeyValueLimits>;
}

export interface KeyValueSettings {
  labels: Record<string, KeyValueLabelSettings>;
}

function configError(problems: string[]): StratumError {
  return new StratumError('HOST_CONFIG_INVALID', 'host.toml: the [keyvalue] backends are not valid', {
    details: problems,
    hint: `Each [keyvalue.<label>] takes type = "sqlite", "redis" or "nats" and that backend's keys: ${Object.entries(KEYVALUE_BACKEND_KEYS)
      .map(([type, keys]) => `${type}: ${keys.join(', ')}`)
      .join('; ')}.`,
  });
}

/** Validates host.toml's `[keyvalue.*]` tables; unknown keys are errors, with a did-you-mean. */
export function parseKeyValueHostConfig(hostConfig: unknown): Record<string, KeyValueLabelSettings> {
  if (hostConfig === undefined || hostConfig === null) return {};
  if (typeof hostConfig !== 'object' || Array.isArray(hostConfig)) throw configError(['[keyvalue] must be a table of labels']);
  const problems: string[] = [];
  const labels: Record<string, KeyValueLabelSettings> = {};
  for (const [label, raw] of Object.entries(hostConfig as Record<string, unknown>)) {
    const where = `[keyvalue.${label}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push(`${where} must be a table`);
      continue;
    }
    const table = raw as Record<string, unknown>;
    const type = table.type;
    if (typeof type !== 'string' || !(type in KEYVALUE_BACKEND_KEYS)) {
      const guess = typeof type === 'string' ? nearest(type, Object.keys(KEYVALUE_BACKEND_KEYS)) : undefined;
      problems.push(`${where} type = ${JSON.stringify(type)} is not a key-value backend${guess ? ` (did you mean "${guess}"?)` : ''}`);
      continue;
    }
    const allowed = KEYVALUE_BACKEND_KEYS[type] ?? [];
    for (const key of Object.keys(table)) {
      if (key === 'type' || allowed.includes(key)) continue;
      const guess = nearest(key, allowed);
      problems.push(`${where} unknown key "${key}" for type "${type}"${guess ? ` (did you mean "${guess}"?)` : ''}`);
    }
    const settings: KeyValueLabelSettings = { type: type as KeyValueLabelSettings['type'], limits: {} };
    if (type !== 'sqlite') {
      const url = table.url;
      const scheme = type === 'redis' ? /^rediss?:\/\// : /^nats:\/\//;
      if (typeof url !== 'string' || !scheme.test(url))
        problems.push(`${where} url must be a ${type === 'redis' ? 'redis://' : 'nats://'} URL`);
      else settings.url = url;
    }
    const prefix = table.key_prefix ?? table.bucket_prefix;
    if (prefix !== undefined) {
      if (typeof prefix !== 'string' || !/^[A-Za-z0-9_:-]{1,64}$/.test(prefix))
        problems.push(`${where} the prefix must be 1 to 64 of A-Z a-z 0-9 _ : -`);
      else settings.prefix = type === 'nats' ? prefix.replaceAll(':', '_') : prefix;
    }
    if (table.replicas !== undefined) {
      if (table.replicas !== 1 && table.replicas !== 3 && table.replicas !== 5) problems.push(`${where} replicas must be 1, 3 or 5`);
      else settings.replicas = table.replicas;
    }
    if (table.max_keys !== undefined) {
      if (!Number.isSafeInteger(table.max_keys) || (table.max_keys as number) < 1)
        problems.push(`${where} max_keys must be a positive integer`);
      else settings.limits.maxKeys = table.max_keys as number;
    }
    if (table.max_value_size !== undefined) {
      try {
        const bytes = typeof table.max_value_size === 'number' ? table.max_value_size : parseSize(String(table.max_value_size));
        if (bytes < 1024 * 1024) problems.push(`${where} max_value_size must be at least 1mib (the WIT promises it)`);
        else settings.limits.maxValueBytes = bytes;
      } catch {
        problems.push(`${where} max_value_size = ${JSON.stringify(table.max_value_size)} is not a size such as "1mib"`);
      }
    }
    labels[label] = settings;
  }
  if (problems.length > 0) throw configError(problems);
  return labels;
}

function configure(context: ConfigureContext) {
  if (context.imports.length === 0) return { settings: { labels: {} } };
  const granted = context.manifest.capabilities.keyvalue;
  if (granted.length === 0) {
    throw new StratumError('CAPABILITY_NOT_GRANTED', `${context.capsule} imports key-value interfaces but its manifest grants no store`, {
      details: context.imports.map((name) => `import ${name}`),
      hint: 'Add keyvalue = ["default"] under [capabilities] in stratum.toml.',
    });
  }
  const configured = parseKeyValueHostConfig(context.hostConfig);
  const labels: Record<string, KeyValueLabelSettings> = {};
  for (const label of granted) labels[label] = configured[label] ?? { type: 'sqlite', limits: {} };
  const asynchronous = Object.values(labels).some((settings) => settings.type !== 'sqlite');
  const plan: { settings: KeyValueSettings; asyncImports?: string[] } = { settings: { labels } };
  if (asynchronous) plan.asyncImports = keyValueAsyncImports(context.imports);
  return plan;
}

/** Backends live for the worker: one per distinct configuration, shared by the capsule's instances. */
const backends = new BackendCache<KeyValueBackend>();

/** A backend for one label's settings (not cached: the caller closes it); its module is loaded only when used (see BackendCache). */
export async function createKeyValueBackend(
  settings: KeyValueLabelSettings,
  dataDir: string,
  logger: ConfigureContext['logger'],
): Promise<KeyValueBackend> {
  let backend: KeyValueBackend;
  const limits = settings.limits;
  if (settings.type === 'redis') {
    const { redisKeyValue } = await import('./backends/redis.ts');
    backend = redisKeyValue({ url: settings.url ?? '', limits, logger, ...(settings.prefix ? { keyPrefix: settings.prefix } : {}) });
  } else if (settings.type === 'nats') {
    const { natsKeyValue } = await import('./backends/nats.ts');
    backend = natsKeyValue({
      url: settings.url ?? '',
      limits,
      logger,
      ...(settings.prefix ? { bucketPrefix: settings.prefix } : {}),
      ...(settings.replicas ? { replicas: settings.replicas } : {}),
    });
  } else {
    const { sqliteKeyValue } = await import('./backends/sqlite.ts');
    backend = sqliteKeyValue({ dataDir, limits });
  }
  return backend;
}

function backendFor(settings: KeyValueLabelSettings, dataDir: string, logger: ConfigureContext['logger']): Promise<KeyValueBackend> {
  const identity = JSON.stringify([settings, settings.type === 'sqlite' ? dataDir : '']);
  return backends.get(identity, () => createKeyValueBackend(settings, dataDir, logger));
}

/** A label's backend as a failed start and the host's check name it. */
function keyValuePlace(label: string, settings: KeyValueLabelSettings, dataDir: string): BackendPlace {
  let where = settings.url ?? dataDir;
  // A NATS user with no password is a token, which masking a URL's password leaves in place.
  const url = settings.type === 'nats' && settings.url ? new URL(settings.url) : undefined;
  if (url?.username && !url.password) {
    url.username = '***';
    where = url.href;
  }
  return { capability: 'keyvalue', noun: 'store', label, type: settings.type, where };
}

/** Opening a store makes nothing on Redis: the host's check reads a key under this scope. */
const CHECK_SCOPE = { capsule: 'stratum-host-check', label: 'check' };

/**
 * The host's check of each Redis and NATS table (backend-check.ts). Redis: the backend's own
 * connection (AUTH, SELECT and ioredis's ready check), then one read. NATS: opening a store would
 * make its bucket, so a connection and JetStream's account info instead.
 */
export function keyValueBackendChecks(hostConfig: unknown): BackendCheck[] {
  return Object.entries(parseKeyValueHostConfig(hostConfig)).flatMap(([label, settings]) =>
    settings.type === 'sqlite'
      ? []
      : [
          {
            place: keyValuePlace(label, settings, ''),
            load: () => (settings.type === 'nats' ? import('./backends/nats.ts') : import('./backends/redis.ts')),
            probe: (signal) => probeKeyValue(settings, signal),
          },
        ],
  );
}

async function probeKeyValue(settings: KeyValueLabelSettings, signal: AbortSignal): Promise<void> {
  if (settings.type === 'nats') {
    const { checkNatsServer } = await import('./backends/nats.ts');
    return checkNatsServer(settings.url ?? '', signal);
  }
  const backend = await createKeyValueBackend(settings, '', silentLogger);
  const closing = () => void backend.close().catch(() => {});
  signal.addEventListener('abort', closing, { once: true });
  try {
    const store = await backend.open(CHECK_SCOPE);
    await store.exists('check');
  } finally {
    signal.removeEventListener('abort', closing);
    await backend.close();
  }
}

const keyvalue: Capability<KeyValueSettings> = {
  name: 'keyvalue',
  interfaces: [
    'stratum:keyvalue/store',
    'stratum:keyvalue/atomics',
    'stratum:keyvalue/batch',
    'wasi:keyvalue/store',
    'wasi:keyvalue/atomics',
    'wasi:keyvalue/batch',
  ],
  configure,
  async prepare(context) {
    const stores = new Map<string, KeyValueStore>();
    let synchronous = true;
    for (const [label, settings] of Object.entries(context.settings.labels)) {
      const place = keyValuePlace(label, settings, context.dataDir);
      const store = await openForInstance(place, async () => {
        const backend = await backendFor(settings, context.dataDir, context.logger);
        synchronous &&= backend.synchronous;
        return backend.open({ capsule: context.capsule, label });
      });
      stores.set(label, store);
    }
    const onQuota = (message: string) => context.quotaExceeded(`quota: ${message}`);
    const onNotGranted = (label: string) =>
      context.log('warn', notGranted('keyvalue', 'keyvalue stores', 'no-such-store', label, Object.keys(context.settings.labels)), 'host');
    return { imports: keyValueImports({ stores, logger: context.logger, onQuota, synchronous, onNotGranted }) };
  },
  shutdown: () => backends.closeAll(),
};

export default keyvalue;

/** Where a capsule's keyvalue state is, for a snapshot taken on the host's main thread. */
export interface KeyValueStateOptions {
  /** host.toml's [keyvalue] section, as `configure` gets it. */
  hostConfig: unknown;
  /** The capsule's directory for this capability: `<dataDir>/capsules/<capsule>/keyvalue`. */
  dataDir: string;
  capsule: string;
  label: string;
  logger?: ConfigureContext['logger'];
}

function stateBackend(options: KeyValueStateOptions) {
  const settings = parseKeyValueHostConfig(options.hostConfig)[options.label] ?? { type: 'sqlite' as const, limits: {} };
  return createKeyValueBackend(settings, options.dataDir, options.logger ?? silentLogger);
}

/**
 * A capsule's keyvalue state under one label as a portable snapshot (spec/snapshot.md), read from
 * whichever backend host.toml binds the label to. For migration: the control API's export.
 */
export async function* exportKeyValueState(options: KeyValueStateOptions): AsyncIterable<string> {
  const backend = await stateBackend(options);
  try {
    yield* exportKeyValue(await backend.open({ capsule: options.capsule, label: options.label }), options.label);
  } finally {
    await backend.close();
  }
}

/** Replaces a capsule's keyvalue state under one label with a snapshot's, on whichever backend host.toml binds it to. */
export async function importKeyValueState(
  options: KeyValueStateOptions,
  source: SnapshotSource,
): Promise<{ records: number; skipped: number }> {
  const backend = await stateBackend(options);
  try {
    return await importKeyValue(await backend.open({ capsule: options.capsule, label: options.label }), source);
  } finally {
    await backend.close();
  }
}
