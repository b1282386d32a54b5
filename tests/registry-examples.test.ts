import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { loadManifest, parseManifest } from '@stratum/manifest';
import { digestOf, pullComponent } from '@stratum/registry';
import { main } from '../packages/cli/src/main.ts';
import { registryBinary, startTestRegistry } from '../packages/registry/src/test-registry.ts';
import { buildExample, EXAMPLES, exampleDir } from './support/examples.ts';

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

test('every example goes through a real registry: push --pin, pull by the pinned digest, identical bytes', async (t) => {
  if (!(await registryBinary())) {
    if (process.env.STRATUM_REQUIRE_SERVICES === '1')
      throw new Error('docker-registry is not installed, and STRATUM_REQUIRE_SERVICES=1 requires it');
    t.skip('docker-registry is not installed (apt-get install docker-registry; .ci/apt-packages lists it)');
    return;
  }
  const registry = await startTestRegistry();
  t.after(() => registry.stop());
  const work = await mkdtemp(join(tmpdir(), 'stratum-examples-'));
  t.after(() => rm(work, { recursive: true, force: true }));

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
      const reference = `oci://${registry.host}/examples/${name}:${manifest.capsule.version}`;

      const out = sink();
      const err = sink();
      const status = await main(['push', dir, reference, '--pin', '--cache-dir', join(work, 'push-cache')], {
        stdout: out.stream,
        stderr: err.stream,
      });
      assert.equal(status, 0, err.text());
      const digest = out.text().trim();
      const pinned = parseManifest(await readFile(join(dir, 'stratum.toml'), 'utf8')).manifest;
      assert.deepEqual(pinned.source, { kind: 'registry', registry: reference, digest });

      const pulled = await pullComponent({
        reference: pinned.source.kind === 'registry' ? pinned.source.registry : '',
        digest,
        cacheDir: join(work, `pull-cache-${name}`),
      });
      const bytes = await readFile(pulled.path);
      const built = await readFile(component);
      assert.equal(bytes.length, built.length);
      assert.ok(bytes.equals(built), 'the pulled component is byte-for-byte the built one');
      assert.equal(pulled.digest, digestOf(built));
      assert.equal(digest, digestOf(built), 'push prints the component digest');
      assert.equal(pulled.manifestText, original);
      t.diagnostic(`${name}: ${built.length} bytes, ${digest}`);
    });
  }
});
