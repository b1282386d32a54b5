import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { parseDuration, parseSize, publicKeyFromRaw, StratumError } from '@stratum/core';
import {
  formatPath,
  formatProblem,
  locate,
  type ManifestProblem,
  nearest,
  schemaErrors,
  tomlSyntaxProblem,
  unitHint,
} from '@stratum/manifest';
import type { ErrorObject } from 'ajv/dist/2020.js';
import { type AST, getStaticTOMLValue, parseTOML } from 'toml-eslint-parser';
import { addressRanges } from '../address-ranges.ts';
import { validate as validateHostConfigShape } from './host-config-v1.validate.generated.js';
import type { BackendConfig, HostConfig, HostLimits, ListenAddress, OutboundConfig, TrustedRegistrar } from './types.ts';

/** The host.toml JSON Schema, the single source of truth for its shape. */
export const hostConfigSchemaUrl = new URL('../../../../spec/host-config/host-config-v1.schema.json', import.meta.url);
export const hostConfigSchema = JSON.parse(readFileSync(hostConfigSchemaUrl, 'utf8')) as Record<string, unknown>;

export const DEFAULT_INGRESS_LISTEN = '0.0.0.0:8080';
export const DEFAULT_CONTROL_LISTEN = '127.0.0.1:7070';
export const DEFAULT_CONTROL_MAX_BODY = 64 * 1024 * 1024;
/** A full default bucket (1 GiB) as a snapshot, base64 and all, with room to spare. */
export const DEFAULT_CONTROL_MAX_STATE_BODY = 4 * 1024 ** 3;
export const DEFAULT_METERING_FLUSH_MS = 10_000;
/** How often a host checks the links of the domains it serves again: the default TTL of a link record. */
export const DEFAULT_LINK_RECHECK_MS = 300_000;
const MAX_CONFIG_BYTES = 1024 * 1024;

type Segment = string | number;

/** One problem in host.toml, with where it is (lines and columns count from 1). */
export type HostConfigProblem = ManifestProblem;

/** Thrown for an invalid host.toml; `problems` lists every problem found, with its position. */
export class HostConfigError extends StratumError {
  readonly problems: readonly HostConfigProblem[];

  constructor(file: string, problems: HostConfigProblem[]) {
    const first = problems[0];
    super(
      'HOST_CONFIG_INVALID',
      problems.length === 1 && first
        ? `${file} is not a valid host configuration: ${first.message}`
        : `${file} has ${problems.length} problems`,
      { details: problems.map(formatProblem), hint: 'Fix each line above; host.toml is described in spec/host-config/README.md.' },
    );
    this.problems = problems;
  }
}

interface ShapeProblem {
  path: Segment[];
  message: string;
}

/**
 * Parses and validates the text of a host.toml. Relative paths resolve against `baseDir`
 * (the file's directory).
 *
 * @example
 * const config = parseHostConfig(text, '/etc/stratum/host.toml');
 * config.control.listen; // { host: '127.0.0.1', port: 7070 }
 * @throws HostConfigError naming the file, line, column and key of every problem.
 */
export function parseHostConfig(
  text: string,
  file = 'host.toml',
  baseDir = dirname(resolve(file)),
  options: ParseOptions = {},
): HostConfig {
  if (text.length > MAX_CONFIG_BYTES) {
    throw new HostConfigError(file, [
      { file, line: 1, column: 1, path: '', message: `the file is ${text.length} bytes; at most ${MAX_CONFIG_BYTES}` },
    ]);
  }
  let ast: AST.TOMLProgram;
  let raw: Record<string, unknown>;
  try {
    ast = parseTOML(text);
    raw = getStaticTOMLValue(ast) as Record<string, unknown>;
  } catch (error) {
    throw new HostConfigError(file, [{ file, path: '', ...tomlSyntaxProblem(error, text) }]);
  }
  if (options.partial) {
    // The tables a host needs to run and `stratum dev` does not read: a dev config may be only
    // its [limits] or a store table.
    raw.stratum ??= 1;
    raw.host ??= { name: 'dev.localhost', key: 'unused-by-dev.key', data: '.stratum' };
    // A host must trust a registrar; dev takes no control requests, so a key nobody holds.
    raw.registrars ??= { 'unused-by-dev': { key: 'A'.repeat(43) } };
  }
  const place = ({ path, message }: ShapeProblem): HostConfigProblem => ({ file, ...locate(ast, path), path: formatPath(path), message });
  const shape = checkShape(raw);
  const problems = shape.map(place);
  if (problems.length === 0) {
    const { config, problems: semantic } = normalise(raw, file, baseDir);
    if (config && semantic.length === 0) return { ...config, capabilityPositions: capabilityPositions(ast, raw) };
    problems.push(...semantic.map(place));
  } else {
    // The rest of the file is checked too, without what the shape check refused: every problem
    // is reported at once (the spec says so), not one kind a run at a time.
    problems.push(...semanticBeside(raw, shape, file, baseDir).map(place));
  }
  problems.sort((a, b) => a.line - b.line || a.column - b.column);
  throw new HostConfigError(file, problems);
}

/** Where each capability table and each key in it is written (`HostConfig.capabilityPositions`). */
function capabilityPositions(ast: AST.TOMLProgram, raw: Record<string, unknown>): Record<string, string> {
  const positions: Record<string, string> = {};
  const at = (path: string[]) => {
    const { line, column } = locate(ast, path);
    positions[path.join('.')] = `${line}:${column}`;
  };
  for (const kind of ['keyvalue', 'sql', 'bucket', 'outbound']) {
    const tables = raw[kind];
    if (typeof tables !== 'object' || tables === null) continue;
    at([kind]);
    for (const [label, table] of Object.entries(tables)) {
      at([kind, label]);
      if (typeof table === 'object' && table !== null) for (const key of Object.keys(table)) at([kind, label, key]);
    }
  }
  return positions;
}

export interface ParseOptions {
  /**
   * For `stratum dev --config`: the tables only a running host needs (`stratum`, [host],
   * [registrars]) may be left out.
   */
  partial?: boolean;
}

/** Reads and parses a host.toml file. */
export async function loadHostConfig(path: string, options: ParseOptions = {}): Promise<HostConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new StratumError('HOST_CONFIG_NOT_FOUND', `cannot read ${path}`, {
      details: [code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : String(error)],
      hint: 'Pass the host configuration with --config <host.toml>, or make one with `stratum host init` (spec/host-config/README.md lists every key).',
      cause: error,
    });
  }
  return parseHostConfig(text, path, dirname(resolve(path)), options);
}

function checkShape(raw: Record<string, unknown>): ShapeProblem[] {
  // TOML integers beyond 2^53 come back as bigint, and dates as Date; the schema knows neither.
  const value = JSON.parse(JSON.stringify(raw, (_key, item) => (typeof item === 'bigint' ? Number(item) : item))) as unknown;
  const problems: ShapeProblem[] = [];
  const seen = new Set<string>();
  for (const error of schemaErrors(validateHostConfigShape, value)) {
    const problem = describeError(error);
    if (!problem) continue;
    const key = `${formatPath(problem.path)}\u0000${problem.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push(problem);
  }
  return problems;
}

function pointerToPath(pointer: string): Segment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^(0|[1-9][0-9]*)$/.test(part) ? Number(part) : part));
}

const tableName = (path: readonly Segment[]) => (path.length === 0 ? 'the top level' : `[${formatPath(path)}]`);

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'a table';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a float';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return String(value);
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean (true or false)',
  array: 'an array',
  object: 'a table',
};

function describeError(error: ErrorObject): ShapeProblem | undefined {
  const path = pointerToPath(error.instancePath);
  const where = formatPath(path);
  const params = error.params as Record<string, unknown>;
  const schema = error.parentSchema as { description?: string; properties?: Record<string, unknown> } | undefined;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const known = Object.keys(schema?.properties ?? {});
      const guess = nearest(key, known);
      const value = (error.data as Record<string, unknown>)[key];
      const noun = value !== null && typeof value === 'object' && !Array.isArray(value) ? 'table' : 'key';
      const suggestion = guess ? `; did you mean "${guess}"?` : known.length > 0 ? ` (known: ${known.join(', ')})` : '';
      return { path: [...path, key], message: `unknown ${noun} "${key}" in ${tableName(path)}${suggestion}` };
    }
    case 'required': {
      const key = String(params.missingProperty);
      if (path.length === 0 && key === 'stratum')
        return { path, message: 'missing "stratum = 1" at the top: the host configuration spec version' };
      if (path.length === 0) return { path, message: `missing required table [${key}]` };
      return { path, message: `${tableName(path)} is missing required key "${key}"` };
    }
    case 'dependentRequired':
      return {
        path,
        message: `${tableName(path)} has ${String(params.property)} but not ${String(params.missingProperty)}; give both or neither`,
      };
    case 'type': {
      return {
        path,
        message: `${where} must be ${TYPE_NAMES[String(params.type)] ?? String(params.type)}, not ${describeValue(error.data)}${unitHint(error, where)}`,
      };
    }
    case 'const':
      if (where === 'stratum')
        return { path, message: `stratum must be 1 (the host configuration version this host reads), not ${JSON.stringify(error.data)}` };
      return { path, message: `${where} must be ${JSON.stringify(params.allowedValue)}` };
    case 'pattern':
      // propertyNames reports the pattern of the name and then its own error; keep the latter.
      if (error.schemaPath.includes('propertyNames')) return undefined;
      return {
        path,
        message: `${where} ${describeValue(error.data)} is not valid: ${schema?.description ?? `it must match ${String(params.pattern)}`}`,
      };
    case 'propertyNames': {
      const name = String(params.propertyName);
      return {
        path: [...path, name],
        message: `${tableName(path)} has an invalid name "${name}": names are lowercase letters, digits, hyphens and underscores, starting with a letter`,
      };
    }
    case 'minLength':
      return { path, message: `${where} must not be empty` };
    case 'maxLength':
      if (error.schemaPath.includes('propertyNames')) return undefined;
      return { path, message: `${where} is too long: at most ${String(params.limit)} characters` };
    case 'minProperties':
      return { path, message: `${tableName(path)} needs at least ${String(params.limit)} entry` };
    case 'maxProperties':
      return { path, message: `${tableName(path)} has too many entries: at most ${String(params.limit)}` };
    case 'minimum':
    case 'maximum':
      return {
        path,
        message: `${where} must be ${error.keyword === 'minimum' ? 'at least' : 'at most'} ${String(params.limit)}, not ${JSON.stringify(error.data)}`,
      };
    default:
      return { path, message: `${where || 'the configuration'} ${error.message ?? 'is not valid'}` };
  }
}

function parseAddress(text: string, path: Segment[], problems: ShapeProblem[]): ListenAddress {
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(text.slice(colon + 1));
  if (port > 65535) problems.push({ path, message: `${formatPath(path)} has port ${port}; ports go up to 65535` });
  return { host, port };
}

/** Converts units, resolves paths and decodes keys: what the schema cannot check. */
/**
 * The problems `normalise` finds in `raw` once the values the shape check refused are taken out,
 * leaving out any about those values or the tables that held them. Best effort: what normalise
 * cannot read without those values is left for the next run.
 */
function semanticBeside(raw: Record<string, unknown>, shape: readonly ShapeProblem[], file: string, baseDir: string): ShapeProblem[] {
  const pruned = structuredClone(raw);
  const removed: string[] = [];
  for (const { path } of shape) {
    if (path.length === 0) return [];
    let parent: unknown = pruned;
    for (const segment of path.slice(0, -1)) parent = (parent as Record<Segment, unknown> | undefined)?.[segment];
    if (typeof parent === 'object' && parent !== null) delete (parent as Record<Segment, unknown>)[path.at(-1) as Segment];
    removed.push(formatPath(path));
  }
  const related = (path: readonly Segment[]) => {
    const text = formatPath(path);
    return removed.some(
      (gone) => text === gone || text.startsWith(`${gone}.`) || text.startsWith(`${gone}[`) || gone.startsWith(`${text}.`),
    );
  };
  try {
    return normalise(pruned, file, baseDir).problems.filter((problem) => !related(problem.path));
  } catch {
    return [];
  }
}

function normalise(raw: Record<string, unknown>, file: string, baseDir: string): { config?: HostConfig; problems: ShapeProblem[] } {
  // Every cast below is safe: the value has passed the schema.
  const problems: ShapeProblem[] = [];
  const host = raw.host as { name: string; key: string; data: string };
  const ingress = (raw.ingress ?? {}) as {
    listen?: string;
    trusted_proxies?: string[];
    max_connections?: number;
    max_connections_per_client?: number;
  };
  const control = (raw.control ?? {}) as {
    listen?: string;
    tls_cert?: string;
    tls_key?: string;
    max_body?: string;
    max_state_body?: string;
  };
  const limits = (raw.limits ?? {}) as Partial<Record<'memory' | 'cpu' | 'timeout' | 'request_body' | 'response_body' | 'idle', string>> &
    Partial<Record<'concurrency' | 'queue' | 'outbound_requests' | 'log_lines', number>>;
  const instances = (raw.instances ?? {}) as { max?: number; waiting_per_capsule?: number };
  const metering = (raw.metering ?? {}) as { flush_interval?: string };
  const discovery = (raw.discovery ?? {}) as { verify_links?: boolean; resolver?: string; recheck?: string };
  const registrarTables = raw.registrars as Record<string, { key: string; domain?: string; description?: string; operator?: boolean }>;

  const ingressListen = parseAddress(ingress.listen ?? DEFAULT_INGRESS_LISTEN, ['ingress', 'listen'], problems);
  const controlListen = parseAddress(control.listen ?? DEFAULT_CONTROL_LISTEN, ['control', 'listen'], problems);
  const trustedProxies = ingress.trusted_proxies ?? [];
  trustedProxies.forEach((range, index) => {
    try {
      addressRanges([range]);
    } catch {
      problems.push({
        path: ['ingress', 'trusted_proxies', index],
        message: `ingress.trusted_proxies[${index}] "${range}" is not an address range; write a CIDR range such as "10.8.0.0/24"`,
      });
    }
  });

  const hostLimits: HostLimits = {};
  if (limits.memory !== undefined) hostLimits.memoryBytes = parseSize(limits.memory);
  if (limits.cpu !== undefined) hostLimits.cpuMsPerRequest = parseDuration(limits.cpu);
  if (limits.timeout !== undefined) hostLimits.timeoutMs = parseDuration(limits.timeout);
  if (limits.concurrency !== undefined) hostLimits.concurrency = limits.concurrency;
  if (limits.queue !== undefined) hostLimits.queue = limits.queue;
  if (limits.request_body !== undefined) hostLimits.requestBodyBytes = parseSize(limits.request_body);
  if (limits.response_body !== undefined) hostLimits.responseBodyBytes = parseSize(limits.response_body);
  if (limits.outbound_requests !== undefined) hostLimits.outboundRequests = limits.outbound_requests;
  if (limits.idle !== undefined) hostLimits.idleMs = parseDuration(limits.idle);
  if (limits.log_lines !== undefined) hostLimits.logLinesPerSecond = limits.log_lines;
  if (hostLimits.memoryBytes !== undefined && hostLimits.memoryBytes < 64 * 1024) {
    problems.push({ path: ['limits', 'memory'], message: 'limits.memory must be at least 64kib, one WebAssembly page' });
  }
  for (const key of ['cpu', 'timeout'] as const) {
    if (limits[key] !== undefined && parseDuration(limits[key]) < 1)
      problems.push({ path: ['limits', key], message: `limits.${key} must be at least 1ms` });
  }
  if (discovery.resolver !== undefined) {
    const { host: resolverHost } = parseAddress(discovery.resolver, ['discovery', 'resolver'], problems);
    if (isIP(resolverHost) === 0) {
      problems.push({
        path: ['discovery', 'resolver'],
        message: `discovery.resolver is ${discovery.resolver}; give the DNS server's IP address and port`,
      });
    }
  }
  const recheckMs = discovery.recheck === undefined ? DEFAULT_LINK_RECHECK_MS : parseDuration(discovery.recheck);
  if (recheckMs < 1000) problems.push({ path: ['discovery', 'recheck'], message: 'discovery.recheck must be at least 1s' });
  const flushIntervalMs = metering.flush_interval === undefined ? DEFAULT_METERING_FLUSH_MS : parseDuration(metering.flush_interval);
  if (flushIntervalMs < 10)
    problems.push({ path: ['metering', 'flush_interval'], message: 'metering.flush_interval must be at least 10ms' });

  const registrars: TrustedRegistrar[] = [];
  const seenKeys = new Map<string, string>();
  for (const [name, table] of Object.entries(registrarTables)) {
    try {
      const jwk = publicKeyFromRaw(table.key);
      const kid = jwk.kid as string;
      const other = seenKeys.get(kid);
      if (other !== undefined) {
        problems.push({ path: ['registrars', name, 'key'], message: `registrars.${name}.key is the same key as registrars.${other}.key` });
        continue;
      }
      seenKeys.set(kid, name);
      registrars.push({
        name,
        key: { ...jwk, kid },
        ...(table.domain !== undefined ? { domain: table.domain.toLowerCase() } : {}),
        ...(table.description !== undefined ? { description: table.description } : {}),
        ...(table.operator === true ? { operator: true as const } : {}),
      });
    } catch {
      problems.push({
        path: ['registrars', name, 'key'],
        message: `registrars.${name}.key is not an Ed25519 public key: 32 bytes in unpadded base64url`,
      });
    }
  }

  const backends = (kind: 'keyvalue' | 'sql' | 'bucket') => {
    const tables = (raw[kind] ?? {}) as Record<string, BackendConfig>;
    return Object.fromEntries(Object.entries(tables).map(([label, table]) => [label, { ...table }]));
  };

  if (problems.length > 0) return { problems };
  const maxBodyBytes = control.max_body === undefined ? DEFAULT_CONTROL_MAX_BODY : parseSize(control.max_body);
  const maxStateBytes = control.max_state_body === undefined ? DEFAULT_CONTROL_MAX_STATE_BODY : parseSize(control.max_state_body);
  return {
    problems,
    config: {
      file,
      name: host.name.toLowerCase(),
      keyFile: resolve(baseDir, host.key),
      dataDir: resolve(baseDir, host.data),
      ingress: {
        listen: ingressListen,
        trustedProxies,
        ...(ingress.max_connections !== undefined ? { maxConnections: ingress.max_connections } : {}),
        ...(ingress.max_connections_per_client !== undefined ? { maxConnectionsPerClient: ingress.max_connections_per_client } : {}),
      },
      control: {
        listen: controlListen,
        ...(control.tls_cert !== undefined && control.tls_key !== undefined
          ? { tls: { certFile: resolve(baseDir, control.tls_cert), keyFile: resolve(baseDir, control.tls_key) } }
          : {}),
        maxBodyBytes,
        maxStateBytes,
      },
      limits: hostLimits,
      instances: {
        ...(instances.max !== undefined ? { max: instances.max } : {}),
        ...(instances.waiting_per_capsule !== undefined ? { waitingPerCapsule: instances.waiting_per_capsule } : {}),
      },
      metering: { flushIntervalMs },
      discovery: {
        verifyLinks: discovery.verify_links ?? true,
        ...(discovery.resolver !== undefined ? { resolver: discovery.resolver } : {}),
        recheckMs,
      },
      registrars,
      capabilities: {
        keyvalue: backends('keyvalue'),
        sql: backends('sql'),
        bucket: backends('bucket'),
        ...(raw.outbound !== undefined ? { outbound: { ...(raw.outbound as OutboundConfig) } } : {}),
      },
    },
  };
}
