import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isStratumError, silentLogger } from '@stratum/core';
import type { ConfigureContext, PrepareContext } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import devSource, { type DevSourceSettings } from './source-capability.ts';

const { manifest } = parseManifest('stratum = 1\n[capsule]\nname = "app"\nversion = "0.1.0"\n[source]\nwasm = "app.wasm"\n');

function configureContext(hostConfig: unknown, imports = ['stratum:dev/source@0.1.0']): ConfigureContext {
  return {
    capsule: 'app',
    domains: ['app.localhost'],
    manifest,
    imports,
    hostConfig,
    config: {},
    dataDir: '/nowhere',
    logger: silentLogger,
  };
}

function prepareContext(settings: DevSourceSettings): PrepareContext<DevSourceSettings> {
  return {
    capsule: 'app',
    settings,
    dataDir: '/nowhere',
    logger: silentLogger,
    currentRequest: () => undefined,
    log: () => {},
    quotaExceeded: () => {},
  };
}

test('each install carries the bundle as it was then: a later bundle does not reach an earlier version', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-source-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bundleFile = join(dir, 'bundle.js');
  await writeFile(bundleFile, 'first();');
  const first = await devSource.configure(configureContext({ bundleFile }));
  await writeFile(bundleFile, 'second();');
  const second = await devSource.configure(configureContext({ bundleFile }));

  const serve = async (settings: DevSourceSettings) => {
    const prepared = await devSource.prepare(prepareContext(structuredClone(settings)));
    return (prepared.imports['stratum:dev/source'] as { bundle(): string }).bundle();
  };
  assert.equal(await serve(first.settings), 'first();');
  assert.equal(await serve(second.settings), 'second();');
});

test('a missing bundle, a missing path and another version of the interface are refused at install', async () => {
  const missing = await Promise.resolve(devSource.configure(configureContext({ bundleFile: '/nowhere/bundle.js' }))).catch(
    (e: unknown) => e,
  );
  assert.ok(isStratumError(missing) && missing.code === 'DEV_NO_BUNDLE', String(missing));
  const noPath = await Promise.resolve(devSource.configure(configureContext(undefined))).catch((e: unknown) => e);
  assert.ok(isStratumError(noPath) && noPath.code === 'HOST_CONFIG_INVALID', String(noPath));
  const other = await Promise.resolve(devSource.configure(configureContext({ bundleFile: '/x' }, ['stratum:dev/source@0.2.0']))).catch(
    (e: unknown) => e,
  );
  assert.ok(isStratumError(other) && other.code === 'DEV_ENGINE_MISMATCH', String(other));
});
