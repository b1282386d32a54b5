// With --log-format json, what stops a host's start is a JSON line on stderr like every other
// line of its log: a log shipper reading JSON garbled the plain error text.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateEd25519KeyPair } from '@stratum/core';
import { writeTestHost } from './support/host-dir.ts';
import { testDir } from './support/temp.ts';

const launcher = fileURLToPath(new URL('../packages/cli/bin/stratum.js', import.meta.url));

function start(config: string): Promise<{ code: number | null; lines: Record<string, unknown>[]; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [launcher, 'host', 'start', '--config', config, '--log-format', 'json'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('exit', (code) => {
      const lines = stderr
        .trim()
        .split('\n')
        .map((line) => {
          try {
            return JSON.parse(line) as Record<string, unknown>;
          } catch {
            return { notJson: line };
          }
        });
      resolve({ code, lines, stderr });
    });
  });
}

test('a host.toml with errors, and a start the host refuses, are logged as JSON lines at level fatal', async (t) => {
  const { dir } = await testDir(t, 'stratum-start-json-');
  const registrar = await generateEd25519KeyPair();
  const { path } = await writeTestHost(dir, {
    registrar: registrar.publicJwk.x,
    operator: true,
    tables: '[limits]\ncpu = 5\nconcurency = 3\n',
  });
  const broken = await start(path);
  assert.equal(broken.code, 1, broken.stderr);
  assert.deepEqual(
    broken.lines.map((line) => line.level),
    [60],
    broken.stderr,
  );
  const [fatal] = broken.lines;
  assert.equal(fatal?.config, path);
  assert.ok(Array.isArray(fatal?.problems) && fatal.problems.some((problem) => /concurency/.test(String(problem))), broken.stderr);

  // No host.toml at all.
  const missing = await start(join(dir, 'nowhere', 'host.toml'));
  assert.equal(missing.code, 1, missing.stderr);
  assert.deepEqual(
    missing.lines.map((line) => [line.level, line.config]),
    [[60, join(dir, 'nowhere', 'host.toml')]],
    missing.stderr,
  );

  // A valid host.toml on a data directory a newer release wrote.
  const good = join(dir, 'good.toml');
  await writeFile(good, (await readFile(path, 'utf8')).replace('[limits]\ncpu = 5\nconcurency = 3\n', ''));
  await mkdir(join(dir, 'data'), { recursive: true });
  await writeFile(join(dir, 'data', 'format.json'), JSON.stringify({ format: 99, writtenBy: '9.0.0', since: '2030-01-01T00:00:00Z' }));
  const refused = await start(good);
  assert.equal(refused.code, 1, refused.stderr);
  assert.ok(
    refused.lines.every((line) => line.notJson === undefined),
    refused.stderr,
  );
  const last = refused.lines.at(-1);
  assert.equal(last?.level, 60);
  assert.equal(last?.code, 'DATA_DIR_NEWER');
  assert.match(String(last?.hint), /backup/);
});
