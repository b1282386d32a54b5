import type { Logger } from '@stratum/core';
import type { Manifest } from '@stratum/manifest';

/**
 * The capability plug-in contract, after Spin's factors: a capability says which WIT interfaces
 * it serves, checks an installation once on the host's main thread (`configure`), and builds
 * the imports of each instance inside the capsule's worker thread (`prepare`). README.md beside
 * this file explains where each step runs and why; read it before writing a capability.
 *
 * A capability module is a file `src/capabilities/<name>/index.ts` whose default export is a
 * {@link Capability}. It is imported twice: by the host's main thread (for `configure`) and by
 * every worker of a capsule that uses it (for `prepare`). So it must do nothing at import time
 * (no connections, no timers), and everything `configure` hands to `prepare` must survive
 * `structuredClone` (it crosses a `postMessage`).
 *
 * @example
 * const clock: Capability<{ offsetMs: number }> = {
 *   name: 'clock',
 *   interfaces: ['example:clock/now'],
 *   configure: (context) => ({ settings: { offsetMs: Number(context.hostConfig ?? 0) } }),
 *   prepare: (context) => ({
 *     imports: { 'example:clock/now': { now: () => BigInt(Date.now() + context.settings.offsetMs) } },
 *   }),
 * };
 * export default clock;
 */
export interface Capability<Settings = unknown> {
  /** Named after its WIT package (`keyvalue`, `sql`, `bucket`); also its key in host.toml. */
  readonly name: string;
  /**
   * The interfaces served, as `namespace:package/interface` without a version (any version the
   * component imports is offered to the capability, which refuses versions it cannot serve).
   */
  readonly interfaces: readonly string[];
  /**
   * Runs on the host's main thread when a capsule is installed (and again when the host
   * restarts). Checks that the manifest grants what the component imports and that the host's
   * runtime config allows it; throws a `StratumError` (user: true, with details and a hint)
   * when not. Returns the settings each instance is prepared from, and which imported
   * functions are asynchronous.
   */
  configure(context: ConfigureContext): CapabilityPlan<Settings> | Promise<CapabilityPlan<Settings>>;
  /**
   * Runs inside the capsule's worker thread, once for each new instance, before it is
   * instantiated. Returns the import objects for the interfaces this capability serves.
   * Backend connections may be opened here and kept in module scope for the next instance of
   * the same worker (each worker imports the module afresh, so module scope is per worker).
   */
  prepare(context: PrepareContext<Settings>): PreparedCapability | Promise<PreparedCapability>;
  /** Runs inside the worker when it is retired gracefully: close what `prepare` opened. */
  shutdown?(): void | Promise<void>;
}

export interface ConfigureContext {
  /** The installation's name (unique on the host): the key for everything the capsule owns. */
  readonly capsule: string;
  readonly domains: readonly string[];
  readonly manifest: Manifest;
  /**
   * The interfaces of this capability that the component imports, with versions, as the
   * component names them (`stratum:keyvalue/store@0.1.0`). Empty when the component imports
   * none: the capability may then return empty settings.
   */
  readonly imports: readonly string[];
  /**
   * The host's runtime config for this capability (host.toml's section for it), passed
   * through untouched. The capability validates it and names the bad key when it is wrong.
   */
  readonly hostConfig: unknown;
  /** The installation's values for the manifest's config variables (secrets included). */
  readonly config: Readonly<Record<string, string>>;
  /**
   * A directory that belongs to this capsule and this capability alone
   * (`<dataDir>/capsules/<capsule>/<capability>`), created on demand by the capability. Embedded
   * backends keep their files here; no other capsule is ever given this path.
   */
  readonly dataDir: string;
  readonly logger: Logger;
}

export interface CapabilityPlan<Settings> {
  /** Handed to `prepare` in every worker; must survive `structuredClone`. */
  readonly settings: Settings;
  /**
   * The imported functions whose implementation returns a promise, in jco's syntax
   * `namespace:package/interface@version#function` (methods as `#[method]resource.name`).
   * When any capability lists one, the component is transpiled with JSPI (`asyncMode: 'jspi'`)
   * and only these imports suspend; otherwise it gets plain synchronous glue. An implementation
   * that returns a promise without being listed here hands the guest a promise object: a bug.
   */
  readonly asyncImports?: readonly string[];
}

export interface PrepareContext<Settings> {
  readonly capsule: string;
  readonly settings: Settings;
  /** Same directory as {@link ConfigureContext.dataDir}. */
  readonly dataDir: string;
  /** Carries the capsule name; add the request id from {@link PrepareContext.currentRequest}. */
  readonly logger: Logger;
  /** The request this instance is serving now (an instance serves one request at a time). */
  currentRequest(): RequestScope | undefined;
  /** Appends a line to the capsule's own log (what `stratum host logs` streams). */
  log(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'critical', message: string, source?: string): void;
  /**
   * Reports that a quota (keys, value size, database size, bucket bytes) refused an operation:
   * the host logs it as a limit hit and meters it with the request. Call it beside returning the
   * interface's quota error.
   */
  quotaExceeded(message: string): void;
}

/** What a capability may know about the request being served. */
export interface RequestScope {
  readonly requestId: string;
  readonly domain: string;
  /** Outbound HTTP requests this request may still make (the manifest's limit, host-capped). */
  outboundRemaining: number;
  /**
   * Runs `work` when the request ends (its handler returned, `waitUntil` work included): for
   * what the request started and nothing can use after it, such as a fetch the guest aborted.
   */
  atEnd(work: () => void): void;
}

/**
 * Import objects keyed by interface name without version (`wasi:http/types`), as jco's
 * instantiation glue looks them up; members named as jco names them (functions and methods in
 * camelCase, resources as classes with static functions as static methods).
 */
export type ImportObjects = Record<string, Record<string, unknown>>;

export interface PreparedCapability {
  readonly imports: ImportObjects;
  /**
   * Maps an error the capability did not foresee (a thrown `Error` that is not a
   * {@link WitError}) to its interface's error variant, so that it reaches the guest as
   * `err(...)` and not as a trap. Without it such an error traps the instance (the request gets
   * a 500 and a fresh instance serves the next one). Only for functions returning `result<>`.
   */
  unexpectedError?(error: unknown, where: { interface: string; function: string }): unknown;
  /** Runs when the instance is discarded (after a trap, a limit, or at worker exit). */
  close?(): void | Promise<void>;
}

/**
 * Throw this from an import to return the WIT `result`'s error variant: jco's glue lowers a
 * thrown value that has an own `payload` property into `err(payload)`. Anything else thrown
 * from an import is caught by the runtime's wrapper, logged, and handed to
 * {@link PreparedCapability.unexpectedError}; without that, it traps that instance only. So a
 * capability maps every backend failure it can foresee to its interface's error variant
 * (`{ tag: 'other', val: message }` or the like).
 *
 * @example
 * throw new WitError({ tag: 'no-such-store' });
 */
export class WitError extends Error {
  readonly payload: unknown;

  constructor(payload: unknown, message?: string) {
    super(message ?? `WIT error ${JSON.stringify(payload, (_key, value) => (typeof value === 'bigint' ? value.toString() : value))}`);
    this.name = 'WitError';
    this.payload = payload;
  }
}

/** Whether a host implementation was written for the interface named (any version). */
export function servesInterface(capability: Pick<Capability, 'interfaces'>, versioned: string): boolean {
  return capability.interfaces.includes(unversioned(versioned));
}

/** `wasi:http/types@0.2.10` -> `wasi:http/types`; `a:b/c@1.0.0#f` -> `a:b/c`. */
export function unversioned(name: string): string {
  const hash = name.indexOf('#');
  const base = hash === -1 ? name : name.slice(0, hash);
  const at = base.indexOf('@');
  return at === -1 ? base : base.slice(0, at);
}
