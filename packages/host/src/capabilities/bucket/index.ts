import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseSize, StratumError, silentLogger } from '@stratum/core';
import { nearest } from '@stratum/manifest/nearest';
import { BackendCache } from '../backend-cache.ts';
import type { BackendCheck } from '../backend-check.ts';
import { type BackendPlace, openForInstance } from '../backend-failure.ts';
import type { Capability, ConfigureContext } from '../contract.ts';
import { notGranted } from '../granted-labels.ts';
import type { SnapshotSource } from '../snapshot-lines.ts';
import { directoryBucket } from './backends/directory.ts';
import { parseS3Location, s3ClientSettings } from './backends/s3-location.ts';
import { bucketAsyncImports, bucketImports } from './bindings.ts';
import { exportBucket, importBucket } from './snapshot.ts';
import type { BucketBackend, BucketLimits, ObjectBucket } from './types.ts';

/**
 * Object storage: `stratum:bucket`. Each label the manifest grants gets the backend host.toml
 * names for it (`[bucket.<label>] type = "s3"`, `location = "s3://bucket/prefix"`), or a local
 * directory. Locations, endpoints and credentials stay in the host: the guest sees labels only.
 */
export const BUCKET_BACKEND_KEYS: Record<string, readonly string[]> = {
  directory: ['location', 'max_size', 'max_object_size'],
  s3: ['location', 'endpoint', 'region', 'access_key_id', 'secret_access_key', 'force_path_style', 'max_size', 'max_object_size'],
};

export interface BucketLabelSettings {
  type: 'directory' | 's3';
  /** A directory (absolute path) or an `s3://` location. */
  location?: string;
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle?: boolean;
  limits: Partial<BucketLimits>;
}

export interface BucketSettings {
  labels: Record<string, BucketLabelSettings>;
}

function configError(problems: string[]): StratumError {
  return new StratumError('HOST_CONFIG_INVALID', 'host.toml: the [bucket] backends are not valid', {
    details: problems,
    hint: `Each [bucket.<label>] takes type = "directory" or "s3" and that backend's keys: ${Object.entries(BUCKET_BACKEND_KEYS)
      .map(([type, keys]) => `${type}: ${keys.join(', ')}`)
      .join('; ')}.`,
  });
}

function size(value: unknown, where: string, key: string, problems: string[]): number | undefined {
  if (value === undefined) return undefined;
  try {
    return typeof value === 'number' ? value : parseSize(String(value));
  } catch {
    problems.push(`${where} ${key} = ${JSON.stringify(value)} is not a size such as "1gb"`);
    return undefined;
  }
}

/** Validates host.toml's `[bucket.*]` tables; unknown keys are errors, with a did-you-mean. */
export function parseBucketHostConfig(hostConfig: unknown): Record<string, BucketLabelSettings> {
  if (hostConfig === undefined || hostConfig === null) return {};
  if (typeof hostConfig !== 'object' || Array.isArray(hostConfig)) throw configError(['[bucket] must be a table of labels']);
  const problems: string[] = [];
  const labels: Record<string, BucketLabelSettings> = {};
  for (const [label, raw] of Object.entries(hostConfig as Record<string, unknown>)) {
    const where = `[bucket.${label}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push(`${where} must be a table`);
      continue;
    }
    const table = raw as Record<string, unknown>;
    const type = table.type;
    if (typeof type !== 'string' || !(type in BUCKET_BACKEND_KEYS)) {
      const guess = typeof type === 'string' ? nearest(type, Object.keys(BUCKET_BACKEND_KEYS)) : undefined;
      problems.push(`${where} type = ${JSON.stringify(type)} is not a bucket backend${guess ? ` (did you mean "${guess}"?)` : ''}`);
      continue;
    }
    const allowed = BUCKET_BACKEND_KEYS[type] ?? [];
    for (const key of Object.keys(table)) {
      if (key === 'type' || allowed.includes(key)) continue;
      const guess = nearest(key, allowed);
      problems.push(`${where} unknown key "${key}" for type "${type}"${guess ? ` (did you mean "${guess}"?)` : ''}`);
    }
    const settings: BucketLabelSettings = { type: type as BucketLabelSettings['type'], limits: {} };
    const location = table.location;
    if (type === 'directory' && location !== undefined) {
      let path: string | undefined;
      try {
        path = typeof location === 'string' && location.startsWith('file:') ? fileURLToPath(location) : undefined;
      } catch {
        path = undefined;
      }
      if (path === undefined || !isAbsolute(path)) problems.push(`${where} location must be a file:/// URL of a directory`);
      else settings.location = path;
    }
    if (type === 's3') {
      try {
        parseS3Location(String(location));
        settings.location = String(location);
      } catch {
        problems.push(`${where} location must be s3://<bucket>[/<prefix>]`);
      }
      if (table.endpoint !== undefined) {
        if (typeof table.endpoint !== 'string' || !/^https?:\/\//.test(table.endpoint))
          problems.push(`${where} endpoint must be an http(s):// URL`);
        else settings.endpoint = table.endpoint;
      }
      for (const [key, field] of [
        ['region', 'region'],
        ['access_key_id', 'accessKeyId'],
        ['secret_access_key', 'secretAccessKey'],
      ] as const) {
        const value = table[key];
        if (value === undefined) continue;
        if (typeof value !== 'string' || value === '') problems.push(`${where} ${key} must be a string`);
        else settings[field] = value;
      }
      if ((table.access_key_id === undefined) !== (table.secret_access_key === undefined)) {
        problems.push(`${where} give both access_key_id and secret_access_key, or neither (to use the environment's credentials)`);
      }
      if (table.force_path_style !== undefined) {
        if (typeof table.force_path_style !== 'boolean') problems.push(`${where} force_path_style must be true or false`);
        else settings.forcePathStyle = table.force_path_style;
      }
    }
    const maxSize = size(table.max_size, where, 'max_size', problems);
    if (maxSize !== undefined) settings.limits.maxBucketBytes = maxSize;
    const maxObject = size(table.max_object_size, where, 'max_object_size', problems);
    if (maxObject !== undefined) settings.limits.maxObjectBytes = maxObject;
    labels[label] = settings;
  }
  if (problems.length > 0) throw configError(problems);
  return labels;
}

function configure(context: ConfigureContext) {
  if (context.imports.length === 0) return { settings: { labels: {} } };
  const granted = context.manifest.capabilities.bucket;
  if (granted.length === 0) {
    throw new StratumError('CAPABILITY_NOT_GRANTED', `${context.capsule} imports stratum:bucket but its manifest grants no bucket`, {
      details: context.imports.map((name) => `import ${name}`),
      hint: 'Add bucket = ["default"] under [capabilities] in stratum.toml.',
    });
  }
  const configured = parseBucketHostConfig(context.hostConfig);
  const labels: Record<string, BucketLabelSettings> = {};
  for (const label of granted) labels[label] = configured[label] ?? { type: 'directory', limits: {} };
  const plan: { settings: BucketSettings; asyncImports?: string[] } = { settings: { labels } };
  if (Object.values(labels).some((settings) => settings.type !== 'directory')) plan.asyncImports = bucketAsyncImports(context.imports);
  return plan;
}

const backends = new BackendCache<BucketBackend>();

/** A backend for one label's settings (not cached: the caller closes it). S3's is loaded only when used (see BackendCache). */
export async function createBucketBackend(
  settings: BucketLabelSettings,
  dataDir: string,
  logger: ConfigureContext['logger'],
): Promise<BucketBackend> {
  let backend: BucketBackend;
  if (settings.type === 's3') {
    const { s3Bucket } = await import('./backends/s3.ts');
    backend = s3Bucket({
      location: settings.location ?? '',
      limits: settings.limits,
      logger,
      indexDir: dataDir,
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      ...(settings.region ? { region: settings.region } : {}),
      ...(settings.accessKeyId ? { accessKeyId: settings.accessKeyId } : {}),
      ...(settings.secretAccessKey ? { secretAccessKey: settings.secretAccessKey } : {}),
      ...(settings.forcePathStyle !== undefined ? { forcePathStyle: settings.forcePathStyle } : {}),
    });
  } else {
    backend = directoryBucket({ root: settings.location ?? dataDir, limits: settings.limits });
  }
  return backend;
}

function backendFor(settings: BucketLabelSettings, dataDir: string, logger: ConfigureContext['logger']): Promise<BucketBackend> {
  // The data directory counts for S3 too: it holds the backend's index (`indexDir`).
  const identity = JSON.stringify([settings, dataDir]);
  return backends.get(identity, () => createBucketBackend(settings, dataDir, logger));
}

/** A label's backend as a failed start and the host's check name it. */
function bucketPlace(label: string, settings: BucketLabelSettings, dataDir: string): BackendPlace {
  const where =
    settings.type === 's3' ? `${settings.location}${settings.endpoint ? ` via ${settings.endpoint}` : ''}` : (settings.location ?? dataDir);
  return { capability: 'bucket', noun: 'bucket', label, type: settings.type, where, secrets: [settings.secretAccessKey] };
}

/**
 * The host's check of each S3 table (backend-check.ts): a HeadBucket of the location's bucket,
 * which needs the same permission as the listings the backend makes (s3:ListBucket).
 */
export function bucketBackendChecks(hostConfig: unknown): BackendCheck[] {
  return Object.entries(parseBucketHostConfig(hostConfig)).flatMap(([label, settings]) =>
    settings.type === 's3'
      ? [
          {
            place: bucketPlace(label, settings, ''),
            load: () => import('@aws-sdk/client-s3'),
            probe: (signal) => probeS3(settings, signal),
          },
        ]
      : [],
  );
}

async function probeS3(settings: BucketLabelSettings, signal: AbortSignal): Promise<void> {
  const { HeadBucketCommand, S3Client } = await import('@aws-sdk/client-s3');
  const { bucket } = parseS3Location(settings.location ?? '');
  const client = new S3Client({ ...s3ClientSettings(settings), maxAttempts: 1 });
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: signal });
  } catch (error) {
    // A HEAD's answer has no body: the SDK's error is a bare status ("NotFound", "UnknownError"),
    // and kept as no cause, since a failure is told by its innermost cause.
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404) throw new Error(`NoSuchBucket: the bucket "${bucket}" does not exist`);
    if (status === 403) throw new Error(`AccessDenied: the credentials are refused, or may not list the bucket "${bucket}"`);
    if (status === 301)
      throw new Error(`PermanentRedirect: the bucket "${bucket}" is in another region than "${settings.region ?? 'us-east-1'}"`);
    throw error;
  } finally {
    client.destroy();
  }
}

const bucket: Capability<BucketSettings> = {
  name: 'bucket',
  interfaces: ['stratum:bucket/objects'],
  configure,
  async prepare(context) {
    const buckets = new Map<string, ObjectBucket>();
    for (const [label, settings] of Object.entries(context.settings.labels)) {
      const place = bucketPlace(label, settings, context.dataDir);
      const opened = await openForInstance(place, async () => {
        const backend = await backendFor(settings, context.dataDir, context.logger);
        return backend.open({ capsule: context.capsule, label });
      });
      buckets.set(label, opened);
    }
    const onQuota = (message: string) => context.quotaExceeded(`quota: ${message}`);
    const onNotGranted = (label: string) =>
      context.log('warn', notGranted('bucket', 'buckets', 'no-such-bucket', label, Object.keys(context.settings.labels)), 'host');
    return { imports: bucketImports({ buckets, logger: context.logger, onQuota, onNotGranted }) };
  },
  shutdown: () => backends.closeAll(),
};

export default bucket;

/** Where a capsule's bucket state is, for a snapshot taken on the host's main thread. */
export interface BucketStateOptions {
  /** host.toml's [bucket] section, as `configure` gets it. */
  hostConfig: unknown;
  /** The capsule's directory for this capability: `<dataDir>/capsules/<capsule>/bucket`. */
  dataDir: string;
  capsule: string;
  label: string;
  logger?: ConfigureContext['logger'];
}

function stateBackend(options: BucketStateOptions) {
  const settings = parseBucketHostConfig(options.hostConfig)[options.label] ?? { type: 'directory' as const, limits: {} };
  return createBucketBackend(settings, options.dataDir, options.logger ?? silentLogger);
}

/**
 * A capsule's bucket state under one label as a portable snapshot (spec/snapshot.md), read from
 * whichever backend host.toml binds the label to. For migration: the control API's export.
 */
export async function* exportBucketState(options: BucketStateOptions): AsyncIterable<string> {
  const backend = await stateBackend(options);
  try {
    yield* exportBucket(await backend.open({ capsule: options.capsule, label: options.label }), options.label);
  } finally {
    await backend.close();
  }
}

/** Replaces a capsule's bucket state under one label with a snapshot's, on whichever backend host.toml binds it to. */
export async function importBucketState(
  options: BucketStateOptions,
  source: SnapshotSource,
): Promise<{ records: number; skipped: number }> {
  const backend = await stateBackend(options);
  try {
    return await importBucket(await backend.open({ capsule: options.capsule, label: options.label }), source);
  } finally {
    await backend.close();
  }
}
