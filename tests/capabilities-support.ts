import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@stratum/core';
import type { Manifest } from '@stratum/manifest';
import type { ConfigureContext, PrepareContext } from '../packages/host/src/capabilities/contract.ts';
import { WitError } from '../packages/host/src/capabilities/contract.ts';

/** Contexts for driving a capability's configure and prepare without the runtime. */
const dataDir = mkdtempSync(join(tmpdir(), 'stratum-capabilities-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

export function manifestWith(capabilities: Partial<Manifest['capabilities']>): Manifest {
  return {
    stratum: 1,
    capsule: { name: 'demo', version: '1.0.0', authors: [] },
    source: { kind: 'wasm', wasm: 'demo.wasm' },
    resources: { cpu: 'micro', cpuMsPerRequest: 50, memoryBytes: 64 * 1024 * 1024, timeoutMs: 10_000, concurrency: 4 },
    capabilities: { keyvalue: [], sql: [], bucket: [], outbound: [], config: {}, ...capabilities },
    http: { routes: ['/*'] },
  };
}

export function configureContext(overrides: Partial<ConfigureContext>): ConfigureContext {
  return {
    capsule: 'demo',
    domains: ['demo.test'],
    manifest: manifestWith({}),
    imports: [],
    hostConfig: undefined,
    config: {},
    dataDir: join(dataDir, 'capsules', overrides.capsule ?? 'demo', 'cap'),
    logger: silentLogger,
    ...overrides,
  };
}

export function prepareContext<S>(settings: S, capsule = 'demo', lines: string[] = []): PrepareContext<S> {
  return {
    capsule,
    settings,
    dataDir: join(dataDir, 'capsules', capsule, 'cap'),
    logger: silentLogger,
    currentRequest: () => ({ requestId: 'req-1', domain: 'demo.test', outboundRemaining: 10, atEnd: () => {} }),
    log: (level, message) => lines.push(`${level} ${message}`),
    quotaExceeded: (message) => lines.push(`quota-exceeded ${message}`),
  };
}

/** Calls an import and returns the WIT error payload it threw. */
export async function witError(work: () => unknown): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    assert.ok(error instanceof WitError, `expected a WitError, got ${String(error)}`);
    return error.payload;
  }
  assert.fail('expected the import to return an error');
}
