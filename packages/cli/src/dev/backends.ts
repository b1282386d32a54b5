import { redactUrl, StratumError } from '@stratum/core';
import type { OutboundConfig } from '@stratum/host';
import type { Manifest } from '@stratum/manifest';

export type StoreKind = 'keyvalue' | 'sql' | 'bucket';
export const STORE_KINDS: readonly StoreKind[] = ['keyvalue', 'sql', 'bucket'];

/** One label's backend, in host.toml's shape (`[keyvalue.<label>] type = "redis"`, `url = ...`). */
export interface BackendSetting {
  type: string;
  [setting: string]: unknown;
}

/**
 * A `--backend` flag: `keyvalue=redis://127.0.0.1:6379/0` binds every keyvalue label of every
 * capsule; `keyvalue.cache=nats://127.0.0.1:4222` binds one label.
 */
export interface BackendFlag {
  kind: StoreKind;
  /** Undefined: every label the capsule grants. */
  label?: string;
  backend: BackendSetting;
  /** As typed, for messages. */
  text: string;
}

const SCHEMES: Readonly<Record<string, { type: string; kinds: readonly StoreKind[] }>> = {
  'redis:': { type: 'redis', kinds: ['keyvalue'] },
  'rediss:': { type: 'redis', kinds: ['keyvalue'] },
  'nats:': { type: 'nats', kinds: ['keyvalue'] },
  'postgres:': { type: 'postgres', kinds: ['sql'] },
  'postgresql:': { type: 'postgres', kinds: ['sql'] },
  's3:': { type: 's3', kinds: ['bucket'] },
  'file:': { type: 'directory', kinds: ['bucket'] },
};

/** Query-string settings are text; host.toml's would be numbers and booleans. */
function settingValue(text: string): string | number | boolean {
  if (text === 'true' || text === 'false') return text === 'true';
  return /^\d+$/.test(text) ? Number(text) : text;
}

const LABEL = /^[a-z][a-z0-9_-]{0,62}$/;

function flagError(text: string, message: string): StratumError {
  return new StratumError('USAGE', `--backend ${text}: ${message}`, {
    hint: 'Write --backend <kind>[.<label>]=<url>, for example --backend keyvalue=redis://127.0.0.1:6379/0, --backend sql=postgres://postgres@127.0.0.1:5432/test or --backend bucket=s3://<bucket>?endpoint=http://127.0.0.1:9000&region=us-east-1 or --backend bucket=file:///some/dir.',
  });
}

/**
 * Parses one `--backend` flag. The URL's scheme picks the backend type; an `s3://<bucket>` URL
 * takes the other settings (endpoint, region, ...) from its query string.
 *
 * @example
 * parseBackendFlag('keyvalue=redis://127.0.0.1:6379/0');
 * // { kind: 'keyvalue', backend: { type: 'redis', url: 'redis://127.0.0.1:6379/0' }, text: ... }
 */
export function parseBackendFlag(text: string): BackendFlag {
  const equals = text.indexOf('=');
  if (equals === -1) throw flagError(text, 'it has no "=": say which store, then its URL');
  const target = text.slice(0, equals);
  const value = text.slice(equals + 1);
  const dot = target.indexOf('.');
  const kind = (dot === -1 ? target : target.slice(0, dot)) as StoreKind;
  if (!STORE_KINDS.includes(kind)) throw flagError(text, `"${target}" is not a store kind; use keyvalue, sql or bucket`);
  const label = dot === -1 ? undefined : target.slice(dot + 1);
  if (label !== undefined && !LABEL.test(label))
    throw flagError(text, `"${label}" is not a store label (lowercase letters, digits, - and _)`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw flagError(text, `"${value}" is not a URL`);
  }
  const scheme = SCHEMES[url.protocol];
  if (!scheme) throw flagError(text, `no backend serves ${url.protocol}// URLs (known: ${Object.keys(SCHEMES).join(' ')})`);
  if (!scheme.kinds.includes(kind))
    throw flagError(text, `a ${scheme.type} backend cannot serve ${kind} (it serves ${scheme.kinds.join(', ')})`);
  let backend: BackendSetting;
  if (scheme.type === 's3') {
    if (!url.hostname) throw flagError(text, 'an s3:// URL names the bucket: s3://<bucket>[/<prefix>]?endpoint=...');
    backend = { type: 's3', location: `s3://${url.hostname}${url.pathname === '/' ? '' : url.pathname}` };
    for (const [key, setting] of url.searchParams) backend[key] = settingValue(setting);
  } else if (scheme.type === 'directory') {
    backend = { type: 'directory', location: value };
  } else {
    backend = { type: scheme.type, url: value };
  }
  const flag: BackendFlag = { kind, backend, text };
  if (label !== undefined) flag.label = label;
  return flag;
}

/** The labels a manifest grants, by store kind. */
export function grantedLabels(manifest: Manifest): Record<StoreKind, readonly string[]> {
  return { keyvalue: manifest.capabilities.keyvalue, sql: manifest.capabilities.sql, bucket: manifest.capabilities.bucket };
}

/**
 * The runtime's `capabilityConfig` for one capsule: the host config's tables (`--config`), then
 * each granted label bound by a flag (a flag naming the label wins over one for every label);
 * labels bound by neither get the embedded default.
 */
export function capabilityConfigFor(
  manifest: Manifest,
  flags: readonly BackendFlag[],
  base: Readonly<Partial<Record<StoreKind, Readonly<Record<string, BackendSetting>>>>> = {},
): Record<StoreKind, Record<string, BackendSetting>> {
  const config: Record<StoreKind, Record<string, BackendSetting>> = {
    keyvalue: { ...base.keyvalue },
    sql: { ...base.sql },
    bucket: { ...base.bucket },
  };
  const labels = grantedLabels(manifest);
  for (const kind of STORE_KINDS) {
    for (const label of labels[kind]) {
      const exact = flags.findLast((flag) => flag.kind === kind && flag.label === label);
      const every = flags.findLast((flag) => flag.kind === kind && flag.label === undefined);
      const chosen = exact ?? every;
      if (chosen) config[kind][label] = chosen.backend;
    }
  }
  return config;
}

/** This machine's loopback ranges, which a dev capsule may reach (`outboundConfigFor`). */
export const DEV_LOOPBACK = ['127.0.0.0/8', '::1/128'];

/**
 * The outbound capability's config for dev: the host config's `[outbound]` (`--config`), with
 * this machine's loopback added to the addresses it allows. A host refuses loopback to every
 * capsule, but in dev the capsule is the developer's and the API it calls often runs on
 * localhost; it still reaches only the origins its manifest grants.
 */
export function outboundConfigFor(base: OutboundConfig = {}): OutboundConfig {
  return { ...base, allow_addresses: [...(base.allow_addresses ?? []), ...DEV_LOOPBACK] };
}

/** Flags that name a label no capsule grants: almost certainly a typo. */
export function unusedFlags(flags: readonly BackendFlag[], manifests: readonly Manifest[]): BackendFlag[] {
  return flags.filter(
    (flag) =>
      !manifests.some((manifest) => grantedLabels(manifest)[flag.kind].some((label) => flag.label === undefined || flag.label === label)),
  );
}

const EMBEDDED: Readonly<Record<StoreKind, string>> = {
  keyvalue: 'SQLite (embedded)',
  sql: 'SQLite (embedded)',
  bucket: 'local directory (embedded)',
};

/** One line per granted store: `keyvalue:default -> SQLite (embedded)`. */
export function describeBackends(
  manifest: Manifest,
  config: Record<StoreKind, Record<string, BackendSetting>>,
): { grant: string; backend: string }[] {
  const lines: { grant: string; backend: string }[] = [];
  const labels = grantedLabels(manifest);
  for (const kind of STORE_KINDS) {
    for (const label of labels[kind]) {
      const bound = config[kind][label];
      let backend = EMBEDDED[kind];
      if (bound) {
        const where =
          typeof bound.url === 'string' ? redactUrl(bound.url) : typeof bound.bucket === 'string' ? `bucket ${bound.bucket}` : '';
        backend = `${bound.type}${where ? ` ${where}` : ''}`;
      }
      lines.push({ grant: `${kind}:${label}`, backend });
    }
  }
  for (const origin of manifest.capabilities.outbound) lines.push({ grant: `outbound:${origin}`, backend: 'direct' });
  return lines;
}
