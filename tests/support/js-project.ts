import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { CAPABILITY_MODULES, createHostRuntime, type HostRuntimeOptions, type StratumHostRuntime } from '@stratum/host';
import { buildDevCapsule } from '@stratum/sdk/build';
import { DEV_SOURCE_CAPABILITY } from '../../packages/cli/src/dev/source-capability.ts';
import { testEngineCacheDir } from './dev-engines.ts';
import { removeDir } from './temp.ts';

export interface ServedProject {
  runtime: StratumHostRuntime;
  /** Another listener of the runtime's, on `address` (`::` for a dual-stack one); its port. */
  listen(address: string): Promise<number>;
  /** GET `path` with the project's domain as Host, through the 127.0.0.1 listener (or `via`). */
  get(
    path: string,
    options?: { headers?: Record<string, string>; host?: string; port?: number },
  ): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }>;
}

/**
 * A JS project (a directory with its stratum.toml), built onto a dev engine as `stratum dev`
 * builds it and installed as `name` on a runtime of its own, serving `<name>.test` on 127.0.0.1.
 * `sourceMap`: installed with the bundle's map, as `stratum dev` does, so frames read at the
 * sources' lines.
 */
export async function serveDevProject(
  t: TestContext,
  projectDir: string,
  name: string,
  options: Omit<HostRuntimeOptions, 'dataDir' | 'capabilities' | 'capabilityConfig'> & {
    sourceMap?: boolean;
    config?: Record<string, string>;
  } = {},
): Promise<{ runtime: StratumHostRuntime; port: number; listen(address: string): Promise<number> }> {
  const { sourceMap, config, ...runtimeOptions } = options;
  const dev = await buildDevCapsule(projectDir, { engineCacheDir: testEngineCacheDir });
  const dataDir = await mkdtemp(join(tmpdir(), `stratum-${name}-data-`));
  t.after(() => removeDir(dataDir));
  const bundleFile = join(dataDir, 'bundle.js');
  await writeFile(bundleFile, dev.bundle);
  const runtime = await createHostRuntime({
    ...runtimeOptions,
    dataDir,
    capabilities: [...CAPABILITY_MODULES, DEV_SOURCE_CAPABILITY],
    capabilityConfig: { dev: { bundleFile } },
  });
  t.after(() => runtime.close());
  await runtime.install({
    name,
    manifest: dev.manifest,
    domains: [`${name}.test`],
    component: await readFile(dev.engine.path),
    ...(sourceMap ? { sourceMap: dev.sourceMap } : {}),
    ...(config ? { config } : {}),
  });
  await runtime.start(name);
  const listen = async (address: string) => {
    const server = createServer((req, res) => runtime.handleRequest(req, res));
    await new Promise<void>((resolve) => server.listen(0, address, resolve));
    t.after(() => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    return (server.address() as AddressInfo).port;
  };
  return { runtime, port: await listen('127.0.0.1'), listen };
}

/** A JS capsule of one source file (`src/index.js`) and a manifest's extra tables, served by `serveDevProject`. */
export async function serveJsProject(
  t: TestContext,
  project: { name: string; source: string; manifest?: string; config?: Record<string, string> },
  options: Omit<HostRuntimeOptions, 'dataDir' | 'capabilities' | 'capabilityConfig'> = {},
): Promise<ServedProject> {
  const dir = await mkdtemp(join(tmpdir(), `stratum-${project.name}-`));
  t.after(() => removeDir(dir));
  await writeFile(
    join(dir, 'stratum.toml'),
    `stratum = 1\n[capsule]\nname = "${project.name}"\nversion = "0.1.0"\n[source]\nwasm = "dist/${project.name}.wasm"\n[build]\nentry = "src/index.js"\n${project.manifest ?? ''}`,
  );
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'index.js'), project.source);
  const { runtime, port, listen } = await serveDevProject(t, dir, project.name, {
    ...options,
    ...(project.config ? { config: project.config } : {}),
  });
  const get: ServedProject['get'] = (path, { headers = {}, host = '127.0.0.1', port: to = port } = {}) =>
    new Promise((resolve, reject) => {
      request({ host, port: to, path, headers: { host: `${project.name}.test`, ...headers } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      })
        .on('error', reject)
        .end();
    });
  return { runtime, listen, get };
}
