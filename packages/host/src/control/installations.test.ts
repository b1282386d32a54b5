import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Installation, InstallationStore } from './installations.ts';

const digestOf = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function installation(name: string, digest: string): Installation {
  const now = new Date().toISOString();
  return {
    name,
    domains: [`${name}.example`],
    manifest: 'stratum = 1',
    digest,
    config: { token: 'secret' },
    desired: 'running',
    installedAt: now,
    updatedAt: now,
  };
}

test('components are kept by digest, checked, and dropped when no installation uses them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new InstallationStore(dir);
  await store.init();
  const a = new TextEncoder().encode('component a');
  const b = new TextEncoder().encode('component b');
  await assert.rejects(store.putComponent(a, digestOf(b)), { code: 'DIGEST_MISMATCH' });
  const digestA = await store.putComponent(a, digestOf(a));
  const digestB = await store.putComponent(b);
  await store.save(installation('one', digestA));
  await store.save(installation('two', digestA));
  await store.save(installation('three', digestB));
  assert.deepEqual(Buffer.from(await store.getComponent(digestA)), Buffer.from(a));

  const file = join(dir, 'installations', 'one.json');
  assert.equal((await stat(file)).mode & 0o777, 0o600, 'config values may be secrets');
  await store.setDesired('one', 'stopped');
  assert.equal((await store.get('one'))?.desired, 'stopped');

  await store.remove('one');
  assert.deepEqual(Buffer.from(await store.getComponent(digestA)), Buffer.from(a), 'still used by two');
  await store.remove('two');
  await assert.rejects(store.getComponent(digestA), { code: 'ENOENT' });
  assert.deepEqual(
    (await store.list()).map((item) => item.name),
    ['three'],
  );

  // A component left by an install that failed half-way, and a torn temporary file.
  const orphan = await store.putComponent(new TextEncoder().encode('orphan'));
  await writeFile(join(dir, 'components', 'sha256', `${'0'.repeat(64)}.wasm.123.tmp`), 'x');
  assert.equal(await store.prune(), 2);
  await assert.rejects(store.getComponent(orphan), { code: 'ENOENT' });
  assert.deepEqual(await readdir(join(dir, 'components', 'sha256')), [`${digestB.slice('sha256:'.length)}.wasm`]);
});

test('names and digests that could escape the data directory are refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new InstallationStore(dir);
  await store.init();
  await assert.rejects(store.get('../../etc/passwd'), { code: 'INVALID_NAME' });
  await assert.rejects(store.getComponent('sha256:../../x'), { code: 'INVALID_DIGEST' });
});
