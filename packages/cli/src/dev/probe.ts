import { lstat, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { StratumError } from '@stratum/core';
import { CAPABILITY_MODULES, type CapsuleLogEntry, createHostRuntime, type HostConfig, type StratumHostRuntime } from '@stratum/host';
import { type Manifest, routeExample } from '@stratum/manifest';
import { DEV_SOURCE_CAPABILITY, type DevSourceConfig } from './source-capability.ts';

/** The header the probe's own handler answers with: any other answer came from the capsule's code or the engine. */
const LOADED_HEADER = 'x-stratum-dev-probe';

/** What the dev engine logs, and answers with, when the bundle's evaluation threw (@stratum/sdk's dev-engine.ts). */
const ENGINE_SAYS_THREW = "stratum dev: the capsule's top-level code threw on this instance's first request";
const ENGINE_PREFIX = 'stratum dev: ';

/**
 * Appended to the bundle that the probe's instance evaluates: once the capsule's top-level code
 * has run without throwing, the handler it registered is swapped for one that answers 204 with
 * `LOADED_HEADER`, so that the probe's request never reaches the capsule's own fetch() (which
 * would count a hit, send mail, ...). The bundle's `//# sourceURL` is repeated at the end: the
 * engine names the script by the last one when it reports a throw.
 */
export function probeBundle(bundle: string): string {
  const named = bundle.lastIndexOf('//# sourceURL=');
  const sourceUrl = named === -1 ? '' : `\n${bundle.slice(named).trim()}\n`;
  return `${bundle}
;(() => {
  const dev = globalThis[Symbol.for("stratum.dev")];
  if (!dev || !dev.handler || typeof dev.handler.handle !== "function") return;
  const types = Object.entries(dev.imports || {}).find(([name]) => name.startsWith("wasi:http/types@"))?.[1];
  if (!types) return;
  dev.handler = {
    handle(request, outparam) {
      const response = new types.OutgoingResponse(types.Fields.fromList([[${JSON.stringify(LOADED_HEADER)}, new TextEncoder().encode("loaded")]]));
      response.setStatusCode(204);
      const body = response.body();
      types.ResponseOutparam.set(outparam, { tag: "ok", val: response });
      types.OutgoingBody.finish(body, undefined);
    },
  };
})();${sourceUrl}`;
}

export interface ProbeVersion {
  name: string;
  manifest: Manifest;
  component: Uint8Array;
  bundle: string;
  sourceMap: string;
  config?: Record<string, string>;
}

/**
 * Runs a dev build's top-level code before dev swaps it in. A dev engine evaluates the bundle on
 * an instance's first request, not at install, so a version whose top-level code throws installs
 * and starts cleanly, and only then answers every request 500: dev had swapped out the good
 * version for it. The probe installs the new version on a runtime of its own and sends it one
 * request, which its instance answers once the bundle has been evaluated.
 *
 * A runtime of its own, with embedded stores in `.stratum/probe/`: what the top-level code does
 * there (a capability call, a write) reaches neither the capsule's data nor a service given with
 * --backend, where a probe's name would have made a schema or keys of its own.
 */
export class TopLevelProbe {
  readonly #runtime: StratumHostRuntime;
  readonly #server: Server;
  readonly #port: number;
  readonly #bundleFile: string;
  #stopping: Promise<unknown> = Promise.resolve();

  private constructor(runtime: StratumHostRuntime, server: Server, bundleFile: string) {
    this.#runtime = runtime;
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    this.#bundleFile = bundleFile;
  }

  static async open(options: {
    stateDir: string;
    hostConfig?: Pick<HostConfig, 'limits' | 'instances'> | undefined;
  }): Promise<TopLevelProbe> {
    const dataDir = join(options.stateDir, 'probe');
    // What an earlier probe's top-level code stored is nothing the next one should read.
    await rm(join(dataDir, 'capsules'), { recursive: true, force: true });
    await mkdir(dataDir, { recursive: true });
    // The serving runtime's caches: the probe runs the same engine, whose transpiling (a second or
    // two, and 15 MB) the first run in a project would otherwise pay twice. Entries either one
    // trims are those neither used lately (Loader.pruneCache keeps the recent ones).
    const cache = join(dataDir, 'cache');
    const linked = await lstat(cache).then(
      (info) => info.isSymbolicLink(),
      () => undefined,
    );
    if (linked === false) await rm(cache, { recursive: true, force: true });
    if (linked !== true) {
      await mkdir(join(options.stateDir, 'cache'), { recursive: true });
      // Relative, so that the project can move; Windows' junctions take an absolute path.
      await symlink(process.platform === 'win32' ? join(options.stateDir, 'cache') : join('..', 'cache'), cache, 'junction');
    }
    const bundleFile = join(dataDir, 'bundle.js');
    const dev: DevSourceConfig = { bundleFile };
    const runtime = await createHostRuntime({
      dataDir,
      capabilities: [...CAPABILITY_MODULES, DEV_SOURCE_CAPABILITY],
      capabilityConfig: { dev },
      backoffAfter: Number.POSITIVE_INFINITY,
      warmupCpuMs: 2000,
      stuckThreadsPerCapsule: Number.POSITIVE_INFINITY,
      ...(options.hostConfig ? { limits: options.hostConfig.limits } : {}),
    });
    const { createServer } = process.getBuiltinModule('node:http');
    const server = createServer((request, response) => runtime.handleRequest(request, response));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
    } catch (error) {
      await runtime.close();
      throw error;
    }
    return new TopLevelProbe(runtime, server, bundleFile);
  }

  /** Throws `DEV_TOP_LEVEL_THREW`, with what the capsule's top-level code threw and where, when it did. */
  async check(version: ProbeVersion): Promise<void> {
    await this.#stopping;
    await writeFile(this.#bundleFile, probeBundle(version.bundle));
    await this.#runtime.install({
      name: version.name,
      manifest: version.manifest,
      domains: ['probe.localhost'],
      component: version.component,
      sourceMap: version.sourceMap,
      ...(version.config ? { config: version.config } : {}),
    });
    const logs: CapsuleLogEntry[] = [];
    const unsubscribe = this.#runtime.subscribeLogs(version.name, (entry) => logs.push(entry), { backlog: 0 });
    try {
      await this.#runtime.start(version.name);
      // A path its routes take: the host answers any other 404 without running the capsule.
      const answer = await this.#get(routeExample(version.manifest.http.routes));
      if (answer.loaded) return;
      // The instance's log lines travel beside its answer; the engine's come before it answers.
      for (let waited = 0; waited < 20 && !logs.some((entry) => entry.message.startsWith(ENGINE_PREFIX)); waited++)
        await new Promise((resolve) => setTimeout(resolve, 10));
      throw topLevelError(answer, logs);
    } finally {
      unsubscribe();
      // Its instance is of no more use; the swap need not wait for its thread to end.
      this.#stopping = this.#runtime.stop(version.name).catch(() => undefined);
    }
  }

  #get(path: string): Promise<{ loaded: boolean; status: number; body: string }> {
    const { request } = process.getBuiltinModule('node:http');
    return new Promise((resolve, reject) => {
      const outgoing = request(
        { host: '127.0.0.1', port: this.#port, path, headers: { host: 'probe.localhost' }, agent: false },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({
              loaded: response.headers[LOADED_HEADER] === 'loaded',
              status: response.statusCode ?? 0,
              body: Buffer.concat(chunks).toString(),
            }),
          );
          response.on('error', reject);
        },
      );
      outgoing.on('error', reject);
      outgoing.end();
    });
  }

  async close(): Promise<void> {
    await this.#stopping;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await this.#runtime.close();
  }
}

/** A line with its `file:line:column` positions taken out, to tell a message from its mapped copy. */
function withoutPositions(line: string): string {
  return line.replace(/[^\s()]+:\d+:\d+/g, '');
}

/**
 * The error for a version whose top-level code failed: what it threw (the engine's answer says
 * it) and the lines the engine logged after it, whose frames the runtime mapped to the sources.
 * An answer that is not the engine's (a CPU limit, say) is named by its status and first line.
 */
export function topLevelError(answer: { status: number; body: string }, logs: readonly CapsuleLogEntry[]): StratumError {
  const said = answer.body.trim();
  const message = said.startsWith(ENGINE_PREFIX)
    ? said.slice(ENGINE_PREFIX.length)
    : `the capsule's top-level code did not finish: its first request was answered ${answer.status}${said ? ` (${said.split('\n')[0]})` : ''}`;
  const threw = message.replace(/^the capsule's top-level code threw: /, '');
  const at = logs.findIndex((entry) => entry.message.startsWith(ENGINE_SAYS_THREW));
  const lines = (at === -1 ? logs.filter((entry) => entry.source !== 'host' || entry.level !== 'info') : logs.slice(at + 1))
    .flatMap((entry) => entry.message.split('\n'))
    .filter((line) => line.trim() !== '');
  // The answer's text names the bundle's positions; the log's copy of it, which the runtime
  // mapped to the sources, takes its place: the same message twice, at two places, misled.
  const mapped = lines.find((line) => withoutPositions(line) === withoutPositions(threw));
  const headline = mapped === undefined ? message : message.slice(0, message.length - threw.length) + mapped;
  const details = lines.filter((line) => line !== threw && line !== mapped);
  return new StratumError('DEV_TOP_LEVEL_THREW', headline, {
    details,
    hint: "The capsule's top-level code (outside fetch) runs as each instance starts, before its first request, and a production build runs it while building, which would fail the same way: it must finish without throwing. Work that needs a request, a store or a config value belongs inside fetch().",
  });
}
