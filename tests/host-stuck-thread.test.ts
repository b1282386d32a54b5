// A capsule's SQL statement that never ends (a recursive query without a stop) keeps its
// instance's thread in SQLite: node:sqlite offers no interrupt and no progress handler, and a
// worker thread in native code ignores termination. The request still gets its 504 at the
// capsule's timeout; the host then sees that the ended instance did not stop, stops the capsule
// so that it holds no second core, says why in its status, and, asked to stop, leaves by
// SIGKILL (Node.js would wait for that thread for ever as it exits) after writing its ledger.
// The host runs as `stratum host start` in a process of its own, as an operator runs it.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import { createControlClient } from '@stratum/host';
import { runCli } from './support/cli.ts';
import { buildCapsuleDir } from './support/examples.ts';
import { writeTestHost } from './support/host-dir.ts';
import { startHostProcess } from './support/host-process.ts';
import { ingressGet } from './support/ingress.ts';
import { removeDir } from './support/temp.ts';

const fixture = fileURLToPath(new URL('./fixtures/runaway-sql/', import.meta.url));

test('an instance stuck in an endless SQLite statement stops its capsule, and the host still stops', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-stuck-'));
  t.after(() => removeDir(dir));
  const operator = await generateEd25519KeyPair();
  await writeKeyFile(join(dir, 'operator.key'), operator.privateJwk);
  const { path: config } = await writeTestHost(dir, { registrar: operator.publicJwk.x, operator: true });
  // A capsule directory as `stratum build` leaves it.
  const capsule = join(dir, 'runaway');
  await mkdir(join(capsule, 'dist'), { recursive: true });
  await copyFile(join(fixture, 'stratum.toml'), join(capsule, 'stratum.toml'));
  await copyFile(await buildCapsuleDir(fixture, 'runaway-sql'), join(capsule, 'dist', 'runaway.wasm'));

  // Whatever happens below, no host is left running (one stuck in SQLite ignores SIGTERM).
  const host = await startHostProcess(config, { spawned: (child) => t.after(() => child.kill('SIGKILL')) });
  const control = ['--url', host.control.href, '--audience', 'host1.example.net', '--key', join(dir, 'operator.key')];
  const installed = await runCli(['host', 'install', capsule, '--domain', 'runaway.test', ...control]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.equal((await ingressGet(host.ingress, 'runaway.test', '/')).status, 200);

  // Ended at its limit (CPU or the 2 s timeout): the client is answered whatever the thread does.
  assert.equal((await ingressGet(host.ingress, 'runaway.test', '/forever')).status, 504);
  let status: { state: string; lastError?: string } | undefined;
  for (let tries = 0; tries < 100; tries++) {
    const listed = await runCli(['host', 'status', ...control, '--json']);
    status = (JSON.parse(listed.stdout) as { capsules: { name: string; state: string; lastError?: string }[] }).capsules.find(
      (entry) => entry.name === 'runaway',
    );
    if (status?.state === 'stopped') break;
    await setTimeout(100);
  }
  assert.equal(status?.state, 'stopped', JSON.stringify(status));
  assert.match(status?.lastError ?? '', /did not stop: its thread is in native code .*SQL statement that does not end/);
  assert.equal((await ingressGet(host.ingress, 'runaway.test', '/')).status, 503);
  // Served again, it could take another core, and another: not until the host restarts.
  const again = await runCli(['host', 'serve', 'runaway', ...control]);
  assert.equal(again.code, 1, again.stdout);
  assert.match(
    again.stderr,
    /runaway is not served again until the host restarts: a thread of its ended instances is stuck in native code/,
  );
  assert.equal((await ingressGet(host.ingress, 'runaway.test', '/')).status, 503);
  const client = createControlClient({ url: host.control, key: operator.privateJwk, audience: 'host1.example.net' });
  await assert.rejects(client.start('runaway'), { status: 409, code: 'CAPSULE_STUCK' });

  host.child.kill('SIGTERM');
  const ended = await Promise.race([host.exited, setTimeout(30_000, 'still running')]);
  assert.equal(ended, 'SIGKILL', host.stderr());
  assert.match(host.stderr(), /a capsule thread is stuck in native code .* leaving by SIGKILL/);
  // It stopped as a host stops, its usage ledger written, before it left.
  assert.match(host.stderr(), /"msg":"stopped"/);
});
