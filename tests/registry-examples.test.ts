import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createHostRuntime } from '@stratum/host';
import { loadManifest, type Manifest, parseManifest } from '@stratum/manifest';
import { digestOf, pullComponent } from '@stratum/registry';
import { main } from '../packages/cli/src/main.ts';
import { buildExample, EXAMPLES, exampleDir } from './support/examples.ts';
import { registryOrSkip } from './support/registry.ts';
import { removeDir } from './support/temp.ts';
import { buildTiny } from './support/tiny.ts';

function sink() {
  let text = '';
  const stream = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        text += chunk.toString();
        callback();
      },
    }),
    { isTTY: false },
  );
  return { stream, text: () => text };
}

/** Installs a capsule in a fresh host runtime and sends it one request through the ingress. */
async function runOnHost(t: import('node:test').TestContext, manifest: Manifest, component: Uint8Array, path: string) {
  const dataDir = await mkdtemp(join(tmpdir(), 'stratum-host-'));
  const runtime = await createHostRuntime({ dataDir });
  const server = createServer((req, res) => runtime.handleRequest(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  await runtime.install({ name: manifest.capsule.name, manifest, component, domains: ['capsule.test'] });
  await runtime.start(manifest.capsule.name);
  const port = (server.address() as import('node:net').AddressInfo).port;
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path, headers: { host: 'capsule.test' }, agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

test('every example goes through a real registry: push --pin, pull by the pinned digest, identical bytes', async (t) => {
  const registry = await registryOrSkip(t);
  if (!registry) return;
  const work = await mkdtemp(join(tmpdir(), 'stratum-examples-'));
  t.after(() => removeDir(work));

  for (const name of EXAMPLES) {
    await t.test(name, async (t) => {
      const manifestFile = join(exampleDir(name), 'stratum.toml');
      if (!(await stat(manifestFile).catch(() => undefined))) {
        t.skip(`examples/${name} has no stratum.toml yet`);
        return;
      }
      const component = await buildExample(name);
      const { manifest } = await loadManifest(manifestFile);
      assert.equal(manifest.source.kind, 'wasm');
      if (manifest.source.kind !== 'wasm') return;
      // A copy of the example, with the built component where its manifest says it is.
      const dir = join(work, name);
      await mkdir(dirname(join(dir, manifest.source.wasm)), { recursive: true });
      await copyFile(manifestFile, join(dir, 'stratum.toml'));
      await copyFile(component, join(dir, manifest.source.wasm));
      const original = await readFile(manifestFile, 'utf8');
      const built = await readFile(component);
      const reference = `oci://${registry.host}/examples/${name}:${manifest.capsule.version}`;

      const out = sink();
      const err = sink();
      const status = await main(['push', dir, reference, '--pin', '--cache-dir', join(work, 'push-cache')], {
        stdout: out.stream,
        stderr: err.stream,
      });
      assert.equal(status, 0, err.text());
      const digest = out.text().trim();
      // Components this size go up in chunks, with progress on stderr.
      if (built.length > 8 * 1024 * 1024) assert.match(err.text(), /uploading sha256:[0-9a-f]{12}\.\.\. 100% /);
      // The pin is written to a copy; the example's own manifest stays as it was, to build from.
      assert.equal(await readFile(join(dir, 'stratum.toml'), 'utf8'), original);
      const pinned = parseManifest(await readFile(join(dir, 'stratum.pinned.toml'), 'utf8')).manifest;
      assert.deepEqual(pinned.source, { kind: 'registry', registry: reference, digest });

      const pulled = await pullComponent({
        reference: pinned.source.kind === 'registry' ? pinned.source.registry : '',
        digest,
        cacheDir: join(work, `pull-cache-${name}`),
      });
      const bytes = await readFile(pulled.path);
      assert.equal(bytes.length, built.length);
      assert.ok(bytes.equals(built), 'the pulled component is byte-for-byte the built one');
      assert.equal(pulled.digest, digestOf(built));
      assert.equal(digest, digestOf(built), 'push prints the component digest');
      assert.equal(pulled.manifestText, original);
      t.diagnostic(`${name}: ${built.length} bytes, ${digest}`);

      // The host runs what was pulled, installed from the pinned manifest.
      if (name === 'hello') {
        const reply = await runOnHost(t, pinned, bytes, '/?name=registry').catch((error: unknown) => {
          // Only a capability the host does not serve yet excuses this; anything else fails.
          if ((error as { code?: string }).code !== 'CAPABILITY_UNKNOWN_IMPORT') throw error;
          t.skip(`the host cannot run ${name} yet: ${(error as { details?: string[] }).details?.join('; ')}`);
          return undefined;
        });
        if (!reply) return;
        assert.equal(reply.status, 200, reply.body);
        assert.equal((JSON.parse(reply.body) as { message: string }).message, 'hello, registry');
      }
    });
  }
});

test('the host runs a capsule pulled from the registry by its pinned digest (examples/tiny)', async (t) => {
  const registry = await registryOrSkip(t);
  if (!registry) return;
  const dir = await mkdtemp(join(tmpdir(), 'stratum-tiny-'));
  t.after(() => removeDir(dir));
  await copyFile(join(exampleDir('hello'), '..', 'tiny', 'stratum.toml'), join(dir, 'stratum.toml'));
  await copyFile(await buildTiny(), join(dir, 'tiny.wasm'));
  const reference = `oci://${registry.host}/examples/tiny:0.1.0`;
  const out = sink();
  const err = sink();
  assert.equal(
    await main(['push', dir, reference, '--pin', '--cache-dir', join(dir, 'cache')], { stdout: out.stream, stderr: err.stream }),
    0,
    err.text(),
  );
  const { manifest } = parseManifest(await readFile(join(dir, 'stratum.pinned.toml'), 'utf8'));
  assert.equal(manifest.source.kind, 'registry');
  if (manifest.source.kind !== 'registry') return;

  const pulled = await pullComponent({
    reference: manifest.source.registry,
    digest: manifest.source.digest,
    cacheDir: join(dir, 'pulled'),
  });
  const reply = await runOnHost(t, manifest, await readFile(pulled.path), '/');
  assert.equal(reply.status, 200);
  assert.equal(reply.body, 'hello from tiny 1\n');
});
