import type { TestContext } from 'node:test';
import { registryBinary, startTestRegistry, type TestRegistry } from '../../packages/registry/src/test-registry.ts';
import { servicesRequired } from './services.ts';

/**
 * A docker-registry started for the test and stopped after it, or undefined when the binary is
 * missing: the test is skipped locally, and fails in CI (STRATUM_REQUIRE_SERVICES=1), as
 * requireService does for Redis, PostgreSQL and NATS.
 */
export async function registryOrSkip(
  t: TestContext,
  options: Parameters<typeof startTestRegistry>[0] = {},
): Promise<TestRegistry | undefined> {
  if (!(await registryBinary())) {
    if (servicesRequired) throw new Error('docker-registry is not installed, and STRATUM_REQUIRE_SERVICES=1 requires it');
    t.skip('docker-registry is not installed (apt-get install docker-registry; .ci/apt-packages lists it)');
    return undefined;
  }
  const registry = await startTestRegistry(options);
  t.after(() => registry.stop());
  return registry;
}
