// A Redis that stops answering (a stopped process, a dropped network) fails a capsule's call after
// the backend's answer timeout, naming the wait, where it waited for the capsule's request to time
// out (30 s) and then told nobody why. Its own redis-server, so that it can be stopped.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { redisKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/redis.ts';
import { KeyValueError } from '../packages/host/src/capabilities/keyvalue/types.ts';
import { captureLogger, type LoggedLine } from './support/capture-logger.ts';
import { freePort, servicesRequired } from './support/services.ts';
import { within } from './support/within.ts';

/** A redis-server of the test's own, or a skip (a failure in CI) where there is none. */
async function ownRedis(t: TestContext): Promise<{ url: string; server: ChildProcess } | undefined> {
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const started = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.stdout?.on('data', (chunk: Buffer) => {
      if (/Ready to accept connections/.test(chunk.toString())) resolve(true);
    });
  });
  if (!started) {
    if (servicesRequired) throw new Error('redis-server could not be started, and STRATUM_REQUIRE_SERVICES=1 requires it');
    t.skip('redis-server is not installed (set STRATUM_REQUIRE_SERVICES=1 to make this a failure)');
    return undefined;
  }
  t.after(() => {
    server.kill('SIGCONT');
    server.kill('SIGKILL');
  });
  return { url: `redis://127.0.0.1:${port}/0`, server };
}

const unanswered = (error: unknown) => {
  assert.ok(error instanceof KeyValueError, String(error));
  assert.equal(error.kind, 'other');
  assert.match(error.message, /^the key-value backend did not answer within 5 s; a write may still take effect$/);
  return true;
};

test('redis: a call to a server that stopped answering fails after the answer timeout, and the next one after it resumes succeeds', async (t) => {
  const redis = await ownRedis(t);
  if (!redis) return;
  const logged: LoggedLine[] = [];
  const backend = redisKeyValue({ url: redis.url, logger: captureLogger(logged) });
  t.after(() => backend.close());
  const store = await backend.open({ capsule: 'stalled', label: 'default' });
  await store.set('k', new TextEncoder().encode('1'));
  redis.server.kill('SIGSTOP');
  await within(20_000, assert.rejects(Promise.resolve(store.get('k')), unanswered), 'a get from a stopped server');
  await within(20_000, assert.rejects(Promise.resolve(store.set('k', new TextEncoder().encode('2'))), unanswered), 'a set');
  redis.server.kill('SIGCONT');
  // The set was sent before the server stopped reading: it took effect, as its error warned.
  const value = await within(20_000, Promise.resolve(store.get('k')), 'a get once it resumed');
  assert.equal(new TextDecoder().decode(value ?? new Uint8Array()), '2');
  // One outage, logged when it began and when the server answered again: a stalled server never
  // reconnects, so its answer, not a reconnection, ends it.
  assert.deepEqual(
    logged.map((line) => [line.level, line.message?.replace(/^.* (does not answer|answers again).*$/, '$1'), line.fields.failedCalls]),
    [
      ['warn', 'does not answer', undefined],
      ['info', 'answers again', 2],
    ],
  );
});

test('redis: a server that takes the connection and never answers fails the open, saying so', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const address = silent.address();
  assert.ok(address && typeof address === 'object');
  const backend = redisKeyValue({ url: `redis://127.0.0.1:${address.port}/0` });
  t.after(() => backend.close());
  await within(
    20_000,
    assert.rejects(Promise.resolve(backend.open({ capsule: 'silent', label: 'default' })), (error: unknown) => {
      assert.ok(error instanceof Error);
      const cause = (error as { cause?: unknown }).cause;
      assert.match(String(cause instanceof Error ? cause.message : error.message), /accepted the connection but did not answer within 5 s/);
      return true;
    }),
    'an open of a server that never answers',
  );
});
