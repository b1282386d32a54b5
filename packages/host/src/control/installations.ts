import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { errorMessage, isStratumError, type Logger, StratumError, silentLogger } from '@stratum/core';
import type { StoreRef } from './stores.ts';

/** What a host must remember of one installation to bring it back after a restart. */
export interface Installation {
  name: string;
  domains: string[];
  /** The manifest's TOML text, exactly as installed. */
  manifest: string;
  /** `sha256:<hex>` of the component, whose bytes are kept under components/. */
  digest: string;
  config: Record<string, string>;
  /**
   * The registrar (its name in host.toml) whose request installed it: besides operator keys, the
   * only one that sees and drives it (spec/host-api.md section 3.3), and the one its domains'
   * links must name.
   */
  registrar?: string;
  /**
   * What the registrar last asked for, which a restarted host brings back: `installed` (never
   * started since it was installed with `"start": false`), `running`, or `stopped` (by stop or
   * drain), so that a registrar can still tell a capsule it took out of service from one it never
   * started. Records written before `installed` existed say `stopped` for both.
   */
  desired: 'installed' | 'running' | 'stopped';
  /**
   * Every store an installation of this name was granted since the name's data was last deleted:
   * this one's manifest's, those of the installations it replaced, and those of an uninstalled
   * one whose kept data it took over. A replacement that drops a label leaves that store's data
   * under the name, so deleting the name's data (spec/host-api.md section 5.5) must empty these,
   * not only what the manifest grants now. Absent in a record an older host wrote: its manifest's
   * stores are all that is known of it.
   */
  stores?: StoreRef[];
  installedAt: string;
  updatedAt: string;
}

/** What is kept of an uninstalled installation: whose the data stored under its name is, and where it is. */
export interface Retired {
  name: string;
  registrar: string;
  uninstalledAt: string;
  /** The stores the name holds its data in (the installation's `stores`); absent in a record an older host wrote. */
  stores?: StoreRef[];
}

const NAME = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;
const DIGEST = /^sha256:([a-f0-9]{64})$/;

/**
 * Installations in the data directory: `installations/<name>.json` (mode 0600: config values
 * may be secrets) and the component bytes by digest in `components/sha256/<hex>.wasm`. Each
 * file is written to a temporary name and renamed, so a crash leaves the old or the new one.
 */
export class InstallationStore {
  readonly #dir: string;
  /** `<name>.json` per name whose installation was uninstalled: whose its stored data is. */
  readonly #retired: string;
  readonly #components: string;
  readonly #logger: Logger;
  /** Each installation's registrar by name, once `list` has read them all (see `registrarOf`). */
  readonly #registrars = new Map<string, string | undefined>();
  #listed: Promise<unknown> | undefined;
  /**
   * Installation files `list` could not read as records, by the name their file gives, with why:
   * shown as installations that failed, which only the host's operator may remove or replace.
   */
  readonly damaged = new Map<string, string>();

  constructor(dataDir: string, logger: Logger = silentLogger) {
    this.#dir = join(dataDir, 'installations');
    this.#retired = join(this.#dir, 'uninstalled');
    this.#components = join(dataDir, 'components', 'sha256');
    this.#logger = logger;
  }

  async init(): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await mkdir(this.#components, { recursive: true });
  }

  /** Stores component bytes under their digest (checked) and returns the digest. */
  async putComponent(bytes: Uint8Array, expected?: string): Promise<string> {
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (expected !== undefined && expected !== digest) {
      throw new StratumError('DIGEST_MISMATCH', 'the component is not the one the manifest names', {
        details: [`manifest: ${expected}`, `received: ${digest}`],
        hint: "Send the component whose sha256 is the manifest's [source] digest.",
      });
    }
    const path = this.#componentPath(digest);
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, bytes);
    await rename(temporary, path);
    return digest;
  }

  async getComponent(digest: string): Promise<Uint8Array> {
    // A Buffer is a Uint8Array already: copying a 12 MB component cost 35-50 ms on a small VM.
    return await readFile(this.#componentPath(digest));
  }

  async save(installation: Installation): Promise<void> {
    const path = this.#path(installation.name);
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, `${JSON.stringify(installation, null, 2)}\n`, { mode: 0o600 });
    await rename(temporary, path);
    this.#registrars.set(installation.name, installation.registrar);
    this.damaged.delete(installation.name);
    await rm(this.#retiredPath(installation.name), { force: true });
  }

  /**
   * The registrar whose installation `name` is, without reading a file: each served request's
   * usage is recorded under it. Known for every installation once they have been listed (a host
   * does as it starts, `indexed` makes sure); undefined for none or one without a registrar.
   */
  registrarOf(name: string): string | undefined {
    return this.#registrars.get(name);
  }

  /** Every installation's registrar by name, as far as they have been listed (all of them once a host has started). */
  registrars(): ReadonlyMap<string, string | undefined> {
    return this.#registrars;
  }

  /** Every installation's registrar by name, listing them first if that has not been done. */
  async indexed(): Promise<ReadonlyMap<string, string | undefined>> {
    this.#listed ??= this.list();
    await this.#listed;
    return this.#registrars;
  }

  /** The installation of `name`; an `INSTALLATION_DAMAGED` error for a file that is not a record. */
  async get(name: string): Promise<Installation | undefined> {
    const path = this.#path(name);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    return installationRecord(text, path, name);
  }

  /** Records what a registrar asked for: a drained capsule stays out of service after a restart. */
  async setDesired(name: string, desired: Installation['desired']): Promise<void> {
    const installation = await this.get(name);
    if (!installation || installation.desired === desired) return;
    await this.save({ ...installation, desired, updatedAt: new Date().toISOString() });
  }

  /**
   * Removes the installation, and its component when no other installation uses it. Its stored
   * data stays (spec/host-api.md section 5.5), and so do whose it is and the stores it is in
   * (`retired`), until the name is installed again or `dataDeleted` says the data is gone.
   * `stores`: those stores (default: the installation's record's); `owner`: whose the data is
   * when the installation does not say (one made before installations recorded their registrar),
   * so that a name whose data is being deleted is nobody else's meanwhile.
   */
  async remove(name: string, options: { stores?: StoreRef[]; owner?: string } = {}): Promise<void> {
    const installation = await this.get(name).catch((error: unknown) => {
      if (!isStratumError(error) || error.code !== 'INSTALLATION_DAMAGED') throw error;
      return undefined;
    });
    const damaged = installation === undefined && (this.damaged.has(name) || (await this.#exists(name)));
    const registrar = installation?.registrar ?? options.owner;
    // Written before the installation goes: at no moment is the name free for another registrar.
    // A damaged record says nothing of whose the data is: the operator removing it holds it.
    if ((installation || damaged) && registrar !== undefined) {
      const stores = options.stores ?? installation?.stores;
      const record: Retired = { name, registrar, uninstalledAt: new Date().toISOString(), ...(stores ? { stores } : {}) };
      await mkdir(this.#retired, { recursive: true, mode: 0o700 });
      const path = this.#retiredPath(name);
      const temporary = `${path}.${process.pid}.tmp`;
      await writeFile(temporary, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
      await rename(temporary, path);
    }
    if (damaged) {
      // Not a record: kept aside for the operator to read, never read again as one.
      await rename(this.#path(name), `${this.#path(name)}.damaged-${Date.now()}`).catch(() => {});
      this.damaged.delete(name);
    }
    await rm(this.#path(name), { force: true });
    this.#registrars.delete(name);
    if (installation) await this.dropComponentIfUnused(installation.digest);
  }

  /**
   * Everything the name held is deleted: it holds nothing of anyone's, and any registrar may
   * install it. Only once every store is empty: a deletion that fails part-way leaves the name
   * its registrar's, to ask again.
   */
  async dataDeleted(name: string): Promise<void> {
    await rm(this.#retiredPath(name), { force: true });
  }

  /**
   * The installation of `name` uninstalled last with its data kept: the data stored under the
   * name is its registrar's until another installation of the name takes it over (`save`).
   */
  async retired(name: string): Promise<Retired | undefined> {
    try {
      return JSON.parse(await readFile(this.#retiredPath(name), 'utf8')) as Retired;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  #retiredPath(name: string): string {
    return join(this.#retired, `${basename(this.#path(name))}`);
  }

  async dropComponentIfUnused(digest: string): Promise<void> {
    const installations = await this.list();
    if (!installations.some((installation) => installation.digest === digest)) await rm(this.#componentPath(digest), { force: true });
  }

  /** Removes component files no installation uses (left by an install that failed half-way). */
  async prune(): Promise<number> {
    const used = new Set((await this.list()).map((installation) => installation.digest));
    let removed = 0;
    for (const file of await readdir(this.#components).catch(() => [] as string[])) {
      const digest = `sha256:${file.replace(/\.wasm$/, '')}`;
      if (file.endsWith('.tmp') || (DIGEST.test(digest) && !used.has(digest))) {
        await rm(join(this.#components, file), { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Every stored installation; an unreadable file is logged and skipped, not fatal. */
  async list(): Promise<Installation[]> {
    const files = (await readdir(this.#dir).catch(() => [] as string[])).filter((file) => file.endsWith('.json')).sort();
    const out: Installation[] = [];
    this.damaged.clear();
    for (const file of files) {
      const path = join(this.#dir, file);
      try {
        out.push(installationRecord(await readFile(path, 'utf8'), path, file.slice(0, -'.json'.length)));
      } catch (error) {
        this.#logger.error({ file: path, err: error }, 'skipping an unreadable installation record');
        if (NAME.test(file.slice(0, -'.json'.length))) this.damaged.set(file.slice(0, -'.json'.length), errorMessage(error));
      }
    }
    this.#registrars.clear();
    for (const installation of out) this.#registrars.set(installation.name, installation.registrar);
    this.#listed ??= Promise.resolve();
    return out;
  }

  async #exists(name: string): Promise<boolean> {
    return await stat(this.#path(name)).then(
      () => true,
      () => false,
    );
  }

  #path(name: string): string {
    if (!NAME.test(name)) throw new StratumError('INVALID_NAME', `"${name.slice(0, 80)}" is not an installation name`);
    return join(this.#dir, `${name}.json`);
  }

  #componentPath(digest: string): string {
    const hex = DIGEST.exec(digest)?.[1];
    if (!hex) throw new StratumError('INVALID_DIGEST', `"${digest.slice(0, 80)}" is not a sha256 digest`);
    return join(this.#components, `${hex}.wasm`);
  }
}

/**
 * An installation file read as a record: JSON with the fields every host has written, under the
 * name its file gives. Anything else (a file cut short, edited by hand) is `INSTALLATION_DAMAGED`,
 * naming the file and what is wrong, rather than a TypeError in whatever reads it next.
 */
function installationRecord(text: string, path: string, name: string): Installation {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw damagedRecord(path, `not JSON (${errorMessage(error)})`);
  }
  const record = value as Partial<Record<keyof Installation, unknown>> | null;
  if (record === null || typeof record !== 'object' || Array.isArray(record)) throw damagedRecord(path, 'not a JSON object');
  if (record.name !== name) throw damagedRecord(path, `its name is ${JSON.stringify(record.name)}, not "${name}" as its file says`);
  for (const field of ['manifest', 'digest'] as const) {
    if (typeof record[field] !== 'string') throw damagedRecord(path, `it has no ${field}`);
  }
  if (!Array.isArray(record.domains) || !record.domains.every((domain) => typeof domain === 'string')) {
    throw damagedRecord(path, 'its domains are not a list of names');
  }
  return record as Installation;
}

function damagedRecord(path: string, problem: string): StratumError {
  return new StratumError('INSTALLATION_DAMAGED', `${path} is not an installation record: ${problem}`, {
    hint: 'The host operator may remove it (host uninstall, which keeps the file aside) or install the name again.',
  });
}
