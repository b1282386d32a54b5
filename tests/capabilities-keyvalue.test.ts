import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { natsKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/nats.ts';
import { redisKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/redis.ts';
import { sqliteKeyValue } from '../packages/host/src/capabilities/keyvalue/backends/sqlite.ts';
import { keyValueConformance } from '../packages/host/src/capabilities/keyvalue/conformance.ts';
import { requireService } from './support/services.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'stratum-kv-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

keyValueConformance('sqlite', async (_t, limits) => sqliteKeyValue({ dataDir, ...(limits ? { limits } : {}) }));

keyValueConformance('redis', async (t, limits) => {
  const url = await requireService(t, 'redis');
  return url ? redisKeyValue({ url, keyPrefix: 'stratum-test:kv:', ...(limits ? { limits } : {}) }) : undefined;
});

keyValueConformance('nats', async (t, limits) => {
  const url = await requireService(t, 'nats');
  return url ? natsKeyValue({ url, bucketPrefix: 'stratum_test_kv', ...(limits ? { limits } : {}) }) : undefined;
});
