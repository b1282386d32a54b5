import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type Ed25519PublicJwk, isStratumError, type Logger, newId, StratumError, silentLogger } from '@stratum/core';
import { type Manifest, ManifestError, parseManifest } from '@stratum/manifest';
import { resolveConfig } from '../capabilities/config/index.ts';
import type { TrustedRegistrar } from '../config/types.ts';
import type { UsageLedger } from '../metering/ledger.ts';
import { buildUsageReport, monthBounds, signUsageReport } from '../metering/report.ts';
import type { CapsuleLogEntry, CapsuleStatus, HostRuntime } from '../runtime-types.ts';
import { bodyHash, bodyMismatch, ControlAuthError, type RequestToVerify, type VerifiedRequest } from './auth.ts';
import type { LinkChecker } from './domain-links.ts';
import type { Installation, InstallationStore } from './installations.ts';
import { deleteState, exportState, importState, isStatefulCapability, STATEFUL_CAPABILITIES, type StateAccess } from './state.ts';
import { labelsOf, type StoreRef, storeName, storesBesides, storesOf, unionStores } from './stores.ts';

export const CONTROL_API_VERSION = 'v1';
/**
 * Where stratum-host serves the API: its base URL is `<scheme>://<control listen address>/v1`.
 * Paths in the API (and in the signed `htu` claim) are relative to the base URL, so that a
 * reverse proxy may publish the base under another path (`https://h1.example.net/stratum/v1`).
 */
export const CONTROL_BASE_PATH = '/v1';

/** Fetches a registry-sourced component; resolves to bytes whose digest the caller checks. */
export type PullComponent = (reference: string, digest: string) => Promise<Uint8Array>;

/** The body of `POST <base>/capsules`, as spec/host-api.md section 5.1 defines it. */
export interface InstallBody {
  name?: string;
  domains: string[];
  /** The stratum.toml text. */
  manifest: string;
  /** The component's bytes, base64; leave out to have the host pull the manifest's registry source. */
  component?: { base64: string };
  config?: Record<string, string>;
  /**
   * Over an installation of the name: each variable the new manifest still declares and `config`
   * does not give keeps the value it had (spec/host-api.md section 5.1).
   */
  keepConfig?: boolean;
  /** Start serving once installed (the default). */
  start?: boolean;
}

/**
 * What an install with `keepConfig` did with the values of the installation it replaced: the
 * variables that kept theirs, and those whose values went because the new manifest no longer
 * declares them. Names only, sorted; both empty for a name that was not installed.
 */
export interface KeptConfig {
  keptConfig: string[];
  droppedConfig: string[];
}

export interface ControlServerOptions {
  /** The host's name: the audience of control requests. */
  name: string;
  /** The host's identity, shown unauthenticated at `<base>/identity`. */
  identity: Ed25519PublicJwk;
  /** Signs with the identity key's private half, for the monthly usage report; without it, `/usage/report` answers 404. */
  sign?: (data: Uint8Array) => Promise<Uint8Array>;
  version: string;
  runtime: HostRuntime;
  store: InstallationStore;
  ledger: UsageLedger;
  verify: (request: RequestToVerify) => Promise<VerifiedRequest>;
  maxBodyBytes: number;
  /** The largest state snapshot a `PUT .../state/...` takes, spooled to `state.dataDir` as it arrives. */
  maxStateBytes: number;
  pullComponent?: PullComponent;
  /** Where capsules' stored state is, for the state export and import endpoints; without it they answer 404. */
  state?: StateAccess;
  logger?: Logger;
  /** Seconds between SSE keep-alive comments. */
  keepAliveSeconds?: number;
  /** Checks domains' links before a capsule is first served on them (`[discovery] verify_links`); none: no check. */
  checkLinks?: LinkChecker;
  /** Told the domains a start found linked (`LinkWatch.linked`). */
  onLinked?: (domains: readonly string[]) => void;
  /** host.toml's registrars: a capsule's links are checked against the one that installed it. */
  registrars?: readonly TrustedRegistrar[];
  /**
   * Installations kept on disk that the host could not bring back when it started, with why:
   * listed as failed, refused everything but uninstall, and replaced by an install of the name.
   */
  unrestored?: Map<string, string>;
}

/**
 * How many bytes of a log stream may wait unsent to a client that reads slowly, or not at all,
 * before new lines are dropped (spec/host-api.md section 5.8).
 */
export const MAX_FOLLOWER_UNSENT = 1024 * 1024;

const NAME = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;
const DOMAIN = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

class HttpError extends StratumError {
  readonly status: number;
  /** Headers the answer carries besides the error body (a 405's `Allow`). */
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    status: number,
    code: string,
    message: string,
    options: { details?: string[]; hint?: string; headers?: Record<string, string> } = {},
  ) {
    const { headers = {}, ...rest } = options;
    super(code, message, rest);
    this.status = status;
    this.headers = headers;
  }
}

/**
 * The control API's request handler: authenticates every request under /v1 (spec/host-api.md),
 * then drives the runtime, keeps the installations on disk and reads the usage ledger.
 *
 * @example
 * const handler = createControlHandler({ name, identity, version, runtime, store, ledger, verify, maxBodyBytes });
 * createServer(handler).listen(7070, '127.0.0.1');
 */
export function createControlHandler(options: ControlServerOptions): (request: IncomingMessage, response: ServerResponse) => void {
  const logger = options.logger ?? silentLogger;
  const startedAt = new Date().toISOString();

  const hostInfo = () => ({
    name: options.name,
    key: options.identity,
    api: CONTROL_API_VERSION,
    version: options.version,
    startedAt,
  });

  /**
   * Whether `registrar` may see and drive the installation `name` (spec/host-api.md section 3.3):
   * a registrar its own, an operator key every one. `mine`: the store's registrars by name.
   */
  const mayDrive = (mine: ReadonlyMap<string, string | undefined>, registrar: TrustedRegistrar, name: string): boolean => {
    if (registrar.operator) return true;
    if (!mine.has(name)) return false;
    const owner = mine.get(name);
    // An installation from before installations recorded their registrar is anyone's, as it was.
    return owner === undefined || owner === registrar.name;
  };

  /** A capsule's status with the registrar whose installation it is, which the runtime does not know. */
  const owned = (status: CapsuleStatus, mine: ReadonlyMap<string, string | undefined>): CapsuleStatus => {
    const owner = mine.get(status.name);
    return owner === undefined ? status : { ...status, registrar: owner };
  };

  const unrestored = options.unrestored ?? new Map<string, string>();

  /** An installation the host could not bring back at its start, as its status shows it. */
  const unrestoredStatus = async (name: string): Promise<CapsuleStatus | undefined> => {
    const why = unrestored.get(name);
    if (why === undefined) return undefined;
    // A record that is not one (INSTALLATION_DAMAGED) is shown with its name and why alone.
    const installation = await options.store.get(name).catch(() => undefined);
    return {
      name,
      domains: installation?.domains ?? [],
      state: 'failed',
      version: /^version\s*=\s*"([^"]*)"/m.exec(installation?.manifest ?? '')?.[1] ?? '',
      digest: installation?.digest ?? '',
      instances: 0,
      inFlight: 0,
      limitHits: {},
      lastError: `not brought back when the host started: ${why}`,
    };
  };

  /** The capsules `registrar` may see. */
  const visibleStatus = async (registrar: TrustedRegistrar): Promise<CapsuleStatus[]> => {
    const mine = await options.store.indexed();
    const failed = await Promise.all([...unrestored.keys()].map(unrestoredStatus));
    return [...options.runtime.status(), ...failed.filter((status) => status !== undefined)]
      .filter((capsule) => mayDrive(mine, registrar, capsule.name))
      .map((capsule) => owned(capsule, mine));
  };

  /**
   * Another registrar's capsule is answered as one that is not there: its name and domains are
   * that registrar's business. One the host could not bring back at its start is shown and
   * uninstalled (`unrestoredToo`); anything else asked of it is refused, saying why.
   */
  const findCapsule = async (name: string, registrar: TrustedRegistrar, unrestoredToo = false): Promise<CapsuleStatus> => {
    const status = options.runtime.status().find((capsule) => capsule.name === name) ?? (await unrestoredStatus(name));
    const mine = await options.store.indexed();
    if (!status || !mayDrive(mine, registrar, name)) {
      throw new HttpError(404, 'CAPSULE_NOT_FOUND', `no capsule named "${name.slice(0, 80)}" is installed here`);
    }
    if (unrestored.has(name) && !unrestoredToo) {
      throw new HttpError(409, 'CAPSULE_NOT_RESTORED', `${name} was ${status.lastError ?? 'not brought back when the host started'}`, {
        hint: 'Install it again (its data is kept under its name), or uninstall it.',
      });
    }
    return owned(status, mine);
  };

  /**
   * One installation's status with what a registrar moving it checks against the directory it
   * moves (spec/host-api.md section 4): its app, its stores, and which config variables have
   * values, never the values.
   */
  const described = async (status: CapsuleStatus): Promise<CapsuleStatus> => {
    if (unrestored.has(status.name)) return status;
    const installed = await installedManifest(status.name);
    if (!installed) return status;
    const { manifest, config, stores } = installed;
    const { keyvalue, sql, bucket } = manifest.capabilities;
    // What earlier installations of the name stored in stores this one is not granted: still
    // there, out of its reach, and neither moved nor exported (section 4).
    const retained = storesBesides(stores, storesOf(manifest.capabilities));
    return {
      ...status,
      app: manifest.capsule.name,
      stores: { keyvalue: [...keyvalue], sql: [...sql], bucket: [...bucket] },
      ...(retained.length > 0 ? { retainedStores: labelsOf(retained) } : {}),
      config: Object.keys(config).sort(),
    };
  };

  /**
   * An installation's manifest, as installed, its config values, and every store the name holds
   * its data in (`heldStores`); undefined for a name not installed.
   */
  const installedManifest = async (
    name: string,
  ): Promise<{ manifest: Manifest; config: Record<string, string>; stores: StoreRef[] } | undefined> => {
    const installation = await options.store.get(name);
    if (!installation) return undefined;
    const manifest = parseManifest(installation.manifest, `${name}/stratum.toml`).manifest;
    return { manifest, config: installation.config, stores: heldStores(installation, manifest) };
  };

  /**
   * Every store the name holds data in; for an installation whose manifest no longer parses (one
   * not brought back at the start), those its record names.
   */
  const storesHeld = async (name: string): Promise<StoreRef[] | undefined> => {
    try {
      return (await installedManifest(name))?.stores;
    } catch (error) {
      if (isStratumError(error) && error.code === 'INSTALLATION_DAMAGED') return undefined;
      if (!(error instanceof ManifestError)) throw error;
      return (await options.store.get(name))?.stores;
    }
  };

  /** The registrar whose installation `name` is, for its links' checks; the asking one if host.toml no longer names it. */
  const ownerOf = async (name: string, asking: TrustedRegistrar): Promise<TrustedRegistrar> => {
    const owner = (await options.store.indexed()).get(name);
    return options.registrars?.find((one) => one.name === owner) ?? asking;
  };

  /**
   * Refuses to serve a capsule on domains whose `_stratum` record does not link them to this
   * host, this component and the registrar asking (spec/discovery.md section 5.3). Checked when a
   * capsule is started, its first serving, so that a move can install it, copy its state and
   * switch the link before the start.
   */
  const checkLinks = async (name: string, domains: readonly string[], capsule: string, registrar: TrustedRegistrar): Promise<void> => {
    if (!options.checkLinks) return;
    const problems = await options.checkLinks(domains, { capsule, registrar });
    if (problems.length === 0) {
      options.onLinked?.(domains);
      return;
    }
    throw new HttpError(409, 'DOMAIN_NOT_LINKED', `${name} cannot be served here: its domains do not link to this host`, {
      details: problems.map((one) => one.problem),
      hint: await linkHint([...new Set(problems.map((one) => one.domain))], capsule, registrar),
    });
  };

  /**
   * `GET /links` (section 5.12): what a start of capsule `capsule` on `domains`, installed by the
   * registrar asking, would find of their links now, found as the start finds it, so that a
   * registrar moving a capsule learns before it takes it out of service whether the new host
   * would serve it.
   */
  const linkCheck = async (
    domains: string[],
    capsule: string,
    registrar: TrustedRegistrar,
  ): Promise<{
    checked: boolean;
    problems: { domain: string; problem: string; lookupFailed?: boolean }[];
    hint?: string;
    registrar?: string;
  }> => {
    // What a link must name as its registrar for this one, so that a registrar writing the link
    // names what the start checks, not what it guessed (its key's domain is this host's word).
    const named = registrar.domain === undefined ? {} : { registrar: registrar.domain };
    if (!options.checkLinks) return { checked: false, problems: [], ...named };
    const problems = await options.checkLinks(domains, { capsule, registrar });
    if (problems.length === 0) return { checked: true, problems, ...named };
    return {
      checked: true,
      problems,
      hint: await linkHint([...new Set(problems.map((one) => one.domain))], capsule, registrar),
      ...named,
    };
  };

  /** What to publish: each domain's link as a zone file line, when the registrar's domain is known. */
  const linkHint = async (domains: string[], capsule: string, registrar: TrustedRegistrar): Promise<string> => {
    const check = '`stratum dns check <domain>` shows what resolvers see.';
    if (registrar.domain === undefined) {
      return `Give registrar "${registrar.name}" its domain in host.toml ([registrars.${registrar.name}] domain), as the links it publishes name it. ${check}`;
    }
    const { formatDomainLink, linkRecordName, zoneFileTxt } = await import('@stratum/discovery');
    const link = formatDomainLink({ host: options.name, capsule, registrar: registrar.domain });
    const records = domains.map((domain) => zoneFileTxt(linkRecordName(domain), link));
    return `Publish in each domain's zone, beside its routing to this host (spec/discovery.md section 5):\n${records.join('\n')}\n${check}`;
  };

  /**
   * The values an install with `keepConfig` runs with: those the body gives, over those the
   * installation of the name had for variables the new manifest still declares (section 5.1).
   * Only the asking registrar's own installation lends its values; over another's, the install is
   * refused later (NAME_TAKEN), and whatever that one holds must not shape this answer.
   */
  const carryConfig = async (
    name: string,
    manifest: Manifest,
    given: Record<string, string>,
    registrar: TrustedRegistrar,
  ): Promise<{ config: Record<string, string> } & KeptConfig> => {
    const mine = await options.store.indexed();
    const previous = mayDrive(mine, registrar, name)
      ? await options.store.get(name).catch((error: unknown) => {
          // A record this host cannot read has no values to lend: only the operator installs over it.
          if (isStratumError(error) && error.code === 'INSTALLATION_DAMAGED') return undefined;
          throw error;
        })
      : undefined;
    const had = previous?.config ?? {};
    const declared = manifest.capabilities.config;
    // Own members only: a variable may be named `constructor`, which every object inherits.
    const keptConfig = Object.keys(had)
      .filter((variable) => Object.hasOwn(declared, variable) && !Object.hasOwn(given, variable))
      .sort();
    const droppedConfig = Object.keys(had)
      .filter((variable) => !Object.hasOwn(declared, variable))
      .sort();
    const kept = Object.fromEntries(keptConfig.map((variable) => [variable, had[variable] as string]));
    return { config: { ...kept, ...given }, keptConfig, droppedConfig };
  };

  /**
   * `keptData`: the name held what an uninstalled installation stored, which this one now serves;
   * `keptConfig` and `droppedConfig` with `keepConfig` (section 5.1).
   */
  const install = async (
    body: InstallBody,
    registrar: TrustedRegistrar,
  ): Promise<{ status: CapsuleStatus; keptData?: { uninstalledAt: string }; carried?: KeptConfig }> => {
    const manifest = parseManifestBody(body.manifest);
    const name = body.name ?? manifest.capsule.name;
    if (!NAME.test(name) || name.length > 63) throw new HttpError(400, 'INVALID_REQUEST', `name "${name.slice(0, 80)}" is not a DNS label`);
    const carried = body.keepConfig ? await carryConfig(name, manifest, body.config ?? {}, registrar) : undefined;
    const config = carried?.config ?? body.config ?? {};
    // Here, not in the runtime: whether or not the component imports wasi:config, a value for a
    // variable the manifest does not declare is a mistake (a typo, the wrong capsule) to refuse
    // now; an installation an older host accepted with one must still come back after a restart.
    // After the merge: a required secret the installation has is not missing from its upgrade.
    resolveConfig({ capsule: name, manifest, config });
    const expected = manifest.source.digest;
    let bytes: Uint8Array;
    if (body.component) {
      // A Buffer is a Uint8Array already: no copy of a 12 MB component.
      bytes = Buffer.from(body.component.base64, 'base64');
    } else if (manifest.source.kind === 'registry') {
      if (!options.pullComponent) {
        throw new HttpError(400, 'REGISTRY_SOURCE_UNSUPPORTED', 'this host does not pull components from registries', {
          details: [`[source] registry = ${manifest.source.registry}`],
          hint: 'Upload the component in the install request (component.base64) instead.',
        });
      }
      bytes = await options.pullComponent(manifest.source.registry, manifest.source.digest);
    } else {
      throw new HttpError(400, 'COMPONENT_MISSING', 'the install request has no component', {
        hint: 'A [source] wasm path means nothing to the host: upload the bytes as component.base64, or use a registry source.',
      });
    }
    const mine = await options.store.indexed();
    const anotherName = 'Install it under another name (`stratum host install --name`, the install body\'s "name").';
    if (mine.has(name) && !mayDrive(mine, registrar, name)) {
      throw new HttpError(409, 'NAME_TAKEN', `a capsule named "${name}" is installed here by another registrar`, { hint: anotherName });
    }
    // What an uninstalled capsule stored stays under its name: another registrar's capsule of that name would read it.
    const retired = mine.has(name) ? undefined : await options.store.retired(name);
    if (retired !== undefined && retired.registrar !== registrar.name && !registrar.operator) {
      throw new HttpError(
        409,
        'NAME_TAKEN',
        `a capsule named "${name}" was installed here by another registrar, whose data the name still holds`,
        {
          hint: anotherName,
        },
      );
    }
    // The runtime would name the capsule that serves it, which is that registrar's business.
    for (const capsule of options.runtime.status()) {
      if (capsule.name === name || mayDrive(mine, registrar, capsule.name)) continue;
      const taken = body.domains.find((domain) => capsule.domains.includes(domain));
      if (taken !== undefined) {
        throw new HttpError(409, 'DOMAIN_TAKEN', `${taken} is served on this host by another registrar's capsule`, {
          hint: "A domain is served by one capsule: the registrar whose it is, or the host's operator, frees it.",
        });
      }
    }
    const digest = await options.store.putComponent(bytes, expected);
    const previous = await options.store.get(name).catch((error: unknown) => {
      if (!isStratumError(error) || error.code !== 'INSTALLATION_DAMAGED') throw error;
      // Whose it was is unknown: the operator may install over it, nobody else.
      if (registrar.operator) return undefined;
      throw new HttpError(409, 'NAME_TAKEN', `the name ${name} is held by an installation record this host cannot read`, {
        hint: "The host's operator removes or replaces it.",
      });
    });
    // Replacing an installation keeps its registrar: an operator's upgrade does not take it over.
    const ownerName = previous?.registrar ?? registrar.name;
    const owner = options.registrars?.find((one) => one.name === ownerName) ?? registrar;
    let status: CapsuleStatus;
    try {
      // Replacing a running capsule keeps it running, "start": false or not (the runtime swaps
      // the new version in): its domains then serve the new one at once, so they must link to it.
      const serving = options.runtime.status().some((capsule) => capsule.name === name && capsule.state === 'running');
      if ((body.start ?? true) || serving) await checkLinks(name, body.domains, digest, owner);
      status = await options.runtime.install({
        name,
        domains: body.domains,
        manifest,
        // Hashed once, by the store: the runtime needs the bytes only if its caches miss.
        storedComponent: { digest, read: () => Promise.resolve(bytes) },
        refuseUnmetResources: true,
        config,
      });
      if ((body.start ?? true) && status.state !== 'running') {
        try {
          status = await options.runtime.start(name);
        } catch (error) {
          // An install whose instance cannot start changes nothing, as a refused one does: the
          // runtime held the new version (failed) while the store held what was there before, and
          // a restart would have brought back another capsule than the one status showed.
          // The answer is the start's failure; one of putting things back goes to the log.
          await undoInstall(name, previous).catch((undoError: unknown) =>
            logger.error({ capsule: name, err: undoError }, 'could not put back the installation an install replaced'),
          );
          throw error;
        }
      }
    } catch (error) {
      // Replacing a running capsule the runtime puts the old one back itself if the new one fails.
      if (previous?.digest !== digest) await options.store.dropComponentIfUnused(digest);
      throw error;
    }
    const now = new Date().toISOString();
    const installation: Installation = {
      name,
      domains: body.domains,
      manifest: body.manifest,
      digest,
      config,
      registrar: ownerName,
      // What the runtime now does: replacing a running capsule keeps it running even with start: false.
      desired: status.state === 'running' ? 'running' : 'installed',
      // A label the new manifest drops keeps its data under the name: deleting the name's data must still find it.
      stores: unionStores(
        previous ? (previous.stores ?? heldStores(previous, parseManifestBody(previous.manifest))) : [],
        retired?.stores ?? [],
        storesOf(manifest.capabilities),
      ),
      installedAt: previous?.installedAt ?? now,
      updatedAt: now,
    };
    await options.store.save(installation);
    if (previous && previous.digest !== digest) await options.store.dropComponentIfUnused(previous.digest);
    return {
      status,
      ...(retired ? { keptData: { uninstalledAt: retired.uninstalledAt } } : {}),
      ...(carried ? { carried: { keptConfig: carried.keptConfig, droppedConfig: carried.droppedConfig } } : {}),
    };
  };

  /**
   * `DELETE /capsules/{name}?data=delete` (section 5.5): uninstalls the capsule and deletes every
   * store the name holds data in, or, for a name no longer installed whose data the asking
   * registrar's uninstalled installation left, that data. The name stays the registrar's until
   * every store is empty: a deletion that fails part-way leaves what it did not delete to no one
   * else, and is asked for again.
   */
  const uninstallDeletingData = async (
    name: string,
    registrar: TrustedRegistrar,
    log: Logger,
  ): Promise<{ uninstalled: string; deleted: string[]; installed?: false }> => {
    const access = options.state;
    let stores: StoreRef[];
    let installed = true;
    try {
      await findCapsule(name, registrar, true);
      if (!access) throw new HttpError(404, 'NOT_FOUND', 'this host does not delete capsule state');
      // Read before the installation goes: every store its data is in.
      stores = (await storesHeld(name)) ?? [];
      if (!unrestored.has(name)) await options.runtime.uninstall(name);
      // Recorded as uninstalled with its data kept before any of it is deleted, whoever's it was.
      await options.store.remove(name, { stores, owner: registrar.name });
      unrestored.delete(name);
    } catch (error) {
      const retired = await options.store.retired(name);
      const mine = await options.store.indexed();
      const its = retired !== undefined && !mine.has(name) && (registrar.operator || retired.registrar === registrar.name);
      if (!(error instanceof HttpError && error.code === 'CAPSULE_NOT_FOUND') || !its || !access) throw error;
      // An older host's record does not say which stores: what remains is under the capsule's directory.
      stores = retired.stores ?? [];
      installed = false;
    }
    let deleted: string[];
    try {
      deleted = await deleteState(access, name, stores);
    } catch (error) {
      log.error({ capsule: name, stores: stores.map(storeName), err: error }, "deleting a capsule's data failed part-way");
      const again = `Ask again (DELETE /capsules/${name}?data=delete, \`stratum host uninstall ${name} --delete-data\`) to delete the rest.`;
      throw new HttpError(
        500,
        'DELETE_INCOMPLETE',
        `${name} is uninstalled, but deleting its data did not finish: the name keeps what is left, and stays this registrar's; the host's log says why`,
        { hint: again },
      );
    }
    await options.store.dataDeleted(name);
    log.info({ capsule: name, deleted }, installed ? 'capsule uninstalled, its data deleted' : "an uninstalled capsule's data deleted");
    return { uninstalled: name, deleted, ...(installed ? {} : { installed: false as const }) };
  };

  /** Puts the runtime back as the store has it: the installation there before, or none. */
  const undoInstall = async (name: string, previous: Installation | undefined): Promise<void> => {
    if (previous) await restoreInstallation(options.store, options.runtime, previous);
    else await options.runtime.uninstall(name);
  };

  const route = async (
    request: IncomingMessage,
    relative: string,
    response: ServerResponse,
    body: Uint8Array,
    log: Logger,
    registrar: TrustedRegistrar,
    upload: SnapshotUpload | undefined,
  ): Promise<void> => {
    const url = new URL(relative, 'http://control.invalid');
    const method = request.method ?? 'GET';
    const parts = ['', ...url.pathname.split('/').filter(Boolean).map(decodeURIComponent)];
    const [, collection, name, action, extra] = parts;

    if (collection === 'capsules' && name !== undefined && action === 'state' && parts.length === 6) {
      return state(
        request,
        response,
        upload ?? (async () => ({ open: () => [body], bytes: body.byteLength })),
        name,
        parts[4] as string,
        parts[5] as string,
        log,
        registrar,
      );
    }

    if (collection === 'status' && parts.length === 2) {
      allow(method, 'GET');
      // The runtime's own counters (transpiles, cache hits, ...) when it keeps any: operators
      // and tests read them to see that a restart came back from the transpile cache.
      const runtime = options.runtime as HostRuntime & { stats?: () => Record<string, unknown> };
      // Counters only, as the API describes them (the runtime's stats also hold lists and URLs).
      // The operator's only: they count every registrar's capsules (instances, starts), which
      // tells one registrar how busy the others are.
      const counters =
        registrar.operator && typeof runtime.stats === 'function'
          ? Object.fromEntries(Object.entries(runtime.stats()).filter(([, value]) => typeof value === 'number'))
          : undefined;
      return json(response, 200, {
        host: hostInfo(),
        capsules: await visibleStatus(registrar),
        ...(counters ? { runtime: counters } : {}),
        metering: { ledger: options.ledger.state },
      });
    }
    if (collection === 'usage' && parts.length === 2) {
      allow(method, 'GET');
      const capsule = url.searchParams.get('capsule') ?? undefined;
      const since = dateParam(url, 'since');
      const until = dateParam(url, 'until');
      // An empty period would answer "no usage", which reads as none having been metered.
      if (since && until && since.getTime() >= until.getTime()) {
        throw new HttpError(400, 'INVALID_REQUEST', `since (${since.toISOString()}) must be before until (${until.toISOString()})`);
      }
      await options.ledger.flush();
      // Each entry names the registrar whose installation the capsule was: a registrar reads its own.
      const capsules = await options.ledger.usage({
        ...(capsule ? { capsule } : {}),
        ...(registrar.operator ? {} : { registrar: registrar.name }),
        ...(since ? { since } : {}),
        ...(until ? { until } : {}),
      });
      return json(response, 200, { capsules, ledger: options.ledger.head });
    }
    if (collection === 'usage' && name === 'ledger' && parts.length === 3) {
      allow(method, 'GET');
      if (!registrar.operator) {
        throw new HttpError(403, 'OPERATOR_ONLY', "the usage ledger holds every registrar's capsules; only an operator key reads it", {
          hint: `host.toml marks the host operator's own key: [registrars.<name>] operator = true. Registrar "${registrar.name}" reads its capsules' usage at /usage.`,
        });
      }
      const after = integerParam(url, 'after', 0, 0);
      const limit = integerParam(url, 'limit', 1000, 1, 10_000);
      await options.ledger.flush();
      return json(response, 200, { entries: await options.ledger.entries(after, limit), head: options.ledger.head });
    }
    if (collection === 'usage' && name === 'report' && parts.length === 3 && options.sign) {
      allow(method, 'GET');
      if (!registrar.operator) {
        throw new HttpError(403, 'OPERATOR_ONLY', "the usage report sums every registrar's capsules; only an operator key reads it", {
          hint: `host.toml marks the host operator's own key: [registrars.<name>] operator = true. Registrar "${registrar.name}" reads its capsules' usage at /usage.`,
        });
      }
      const month = url.searchParams.get('month') ?? '';
      const bounds = monthBounds(month);
      if (!bounds) {
        throw new HttpError(
          400,
          'INVALID_REQUEST',
          `month must be a UTC calendar month, YYYY-MM from 1970-01, not "${month.slice(0, 40)}"`,
          {
            hint: 'Such as month=2026-11.',
          },
        );
      }
      const now = new Date();
      if (bounds.end.getTime() > now.getTime()) {
        throw new HttpError(
          409,
          'MONTH_NOT_ENDED',
          `${month} has not ended: a usage report covers a month that has (it is ${now.toISOString()})`,
          {
            hint: `Ask for it from ${bounds.end.toISOString()} on.`,
          },
        );
      }
      // Usage held across the month's end is written up to it by this flush (spec/host-api.md section 7).
      await options.ledger.flush();
      const body = await buildUsageReport({
        host: options.name,
        key: options.identity.x,
        month,
        entries: options.ledger.entriesSince(bounds.start),
      }).catch((error: unknown) => {
        // The operator alone asks, and can mend what it names.
        if (isStratumError(error) && error.code === 'LEDGER_ENTRY_INVALID') {
          throw new HttpError(500, error.code, error.message, error.hint ? { hint: error.hint } : {});
        }
        throw error;
      });
      return json(response, 200, await signUsageReport(body, options.sign));
    }
    if (collection === 'links' && parts.length === 2) {
      allow(method, 'GET');
      const capsule = url.searchParams.get('capsule') ?? '';
      const domains = url.searchParams.getAll('domain');
      if (!DIGEST.test(capsule)) {
        throw new HttpError(
          400,
          'INVALID_REQUEST',
          `capsule must be a component's digest, sha256:<64 hex digits>, not "${capsule.slice(0, 80)}"`,
        );
      }
      const bad = domains.find((domain) => !DOMAIN.test(domain));
      if (domains.length === 0 || domains.length > 256 || bad !== undefined) {
        throw new HttpError(400, 'INVALID_REQUEST', 'give from 1 to 256 domains, each a lowercase host name', {
          ...(bad === undefined ? {} : { details: [`domain=${bad.slice(0, 80)}`] }),
        });
      }
      return json(response, 200, await linkCheck(domains, capsule, registrar));
    }
    if (collection !== 'capsules' || extra !== undefined) throw new HttpError(404, 'NOT_FOUND', `no such endpoint: ${url.pathname}`);

    if (name === undefined) {
      allow(method, 'GET', 'POST');
      if (method === 'GET') return json(response, 200, { capsules: await visibleStatus(registrar) });
      const { status, keptData, carried } = await install(parseInstallBody(body), registrar);
      unrestored.delete(status.name);
      log.info(
        { capsule: status.name, digest: status.digest, domains: status.domains, ...(keptData ? { keptData } : {}), ...carried },
        keptData ? 'capsule installed, serving the data kept under its name' : 'capsule installed',
      );
      // The same status object as GET /capsules/{name} answers, registrar included.
      return json(response, 201, {
        capsule: await described(owned(status, await options.store.indexed())),
        ...(keptData ? { keptData } : {}),
        ...carried,
      });
    }
    if (action === undefined) {
      allow(method, 'GET', 'DELETE');
      if (method === 'GET') return json(response, 200, { capsule: await described(await findCapsule(name, registrar, true)) });
      const data = url.searchParams.get('data');
      if (data !== null && data !== 'delete') {
        throw new HttpError(400, 'INVALID_REQUEST', `data must be "delete" or left out, not "${data.slice(0, 40)}"`);
      }
      if (data === 'delete') return json(response, 200, await uninstallDeletingData(name, registrar, log));
      await findCapsule(name, registrar, true);
      // Read before the installation goes: the stores its data is in, which the name keeps.
      const stores = await storesHeld(name);
      if (!unrestored.has(name)) await options.runtime.uninstall(name);
      // The owner for a record too damaged to say whose it is: only the operator drives one.
      await options.store.remove(name, { ...(stores ? { stores } : {}), owner: registrar.name });
      unrestored.delete(name);
      log.info({ capsule: name }, 'capsule uninstalled');
      return json(response, 200, { uninstalled: name });
    }
    if (action === 'logs') {
      allow(method, 'GET');
      await findCapsule(name, registrar);
      return streamLogs(request, response, name, integerParam(url, 'backlog', 100, 0, 10_000));
    }
    if (action === 'start' || action === 'drain' || action === 'stop') {
      allow(method, 'POST');
      const current = await findCapsule(name, registrar);
      if (action === 'start' && current.state !== 'running')
        await checkLinks(name, current.domains, current.digest, await ownerOf(name, registrar));
      // Recorded before a drain waits for the requests in flight: a host restarted meanwhile must
      // not bring back into service a capsule its registrar took out. A start is recorded once it
      // worked: one that failed leaves the capsule as it was asked to be before.
      if (action !== 'start') await options.store.setDesired(name, 'stopped');
      const status = await options.runtime[action](name);
      if (action === 'start') await options.store.setDesired(name, 'running');
      log.info(
        { capsule: name, state: status.state },
        `capsule ${action === 'stop' ? 'stopped' : action === 'drain' ? 'drained' : 'started'}`,
      );
      return json(response, 200, { capsule: await described(owned(status, await options.store.indexed())) });
    }
    throw new HttpError(404, 'NOT_FOUND', `no such endpoint: ${url.pathname}`);
  };

  /** `GET|PUT <base>/capsules/{name}/state/{capability}/{label}`: spec/host-api.md section 5.11. */
  const state = async (
    request: IncomingMessage,
    response: ServerResponse,
    upload: SnapshotUpload,
    name: string,
    capability: string,
    label: string,
    log: Logger,
    registrar: TrustedRegistrar,
  ): Promise<void> => {
    const method = request.method ?? 'GET';
    allow(method, 'GET', 'PUT');
    const status = await findCapsule(name, registrar);
    const access = options.state;
    if (!access) throw new HttpError(404, 'NOT_FOUND', 'this host does not export or import capsule state');
    if (!isStatefulCapability(capability)) {
      throw new HttpError(404, 'NOT_FOUND', `"${capability.slice(0, 40)}" holds no state; one of ${STATEFUL_CAPABILITIES.join(', ')}`);
    }
    const granted = (await installedManifest(name))?.manifest.capabilities[capability] ?? [];
    if (!granted.includes(label)) {
      throw new HttpError(404, 'STATE_NOT_FOUND', `${name}'s manifest grants no ${capability} label "${label.slice(0, 64)}"`, {
        hint: granted.length ? `Its ${capability} labels: ${granted.join(', ')}.` : `It uses no ${capability}.`,
      });
    }
    if (method === 'GET') {
      // The store is opened before its first line: one that cannot be opened is an error answer,
      // not a 200 cut off before its first byte, which a client can only read as the host gone.
      const lines = exportState(access, capability, name, label)[Symbol.asyncIterator]();
      try {
        let next = await lines.next();
        response.writeHead(200, { 'content-type': 'application/vnd.stratum.snapshot.v1+jsonl', 'cache-control': 'no-store' });
        for (; !next.done; next = await lines.next()) {
          if (!response.write(next.value)) await new Promise((resolve) => response.once('drain', resolve));
        }
      } finally {
        await lines.return?.();
      }
      response.end();
      log.info({ capsule: name, capability, label }, 'capsule state exported');
      return;
    }
    if (status.state === 'running' || status.state === 'draining') {
      throw new HttpError(409, 'CAPSULE_RUNNING', `${name} is ${status.state}; its state cannot be replaced under it`, {
        hint: 'Stop it first, or install it with "start": false, import its state, then start it.',
      });
    }
    // Only now, with every check passed, is the snapshot read (a large one spooled to disk).
    const snapshot = await upload();
    try {
      const { records, skipped } = await importState(access, capability, name, label, snapshot.open);
      log.info({ capsule: name, capability, label, records, skipped, bytes: snapshot.bytes }, 'capsule state imported');
      // The target's capability and label, not the header's: the header says where the state came from.
      return json(response, 200, { capability, label, records, skipped });
    } finally {
      await snapshot.done?.();
    }
  };

  const streamLogs = (request: IncomingMessage, response: ServerResponse, name: string, backlog: number) => {
    response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    response.write(': stratum capsule log\n\n');
    // Each line with its id, after its data (a reader that takes an event to start with `event:
    // log` and `data:` still can): a client that connects again sends the last id it got as
    // `Last-Event-ID`, and gets only the lines after it.
    const event = (entry: CapsuleLogEntry, id: string | undefined) =>
      `event: log\ndata: ${JSON.stringify(entry)}\n${id === undefined ? '' : `id: ${id}\n`}\n`;
    const lastEventId = request.headers['last-event-id'];
    // A registrar's reader that stalls must not hold the shared host's memory for every line its
    // capsule writes: a new line is dropped while too much waits unsent. The backlog is written
    // whole: the runtime keeps only so many lines.
    let live = false;
    let dropped = 0;
    // The note takes the last dropped line's id: a client that connects again after it does
    // not get the lines it counts, which would then stand after it.
    let lastDropped: string | undefined;
    const droppedNote = () => {
      if (dropped === 0) return;
      const message = `${dropped} log ${dropped === 1 ? 'line was' : 'lines were'} dropped here: this stream's reader read too slowly`;
      dropped = 0;
      response.write(event({ time: new Date().toISOString(), capsule: name, level: 'warn', source: 'host', message }, lastDropped));
    };
    const unsubscribe = options.runtime.subscribeLogs(
      name,
      (entry, id) => {
        // Once one is dropped, all are until the stream drains, so that the note stands at the gap.
        if (live && (dropped > 0 || response.writableLength > MAX_FOLLOWER_UNSENT)) {
          dropped++;
          lastDropped = id;
        } else response.write(event(entry, id));
      },
      // Uninstalled: its last line said so, and the stream ends (a reinstall does not end it).
      {
        backlog,
        ...(typeof lastEventId === 'string' && lastEventId !== '' ? { after: lastEventId } : {}),
        onEnd: () => {
          droppedNote();
          response.end();
        },
      },
    );
    live = true;
    response.on('drain', droppedNote);
    // The backlog is sent: a client that wanted only the recent lines can stop here.
    response.write('event: live\ndata: {}\n\n');
    const keepAlive = setInterval(() => response.write(': keep-alive\n\n'), (options.keepAliveSeconds ?? 15) * 1000);
    keepAlive.unref();
    const stop = () => {
      clearInterval(keepAlive);
      unsubscribe();
    };
    request.once('close', stop);
    response.once('close', stop);
  };

  /** Where state snapshots are received; none when this host imports no state. */
  const stateUploads = options.state && join(options.state.dataDir, STATE_UPLOADS_DIR);

  return (request, response) => {
    const method = request.method ?? 'GET';
    const path = request.url ?? '/';
    const remote = request.socket.remoteAddress;
    const log = logger.child({ method, path });
    void (async () => {
      try {
        if (!path.startsWith(`${CONTROL_BASE_PATH}/`))
          throw new HttpError(404, 'NOT_FOUND', `the control API is under ${CONTROL_BASE_PATH}/`);
        const relative = path.slice(CONTROL_BASE_PATH.length);
        if (relative === '/identity') {
          allow(method, 'GET');
          return json(response, 200, hostInfo());
        }
        // The token is checked before a byte of the body is read: a client without a key could
        // otherwise make the host hold max_body (64 MiB) for each connection it opened. A state
        // snapshot, larger than any other request, is spooled to disk (hashed as it arrives)
        // only once the endpoint wants it; any other body is read and held to the token's hash.
        const spoolTo = method === 'PUT' && STATE_PATH.test(relative) ? stateUploads : undefined;
        // A Content-Length over the limit is refused at once, signed or not (section 6).
        if (spoolTo === undefined) refuseDeclaredSize(request, options.maxBodyBytes);
        const verified = await options.verify({ method, path: relative, authorization: request.headers.authorization, body: 'deferred' });
        const body = spoolTo === undefined ? await readBody(request, options.maxBodyBytes) : EMPTY_BODY;
        if (spoolTo === undefined && bodyHash(body) !== verified.bodyHash) throw bodyMismatch();
        const requestLog = log.child({ registrar: verified.registrar.name });
        const upload = spoolTo === undefined ? undefined : () => spoolSnapshot(request, spoolTo, options.maxStateBytes, verified.bodyHash);
        await route(request, relative, response, body, requestLog, verified.registrar, upload);
        requestLog.debug({ status: response.statusCode }, 'control request served');
      } catch (error) {
        if (error instanceof ControlAuthError) {
          log.warn({ reason: error.code, remote, detail: error.message }, 'control request refused');
          if (response.headersSent) {
            response.destroy();
            return;
          }
          discardUnread(request, response);
          response.setHeader('www-authenticate', `Stratum-JWS error="${error.code}"`);
          return json(response, 401, { error: { code: error.code, message: error.message, hint: error.hint } });
        }
        discardUnread(request, response);
        if (response.headersSent) {
          response.destroy();
          return;
        }
        const status = statusFor(error);
        if (error instanceof HttpError) for (const [header, value] of Object.entries(error.headers)) response.setHeader(header, value);
        if (status >= 500) log.error({ err: error }, 'control request failed');
        // A 404 is most often a question with a no for its answer (the CLI asks whether a name is
        // installed before it installs): not worth an operator's attention at info.
        else log[status === 404 ? 'debug' : 'info']({ status, code: (error as StratumError).code }, 'control request rejected');
        const problem = isStratumError(error)
          ? {
              code: error.code,
              message: error.message,
              ...(error.details.length ? { details: error.details } : {}),
              ...(error.hint ? { hint: error.hint } : {}),
            }
          : { code: 'INTERNAL', message: 'the host failed to handle this request; its log has the details' };
        json(response, status, { error: problem });
      }
    })();
  };
}

function statusFor(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  if (error instanceof ManifestError) return 400;
  // The capsule's own doing (an initialisation that traps or never returns), not the host's.
  if (isStratumError(error) && error.code === 'INSTANCE_FAILED') return 422;
  if (!isStratumError(error) || !error.user) return 500;
  if (/NOT_FOUND$/.test(error.code)) return 404;
  if (/(EXISTS|CONFLICT|IN_USE|TAKEN|STUCK)$/.test(error.code)) return 409;
  return 400;
}

function allow(method: string, ...allowed: string[]): void {
  if (!allowed.includes(method)) {
    // RFC 9110 section 15.5.6: a 405 says which methods the resource has.
    throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method.slice(0, 16)} is not allowed here`, {
      hint: `Use ${allowed.join(' or ')}.`,
      headers: { allow: allowed.join(', ') },
    });
  }
}

function json(response: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

/** What of a refused request's body is read and dropped, so that its client reads the answer; past it the connection closes. */
const DISCARD_BYTES = 1024 * 1024;
/** How long a connection whose body was refused stays open for reading once its answer is sent. */
const LINGER_MS = 2000;

/**
 * A body not read yet (a state snapshot refused before it) is not wanted: a little of it is
 * drained, so that a client still sending sees the answer, but no more than DISCARD_BYTES,
 * which an unsigned client could otherwise keep the host reading for as long as it liked.
 */
function discardUnread(request: IncomingMessage, response: ServerResponse): void {
  if (request.readableEnded || request.destroyed) return;
  if (!response.headersSent) response.setHeader('connection', 'close');
  // Node closes a `connection: close` socket as soon as the answer is written. With the client's
  // body still arriving unread, the kernel then resets the connection, which discards the answer
  // from a client that had not read it yet (busy uploading): it saw ECONNRESET, not the 413. The
  // host half-closes instead and reads on for a while (a lingering close), so the answer arrives.
  const socket = request.socket;
  socket.destroySoon = () => {
    socket.end();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
  let drained = 0;
  request.on('data', (chunk: Buffer) => {
    drained += chunk.byteLength;
    if (drained > DISCARD_BYTES) request.destroy();
  });
  request.resume();
}

/** Refuses, unread, a body whose Content-Length is over `limit`: the caller's discardUnread drains a little of it, at most. */
function refuseDeclaredSize(request: IncomingMessage, limit: number): void {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > limit) throw new HttpError(413, 'BODY_TOO_LARGE', `the body is ${declared} bytes; this host takes at most ${limit}`);
}

function readBody(request: IncomingMessage, limit: number): Promise<Uint8Array> {
  try {
    refuseDeclaredSize(request, limit);
  } catch (error) {
    return Promise.reject(error);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.removeAllListeners('data');
        reject(new HttpError(413, 'BODY_TOO_LARGE', `the body is more than ${limit} bytes, the most this host takes`));
        return;
      }
      chunks.push(chunk);
    });
    request.once('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
    request.once('error', reject);
  });
}

/** `PUT <base>/capsules/{name}/state/{capability}/{label}`, whose body is read only when wanted. */
const STATE_PATH = /^\/capsules\/[^/?]+\/state\/[^/?]+\/[^/?]+(\?.*)?$/;
/** Under the state's data directory: snapshots being received; emptied when the host starts. */
export const STATE_UPLOADS_DIR = 'state-uploads';
const EMPTY_BODY = new Uint8Array(0);

/** A state snapshot to import: how to read it (once to check it, again to import it), and what to do once imported. */
type SnapshotUpload = () => Promise<{
  open: () => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  bytes: number;
  done?: () => Promise<void>;
}>;

/**
 * Receives a snapshot into a file under `dir`, hashing it as it arrives, and hands it over only
 * if it is the body that was signed (`bh`) and within `limit`: nothing is imported otherwise,
 * and the file is removed.
 */
async function spoolSnapshot(request: IncomingMessage, dir: string, limit: number, signedHash: string): ReturnType<SnapshotUpload> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > limit) {
    throw new HttpError(413, 'BODY_TOO_LARGE', `the snapshot is ${declared} bytes; this host takes at most ${limit}`, {
      hint: 'A host takes larger snapshots with [control] max_state_body in host.toml.',
    });
  }
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${newId()}.jsonl`);
  const remove = () => rm(file, { force: true });
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    await pipeline(
      request,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          bytes += chunk.byteLength;
          if (bytes > limit) {
            throw new HttpError(413, 'BODY_TOO_LARGE', `the snapshot is more than ${limit} bytes, the most this host takes`, {
              hint: 'A host takes larger snapshots with [control] max_state_body in host.toml.',
            });
          }
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(file, { flags: 'wx' }),
    );
  } catch (error) {
    await remove();
    throw error;
  }
  if (hash.digest('base64url') !== signedHash) {
    await remove();
    throw bodyMismatch();
  }
  return { open: () => createReadStream(file), bytes, done: remove };
}

/** RFC 3339's date-time: a date, a time and an offset; `Date` alone also takes a bare date, local times and prose. */
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function dateParam(url: URL, name: string): Date | undefined {
  const text = url.searchParams.get(name);
  if (text === null) return undefined;
  const parts = DATE_TIME.exec(text);
  const [year, month, day] = (parts ?? []).slice(1, 4).map(Number) as [number, number, number];
  const date = new Date(text);
  // `Date` moves February 30th to March 2nd.
  if (!parts || Number.isNaN(date.getTime()) || day > new Date(Date.UTC(year, month, 0)).getUTCDate()) {
    throw new HttpError(400, 'INVALID_REQUEST', `${name} must be an RFC 3339 date-time, not "${text.slice(0, 40)}"`, {
      hint: / \d{2}:\d{2}$/.test(text)
        ? 'A + in a query reads as a space: send the offset percent-encoded (%2B00:00), or as Z.'
        : `Such as ${name}=2026-12-01T00:00:00Z.`,
    });
  }
  return date;
}

function integerParam(url: URL, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const text = url.searchParams.get(name);
  if (text === null) return fallback;
  const value = Number(text);
  if (!/^[0-9]+$/.test(text) || value < min || value > max) {
    throw new HttpError(400, 'INVALID_REQUEST', `${name} must be an integer from ${min} to ${max}, not "${text.slice(0, 40)}"`);
  }
  return value;
}

/**
 * Every store the name holds an installation's data in: its record's `stores`, or, for a record
 * an older host wrote, what its manifest grants, all that is known of it.
 */
function heldStores(installation: Installation, manifest: Manifest): StoreRef[] {
  return unionStores(installation.stores ?? [], storesOf(manifest.capabilities));
}

function parseManifestBody(text: string): Manifest {
  return parseManifest(text, 'stratum.toml').manifest;
}

/**
 * Installs a stored installation into the runtime as it was asked for last: what a restarting
 * host does for each one, and what an install that could not start puts back.
 */
export async function restoreInstallation(store: InstallationStore, runtime: HostRuntime, installation: Installation): Promise<void> {
  const { manifest } = parseManifest(installation.manifest, `${installation.name}/stratum.toml`);
  const status = await runtime.install({
    name: installation.name,
    domains: installation.domains,
    manifest,
    storedComponent: { digest: installation.digest, read: () => store.getComponent(installation.digest) },
    config: installation.config,
  });
  // It started when it was installed: a restarted host starts its instances as requests come,
  // instead of all of them at once.
  if (installation.desired === 'running' && status.state !== 'running') await runtime.start(installation.name, { onDemand: true });
  // Stopped, not just installed: a registrar reading the status after a restart sees what it saw before.
  if (installation.desired === 'stopped') await runtime.stop(installation.name);
}

/** Checks the install body's shape; every problem is named with its JSON path. */
export function parseInstallBody(body: Uint8Array): InstallBody {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new HttpError(400, 'INVALID_REQUEST', 'the install body is not JSON');
  }
  const problems: string[] = [];
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new HttpError(400, 'INVALID_REQUEST', 'the install body must be a JSON object');
  const input = value as Record<string, unknown>;
  const known = ['name', 'domains', 'manifest', 'component', 'config', 'keepConfig', 'start'];
  for (const key of Object.keys(input)) if (!known.includes(key)) problems.push(`/${key}: unknown member (known: ${known.join(', ')})`);
  if (input.name !== undefined && (typeof input.name !== 'string' || !NAME.test(input.name) || input.name.length > 63)) {
    problems.push('/name: must be a DNS label (lowercase letters, digits and hyphens, at most 63)');
  }
  if (typeof input.manifest !== 'string') problems.push('/manifest: must be the stratum.toml text');
  if (!Array.isArray(input.domains)) problems.push('/domains: must be an array of host names');
  else {
    // A capsule with no domain is one no request reaches, and the API adds none later.
    if (input.domains.length === 0) problems.push('/domains: at least one host name');
    if (input.domains.length > 256) problems.push('/domains: at most 256');
    for (const [index, domain] of input.domains.entries()) {
      if (typeof domain !== 'string' || !DOMAIN.test(domain)) problems.push(`/domains/${index}: must be a lowercase host name`);
    }
  }
  if (input.component !== undefined) {
    const component = input.component as Record<string, unknown> | null;
    if (
      component === null ||
      typeof component !== 'object' ||
      typeof component.base64 !== 'string' ||
      Object.keys(component).length !== 1
    ) {
      problems.push('/component: must be {"base64": "<the component bytes>"}');
    } else if (!BASE64.test(component.base64) || component.base64.length % 4 !== 0) {
      problems.push('/component/base64: is not base64');
    }
  }
  if (input.config !== undefined) {
    const config = input.config as Record<string, unknown> | null;
    if (config === null || typeof config !== 'object' || Array.isArray(config)) problems.push('/config: must be an object of strings');
    else for (const [key, item] of Object.entries(config)) if (typeof item !== 'string') problems.push(`/config/${key}: must be a string`);
  }
  if (input.keepConfig !== undefined && typeof input.keepConfig !== 'boolean') problems.push('/keepConfig: must be true or false');
  if (input.start !== undefined && typeof input.start !== 'boolean') problems.push('/start: must be true or false');
  if (problems.length > 0) throw new HttpError(400, 'INVALID_REQUEST', 'the install body is not valid', { details: problems });
  return input as unknown as InstallBody;
}
