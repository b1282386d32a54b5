import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage, StratumError } from '@stratum/core';
import { CAPABILITY_MODULES, createHostRuntime, type HostConfig, resolveConfig, type StratumHostRuntime } from '@stratum/host';
import { loadManifest, type Manifest, routeExample, routeMatches } from '@stratum/manifest';
import { buildCapsule, buildDevCapsule, DEFAULT_ENTRIES, linkSdkForEditors } from '@stratum/sdk/build';
import { readLocalComponent } from '../local-component.ts';
import { type BackendFlag, capabilityConfigFor, describeBackends, outboundConfigFor } from './backends.ts';
import { type BuildKind, type DevOutput, type ServedCapsule, type ShownVariable, versionId } from './output.ts';
import { TopLevelProbe } from './probe.ts';
import { DEV_SOURCE_CAPABILITY, type DevSourceConfig } from './source-capability.ts';
import { droppedStoresNotes, loadServedStores, saveServedStores, servedStores } from './stores.ts';
import { PROJECT_VAR_FILE, readProjectVarFile, type VarFlag, varSources, varsFor } from './vars.ts';
import { type DirectoryWatcher, isWatchedPath, watchDirectory } from './watch.ts';

/** The SDK's sources: a capsule's build depends on them as much as on its own files. */
const sdkSrc = fileURLToPath(new URL('.', import.meta.resolve('@stratum/sdk')));

async function listFiles(dir: string, base: string, skip: (path: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (skip(relative(base, path))) continue;
    if (entry.isDirectory()) out.push(...(await listFiles(path, base, skip)));
    else if (entry.isFile()) out.push(path);
  }
  return out.sort();
}

/**
 * A hash of everything a build reads: the project's files (not its output) and the SDK's. A
 * build is kept in `<dir>/.stratum/build/<hash>.wasm`, so a restart with nothing changed is quick.
 */
export async function buildInputsHash(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const [base, files] of [
    [dir, await listFiles(dir, dir, (path) => !isWatchedPath(path))],
    [sdkSrc, await listFiles(sdkSrc, sdkSrc, (path) => path.endsWith('.test.ts'))],
  ] as const) {
    for (const file of files)
      hash
        .update(relative(base, file))
        .update('\0')
        .update(await readFile(file))
        .update('\0');
  }
  return hash.digest('hex').slice(0, 32);
}

const exists = (path: string) =>
  stat(path).then(
    (info) => info.isFile(),
    () => false,
  );

/** Whether `stratum dev` builds this project (it has JS/TS sources) or serves a prebuilt component. */
async function hasSources(dir: string, manifest: Manifest): Promise<boolean> {
  if (manifest.build) return true;
  for (const entry of DEFAULT_ENTRIES) if (await exists(join(dir, entry))) return true;
  return false;
}

/** The host names a capsule answers to: its own `*.localhost` name, and plain loopback when alone. */
export function devDomains(name: string, alone: boolean): string[] {
  return alone ? [`${name}.localhost`, 'localhost', '127.0.0.1', '::1'] : [`${name}.localhost`];
}

export interface DevCapsuleOptions {
  /** The project directory, as the user gave it (shown in messages). */
  dir: string;
  alone: boolean;
  port: number;
  flags: readonly BackendFlag[];
  /** From `--config <host.toml>`: a host's limits, store tables and trusted proxies, as a real host would apply them. */
  hostConfig?: Pick<HostConfig, 'limits' | 'instances' | 'capabilities' | 'ingress'>;
  /**
   * Values for the manifests' config variables (`--var`, `--var-file`); this capsule takes its
   * own. Read again at every reload, so that an edited --var-file is served with the next one.
   */
  vars?: () => Promise<readonly VarFlag[]>;
  /**
   * `--full-build`: a production build (componentize-js) on every change, as `stratum build`
   * makes, instead of a bundle run by a dev engine.
   */
  fullBuild?: boolean;
  /**
   * Read the project's `.env` for config values at every reload, as --var-file reads a file (no
   * --var-file was given); --var flags win over it.
   */
  projectVarFile?: boolean;
  output: DevOutput;
}

interface Version {
  manifest: Manifest;
  /** The config values it was installed with, as JSON: a change to them alone is a new version too. */
  config: string;
  digest: string;
  /** A dev build's bundle digest: the same engine serves every save, so this tells versions apart. */
  bundle: string | undefined;
  inputs: string | undefined;
}

interface Built {
  manifest: Manifest;
  component: Uint8Array;
  digest: string;
  /** A dev build's code, its digest, and its source map (the runtime maps its stack frames with it). */
  bundle?: { code: string; digest: string; sourceMap: string };
  /** A dev build's engine, for people (`keyvalue, sql`). */
  engine?: string;
  inputs?: string;
  build: BuildKind;
}

/**
 * One capsule under development: its own runtime with its state under `<dir>/.stratum/`, its
 * build, and its reloads. A reload builds the new version while the last good one serves, then
 * has the runtime swap them (the new one starts before the old one drains); a failed build,
 * manifest, top-level code (run by the probe before the swap) or start leaves the last good
 * version serving.
 */
export class DevCapsule {
  readonly name: string;
  readonly dir: string;
  readonly shownDir: string;
  readonly stateDir: string;
  readonly domains: string[];
  readonly runtime: StratumHostRuntime;
  readonly #options: DevCapsuleOptions;
  readonly #initial: Manifest;
  #current: Version | undefined;
  /** The dev engine last read, so that a save does not read and hash 13 MB again. */
  #engine: { path: string; component: Uint8Array; digest: string } | undefined;
  #lastError: string | undefined;
  #unsubscribeLogs: (() => void) | undefined;
  #unsubscribeRequests: () => void;
  #watcher: DirectoryWatcher | undefined;
  #running: Promise<void> | undefined;
  #again: string | undefined;
  #closed = false;
  /** `@stratum/sdk` linked for the editor, once a session (see `linkSdkForEditors`). */
  #sdkLinked = false;
  /**
   * Whether dev builds the capsule from its sources (`hasSources`), as of its last build: then
   * the file [source] wasm names is `stratum build`'s output, not something dev serves.
   */
  #fromSources: boolean;
  /** Said once: the manifest's [source] is a registry's, which dev does not serve. */
  #pinNoted = false;
  /** The config values of the last reload that got as far as reading them, and where each came from, for the banner. */
  #config: { values: Record<string, string>; sources: Record<string, string> } = { values: {}, sources: {} };
  /** Runs a dev build's top-level code before the swap; opened at the first dev build. */
  #probe: Promise<TopLevelProbe> | undefined;

  private constructor(options: DevCapsuleOptions, manifest: Manifest, runtime: StratumHostRuntime, fromSources: boolean) {
    this.#options = options;
    this.#initial = manifest;
    this.#fromSources = fromSources;
    this.name = manifest.capsule.name;
    this.shownDir = options.dir;
    this.dir = resolve(options.dir);
    this.stateDir = join(this.dir, '.stratum');
    this.domains = devDomains(this.name, options.alone);
    this.runtime = runtime;
    this.#unsubscribeRequests = runtime.onRequest((record) => options.output.request(record));
  }

  /** Reads the manifest (which must be valid to start: it names the capsule) and creates its runtime. */
  static async open(options: DevCapsuleOptions): Promise<DevCapsule> {
    const manifestFile = join(options.dir, 'stratum.toml');
    const { manifest } = await loadManifest(manifestFile);
    const stateDir = join(resolve(options.dir), '.stratum');
    await mkdir(stateDir, { recursive: true });
    // The state is the developer's, not the project's: keep it out of their commits.
    await writeFile(join(stateDir, '.gitignore'), '*\n');
    const dev: DevSourceConfig = { bundleFile: bundleFile(stateDir) };
    const runtime = await createHostRuntime({
      dataDir: stateDir,
      // Only dev's runtime serves stratum:dev/source: a real host refuses a dev engine.
      capabilities: [...CAPABILITY_MODULES, DEV_SOURCE_CAPABILITY],
      capabilityConfig: {
        ...capabilityConfigFor(manifest, options.flags, options.hostConfig?.capabilities),
        outbound: outboundConfigFor(options.hostConfig?.capabilities.outbound),
        dev,
      },
      // No back-off: a host holds off a capsule that keeps failing, but a developer trying the
      // paths that fail would then get 503s that hide the next error, for up to a minute.
      backoffAfter: Number.POSITIVE_INFINITY,
      // A dev engine runs the capsule's top-level code on each instance's first request (a
      // production build ran it while building), and a freshly built engine has no code cache yet:
      // with a build on both cores beside it, a first request after a swap went past the host's
      // 500 ms warm-up allowance once in CI, a 504 a developer could do nothing about.
      warmupCpuMs: 2000,
      // A developer who fixes a statement that never ended wants the capsule back at the next
      // save; the stuck thread's core is their own machine's, freed when dev restarts.
      stuckThreadsPerCapsule: Number.POSITIVE_INFINITY,
      ...(options.hostConfig
        ? {
            limits: options.hostConfig.limits,
            trustedProxies: options.hostConfig.ingress.trustedProxies,
            ...(options.hostConfig.instances.max !== undefined ? { maxInstances: options.hostConfig.instances.max } : {}),
            ...(options.hostConfig.instances.waitingPerCapsule !== undefined
              ? { asyncInstancesPerCapsule: options.hostConfig.instances.waitingPerCapsule }
              : {}),
          }
        : {}),
    });
    return new DevCapsule(options, manifest, runtime, await hasSources(resolve(options.dir), manifest));
  }

  get manifest(): Manifest {
    return this.#current?.manifest ?? this.#initial;
  }

  /** Whether a version is serving (the first build may have failed). */
  get serving(): boolean {
    return this.#current !== undefined;
  }

  get urls(): string[] {
    return this.served().urls;
  }

  served(): ServedCapsule {
    const port = this.#options.port;
    const hosts = this.#options.alone ? [`${this.name}.localhost`, '127.0.0.1', 'localhost'] : [`${this.name}.localhost`];
    return {
      name: this.name,
      version: this.manifest.capsule.version,
      dir: this.shownDir,
      urls: hosts.map((host) => `http://${host}:${port}${routeExample(this.manifest.http.routes)}`),
      capabilities: describeBackends(
        this.manifest,
        capabilityConfigFor(this.manifest, this.#options.flags, this.#options.hostConfig?.capabilities),
      ),
      config: Object.entries(this.manifest.capabilities.config).map(([name, variable]): ShownVariable => {
        const given = Object.hasOwn(this.#config.values, name) ? this.#config.values[name] : undefined;
        const value = given !== undefined ? 'given' : variable.default !== undefined ? 'default' : variable.required ? 'missing' : 'unset';
        const text = given ?? variable.default;
        const from = given !== undefined ? this.#config.sources[name] : undefined;
        return {
          name,
          secret: variable.secret,
          value,
          ...(text !== undefined && !variable.secret ? { text } : {}),
          ...(from !== undefined ? { from } : {}),
        };
      }),
      ...(this.#readsVarFile(this.manifest) && existsSync(join(this.dir, PROJECT_VAR_FILE))
        ? { varFile: join(this.shownDir, PROJECT_VAR_FILE) }
        : {}),
      stateDir: join(this.shownDir, '.stratum'),
    };
  }

  #readsVarFile(manifest: Manifest): boolean {
    return this.#options.projectVarFile === true && Object.keys(manifest.capabilities.config).length > 0;
  }

  /** Serves a request for one of this capsule's domains, or says why it cannot yet. */
  handleRequest(request: IncomingMessage, response: ServerResponse): void {
    if (this.#current) {
      const url = request.url ?? '/';
      const queryAt = url.indexOf('?');
      const path = queryAt === -1 ? url : url.slice(0, queryAt);
      const routes = this.manifest.http.routes;
      if (routeMatches(routes, path)) {
        this.runtime.handleRequest(request, response);
        return;
      }
      // A host answers a bare 404 before the capsule sees the request, and records nothing; here
      // the developer is told which line of stratum.toml decides it, in the browser and the terminal.
      request.resume();
      const body = `${this.name} serves no route that matches ${path}: [http] routes in stratum.toml are ${routes.join(', ')}.\nAdd a route there (such as "${path}" or "${path.replace(/\/[^/]*$/, '')}/*") to serve it.\n`;
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      response.end(body);
      this.#options.output.unrouted({ capsule: this.name, method: request.method ?? 'GET', path, routes });
      return;
    }
    request.resume();
    const body =
      this.#lastError === undefined
        ? `${this.name} is still starting (building); try again in a moment.\n`
        : `${this.name} has no working version yet: ${this.#lastError}\nSee the terminal running \`stratum dev\`.\n`;
    response.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '2', 'content-length': Buffer.byteLength(body) });
    response.end(body);
  }

  /** Builds and serves (or rebuilds and swaps); calls that come during a reload run once after it. */
  reload(reason: string): Promise<void> {
    if (this.#running) {
      this.#again = reason;
      return this.#running;
    }
    this.#running = (async () => {
      let next: string | undefined = reason;
      while (next !== undefined && !this.#closed) {
        this.#again = undefined;
        await this.#reloadOnce(next);
        next = this.#again;
      }
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #reloadOnce(reason: string): Promise<void> {
    const output = this.#options.output;
    const previous = this.#current;
    output.building(this.name, reason);
    const started = performance.now();
    try {
      const built = await this.#build();
      const buildMs = performance.now() - started;
      const vars = this.#options.vars ? await this.#options.vars() : [];
      const varFile = join(this.shownDir, PROJECT_VAR_FILE);
      // Only for a manifest with config variables: a project without any may keep a .env for
      // another tool, whose lines are none of dev's business.
      const fromFile = this.#readsVarFile(built.manifest) ? await readProjectVarFile(join(this.dir, PROJECT_VAR_FILE), varFile) : undefined;
      const declared = this.#options.alone ? undefined : Object.keys(built.manifest.capabilities.config);
      // The project's own file: every line is for this capsule (a name it does not declare is
      // refused, as a typo), and a --var on the command line wins over it.
      const config =
        vars.length > 0 || fromFile !== undefined
          ? { ...varsFor(this.name, fromFile ?? []), ...varsFor(this.name, vars, declared) }
          : undefined;
      this.#config = {
        values: config ?? {},
        sources: { ...varSources(this.name, fromFile ?? []), ...varSources(this.name, vars, declared) },
      };
      // As a host's control API does: a value for a variable the manifest does not declare is
      // refused, and a required one without a value, here with how dev gives values.
      try {
        resolveConfig({ capsule: this.name, manifest: built.manifest, config: config ?? {} });
      } catch (error) {
        if (!(error instanceof StratumError) || error.code !== 'CONFIG_INVALID') throw error;
        throw new StratumError(error.code, error.message, {
          details: error.details,
          hint: this.#readsVarFile(built.manifest)
            ? `Put name=value lines in ${varFile} (dev reads it at every reload: save it and the capsule is served with them; keep it out of commits, as the templates' .gitignore does), or give --var name=value; only the variables [capabilities.config] in stratum.toml declares.`
            : 'Give variables with --var name=value, or --var-file <file> of name=value lines (for secrets, kept off the command line); only those [capabilities.config] in stratum.toml declares.',
        });
      }
      const configJson = JSON.stringify(config ?? {});
      if (this.#closed) return;
      if (
        previous &&
        built.digest === previous.digest &&
        built.bundle?.digest === previous.bundle &&
        JSON.stringify(built.manifest) === JSON.stringify(previous.manifest) &&
        configJson === previous.config
      ) {
        this.#current = { ...previous, inputs: built.inputs };
        // A save is how a developer asks for the capsule back: one the runtime stopped (a thread
        // stuck in SQLite, say) is served again, even with nothing to rebuild.
        const stopped = this.runtime.status().find((capsule) => capsule.name === this.name);
        if (stopped !== undefined && stopped.state !== 'running') {
          await this.runtime.start(this.name);
          output.notice(
            `serving ${previous.manifest.capsule.version} again, unchanged; it was ${stopped.state}${stopped.lastError ? `: ${stopped.lastError}` : ''}`,
            this.name,
          );
        } else {
          output.notice(
            this.#lastError === undefined ? 'no change to serve' : `fixed; still serving ${previous.manifest.capsule.version}, unchanged`,
            this.name,
          );
        }
        this.#lastError = undefined;
        return;
      }
      const swapStarted = performance.now();
      // A dev engine runs the top-level code at an instance's first request: without this, a
      // version whose top-level code throws would start cleanly, take the traffic from the good
      // one, and answer every request 500. (A full build ran it while building.)
      if (built.bundle) {
        this.#probe ??= TopLevelProbe.open({ stateDir: this.stateDir, hostConfig: this.#options.hostConfig }).catch((error: unknown) => {
          this.#probe = undefined;
          throw error;
        });
        const manifest = unpinned(built.manifest);
        await (await this.#probe).check({
          name: this.name,
          manifest,
          component: built.component,
          bundle: built.bundle.code,
          sourceMap: built.bundle.sourceMap,
          ...(config ? { config } : {}),
        });
        if (this.#closed) return;
      }
      // The dev capability reads it during install: the version installed carries this code.
      if (built.bundle) await writeAtomically(bundleFile(this.stateDir), built.bundle.code);
      await this.runtime.install({
        name: this.name,
        manifest: built.build === 'prebuilt' ? built.manifest : unpinned(built.manifest),
        domains: this.domains,
        baseDir: this.dir,
        component: built.component,
        ...(config ? { config } : {}),
        ...(built.bundle ? { sourceMap: built.bundle.sourceMap } : {}),
      });
      const status = this.runtime.status().find((capsule) => capsule.name === this.name);
      if (status?.state !== 'running') await this.runtime.start(this.name);
      this.#current = {
        manifest: built.manifest,
        config: configJson,
        digest: built.digest,
        bundle: built.bundle?.digest,
        inputs: built.inputs,
      };
      this.#lastError = undefined;
      this.#followLogs();
      // The old version has drained by now (install waits for it), so its files can go.
      await pruneTranspileCache(this.stateDir, built.digest);
      output.swapped(this.name, {
        version: built.manifest.capsule.version,
        digest: built.digest,
        ...(built.bundle ? { bundle: built.bundle.digest } : {}),
        ...(built.engine ? { engine: built.engine } : {}),
        build: built.build,
        buildMs,
        swapMs: performance.now() - swapStarted,
        first: previous === undefined,
      });
      await this.#noteDroppedStores(previous?.manifest, built.manifest);
      const renamed = built.manifest.capsule.name;
      if (renamed !== this.name) {
        // Its domains, state directory and log prefix come from the name it started with.
        output.notice(
          `[capsule] name is now "${renamed}": this run serves it as ${this.name} still (${this.domains.join(', ')}); restart stratum dev to serve it as ${renamed}`,
          this.name,
        );
      }
    } catch (error) {
      if (this.#closed) return;
      this.#lastError = errorMessage(error);
      output.failed(this.name, error, previous ? `${previous.manifest.capsule.version}, ${versionId(previous)}` : undefined);
    }
  }

  /**
   * A store the last version served (in this run, or the one before, from `.stratum/dev/`) that
   * this one does not grant: said, since the capsule now finds an empty store under a renamed label.
   */
  async #noteDroppedStores(previous: Manifest | undefined, manifest: Manifest): Promise<void> {
    const stores = (of: Manifest) =>
      servedStores(describeBackends(of, capabilityConfigFor(of, this.#options.flags, this.#options.hostConfig?.capabilities)));
    const file = join(this.stateDir, 'dev', 'stores.json');
    const before = previous ? stores(previous) : await loadServedStores(file);
    const after = stores(manifest);
    if (before)
      for (const note of droppedStoresNotes(before, after, join(this.shownDir, '.stratum'))) this.#options.output.notice(note, this.name);
    // This version's stores replace the last's: a note is said at the version that drops a store, not at every save or restart.
    await saveServedStores(file, after).catch(() => {});
  }

  async #build(): Promise<Built> {
    const { manifest } = await loadManifest(join(this.dir, 'stratum.toml'), join(this.shownDir, 'stratum.toml'));
    this.#fromSources = await hasSources(this.dir, manifest);
    if (!this.#fromSources) {
      if (manifest.source.kind !== 'wasm') {
        throw new StratumError('DEV_NO_LOCAL_SOURCE', `${this.name} has no sources to build and no local component`, {
          details: [`[source] registry = "${manifest.source.registry}"`],
          hint: 'stratum dev runs a project on this machine: add src/index.ts (or [build] entry), or set [source] wasm to a local file.',
        });
      }
      const { bytes: component } = await readLocalComponent(
        join(this.shownDir, 'stratum.toml'),
        { ...manifest, source: manifest.source },
        'DEV_NO_COMPONENT',
      );
      const digest = digestOf(component);
      const pin = manifest.source.digest;
      if (pin !== undefined && pin !== digest) {
        // As a host refuses it; the runtime's own words ("changed or corrupted") did not say why a developer's file would differ.
        throw new StratumError('DEV_DIGEST_MISMATCH', `${manifest.source.wasm} is not the build stratum.toml pins`, {
          details: [`[source] digest ${pin}`, `${manifest.source.wasm} is ${digest}`],
          hint: `The pin is the digest of a published build (as \`stratum pull --manifest\` writes it); this file is another build. Rebuild or pull the published one to serve it, or re-pin to this one: set [source] digest = "${digest}", or remove the line.`,
        });
      }
      return { manifest, component, digest, build: 'prebuilt' };
    }
    if (manifest.source.kind === 'registry' && !this.#pinNoted) {
      this.#pinNoted = true;
      this.#options.output.notice(
        `stratum.toml's [source] is the published ${manifest.source.registry} (pinned); dev serves this directory's sources, but stratum build has no [source] wasm to write to: see stratum push --help`,
        this.name,
      );
    }
    if (!this.#sdkLinked) {
      this.#sdkLinked = true;
      // For the editor: a convenience, which a read-only node_modules must not fail.
      await linkSdkForEditors(this.dir).catch(() => undefined);
    }
    return this.#options.fullBuild ? this.#fullBuild(manifest) : this.#devBuild();
  }

  /** The fast path: a new bundle, and the dev engine for its imports (built only when they changed). */
  async #devBuild(): Promise<Built> {
    const result = await buildDevCapsule(this.dir, {
      onStep: (step, message) => {
        if (step === 'engine') this.#options.output.notice(message, this.name);
      },
    });
    const path = result.engine.path;
    if (this.#engine?.path !== path) {
      const component = await readFile(path);
      this.#engine = { path, component, digest: digestOf(component) };
    }
    return {
      manifest: result.manifest,
      component: this.#engine.component,
      digest: this.#engine.digest,
      bundle: {
        code: result.bundle,
        digest: digestOf(Buffer.from(result.bundle)),
        sourceMap: result.sourceMap,
      },
      engine: result.engine.serves,
      build: result.engine.built ? 'engine' : 'bundle',
    };
  }

  async #fullBuild(manifest: Manifest): Promise<Built> {
    const inputs = await buildInputsHash(this.dir);
    const buildDir = join(this.stateDir, 'build');
    const cached = join(buildDir, `${inputs}.wasm`);
    if (await exists(cached)) {
      const component = await readFile(cached);
      return { manifest, component, digest: digestOf(component), inputs, build: 'cached' };
    }
    await mkdir(buildDir, { recursive: true });
    const temporary = `${cached}.${process.pid}.tmp`;
    const result = await buildCapsule(this.dir, { output: temporary });
    await rename(temporary, cached);
    // One build is kept (the one serving): the cache is for restarts, not history.
    for (const name of await readdir(buildDir)) if (name !== `${inputs}.wasm`) await rm(join(buildDir, name), { force: true });
    const component = await readFile(cached);
    return { manifest: result.manifest, component, digest: digestOf(component), inputs, build: 'component' };
  }

  #followLogs(): void {
    this.#unsubscribeLogs?.();
    // The runtime keeps logs per installed version, so the new one's backlog is its own lines.
    this.#unsubscribeLogs = this.runtime.subscribeLogs(this.name, (entry) => {
      if (entry.source === 'host' && entry.level === 'info' && /^(installed|started|drained|stopped)\b/.test(entry.message)) return;
      this.#options.output.log(entry);
    });
  }

  /** Rebuilds on every change to the project's files (sources, manifest, a prebuilt component). */
  watch(): void {
    const source = this.manifest.source;
    const alsoWatch = source.kind === 'wasm' ? [relative(this.dir, resolve(this.dir, source.wasm))] : [];
    this.#watcher = watchDirectory(
      this.dir,
      (changed) => {
        const paths = this.#fromSources ? changed.filter((path) => !this.#isBuildOutput(path)) : changed;
        if (paths.length === 0) return;
        // Editors' temporary files come and go within the burst: name what is there now.
        const present = paths.filter((path) => existsSync(join(this.dir, path)));
        const named = present.length > 0 ? present : paths;
        const shown = named.length === 1 ? named[0] : `${named[0]} and ${named.length - 1} more`;
        void this.reload(`${shown} changed, ${paths.includes('stratum.toml') ? 'reloading' : 'rebuilding'}`);
      },
      { alsoWatch, onError: (error) => this.#options.output.notice(`watching stopped: ${error.message}`, this.name) },
    );
  }

  /**
   * Whether a changed path is what `stratum build` writes: the file [source] wasm names, or the
   * temporary file it is written to first. Dev builds its own version from the sources, so that
   * file changing is no change to what it serves (a prebuilt component, watched, is).
   */
  #isBuildOutput(path: string): boolean {
    const source = this.manifest.source;
    if (source.kind !== 'wasm') return false;
    const component = relative(this.dir, resolve(this.dir, source.wasm));
    return path === component || (path.startsWith(`${component}.`) && path.endsWith('.tmp'));
  }

  /** Stops watching and serving; waits for a build in progress; keeps the state directory. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#watcher?.close();
    this.#unsubscribeRequests();
    this.#unsubscribeLogs?.();
    // A build in progress ends first (Ctrl-C in a terminal ends the toolchain process too), so
    // that no install can start a worker after the runtime closed.
    await this.#running?.catch(() => {});
    await this.runtime.close();
    await (await this.#probe?.catch(() => undefined))?.close();
  }
}

/**
 * Every save makes a new component, and the runtime's transpile cache keeps each one (about
 * 15 MB for a JS capsule): over a day of edits that is gigabytes. Dev serves one version at a
 * time, so it keeps the cache of that one. Only entries named as the loader names them (the
 * digest's hex first) are touched; anything else is left alone.
 */
async function pruneTranspileCache(stateDir: string, digest: string): Promise<void> {
  const hex = digest.replace(/^sha256:/, '');
  const sweep = async (dir: string, pattern: RegExp) => {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (pattern.test(name) && !name.startsWith(hex.slice(0, 32)))
        await rm(join(dir, name), { recursive: true, force: true }).catch(() => {});
    }
  };
  await sweep(join(stateDir, 'cache', 'transpiled'), /^[0-9a-f]{32}-[0-9a-f]{16}$/);
  await sweep(join(stateDir, 'cache', 'inspect'), /^[0-9a-f]{64}\.json$/);
}

/**
 * The manifest a version dev built from the sources is installed with: without a pin in
 * [source] (a digest, or a registry's), which names a published build. Dev's build is other
 * bytes (a dev engine, or a build of the sources as they are now), and the runtime refused it as
 * "changed or corrupted". A host still checks the pin of what is installed there.
 */
function unpinned(manifest: Manifest): Manifest {
  const { source } = manifest;
  if (source.digest === undefined) return manifest;
  return { ...manifest, source: { kind: 'wasm', wasm: source.kind === 'wasm' ? source.wasm : join('.stratum', 'build', 'dev.wasm') } };
}

/** Where dev writes the bundle the dev capability serves to the version being installed. */
function bundleFile(stateDir: string): string {
  return join(stateDir, 'dev', 'bundle.js');
}

async function writeAtomically(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, path);
}

function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
