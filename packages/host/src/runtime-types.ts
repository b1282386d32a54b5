import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Manifest } from '@stratum/manifest';

/**
 * The seam between the runtime (loader, workers, limits, ingress) and what drives it (the
 * signed control API, `stratum dev`, tests). The runtime implements it; everything else uses
 * only this.
 */

/** What to install: a validated manifest and where its component comes from. */
export interface InstallRequest {
  /** The installation's name; unique on the host. Defaults to the capsule's name. */
  name?: string;
  /** Host names (the `Host` header, without port) the ingress routes to this capsule. */
  domains: string[];
  manifest: Manifest;
  /** The directory a local `[source] wasm` path resolves against. */
  baseDir?: string;
  /** The component bytes, when the caller already holds them (an upload over the control API). */
  component?: Uint8Array;
  /**
   * A component the caller keeps in a content-addressed store, whose digest it checked when it
   * stored the bytes (a restarting host restoring its installations). The runtime reads the bytes,
   * and checks them against the digest again, only when its transpile cache does not hold the
   * component: a restart then neither reads nor hashes every component (12 MB for a JS capsule).
   */
  storedComponent?: { digest: string; read(): Promise<Uint8Array> };
  /** Per-installation values for the manifest's config variables (secrets included). */
  config?: Record<string, string>;
  /**
   * The source map (JSON) its stack frames are mapped with, when the component does not carry
   * it: `stratum dev`'s bundle, run by an engine shared between projects. Its `file` names the
   * script as the frames do.
   */
  sourceMap?: string;
  /**
   * Refuse a manifest that asks (`[resources]` keys it gives) for more than the host's limits
   * allow, as a new installation should be (spec/capsule section 7); without it the host's limits
   * cap it, as they do the defaults: an installation restored after the operator lowered them.
   */
  refuseUnmetResources?: boolean;
}

export type CapsuleState = 'installed' | 'running' | 'draining' | 'stopped' | 'failed';

export interface CapsuleStatus {
  name: string;
  domains: string[];
  state: CapsuleState;
  version: string;
  /** The component's sha256 digest, `sha256:<hex>`. */
  digest: string;
  /** Warm instances now. */
  instances: number;
  inFlight: number;
  /** Limit hits by kind since the host started (`cpu`, `timeout`, `memory`, `body`, `concurrency`, `trap`, ...). */
  limitHits: Record<string, number>;
  /** Set while the capsule is backed off after repeated failures: when it may try again. */
  backedOffUntil?: string;
  lastError?: string;
  /** Present while some of its domains are answered 421: their link no longer names this host. */
  unlinkedDomains?: { domain: string; problem: string }[];
  /** The registrar (its name in host.toml) whose installation it is: set by the control API, which knows. */
  registrar?: string;
  /**
   * Set by the control API in its answers about one installation (install, start, drain, stop,
   * `GET /capsules/{name}`), for a registrar that moves it: the manifest's `[capsule] name`, the
   * stores it grants, and which config variables were given values (names only: values never
   * leave the host).
   */
  app?: string;
  stores?: { keyvalue: string[]; sql: string[]; bucket: string[] };
  config?: string[];
}

/** One served request, as metering and the request log see it. */
export interface RequestRecord {
  capsule: string;
  domain: string;
  requestId: string;
  method: string;
  path: string;
  status: number;
  cpuMs: number;
  /** From when the request started running in its instance to its end. */
  wallMs: number;
  /**
   * How long it waited before that, for an instance (in the queue, or behind another request
   * its instance ran first): the client's wait is this and `wallMs`.
   */
  queuedMs?: number;
  /** The instance's linear memory at the end of the request. */
  memoryBytes: number;
  bytesIn: number;
  bytesOut: number;
  /** Which limit ended the request, when one did. */
  limit?: string;
  /**
   * Quota refusals during the request, by capability (`keyvalue`, `sql`, `bucket`). The request
   * went on: the guest got its interface's quota error, never a trap.
   */
  quotaHits?: Record<string, number>;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'critical';

/** One line of a capsule's log: its own output (stdout, stderr, wasi:logging) or the host's about it. */
export interface CapsuleLogEntry {
  time: string;
  capsule: string;
  level: LogLevel;
  /** `stdout`, `stderr`, `wasi:logging` (with its context) or `host`. */
  source: string;
  message: string;
  requestId?: string;
}

export interface LogSubscribeOptions {
  /** How many recent lines to send first. Default: all the runtime keeps. */
  backlog?: number;
  /**
   * The id of the last line the follower has (its stream's `Last-Event-ID`): the recent lines
   * sent first are only those after it (still at most `backlog`). An id this runtime did not
   * give, such as one of a host process before it, leaves them all.
   */
  after?: string;
  /** Called when no line will come any more: the capsule was uninstalled (its last line says so). */
  onEnd?: () => void;
}

export interface StartOptions {
  /**
   * Start no instance now: the first request does. For capsules already proven to start, such
   * as those a restarted host restores, so that a host with many capsules does not start them
   * all at once.
   */
  onDemand?: boolean;
}

export interface HostRuntime {
  install(request: InstallRequest): Promise<CapsuleStatus>;
  /**
   * Starts serving. By default an instance is started at once, so a capsule that cannot be
   * instantiated fails here; with `onDemand` the first request starts it.
   */
  start(name: string, options?: StartOptions): Promise<CapsuleStatus>;
  /** Stops taking new requests (they get 503) and resolves once in-flight requests are done. */
  drain(name: string): Promise<CapsuleStatus>;
  stop(name: string): Promise<CapsuleStatus>;
  uninstall(name: string): Promise<void>;
  status(): CapsuleStatus[];
  /** The HTTP ingress: picks the capsule by the `Host` header. */
  handleRequest(request: IncomingMessage, response: ServerResponse): void;
  onRequest(listener: (record: RequestRecord) => void): () => void;
  /**
   * Recent log lines (a bounded ring per capsule) and then every new one, until unsubscribed or
   * the capsule is uninstalled. It follows the installation by name: after a reinstall, the new
   * version's lines come too, without its backlog. Each line comes with its id, `<epoch>-<n>`
   * (spec/host-api.md section 5.8); a runtime that gives none leaves its followers to tell
   * lines apart by time.
   */
  subscribeLogs(name: string, listener: (entry: CapsuleLogEntry, id?: string) => void, options?: LogSubscribeOptions): () => void;
  /**
   * Gets ready for the first requests of the capsules named, likeliest first (a restarted host's
   * recently busy ones): compiles their code, one at a time and at most as many as the runtime
   * keeps compiled while idle, and has the waiting spare thread load what they need. A runtime
   * with nothing to prepare need not implement it.
   */
  prepare?(names: readonly string[]): Promise<void>;
  /**
   * Trims caches kept on disk for components no installed capsule uses (a host calls it once it
   * has restored its capsules, before it serves); returns how many entries went. A runtime with
   * no such cache need not implement it.
   */
  pruneCache?(): Promise<number>;
  /**
   * A domain of an installation is answered 421 because its link no longer names this host
   * (`problem`), or is served again (none): a line in the capsule's log, where its registrar reads
   * it, and its status's `unlinkedDomains` and `lastError` meanwhile. A runtime may ignore it.
   */
  domainLink?(name: string, domain: string, problem?: string): void;
  close(): Promise<void>;
}
