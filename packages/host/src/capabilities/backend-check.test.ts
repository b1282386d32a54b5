import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Logger } from '@stratum/core';
import { type BackendCheckResult, backendChecks, changedBackendTables, runBackendChecks, startBackendChecks } from './backend-check.ts';

test('only the tables whose backend is not embedded are checked', () => {
  const checks = backendChecks({
    keyvalue: { local: { type: 'sqlite' }, cache: { type: 'nats', url: 'nats://s3cr3t-token@127.0.0.1:4222' } },
    sql: { default: { type: 'sqlite' } },
    bucket: { files: { type: 'directory' } },
  });
  assert.deepEqual(
    checks.map((check) => [check.place.capability, check.place.label, check.place.type]),
    [['keyvalue', 'cache', 'nats']],
  );
  // A NATS token is the URL's user: masked as a password is.
  assert.equal(checks[0]?.place.where, 'nats://***@127.0.0.1:4222');
});

test('no table to check starts nothing and logs nothing', async () => {
  const logged: unknown[] = [];
  const log = (...line: unknown[]) => void logged.push(line);
  const logger: Logger = { trace: log, debug: log, info: log, warn: log, error: log, fatal: log, child: () => logger };
  await startBackendChecks({ keyvalue: { local: { type: 'sqlite' } } }, { logger }).done;
  assert.deepEqual(logged, []);
});

test('a reload checks the tables that are new or changed, and no other', () => {
  const running = { keyvalue: { a: { type: 'redis', url: 'redis://one:6379/0' }, b: { type: 'sqlite' } }, sql: {}, bucket: {} };
  const next = {
    keyvalue: { a: { type: 'redis', url: 'redis://two:6379/0' }, b: { type: 'sqlite' } },
    sql: { default: { type: 'postgres', url: 'postgres://db/x' } },
    bucket: {},
  };
  assert.deepEqual(changedBackendTables(running, next), {
    keyvalue: { a: { type: 'redis', url: 'redis://two:6379/0' } },
    sql: { default: { type: 'postgres', url: 'postgres://db/x' } },
  });
  assert.deepEqual(changedBackendTables(next, next), {});
});

test('a probe that fails is told with its cause, its credentials masked, and one that hangs is given up on', async () => {
  const place = { capability: 'keyvalue', noun: 'store', label: 'default', type: 'redis', where: 'redis://:hunter2pw@db:6379/0' };
  const results: BackendCheckResult[] = [];
  await runBackendChecks(
    [
      { place, load: async () => {}, probe: async () => Promise.reject(new Error('WRONGPASS for hunter2pw')) },
      {
        place: { ...place, label: 'slow' },
        load: async () => {},
        probe: (signal) => new Promise((resolve) => signal.addEventListener('abort', () => resolve())),
      },
    ],
    50,
    (result) => results.push(result),
  );
  assert.deepEqual(results, [
    {
      level: 'warn',
      table: 'keyvalue.default',
      type: 'redis',
      ms: results[0]?.ms ?? 0,
      message:
        '[keyvalue.default] the keyvalue store "default" (redis at redis://:***@db:6379/0) is unavailable: WRONGPASS for ***; capsules granted it fail to start until it answers',
    },
    {
      level: 'warn',
      table: 'keyvalue.slow',
      type: 'redis',
      ms: results[1]?.ms ?? 0,
      message:
        '[keyvalue.slow] the keyvalue store "slow" (redis at redis://:***@db:6379/0) is unavailable: no answer within 0.05 s; capsules granted it fail to start until it answers',
    },
  ]);
});
