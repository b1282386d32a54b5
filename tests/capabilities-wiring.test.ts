import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '@stratum/core';
import type { Manifest } from '@stratum/manifest';
import type { ConfigureContext, PrepareContext } from '../packages/host/src/capabilities/contract.ts';
import { WitError } from '../packages/host/src/capabilities/contract.ts';
import keyvalue from '../packages/host/src/capabilities/keyvalue/index.ts';
import { requireService } from './support/services.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'stratum-wiring-'));
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
    currentRequest: () => ({ requestId: 'req-1', domain: 'demo.test', outboundRemaining: 10 }),
    log: (level, message) => lines.push(`${level} ${message}`),
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

const KV_IMPORTS = [
  'stratum:keyvalue/store@0.1.0',
  'stratum:keyvalue/atomics@0.1.0',
  'stratum:keyvalue/batch@0.1.0',
  'wasi:keyvalue/store@0.2.0-draft2',
  'wasi:keyvalue/atomics@0.2.0-draft2',
];

test('keyvalue configure: a missing grant and bad host config are refused with what to fix', async () => {
  assert.throws(() => keyvalue.configure(configureContext({ imports: KV_IMPORTS })), /grants no store/);
  const manifest = manifestWith({ keyvalue: ['default'] });
  assert.throws(
    () =>
      keyvalue.configure(
        configureContext({ imports: KV_IMPORTS, manifest, hostConfig: { default: { type: 'redis', urll: 'redis://x' } } }),
      ),
    (error: Error & { details?: string[] }) =>
      /unknown key "urll" for type "redis" \(did you mean "url"\?\)/.test(error.details?.join('\n') ?? '') &&
      /url must be a redis:\/\/ URL/.test(error.details?.join('\n') ?? ''),
  );
  assert.throws(
    () =>
      keyvalue.configure(
        configureContext({ imports: KV_IMPORTS, manifest, hostConfig: { default: { type: 'reddis', url: 'redis://x' } } }),
      ),
    (error: Error & { details?: string[] }) => /did you mean "redis"/.test(error.details?.join('\n') ?? ''),
  );
  assert.throws(
    () =>
      keyvalue.configure(
        configureContext({ imports: KV_IMPORTS, manifest, hostConfig: { default: { type: 'sqlite', max_value_size: '1kb' } } }),
      ),
    (error: Error & { details?: string[] }) => /at least 1mib/.test(error.details?.join('\n') ?? ''),
  );
  const embedded = await keyvalue.configure(configureContext({ imports: KV_IMPORTS, manifest }));
  assert.deepEqual(embedded, { settings: { labels: { default: { type: 'sqlite', limits: {} } } } });
  const redis = await keyvalue.configure(
    configureContext({
      imports: KV_IMPORTS,
      manifest,
      hostConfig: { default: { type: 'redis', url: 'redis://127.0.0.1:6379/0', max_keys: 10 } },
    }),
  );
  assert.ok(redis.asyncImports?.includes('stratum:keyvalue/store@0.1.0#[method]bucket.get'));
  assert.ok(redis.asyncImports?.includes('wasi:keyvalue/atomics@0.2.0-draft2#[static]cas.new'));
  assert.deepEqual((await keyvalue.configure(configureContext({ imports: [], manifest }))).settings, { labels: {} });
});

test('keyvalue imports on SQLite: synchronous values in the WIT shapes, errors as variants', async (t) => {
  const manifest = manifestWith({ keyvalue: ['default'] });
  const plan = await keyvalue.configure(
    configureContext({ imports: KV_IMPORTS, manifest, hostConfig: { default: { type: 'sqlite', max_keys: 2 } } }),
  );
  const prepared = await keyvalue.prepare(prepareContext(plan.settings, 'kvsync'));
  t.after(() => keyvalue.shutdown?.());
  const store = prepared.imports['stratum:keyvalue/store'] as { open(label: string): Record<string, (...args: unknown[]) => unknown> };
  const atomics = prepared.imports['stratum:keyvalue/atomics'] as Record<string, (...args: unknown[]) => unknown>;
  const batch = prepared.imports['stratum:keyvalue/batch'] as Record<string, (...args: unknown[]) => unknown>;
  assert.deepEqual(await witError(() => store.open('other')), { tag: 'no-such-store' });
  const bucket = store.open('default');
  assert.equal(bucket.set?.('a', new Uint8Array([1])), undefined, 'a synchronous backend returns plain values');
  assert.deepEqual(bucket.get?.('a'), new Uint8Array([1]));
  assert.equal(bucket.get?.('missing'), undefined);
  assert.equal(atomics.increment?.(bucket, 'n', 5n), 5n);
  assert.deepEqual(await witError(() => bucket.set?.('c', new Uint8Array())), {
    tag: 'limit-exceeded',
    val: 'the store holds 2 keys, its quota',
  });
  assert.deepEqual(batch.getMany?.(bucket, ['a', 'zz']), [['a', new Uint8Array([1])], undefined]);
  assert.deepEqual(bucket.listKeys?.(undefined), { keys: ['a', 'n'], cursor: undefined });
  assert.equal(atomics.compareAndSwap?.(bucket, 'a', new Uint8Array([1]), new Uint8Array([2])), true);

  const wasiStore = prepared.imports['wasi:keyvalue/store'] as { open(label: string): Record<string, (...args: unknown[]) => unknown> };
  const wasiAtomics = prepared.imports['wasi:keyvalue/atomics'] as {
    Cas: { new (...args: unknown[]): unknown; new: (...args: unknown[]) => { current(): unknown } };
    swap(...args: unknown[]): unknown;
  };
  const wasiBucket = wasiStore.open('default');
  assert.deepEqual(wasiBucket.get?.('a'), new Uint8Array([2]), 'both packages see the same store');
  assert.deepEqual(await witError(() => wasiBucket.set?.('third', new Uint8Array())), {
    tag: 'other',
    val: 'the store holds 2 keys, its quota',
  });
  const cas = wasiAtomics.Cas.new(wasiBucket, 'a');
  assert.deepEqual(cas.current(), new Uint8Array([2]));
  wasiBucket.set?.('a', new Uint8Array([3]));
  const failed = (await witError(() => wasiAtomics.swap(cas, new Uint8Array([9])))) as { tag: string; val: { current(): unknown } };
  assert.equal(failed.tag, 'cas-failed');
  assert.deepEqual(failed.val.current(), new Uint8Array([3]));
  assert.equal(wasiAtomics.swap(failed.val, new Uint8Array([9])), undefined);
  assert.deepEqual(wasiBucket.get?.('a'), new Uint8Array([9]));
});

test('keyvalue imports on Redis return promises and keep capsules apart', async (t) => {
  const url = await requireService(t, 'redis');
  if (!url) return;
  const manifest = manifestWith({ keyvalue: ['default'] });
  const hostConfig = { default: { type: 'redis', url, key_prefix: 'stratum-test:wiring:' } };
  const plan = await keyvalue.configure(configureContext({ imports: KV_IMPORTS, manifest, hostConfig }));
  const capsuleA = `a${Date.now()}`;
  const first = await keyvalue.prepare(prepareContext(plan.settings, capsuleA));
  const second = await keyvalue.prepare(prepareContext(plan.settings, `b${Date.now()}`));
  t.after(() => keyvalue.shutdown?.());
  const open = (prepared: typeof first) =>
    (prepared.imports['stratum:keyvalue/store'] as { open(label: string): Record<string, (...args: unknown[]) => unknown> }).open(
      'default',
    );
  const a = open(first);
  const b = open(second);
  const pending = a.set?.('k', new Uint8Array([1]));
  assert.ok(pending instanceof Promise);
  await pending;
  assert.equal(await b.get?.('k'), undefined);
  assert.deepEqual(await a.get?.('k'), new Uint8Array([1]));
  await a.delete?.('k');
});
