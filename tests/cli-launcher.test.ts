// The `stratum` launcher under a Node.js older than 24 hands over to the repository's Node.js 24
// in a child process. A signal sent to the launcher alone, as `kill` and process managers send
// it, must reach that child: a host left running without its launcher holds its ports and data.
// And a host stops cleanly however many times it is told to: systemd signals every process of
// a unit, so with the launcher the host hears SIGTERM twice.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateEd25519KeyPair } from '@stratum/core';
import { writeTestHost } from './support/host-dir.ts';
import { removeDir } from './support/temp.ts';

const launcher = fileURLToPath(new URL('../packages/cli/bin/stratum.js', import.meta.url));

/** A `node` on PATH older than 24 (the machine's own), outside this checkout's node_modules. */
function olderNode(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'node');
    if (dir.includes('node_modules') || !existsSync(candidate)) continue;
    const version = spawnSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
    if (Number(version.split('.')[0]) < 24) return candidate;
  }
  return undefined;
}

/** The processes whose parent is `pid` (Linux's /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        // The parent is the 4th field, after the command name in parentheses (which may hold spaces).
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('SIGTERM to the launcher stops the host it handed over to, cleanly', async (t) => {
  const node = olderNode();
  if (!node || process.platform !== 'linux') {
    t.skip('needs Linux and a Node.js older than 24 on PATH: otherwise the launcher runs Stratum in its own process');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'stratum-launcher-'));
  let hostPid: number | undefined;
  t.after(async () => {
    if (hostPid !== undefined && alive(hostPid)) process.kill(hostPid, 'SIGKILL');
    await removeDir(dir);
  });
  const config = await writeTestHost(dir, { registrar: (await generateEd25519KeyPair()).publicJwk.x });
  const child = spawn(node, [launcher, 'host', 'start', '--config', config.path, '--log-format', 'json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once('exit', (code, signal) => resolve([code, signal])),
  );
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes(' is up ')) resolve();
    });
    void exited.then(() => reject(new Error(`the host exited before it was up:\n${stdout}\n${stderr}`)));
  });
  hostPid = childrenOf(child.pid as number)[0];
  assert.ok(hostPid !== undefined && alive(hostPid), 'the host runs in a child of the launcher');

  child.kill('SIGTERM');
  assert.deepEqual(await exited, [0, null], stderr);
  assert.equal(alive(hostPid), false, 'the host process ended with its launcher');
  const messages = stderr
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line) as { msg: string }).msg);
  assert.deepEqual(messages.slice(-2), ['stopping', 'stopped']);
});

test('a host told twice to stop (SIGTERM) still finishes its shutdown', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-twice-'));
  t.after(() => removeDir(dir));
  const config = await writeTestHost(dir, { registrar: (await generateEd25519KeyPair()).publicJwk.x });
  // This Node.js (24): the host runs in the launcher's own process.
  const host = spawn(process.execPath, [launcher, 'host', 'start', '--config', config.path, '--log-format', 'json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    host.once('exit', (code, signal) => resolve([code, signal])),
  );
  t.after(() => {
    if (host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  host.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    host.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes(' is up ')) resolve();
    });
    void exited.then(() => reject(new Error(`the host exited before it was up:\n${stdout}\n${stderr}`)));
  });
  host.kill('SIGTERM');
  // The second once the first is being handled, as a launcher passing its own on sends it.
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  await new Promise<void>((resolve) => {
    const wait = () => (stderr.includes('"stopping"') || ended ? resolve() : setTimeout(wait, 5));
    wait();
  });
  host.kill('SIGTERM');
  assert.deepEqual(await exited, [0, null], stderr);
  const messages = stderr
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line) as { msg: string }).msg);
  assert.equal(messages.at(-1), 'stopped');
  assert.ok(messages.includes('stopping'));
});
