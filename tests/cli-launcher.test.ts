// The `stratum` launcher under a Node.js older than 24 hands over to the repository's Node.js 24
// in a child process. A signal sent to the launcher alone, as `kill` and process managers send
// it, must reach that child: a host left running without its launcher holds its ports and data.
// And a host stops cleanly however many times it is told to: systemd signals every process of
// a unit, so with the launcher the host hears SIGTERM twice.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateEd25519KeyPair } from '@stratum/core';
import { writeTestHost } from './support/host-dir.ts';
import { type HostProcess, startHostProcess } from './support/host-process.ts';
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

const ended = (host: HostProcess) => host.child.exitCode !== null || host.child.signalCode !== null;
const messages = (host: HostProcess) => host.logLines().map((line) => line.msg);

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
  const host = await startHostProcess(config.path, { command: [node, launcher] });
  hostPid = childrenOf(host.child.pid as number)[0];
  assert.ok(hostPid !== undefined && alive(hostPid), 'the host runs in a child of the launcher');
  // With JSON logs, the host's start is a log line too, and nothing else is written.
  const up = host.logLines().find((line) => line.msg === 'stratum-host is up');
  assert.match(String(up?.ingress), /^http:\/\/127\.0\.0\.1:[1-9]\d*\/$/);
  assert.equal(up?.restored, 0);
  assert.equal(host.stdout(), '');

  host.child.kill('SIGTERM');
  assert.equal(await host.exited, 0, host.stderr());
  assert.equal(alive(hostPid), false, 'the host process ended with its launcher');
  assert.deepEqual(messages(host).slice(-2), ['stopping', 'stopped']);
});

test('a host told twice to stop (SIGTERM) still finishes its shutdown', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-twice-'));
  t.after(() => removeDir(dir));
  const config = await writeTestHost(dir, { registrar: (await generateEd25519KeyPair()).publicJwk.x });
  // This Node.js (24): the host runs in the launcher's own process.
  const host = await startHostProcess(config.path, { command: [process.execPath, launcher] });
  t.after(() => {
    if (!ended(host)) host.child.kill('SIGKILL');
  });
  host.child.kill('SIGTERM');
  // The second once the first is being handled, as a launcher passing its own on sends it.
  await new Promise<void>((resolve) => {
    const wait = () => (host.stderr().includes('"stopping"') || ended(host) ? resolve() : setTimeout(wait, 5));
    wait();
  });
  host.child.kill('SIGTERM');
  const exit = await host.exited;
  const said = messages(host);
  // An idle host stops in a few ms, so the second signal may come after the shutdown finished:
  // the process then ends by it, with nothing left to lose. What must hold is that it never cut
  // the shutdown short.
  assert.equal(said.at(-1), 'stopped', host.stderr());
  assert.ok(said.includes('stopping'));
  if (said.includes('already stopping')) assert.equal(exit, 0, host.stderr());
  else assert.ok(exit === 0 || exit === 'SIGTERM', `exit ${exit}`);
});

test('a reader that has gone ends a command quietly, as it ends cat: `stratum ... | head -1` printed an EPIPE stack', async () => {
  for (const args of [['--help'], ['host', 'status', '--help']]) {
    const child = spawn(process.execPath, [launcher, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Gone before the command writes a byte.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(stderr, '', args.join(' '));
    assert.equal(code, 0, args.join(' '));
  }
});
