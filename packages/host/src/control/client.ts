import { createHash } from 'node:crypto';
import { type Ed25519PrivateJwk, type Ed25519PublicJwk, StratumError } from '@stratum/core';
import type { LedgerEntry, LedgerState, Usage } from '../metering/ledger.ts';
import type { CapsuleLogEntry, CapsuleStatus } from '../runtime-types.ts';
import { signControlRequest } from './auth.ts';
import type { InstallBody, KeptConfig } from './server.ts';
import type { StoreLabels } from './stores.ts';

/** `bh` of a body too large to hold: its bytes streamed through SHA-256. */
async function blobHash(blob: Blob): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of blob.stream()) hash.update(chunk);
  return hash.digest('base64url');
}

export interface HostIdentity {
  name: string;
  key: Ed25519PublicJwk;
  api: string;
  version: string;
  startedAt: string;
}

export interface ControlClientOptions {
  /** The control API's base URL, such as `https://host1.example.net:7070/v1` (what discovery's `api=` publishes). */
  url: string | URL;
  /** The registrar's signing key. */
  key: Ed25519PrivateJwk;
  /**
   * The host's name (its host.toml `[host] name`). Left out, it is read once from the host's
   * unauthenticated `<base>/identity`: convenient for an operator's own tools, but a
   * registrar should pass the name it verified through discovery.
   */
  audience?: string;
  fetch?: typeof fetch;
}

export interface InstallOptions {
  name?: string;
  domains: string[];
  /** The stratum.toml text. */
  manifest: string;
  /** The component bytes; leave out for a manifest whose [source] is a registry the host pulls from. */
  component?: Uint8Array;
  config?: Record<string, string>;
  /**
   * Over an installation of the name, keep the value of each variable the new manifest still
   * declares and `config` does not give (spec/host-api.md section 5.1). A host older than this
   * option refuses it (400 INVALID_REQUEST, `/keepConfig: unknown member`) rather than drop them.
   */
  keepConfig?: boolean;
  start?: boolean;
}

export interface UsageResponse {
  capsules: Record<string, Usage>;
  ledger: { entries: number; hash: string };
}

/** A refusal or failure reported by the control API, with its HTTP status. */
export class ControlApiError extends StratumError {
  readonly status: number;
  constructor(status: number, code: string, message: string, details: string[] = [], hint?: string) {
    super(code, message, { details, ...(hint ? { hint } : {}), user: status < 500 });
    this.status = status;
  }
}

/** What a state import answers (spec/host-api.md section 5.11). */
export interface ImportedStateAnswer {
  /** The capability and label imported into, as the request's path named them. */
  capability: string;
  label: string;
  /** The snapshot's records, as its trailer counts them. */
  records: number;
  /** Of those, how many were not stored as the snapshot spec says (keyvalue keys already expired). */
  skipped: number;
}

/**
 * What a call may take beside its arguments: `signal` aborts it (the request, and the reading of
 * its answer), for a caller that bounds how long it waits or is itself interrupted.
 */
export interface CallOptions {
  signal?: AbortSignal;
}

/** What an install found under its name: the data an earlier installation left when it was uninstalled. */
export interface KeptData {
  uninstalledAt: string;
}

/**
 * An installation's status as the answers about one installation give it (spec/host-api.md
 * section 4): `retainedStores`, when present, names the stores earlier installations of the name
 * stored data in that this one's manifest does not grant, which the name still holds.
 */
export type InstallationStatus = CapsuleStatus & { retainedStores?: StoreLabels };

/** What `GET /links` answers (spec/host-api.md section 5.12): what a start would find of the domains' links now. */
export interface LinkCheck {
  /** False when the host serves domains without checking their links (`[discovery] verify_links = false`). */
  checked: boolean;
  /** None when a start would find every domain linked; `lookupFailed` when a DNS lookup failed, and the link may be right. */
  problems: { domain: string; problem: string; lookupFailed?: boolean }[];
  /** With problems: the records to publish. */
  hint?: string;
  /**
   * The registrar domain a link must name for the registrar asking (host.toml's [registrars]
   * `domain` of its key), when the host gives it one: what a registrar writing the links puts in
   * `registrar=`. A host older than this member, or one whose host.toml gives none, leaves it out.
   */
  registrar?: string;
}

export interface ControlClient {
  identity(call?: CallOptions): Promise<HostIdentity>;
  /**
   * The installed capsule's status; `keptData` when the name held the data of an installation
   * uninstalled without deleting it, which this one now serves; with `keepConfig`, `keptConfig`
   * and `droppedConfig` (spec/host-api.md section 5.1).
   */
  install(options: InstallOptions, call?: CallOptions): Promise<InstallationStatus & { keptData?: KeptData } & Partial<KeptConfig>>;
  start(name: string, call?: CallOptions): Promise<InstallationStatus>;
  drain(name: string, call?: CallOptions): Promise<InstallationStatus>;
  stop(name: string, call?: CallOptions): Promise<InstallationStatus>;
  /**
   * With `deleteData`, everything stored under the name goes too (spec/host-api.md section 5.5):
   * resolves to the stores emptied, as `capability/label`; `installed` is false when the name was
   * no longer installed and only the data its uninstalled installation left was deleted.
   */
  uninstall(name: string, call?: CallOptions & { deleteData?: boolean }): Promise<{ deleted?: string[]; installed?: false }>;
  /** What a start of the component `capsule` on `domains`, installed by this registrar, would find of their links now. */
  links(domains: readonly string[], capsule: string, call?: CallOptions): Promise<LinkCheck>;
  /** `runtime` holds the runtime's counters when it keeps any (stratum-host's: transpiles, cacheHits, ...). */
  status(): Promise<{
    host: HostIdentity;
    capsules: CapsuleStatus[];
    runtime?: Record<string, number>;
    metering?: { ledger: LedgerState };
  }>;
  capsule(name: string, call?: CallOptions): Promise<InstallationStatus>;
  usage(query?: { capsule?: string; since?: Date; until?: Date }): Promise<UsageResponse>;
  ledger(after?: number, limit?: number): Promise<{ entries: LedgerEntry[]; head: { entries: number; hash: string } }>;
  /** The signed usage report of a month that has ended (`YYYY-MM`, spec/usage-report.md), as the host sent it: unchecked. */
  usageReport(month: string): Promise<unknown>;
  /** A capsule's state under one capability and label: its snapshot (spec/snapshot.md), streamed as the host writes it. */
  exportState(name: string, capability: string, label: string, call?: CallOptions): Promise<ReadableStream<Uint8Array>>;
  /**
   * Replaces a stopped capsule's state under one capability and label with a snapshot; a large
   * one as a file (`fs.openAsBlob`), which is read twice (hashed for the signature, then sent)
   * and never held whole.
   */
  importState(
    name: string,
    capability: string,
    label: string,
    snapshot: string | Uint8Array | Blob,
    call?: CallOptions,
  ): Promise<ImportedStateAnswer>;
  /**
   * Streams a capsule's log until `signal` aborts or the host ends the stream; a connection that
   * breaks mid-stream throws CONTROL_STREAM_LOST. Each line comes with its id, if the host gives
   * one (spec/host-api.md section 5.8); given the last one as `lastEventId` (`Last-Event-ID`), a
   * stream opened again sends first only the lines after it.
   */
  logs(
    name: string,
    onEntry: (entry: CapsuleLogEntry, id?: string) => void,
    options?: { backlog?: number; signal?: AbortSignal; onLive?: () => void; lastEventId?: string },
  ): Promise<void>;
  /** A signed request to any path relative to the base URL (`/status`), for what the methods above do not cover. */
  request(method: string, path: string, body?: unknown): Promise<Response>;
}

/**
 * A client for a host's control API that signs every request (spec/host-api.md section 3).
 *
 * @example
 * const host = createControlClient({ url: 'http://127.0.0.1:7070', key: await readKeyFile('registrar.key'), audience: 'host1.example.net' });
 * await host.install({ domains: ['hello.example'], manifest: tomlText, component: wasmBytes });
 */
export function createControlClient(options: ControlClientOptions): ControlClient {
  const base = new URL(options.url);
  const prefix = base.pathname.replace(/\/+$/, '');
  const resolve = (path: string) => new URL(`${prefix}${path}`, base.origin);
  const fetchOnce = options.fetch ?? fetch;
  // fetch reports a host it cannot reach as a bare "fetch failed", the reason in its cause.
  const doFetch = async (url: URL, init: RequestInit = {}): Promise<Response> => {
    let response: Response;
    try {
      // Never followed: the API defines no redirect, and one to another server would carry the
      // signed request and its body, secrets included (spec/discovery.md section 4.2.1).
      response = await fetchOnce(url, { ...init, redirect: 'manual' });
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
      const cause = (error as { cause?: unknown }).cause;
      // TLS spoken to a server that answered in plain HTTP: OpenSSL's "wrong version number".
      if (base.protocol === 'https:' && (cause as { code?: unknown } | undefined)?.code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
        const plain = new URL(base.href);
        plain.protocol = 'http:';
        throw new StratumError('CONTROL_NOT_TLS', `the control API at ${base.href} speaks plain HTTP, not HTTPS`, {
          hint: `Give its http:// URL (${plain.href}) if it is on this machine; a host reached over the network should serve its control API over HTTPS ([control] tls_cert and tls_key in its host.toml, or a TLS proxy in front).`,
          cause: error,
        });
      }
      throw new StratumError('CONTROL_UNREACHABLE', `cannot reach the control API at ${base.href}`, {
        details: [cause instanceof Error ? cause.message : error.message],
        hint: 'Is the host running, and is this its address? `stratum host start` prints where its control API listens ([control] listen in host.toml).',
        cause: error,
      });
    }
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel();
      const location = response.headers.get('location');
      throw new StratumError(
        'CONTROL_REDIRECTED',
        `the control API at ${base.href} answered ${response.status}${location ? `, a redirect to ${location.slice(0, 200)}` : ''}: a registrar does not follow one`,
        {
          hint: "Give the control API's own URL (the api= of its _stratum-host record), not one that forwards to it (spec/discovery.md section 4.2.1).",
        },
      );
    }
    return response;
  };
  let audience: Promise<string> | undefined = options.audience === undefined ? undefined : Promise.resolve(options.audience);

  const identity = async (call: CallOptions = {}): Promise<HostIdentity> => {
    const response = await doFetch(resolve('/identity'), call.signal ? { signal: call.signal } : {});
    const answered = (await expectOk(response)) as HostIdentity;
    // Unsigned, so whatever answered there: a name other than the one requests are signed for is
    // not the host meant, and a caller naming the host by it (a move's link switch) would follow it.
    if (options.audience !== undefined && String(answered.name).toLowerCase() !== options.audience.toLowerCase()) {
      throw new StratumError(
        'HOST_IDENTITY_MISMATCH',
        `the control API at ${base.href} says it is host ${String(answered.name).slice(0, 253)}, not ${options.audience}, which requests to it are signed for`,
        { hint: "Check the URL: it should be the control API of the host named (the api= of that host's _stratum-host record)." },
      );
    }
    return answered;
  };
  // Asked once, by the first call that needs it; asked again by the next if that one failed (was aborted).
  const audienceOf = (call: CallOptions): Promise<string> => {
    if (!audience) {
      const asked = identity(call).then((info) => info.name);
      audience = asked;
      asked.catch(() => {
        if (audience === asked) audience = undefined;
      });
    }
    return audience;
  };

  const send = async (
    method: string,
    path: string,
    body: string | Uint8Array | Blob | undefined,
    contentType?: string,
    call: CallOptions = {},
  ): Promise<Response> => {
    const signed = body instanceof Blob ? { bodyHash: await blobHash(body) } : { body: body ?? '' };
    const authorization = await signControlRequest({ key: options.key, audience: await audienceOf(call), method, path, ...signed });
    return doFetch(resolve(path), {
      method,
      headers: { authorization, ...(contentType ? { 'content-type': contentType } : {}) },
      ...(body === undefined ? {} : { body }),
      ...(call.signal ? { signal: call.signal } : {}),
    });
  };
  const request = (method: string, path: string, body?: unknown, call?: CallOptions): Promise<Response> =>
    send(method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? undefined : 'application/json', call);
  const statePath = (name: string, capability: string, label: string) =>
    `/capsules/${encodeURIComponent(name)}/state/${encodeURIComponent(capability)}/${encodeURIComponent(label)}`;

  const call = async <T>(method: string, path: string, body?: unknown, options?: CallOptions): Promise<T> =>
    (await expectOk(await request(method, path, body, options))) as T;
  const capsulePath = (name: string, action?: string) => `/capsules/${encodeURIComponent(name)}${action ? `/${action}` : ''}`;

  return {
    identity,
    request: (method, path, body) => request(method, path, body),
    async install(install, options) {
      const body: InstallBody = {
        domains: install.domains,
        manifest: install.manifest,
        ...(install.name !== undefined ? { name: install.name } : {}),
        ...(install.component ? { component: { base64: Buffer.from(install.component).toString('base64') } } : {}),
        ...(install.config ? { config: install.config } : {}),
        // Sent only when asked for: a host older than the member refuses it, and false is its default.
        ...(install.keepConfig ? { keepConfig: true } : {}),
        ...(install.start !== undefined ? { start: install.start } : {}),
      };
      const answer = await call<{ capsule: InstallationStatus; keptData?: KeptData } & Partial<KeptConfig>>(
        'POST',
        '/capsules',
        body,
        options,
      );
      return {
        ...answer.capsule,
        ...(answer.keptData ? { keptData: answer.keptData } : {}),
        ...(answer.keptConfig ? { keptConfig: answer.keptConfig } : {}),
        ...(answer.droppedConfig ? { droppedConfig: answer.droppedConfig } : {}),
      };
    },
    start: async (name, options) =>
      (await call<{ capsule: InstallationStatus }>('POST', capsulePath(name, 'start'), undefined, options)).capsule,
    drain: async (name, options) =>
      (await call<{ capsule: InstallationStatus }>('POST', capsulePath(name, 'drain'), undefined, options)).capsule,
    stop: async (name, options) =>
      (await call<{ capsule: InstallationStatus }>('POST', capsulePath(name, 'stop'), undefined, options)).capsule,
    async uninstall(name, options = {}) {
      const { deleteData, ...rest } = options;
      const answer = await call<{ uninstalled: string; deleted?: string[]; installed?: boolean }>(
        'DELETE',
        `${capsulePath(name)}${deleteData ? '?data=delete' : ''}`,
        undefined,
        rest,
      );
      return {
        ...(answer.deleted ? { deleted: answer.deleted } : {}),
        ...(answer.installed === false ? { installed: false as const } : {}),
      };
    },
    links(domains, capsule, options) {
      const params = new URLSearchParams([['capsule', capsule], ...domains.map((domain): [string, string] => ['domain', domain])]);
      return call('GET', `/links?${params}`, undefined, options);
    },
    status: () => call('GET', '/status'),
    capsule: async (name, options) => (await call<{ capsule: InstallationStatus }>('GET', capsulePath(name), undefined, options)).capsule,
    usage(query = {}) {
      const params = new URLSearchParams();
      if (query.capsule) params.set('capsule', query.capsule);
      if (query.since) params.set('since', query.since.toISOString());
      if (query.until) params.set('until', query.until.toISOString());
      const search = params.toString();
      return call('GET', `/usage${search ? `?${search}` : ''}`);
    },
    async exportState(name, capability, label, options) {
      const response = await send('GET', statePath(name, capability, label), undefined, undefined, options);
      if (!response.ok || !response.body) await expectOk(response);
      return response.body as ReadableStream<Uint8Array>;
    },
    async importState(name, capability, label, snapshot, options) {
      const response = await send(
        'PUT',
        statePath(name, capability, label),
        snapshot,
        'application/vnd.stratum.snapshot.v1+jsonl',
        options,
      );
      return (await expectOk(response)) as ImportedStateAnswer;
    },
    ledger: (after = 0, limit = 1000) => call('GET', `/usage/ledger?after=${after}&limit=${limit}`),
    usageReport: (month) => call('GET', `/usage/report?month=${encodeURIComponent(month)}`),
    async logs(name, onEntry, logOptions = {}) {
      const path = `${capsulePath(name, 'logs')}?backlog=${logOptions.backlog ?? 100}`;
      const authorization = await signControlRequest({ key: options.key, audience: await audienceOf(logOptions), method: 'GET', path });
      const response = await doFetch(resolve(path), {
        headers: {
          authorization,
          accept: 'text/event-stream',
          ...(logOptions.lastEventId ? { 'last-event-id': logOptions.lastEventId } : {}),
        },
        ...(logOptions.signal ? { signal: logOptions.signal } : {}),
      });
      if (!response.ok || !response.body) await expectOk(response);
      await readEvents(response.body as ReadableStream<Uint8Array>, (event, data, id) => {
        if (event === 'log') onEntry(JSON.parse(data) as CapsuleLogEntry, id === '' ? undefined : id);
        else if (event === 'live') logOptions.onLive?.();
      }).catch((error: unknown) => {
        if (logOptions.signal?.aborted) return;
        // fetch reports a connection closed mid-body as a bare TypeError ("terminated").
        if (!(error instanceof TypeError)) throw error;
        const cause = (error as { cause?: unknown }).cause;
        throw new StratumError('CONTROL_STREAM_LOST', `the host at ${base.href} closed the log stream`, {
          details: [cause instanceof Error ? cause.message : error.message],
          hint: 'The host stopped or restarted, or the connection dropped; `host logs --follow` connects again by itself.',
          cause: error,
        });
      });
    },
  };
}

async function expectOk(response: Response): Promise<unknown> {
  const text = await response.text();
  let value: unknown;
  try {
    value = text ? JSON.parse(text) : {};
  } catch {
    throw new ControlApiError(response.status, 'CONTROL_BAD_RESPONSE', `the host answered ${response.status} with a body that is not JSON`);
  }
  if (response.ok) return value;
  const problem = (value as { error?: { code?: string; message?: string; details?: string[]; hint?: string } }).error ?? {};
  throw new ControlApiError(
    response.status,
    problem.code ?? `HTTP_${response.status}`,
    problem.message ?? `the host answered ${response.status}`,
    problem.details ?? [],
    problem.hint,
  );
}

/**
 * Reads a text/event-stream (the WHATWG HTML "server-sent events" format) event by event, each
 * with the last event ID as that format keeps it ('' for none): the last `id` field so far.
 */
async function readEvents(
  stream: ReadableStream<Uint8Array>,
  onEvent: (event: string, data: string, lastEventId: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event = 'message';
  let data: string[] = [];
  let lastEventId = '';
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline = buffer.search(/\r\n|\r|\n/);
    while (newline >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (data.length > 0) onEvent(event, data.join('\n'), lastEventId);
        event = 'message';
        data = [];
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id' && !value.includes('\0')) lastEventId = value;
      }
      newline = buffer.search(/\r\n|\r|\n/);
    }
  }
}
