// Killing a host process (SIGKILL: no clean-up at all) and starting it again brings every
// installed capsule back from the data directory, from the transpile cache (no transpiling),
// with the usage ledger intact. While it runs, no other host may start on its data directory.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateEd25519KeyPair } from '@stratum/core';
import { createControlClient, verifyLedgerFile } from '@stratum/host';
import { buildExample, exampleDir } from './support/examples.ts';
import { writeTestHost } from './support/host-dir.ts';
import { type HostProcess, startHostProcess } from './support/host-process.ts';
import { ingressGet as get } from './support/ingress.ts';
import { removeDir } from './support/temp.ts';

const cli = fileURLToPath(new URL('../packages/cli/bin/stratum.js', import.meta.url));

test('after SIGKILL a restarted host serves every installed capsule without transpiling again', async (t) => {
  const wasm = await buildExample('hello');
  const dir = await mkdtemp(join(tmpdir(), 'stratum-restart-'));
  // Each host as it is spawned: the after hook stops them before it removes their data directory
  // (hooks run in the order they were added; a host stopped after the removal still wrote there).
  const hosts: Pick<HostProcess, 'child' | 'exited'>[] = [];
  t.after(async () => {
    for (const { child, exited } of hosts) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    }
    await removeDir(dir);
  });
  const registrar = await generateEd25519KeyPair();
  // The operator's key: the runtime's counters in /status are the operator's only.
  const { path: config } = await writeTestHost(dir, {
    registrar: registrar.publicJwk.x,
    operator: true,
    tables: '[metering]\nflush_interval = "50ms"\n',
  });
  const manifest = await readFile(join(exampleDir('hello'), 'stratum.toml'), 'utf8');
  const component = new Uint8Array(await readFile(wasm));

  const first = await startHostProcess(config, { spawned: (child, exited) => hosts.push({ child, exited }) });
  const firstClient = createControlClient({ url: first.control, key: registrar.privateJwk, audience: 'host1.example.net' });
  await firstClient.install({ domains: ['hello.example'], manifest, component });
  await firstClient.install({ name: 'greeter', domains: ['greeter.example'], manifest, component, start: false });
  assert.equal((await get(first.ingress, 'hello.example', '/?name=before')).status, 200);
  const before = await firstClient.status();
  assert.equal(before.runtime?.transpiles, 1, 'one transpile for one component installed twice');
  // Wait until the ledger has the request, so the restart has something to carry over.
  for (let tries = 0; tries < 200 && (await firstClient.usage()).capsules.hello?.requests !== 1; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  // A second host on the same data directory is turned away while the first runs, naming it:
  // both would append to one usage ledger and break its chain.
  const twin = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [cli, 'host', 'start', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('exit', (code) => resolve({ code, stderr }));
  });
  assert.equal(twin.code, 1, twin.stderr);
  assert.match(
    twin.stderr,
    new RegExp(
      `the data directory .*data is in use by another Stratum host \\(host1\\.example\\.net, process ${first.child.pid}, up since `,
    ),
  );

  // SIGKILL: the lock on the data directory goes with the process, so the next start takes it.
  first.child.kill('SIGKILL');
  await first.exited;

  // greeter as a host before 0db68f9 could have saved it: with a value for a variable its
  // manifest does not declare, which a control API install now refuses. It must still come back.
  const greeterFile = join(dir, 'data', 'installations', 'greeter.json');
  const saved = JSON.parse(await readFile(greeterFile, 'utf8')) as { config: Record<string, string> };
  await writeFile(greeterFile, JSON.stringify({ ...saved, config: { greeting: 'from an older host' } }));

  // Transpile cache entries no installation uses (older versions, an older transpile format), ten
  // of them used a minute apart, and their components' worlds: a restart keeps the eight used
  // most recently, and the worlds of those only.
  const cache = join(dir, 'data', 'runtime', 'cache');
  const stale = Array.from({ length: 10 }, (_, index) => `${'a'.repeat(30)}${index.toString(16).padStart(2, '0')}-${'0'.repeat(16)}`);
  for (const [index, entry] of stale.entries()) {
    await mkdir(join(cache, 'transpiled', entry), { recursive: true });
    await writeFile(join(cache, 'transpiled', entry, 'meta.json'), '{}');
    const usedAt = new Date(Date.now() - (stale.length - index) * 60_000);
    await utimes(join(cache, 'transpiled', entry, 'meta.json'), usedAt, usedAt);
    await writeFile(join(cache, 'inspect', `${entry.slice(0, 32)}${'0'.repeat(32)}.json`), '{}');
  }

  const second = await startHostProcess(config, { spawned: (child, exited) => hosts.push({ child, exited }) });
  const client = createControlClient({ url: second.control, key: registrar.privateJwk, audience: 'host1.example.net' });
  const after = await client.status();
  assert.deepEqual(
    after.capsules.map((capsule) => [capsule.name, capsule.state, capsule.domains]),
    [
      ['greeter', 'installed', ['greeter.example']],
      ['hello', 'running', ['hello.example']],
    ],
  );
  assert.equal(after.runtime?.transpiles, 0, 'the restart came back from the transpile cache');
  const transpiled = await readdir(join(cache, 'transpiled'));
  assert.deepEqual(
    stale.filter((entry) => transpiled.includes(entry)),
    stale.slice(2),
    'the stale transpile cache entries kept are not the eight used most recently',
  );
  const worlds = await readdir(join(cache, 'inspect'));
  assert.deepEqual(
    stale.filter((entry) => worlds.includes(`${entry.slice(0, 32)}${'0'.repeat(32)}.json`)),
    stale.slice(2),
  );
  assert.ok((after.runtime?.cacheHits ?? 0) >= 1);
  // hello served a request shortly before: its code compiles at start, before any request asks;
  // greeter, never started, does not.
  assert.equal(after.runtime?.compiles, 1, 'the recently busy capsule was not compiled ahead of its first request');

  const served = await get(second.ingress, 'hello.example', '/?name=after');
  assert.equal(served.status, 200);
  assert.equal((await client.status()).runtime?.compiles, 1, 'the first request compiled hello again');
  assert.equal((JSON.parse(served.body) as { message: string }).message, 'hello, after');
  assert.notEqual((await get(second.ingress, 'greeter.example')).status, 200, 'a capsule installed stopped stays stopped');

  const usage = await client.usage({ capsule: 'hello' });
  assert.equal(usage.capsules.hello?.requests, 2, 'the ledger kept the request served before the kill');
  assert.equal((await verifyLedgerFile(join(dir, 'data', 'metering', 'ledger.jsonl'))).ok, true);
});
