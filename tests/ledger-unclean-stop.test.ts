// A host killed (SIGKILL, a crash, a power cut) loses up to one flush interval of usage, which
// spec/host-api.md section 7 allows; the next start says so, naming the process that ended, from
// host.lock.json: a clean stop records itself there as it releases the data directory's lock.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Logger, silentLogger } from '@stratum/core';
import { lockDataDir } from '../packages/host/src/control/data-lock.ts';

function warnings(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger: Logger & { lines: string[] } = {
    ...silentLogger,
    lines,
    warn: (...args: unknown[]) => void lines.push(String(args.find((arg) => typeof arg === 'string'))),
    child: () => logger,
  };
  return logger;
}

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('a host killed while it held the data directory is named at the next start, with the usage it may have lost', async (t) => {
  const dir = await tempDir(t);
  const lockModule = new URL('../packages/host/src/control/data-lock.ts', import.meta.url).href;
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { lockDataDir } from ${JSON.stringify(lockModule)}; lockDataDir(${JSON.stringify(dir)}, 'h1'); console.log('locked'); setInterval(() => {}, 60_000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (data: Buffer) => data.toString().includes('locked') && resolve());
    child.once('exit', () => reject(new Error('the locking process ended before it took the lock')));
  });
  const { since } = JSON.parse(await readFile(join(dir, 'host.lock.json'), 'utf8')) as { since: string };
  child.kill('SIGKILL');
  await exited;

  const logger = warnings();
  const lock = lockDataDir(dir, 'h1', { logger, flushIntervalMs: 10_000 });
  assert.deepEqual(logger.lines, [
    `the host that last ran on ${dir} (h1, process ${child.pid}, up since ${since}) did not stop cleanly (it was killed, crashed, or its machine went down): the usage it served in up to one flush interval (10.0 s) before it ended is not in the usage ledger (spec/host-api.md section 7); its own log, or the service manager's, says how it ended`,
  ]);
  // A start that fails before it serves (a data directory it refuses, say) puts the record back:
  // the next start still tells of the unclean stop.
  lock.release({ started: false });
  const again = warnings();
  const next = lockDataDir(dir, 'h1', { logger: again, flushIntervalMs: 10_000 });
  assert.equal(again.lines.length, 1, 'the unclean stop is told again');
  next.release();
  // This one stopped cleanly: the next start says nothing.
  const quiet = warnings();
  lockDataDir(dir, 'h1', { logger: quiet }).release();
  assert.deepEqual(quiet.lines, []);
});

test('a lock file from a release that did not record clean stops is no sign of an unclean one', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'host.lock.json'), `${JSON.stringify({ pid: 4242, name: 'h1', since: '2026-11-01T00:00:00.000Z' })}\n`);
  const logger = warnings();
  lockDataDir(dir, 'h1', { logger }).release();
  assert.deepEqual(logger.lines, []);
  // Its own clean stop it records.
  assert.equal(typeof (JSON.parse(await readFile(join(dir, 'host.lock.json'), 'utf8')) as { stopped: unknown }).stopped, 'string');
});
