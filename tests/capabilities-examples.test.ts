// The example capsules through the real host runtime, on every backend of the capability each
// one uses, across a host restart: counter (keyvalue: SQLite, Redis, NATS KV), notes (sql:
// SQLite, PostgreSQL), gallery (bucket: a directory, S3 through s3rver).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { silentLogger } from '@stratum/core';
import { loadManifest } from '@stratum/manifest';
import { createBucketBackend, parseBucketHostConfig } from '../packages/host/src/capabilities/bucket/index.ts';
import { createKeyValueBackend, parseKeyValueHostConfig } from '../packages/host/src/capabilities/keyvalue/index.ts';
import { createSqlBackend, parseSqlHostConfig } from '../packages/host/src/capabilities/sql/index.ts';
import { startS3rver, stopS3rver } from './capabilities-s3rver.ts';
import { startHarness } from './fixtures/hostile/harness.ts';
import { buildExample, type ExampleName, exampleDir } from './support/examples.ts';
import { requireService } from './support/services.ts';

after(stopS3rver);

const unique = () => randomBytes(4).toString('hex');

/**
 * Installs an example under a fresh name on a host with `capabilityConfig`, runs `before`,
 * stops the host, starts a new one on the same data directory and config, installs again, and
 * runs `after`: what `before` stored must still be there.
 */
async function acrossRestart(
  t: TestContext,
  example: ExampleName,
  capabilityConfig: Record<string, unknown>,
  before: (request: Requester) => Promise<void>,
  afterRestart: (request: Requester) => Promise<void>,
): Promise<void> {
  const { manifest } = await loadManifest(join(exampleDir(example), 'stratum.toml'));
  const component = new Uint8Array(await readFile(await buildExample(example)));
  const name = `${example}-${unique()}`;
  const dataDir = await mkdtemp(join(tmpdir(), 'stratum-examples-'));
  const closes: (() => Promise<void>)[] = [];
  // After hooks run in the order they were added: the directory goes only once every runtime
  // using it (and its worker threads, which write V8's code cache there) has closed.
  t.after(async () => {
    for (const close of closes) await close();
    await rm(dataDir, { recursive: true, force: true });
  });
  for (const [round, check] of [before, afterRestart].entries()) {
    const host = await startHarness(t, { dataDir, capabilityConfig });
    closes.push(() => host.runtime.close());
    await host.runtime.install({ name, manifest, component, domains: [`${name}.test`] });
    await host.runtime.start(name);
    await check((path, options = {}) => send(host.port, `${name}.test`, path, options));
    if (round === 0) await host.runtime.close();
  }
  t.after(() => dropServiceState(capabilityConfig, name, manifest.capabilities));
}

/** Removes what the example left in Redis, NATS, PostgreSQL or S3 (the data directory goes with its temp dir). */
async function dropServiceState(
  config: Record<string, unknown>,
  capsule: string,
  granted: { keyvalue: string[]; sql: string[]; bucket: string[] },
) {
  const dataDir = tmpdir();
  for (const label of granted.keyvalue) {
    const settings = parseKeyValueHostConfig(config.keyvalue)[label];
    if (!settings) continue;
    const backend = await createKeyValueBackend(settings, dataDir, silentLogger);
    await (await backend.open({ capsule, label })).drop();
    await backend.close();
  }
  for (const label of granted.sql) {
    const settings = parseSqlHostConfig(config.sql)[label];
    if (!settings) continue;
    const backend = await createSqlBackend(settings, dataDir, silentLogger);
    await (await backend.open({ capsule, label })).drop();
    await backend.close();
  }
  for (const label of granted.bucket) {
    const settings = parseBucketHostConfig(config.bucket)[label];
    if (!settings) continue;
    const backend = await createBucketBackend(settings, dataDir, silentLogger);
    await (await backend.open({ capsule, label })).drop();
    await backend.close();
  }
}

interface RequestOptions {
  method?: string;
  body?: Buffer;
  headers?: Record<string, string>;
}

interface Reply {
  status: number;
  body: Buffer;
  headers: Record<string, string | string[] | undefined>;
}

type Requester = (path: string, options?: RequestOptions) => Promise<Reply>;

/** A request to the host's ingress on 127.0.0.1, with the Host header naming the capsule. */
function send(port: number, host: string, path: string, options: RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host, ...options.headers };
    if (options.body) headers['content-length'] = String(options.body.length);
    const outgoing = request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks), headers: response.headers }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(options.body);
  });
}

const keyvalueBackends: Record<string, (t: TestContext) => Promise<Record<string, unknown> | undefined>> = {
  sqlite: async () => ({}),
  redis: async (t) => {
    const url = await requireService(t, 'redis');
    return url ? { keyvalue: { default: { type: 'redis', url, key_prefix: 'stratum-test:examples:' } } } : undefined;
  },
  nats: async (t) => {
    const url = await requireService(t, 'nats');
    return url ? { keyvalue: { default: { type: 'nats', url, bucket_prefix: 'stratum_test_examples' } } } : undefined;
  },
};

for (const [backend, config] of Object.entries(keyvalueBackends)) {
  test(`counter on ${backend}: counts survive a host restart`, async (t) => {
    const capabilityConfig = await config(t);
    if (!capabilityConfig) return;
    const count = async (request: Requester, path: string) =>
      (JSON.parse((await request(path)).body.toString()) as { count: number }).count;
    await acrossRestart(
      t,
      'counter',
      capabilityConfig,
      async (request) => {
        assert.equal(await count(request, '/a'), 1);
        assert.equal(await count(request, '/a'), 2);
        assert.equal(await count(request, '/b'), 1);
      },
      async (request) => {
        assert.equal(await count(request, '/a'), 3);
        assert.deepEqual(JSON.parse((await request('/_counts')).body.toString()), { '/a': 3, '/b': 1 });
      },
    );
  });
}

const sqlBackends: Record<string, (t: TestContext) => Promise<Record<string, unknown> | undefined>> = {
  sqlite: async () => ({}),
  postgres: async (t) => {
    const url = await requireService(t, 'postgres');
    return url ? { sql: { default: { type: 'postgres', url, schema_prefix: 'stratum_test' } } } : undefined;
  },
};

for (const [backend, config] of Object.entries(sqlBackends)) {
  test(`notes on ${backend}: notes survive a host restart`, async (t) => {
    const capabilityConfig = await config(t);
    if (!capabilityConfig) return;
    let id = 0;
    await acrossRestart(
      t,
      'notes',
      capabilityConfig,
      async (request) => {
        const created = await request('/notes', { method: 'POST', body: Buffer.from(JSON.stringify({ title: 'First', body: 'one' })) });
        assert.equal(created.status, 201, created.body.toString());
        id = (JSON.parse(created.body.toString()) as { id: number }).id;
        assert.equal((await request('/notes', { method: 'POST', body: Buffer.from(JSON.stringify({ title: 'Second' })) })).status, 201);
      },
      async (request) => {
        const list = JSON.parse((await request('/notes')).body.toString()) as { title: string }[];
        assert.deepEqual(
          list.map((note) => note.title),
          ['Second', 'First'],
        );
        assert.equal((JSON.parse((await request(`/notes/${id}`)).body.toString()) as { body: string }).body, 'one');
        assert.equal((await request(`/notes/${id}`, { method: 'DELETE' })).status, 204);
        assert.equal((await request(`/notes/${id}`)).status, 404);
      },
    );
  });
}

const bucketBackends: Record<string, () => Promise<Record<string, unknown>>> = {
  directory: async () => ({}),
  s3: async () => {
    const { options } = await startS3rver();
    return {
      bucket: {
        images: {
          type: 's3',
          location: options.location,
          endpoint: options.endpoint,
          access_key_id: options.accessKeyId,
          secret_access_key: options.secretAccessKey,
          force_path_style: true,
        },
      },
    };
  },
};

for (const [backend, config] of Object.entries(bucketBackends)) {
  test(`gallery on ${backend}: images survive a host restart, whole and by range`, async (t) => {
    const image = Buffer.from(new Uint8Array(700_000).map((_, index) => (index * 31) % 251));
    await acrossRestart(
      t,
      'gallery',
      await config(),
      async (request) => {
        const put = await request('/images/cat.png', { method: 'PUT', body: image, headers: { 'content-type': 'image/png' } });
        assert.equal(put.status, 201, put.body.toString());
      },
      async (request) => {
        const got = await request('/images/cat.png');
        assert.equal(got.status, 200);
        assert.ok(got.body.equals(image), 'the image came back byte for byte');
        assert.equal(got.headers['content-type'], 'image/png');
        const ranged = await request('/images/cat.png', { headers: { range: 'bytes=300000-300009' } });
        assert.equal(ranged.status, 206);
        assert.ok(ranged.body.equals(image.subarray(300_000, 300_010)));
        const listed = JSON.parse((await request('/images')).body.toString()) as { images: { name: string; size: number }[] };
        assert.deepEqual(
          listed.images.map((entry) => [entry.name, entry.size]),
          [['cat.png', image.length]],
        );
        assert.equal((await request('/images/cat.png', { method: 'DELETE' })).status, 204);
      },
    );
  });
}
