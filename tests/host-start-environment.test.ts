// `stratum host start` on glibc tells the operator which of the environment settings README.md's
// "Run a host" recommends are missing (glibc reads them when the process starts, so the host
// cannot set them itself), and says nothing once they are there.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateEd25519KeyPair } from '@stratum/core';
import { processLibc, RECOMMENDED_HOST_ENV } from '@stratum/host';
import { writeTestHost } from './support/host-dir.ts';
import { startHostProcess } from './support/host-process.ts';
import { removeDir } from './support/temp.ts';

/** Starts a host with `env` in place of the process's malloc settings, stops it once it is up; returns its JSON log lines. */
async function startAndStop(config: string, env: Record<string, string>): Promise<{ msg: string; add?: string }[]> {
  const { MALLOC_ARENA_MAX: _arenas, GLIBC_TUNABLES: _tunables, ...inherited } = process.env;
  const host = await startHostProcess(config, { env: { ...inherited, ...env } });
  host.child.kill('SIGTERM');
  assert.equal(await host.exited, 0, host.stderr());
  return host.logLines() as { msg: string; add?: string }[];
}

test('host start names the missing malloc settings on glibc, and is quiet once they are set', async (t) => {
  if (processLibc() !== 'glibc') {
    t.skip('this process does not run on glibc, where the settings apply');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'stratum-host-env-'));
  t.after(() => removeDir(dir));
  const { path: config } = await writeTestHost(dir, { registrar: (await generateEd25519KeyPair()).publicJwk.x });

  const untuned = await startAndStop(config, {});
  const advice = untuned.filter((entry) => entry.add !== undefined);
  assert.equal(advice.length, 1, JSON.stringify(untuned));
  assert.equal(advice[0]?.add, 'MALLOC_ARENA_MAX=2 GLIBC_TUNABLES=glibc.malloc.hugetlb=1');
  assert.match(advice[0]?.msg ?? '', /README\.md, "Run a host"/);

  const halfway = await startAndStop(config, { MALLOC_ARENA_MAX: '2' });
  assert.deepEqual(
    halfway.filter((entry) => entry.add !== undefined).map((entry) => entry.add),
    ['GLIBC_TUNABLES=glibc.malloc.hugetlb=1'],
  );

  const tuned = await startAndStop(config, { ...RECOMMENDED_HOST_ENV });
  assert.deepEqual(
    tuned.filter((entry) => entry.add !== undefined),
    [],
  );
  assert.ok(
    tuned.some((entry) => entry.msg === 'host started'),
    'the tuned host logged its start',
  );
});
