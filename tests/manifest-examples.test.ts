// Every example manifest in spec/capsule/examples, through the real `stratum validate`: valid ones
// exit 0, invalid ones exit 1 and print exactly the text of their .err file.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { main } from '../packages/cli/src/main.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const examples = join(root, 'spec/capsule/examples');
process.chdir(root);

function capture() {
  let text = '';
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      text += String(chunk);
      callback();
    },
  });
  return { stream, text: () => text };
}

async function validate(path: string) {
  const stdout = capture();
  const stderr = capture();
  const status = await main(['validate', path], { stdout: stdout.stream, stderr: stderr.stream });
  return { status, stdout: stdout.text(), stderr: stderr.text() };
}

const valid = readdirSync(join(examples, 'valid')).filter((name) => name.endsWith('.toml'));
const invalid = readdirSync(join(examples, 'invalid')).filter((name) => name.endsWith('.toml'));

test('there are examples of both kinds, and every invalid one has its .err', () => {
  assert.ok(valid.length >= 4);
  assert.ok(invalid.length >= 20);
  for (const name of invalid) assert.ok(readFileSync(join(examples, 'invalid', name.replace(/\.toml$/, '.err'))));
});

for (const name of valid) {
  test(`valid/${name} validates`, async () => {
    const result = await validate(relative(root, join(examples, 'valid', name)));
    assert.equal(result.stderr, '');
    assert.equal(result.status, 0);
    assert.match(result.stdout, /^valid /);
  });
}

for (const name of invalid) {
  test(`invalid/${name} fails with exactly its .err text`, async () => {
    const path = relative(root, join(examples, 'invalid', name));
    const expected = readFileSync(join(examples, 'invalid', name.replace(/\.toml$/, '.err')), 'utf8');
    const result = await validate(path);
    assert.equal(result.status, 1);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, expected);
  });
}

test('the installed `stratum` command keeps the exit statuses: 0 valid, 1 invalid, 2 usage', () => {
  const bin = join(root, 'packages/cli/bin/stratum.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8' });
  assert.equal(run('validate', 'spec/capsule/examples/valid/minimal.toml').status, 0);
  const invalidRun = run('validate', 'spec/capsule/examples/invalid/unknown-key.toml');
  assert.equal(invalidRun.status, 1);
  assert.equal(invalidRun.stderr, readFileSync(join(examples, 'invalid/unknown-key.err'), 'utf8'));
  const usage = run('validate', '--no-such-flag');
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /Unknown option '--no-such-flag'/);
  assert.equal(run('validate', 'a', 'b').status, 2);
  assert.match(run('--version').stdout, /^stratum \d+\.\d+\.\d+/);
  assert.equal(run('nonsense').status, 2);
});

test('--json prints the normalised manifest', async () => {
  const stdout = capture();
  const status = await main(['validate', 'spec/capsule/examples/valid/minimal.toml', '--json'], {
    stdout: stdout.stream,
    stderr: capture().stream,
  });
  assert.equal(status, 0);
  const manifest = JSON.parse(stdout.text());
  assert.equal(manifest.resources.memoryBytes, 128 * 1024 * 1024);
  assert.equal(manifest.resources.timeoutMs, 30_000);
  assert.deepEqual(manifest.http.routes, ['/*']);
});

test('validate says whether the component [source] wasm names is there, and refuses one its digest does not pin', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stratum-validate-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bytes = Buffer.from('\0asm\r\0\x01\0');
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const manifest = (pin: string) => `stratum = 1\n[capsule]\nname = "a"\nversion = "0.1.0"\n[source]\nwasm = "a.wasm"\n${pin}`;
  writeFileSync(join(dir, 'stratum.toml'), manifest(''));
  const missing = await validate(dir);
  assert.equal(missing.status, 0);
  assert.match(missing.stdout, /\n {2}component {5}a\.wasm, not built yet\n$/);
  writeFileSync(join(dir, 'a.wasm'), bytes);
  assert.match((await validate(dir)).stdout, new RegExp(`\\n {2}component {5}a\\.wasm, 8 B, ${digest}\\n$`));
  writeFileSync(join(dir, 'stratum.toml'), manifest(`digest = "sha256:${'0'.repeat(64)}"\n`));
  const wrong = await validate(dir);
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, new RegExp(`\\[source\\] digest is sha256:0{64}, but a\\.wasm is ${digest}: a host refuses it`));
});
