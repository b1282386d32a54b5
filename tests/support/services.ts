import { connect } from 'node:net';
import type { TestContext } from 'node:test';

/**
 * Service-backed tests: Redis, PostgreSQL and NATS run on 127.0.0.1 on the project's machines.
 * Locally a missing service skips the test and says why; in CI (STRATUM_REQUIRE_SERVICES=1,
 * set by .ci/run) a missing service fails it, so that nothing service-backed is silently skipped.
 */
export const SERVICES = {
  redis: { host: '127.0.0.1', port: 6379, url: process.env.STRATUM_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0' },
  postgres: { host: '127.0.0.1', port: 5432, url: process.env.STRATUM_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
  nats: { host: '127.0.0.1', port: 4222, url: process.env.STRATUM_TEST_NATS_URL ?? 'nats://127.0.0.1:4222' },
} as const;

export type ServiceName = keyof typeof SERVICES;

export const servicesRequired = process.env.STRATUM_REQUIRE_SERVICES === '1';

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Returns the service's URL, or skips the test (locally) / throws (in CI) when it is not running.
 *
 * @example
 * test('redis backend', async (t) => {
 *   const url = await requireService(t, 'redis');
 *   if (!url) return;
 * });
 */
export async function requireService(t: TestContext, name: ServiceName): Promise<string | undefined> {
  const service = SERVICES[name];
  if (await reachable(service.host, service.port)) return service.url;
  const reason = `${name} is not running on ${service.host}:${service.port}`;
  if (servicesRequired) throw new Error(`${reason}, and STRATUM_REQUIRE_SERVICES=1 requires it`);
  t.skip(`${reason} (set STRATUM_REQUIRE_SERVICES=1 to make this a failure)`);
  return undefined;
}

/** Asks the OS for a free TCP port on loopback, for servers that tests start themselves. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
