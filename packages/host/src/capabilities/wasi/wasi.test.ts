import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '@stratum/core';
import type { PrepareContext, PreparedCapability } from '../contract.ts';
import wasi from './index.ts';

async function prepare(settings: { suspending?: true } = {}): Promise<{ prepared: PreparedCapability; lines: string[] }> {
  const lines: string[] = [];
  const context: PrepareContext<{ suspending?: true }> = {
    capsule: 'c',
    settings,
    dataDir: '/nonexistent',
    logger: silentLogger,
    currentRequest: () => undefined,
    log: (level, message, source) => lines.push(`${level} ${source} ${message}`),
    quotaExceeded: (message) => lines.push(`quota ${message}`),
  };
  return { prepared: await wasi.prepare(context), lines };
}

type Fn = (...args: unknown[]) => unknown;
const member = (prepared: PreparedCapability, iface: string, name: string) => prepared.imports[iface]?.[name] as Fn;

test('a capsule sees no environment, no arguments and no directories', async () => {
  const { prepared } = await prepare();
  assert.deepEqual(member(prepared, 'wasi:cli/environment', 'getEnvironment')(), []);
  assert.deepEqual(member(prepared, 'wasi:cli/environment', 'getArguments')(), []);
  assert.equal(member(prepared, 'wasi:cli/environment', 'initialCwd')(), undefined);
  assert.deepEqual(member(prepared, 'wasi:filesystem/preopens', 'getDirectories')(), []);
});

test('sockets and name lookups are refused with access-denied, not a trap', async () => {
  const { prepared } = await prepare();
  for (const [iface, name] of [
    ['wasi:sockets/tcp-create-socket', 'createTcpSocket'],
    ['wasi:sockets/udp-create-socket', 'createUdpSocket'],
    ['wasi:sockets/ip-name-lookup', 'resolveAddresses'],
  ] as const) {
    assert.throws(
      () => member(prepared, iface, name)({ tag: 'ipv4' }),
      (error) => error === 'access-denied',
    );
  }
});

test('stdout and stderr become the capsule log, a line at a time', async () => {
  const { prepared, lines } = await prepare();
  const stdout = member(prepared, 'wasi:cli/stdout', 'getStdout')() as { blockingWriteAndFlush(bytes: Uint8Array): void };
  const stderr = member(prepared, 'wasi:cli/stderr', 'getStderr')() as { write(bytes: Uint8Array): void };
  stdout.blockingWriteAndFlush(new TextEncoder().encode('one\ntw'));
  stdout.blockingWriteAndFlush(new TextEncoder().encode('o\n'));
  stderr.write(new TextEncoder().encode('oops\n'));
  await prepared.close?.();
  assert.deepEqual(lines, ['info stdout one', 'info stdout two', 'error stderr oops']);
});

test('clocks and random work without the host', async () => {
  const { prepared } = await prepare();
  const now = member(prepared, 'wasi:clocks/monotonic-clock', 'now')() as bigint;
  assert.equal(typeof now, 'bigint');
  const pollable = member(prepared, 'wasi:clocks/monotonic-clock', 'subscribeDuration')(1_000_000n) as { block(): void; ready(): boolean };
  pollable.block();
  assert.equal(pollable.ready(), true);
  assert.ok((member(prepared, 'wasi:clocks/monotonic-clock', 'now')() as bigint) - now >= 1_000_000n);
  assert.equal((member(prepared, 'wasi:random/random', 'getRandomBytes')(16n) as Uint8Array).length, 16);
});

test('monotonic-clock#now has a canonical-ABI lowering: a core function () -> i64 on the same clock', async () => {
  const { prepared } = await prepare();
  const now = member(prepared, 'wasi:clocks/monotonic-clock', 'now');
  const lower = (now as unknown as Record<symbol, unknown>)[Symbol.for('cabiLower')];
  assert.equal(typeof lower, 'function', 'no lowering: jco would wrap every read of the clock in its glue');
  const core = (lower as () => () => bigint)();
  const before = now() as bigint;
  const lowered = core();
  assert.equal(typeof lowered, 'bigint');
  assert.ok(lowered >= before && (now() as bigint) >= lowered, 'the lowering reads another clock');
});

test("blocking reads suspend the guest (JSPI) only in a capsule that may fetch, whose responses' bodies stream in", async () => {
  const lowerRead = (prepared: PreparedCapability) => {
    const streams = prepared.imports['wasi:io/streams'] as { InputStream: { prototype: Record<PropertyKey, unknown> } };
    const lower = streams.InputStream.prototype.blockingRead as Record<symbol, (lowering: object) => unknown>;
    return lower[Symbol.for('cabiLower')]?.({ memory: new WebAssembly.Memory({ initial: 1 }), realloc: () => 0, resourceTables: [] });
  };
  assert.equal(typeof lowerRead((await prepare()).prepared), 'function');
  const suspending = lowerRead((await prepare({ suspending: true })).prepared);
  assert.ok(suspending instanceof (WebAssembly as unknown as { Suspending: Fn }).Suspending, 'a plain function: the guest could not wait');
  // Another capsule in a later thread starts from its own settings.
  assert.equal(typeof lowerRead((await prepare()).prepared), 'function');
});
