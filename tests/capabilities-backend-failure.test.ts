// A granted label whose backend cannot be reached fails the instance's start with a message its
// installer can act on: the capability, the label, the backend and where it is (credentials
// masked), and the cause. The guest's own error for the same failure stays generic (bindings).
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import bucket from '../packages/host/src/capabilities/bucket/index.ts';
import type { Capability } from '../packages/host/src/capabilities/contract.ts';
import keyvalue from '../packages/host/src/capabilities/keyvalue/index.ts';
import sql from '../packages/host/src/capabilities/sql/index.ts';
import { prepareContext } from './capabilities-support.ts';
import { freePort } from './support/services.ts';
import { testDir } from './support/temp.ts';

const PASSWORD = 'hunter2-secret';

async function startFailure<S>(capability: Capability<S>, settings: S): Promise<string> {
  try {
    await capability.prepare(prepareContext(settings, 'unreachable'));
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await capability.shutdown?.();
  }
  return assert.fail('the instance started although its backend is unreachable');
}

/** Nothing listens on the port (freePort binds it and closes it again): a connection is refused at once. */
for (const [name, capability, settings, expected] of [
  [
    'keyvalue on redis',
    keyvalue,
    async () => ({ labels: { cache: { type: 'redis', url: `redis://:${PASSWORD}@127.0.0.1:${await freePort()}/0`, limits: {} } } }),
    (port: string) =>
      `the keyvalue store "cache" (redis at redis://:***@127.0.0.1:${port}/0) is unavailable: connect ECONNREFUSED 127.0.0.1:${port}`,
  ],
  [
    'keyvalue on nats',
    keyvalue,
    async () => ({ labels: { cache: { type: 'nats', url: `nats://user:${PASSWORD}@127.0.0.1:${await freePort()}`, limits: {} } } }),
    (port: string) => `the keyvalue store "cache" (nats at nats://user:***@127.0.0.1:${port}) is unavailable: `,
  ],
  [
    'sql on postgres',
    sql,
    async () => ({
      labels: { main: { type: 'postgres', url: `postgres://app:${PASSWORD}@127.0.0.1:${await freePort()}/app`, limits: {} } },
    }),
    (port: string) =>
      `the sql database "main" (postgres at postgres://app:***@127.0.0.1:${port}/app) is unavailable: connect ECONNREFUSED 127.0.0.1:${port}`,
  ],
] as const) {
  test(`an unreachable backend fails the start naming label, URL and cause, never the password (${name})`, async () => {
    const made = await settings();
    const url = Object.values(made.labels)[0]?.url ?? '';
    const port = new URL(url).port;
    const message = await startFailure(capability as Capability<unknown>, made);
    assert.ok(message.startsWith(expected(port)), message);
    assert.ok(!message.includes(PASSWORD), message);
  });
}

test('an embedded backend that cannot open its files names the label, where it is and why (keyvalue and sql on SQLite, bucket directory)', async (t) => {
  const { dir } = await testDir(t, 'stratum-backend-failure-');
  // A file where the capsule's data directory should be: nothing can be made under it.
  const blocked = join(dir, 'blocked');
  await writeFile(blocked, '');
  await mkdir(join(dir, 'ok'));
  for (const [capability, settings, expected] of [
    [keyvalue, { labels: { default: { type: 'sqlite', limits: {} } } }, 'the keyvalue store "default" (sqlite at '],
    [sql, { labels: { default: { type: 'sqlite', limits: {} } } }, 'the sql database "default" (sqlite at '],
    [
      bucket,
      { labels: { files: { type: 'directory', location: join(blocked, 'files'), limits: {} } } },
      `the bucket "files" (directory at ${blocked}/files) is unavailable: `,
    ],
  ] as const) {
    const context = { ...prepareContext(settings, 'blocked'), dataDir: join(blocked, 'data') };
    let message = '';
    try {
      await (capability as Capability<unknown>).prepare(context);
    } catch (error) {
      message = error instanceof Error ? error.message : String(error);
    } finally {
      await capability.shutdown?.();
    }
    assert.ok(message.startsWith(expected), message);
    assert.match(message, /is unavailable: .*(ENOTDIR|not a directory|unable to open)/i);
  }
});
