// SIGHUP: a running host reads host.toml again and trusts, or stops trusting, registrars without a restart.
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { generateEd25519KeyPair } from '@stratum/core';
import { ControlApiError, createControlClient } from '@stratum/host';
import { writeTestHost } from './support/host-dir.ts';
import { type HostProcess, startHostProcess } from './support/host-process.ts';
import { ingressGet } from './support/ingress.ts';
import { removeDir } from './support/temp.ts';
import { buildTiny } from './support/tiny.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Waits for the host's `count`th log line whose message starts with `prefix`, and returns it. */
async function logged(host: HostProcess, prefix: string, count: number): Promise<Record<string, unknown>> {
  for (let tries = 0; tries < 250; tries++) {
    const lines = host.logLines().filter((line) => String(line.msg).startsWith(prefix));
    if (lines.length >= count) return lines[count - 1] as Record<string, unknown>;
    await setTimeout(20);
  }
  assert.fail(`no "${prefix}" line ${count} in:\n${host.stderr()}`);
}

async function refusal(call: Promise<unknown>): Promise<string> {
  const error = await call.then(
    () => assert.fail('the request was not refused'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof ControlApiError, String(error));
  return error.code;
}

test("SIGHUP applies host.toml's [registrars] at once, names tables that wait for a restart, and keeps the old config when the new one is broken", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-reload-'));
  const operator = await generateEd25519KeyPair();
  const newcomer = await generateEd25519KeyPair();
  const { path: config } = await writeTestHost(dir, { registrar: operator.publicJwk.x, registrarName: 'ops', operator: true });
  const host = await startHostProcess(config);
  t.after(async () => {
    if (host.child.exitCode === null && host.child.signalCode === null) {
      host.child.kill('SIGTERM');
      await host.exited;
    }
    await removeDir(dir);
  });
  const client = (key: typeof operator) => createControlClient({ url: host.control, key: key.privateJwk, audience: 'host1.example.net' });
  assert.equal(await refusal(client(newcomer).status()), 'AUTH_UNKNOWN_KEY');

  // A registrar added, and a table changed that only a restart applies.
  const original = await readFile(config, 'utf8');
  await writeFile(config, original.replace('[control]\n', '[control]\nmax_body = "2mib"\n'));
  await appendFile(config, `[registrars.newcomer]\nkey = "${newcomer.publicJwk.x}"\n`);
  host.child.kill('SIGHUP');
  const reloaded = await logged(host, `${config} reloaded`, 1);
  assert.deepEqual([reloaded.added, reloaded.removed, reloaded.changed], [['newcomer'], [], []]);
  assert.deepEqual((await logged(host, `${config} changed tables`, 1)).tables, ['control']);
  assert.deepEqual((await client(newcomer).status()).capsules, []);
  const manifest = await readFile(join(root, 'examples', 'tiny', 'stratum.toml'), 'utf8');
  const component = await readFile(await buildTiny());
  for (const name of ['one', 'two']) {
    await client(newcomer).install({ name, domains: [`${name}.localhost`], manifest, component });
  }

  // A broken host.toml is logged and changes nothing.
  await writeFile(config, `${original}[registrars.broken]\nkey = "not a key"\n`);
  host.child.kill('SIGHUP');
  const refused = await logged(host, `${config} not reloaded`, 1);
  assert.match(JSON.stringify(refused.problems), /registrars\.broken/);
  assert.deepEqual(
    (await client(newcomer).status()).capsules.map((capsule) => capsule.name),
    ['one', 'two'],
  );

  // The newcomer taken out: its next request is refused, the operator's still served, and the
  // log names what it leaves behind, still serving, for the operator to drive.
  await writeFile(config, original);
  host.child.kill('SIGHUP');
  const second = await logged(host, `${config} reloaded`, 2);
  assert.deepEqual([second.added, second.removed], [[], ['newcomer']]);
  assert.equal(await refusal(client(newcomer).status()), 'AUTH_UNKNOWN_KEY');
  const left = await logged(host, 'registrar "newcomer" is no longer trusted', 1);
  assert.deepEqual(left.installations, ['one', 'two']);
  assert.match(String(left.msg), /its 2 installations keep serving: one, two; only an operator key drives them now/);
  assert.deepEqual(
    (await client(operator).status()).capsules.map((capsule) => [capsule.name, capsule.state]),
    [
      ['one', 'running'],
      ['two', 'running'],
    ],
  );
  assert.equal((await ingressGet(host.ingress, 'one.localhost', '/')).status, 200);

  // The name back with another key: its installations are that key's now, and the log says so.
  const stranger = await generateEd25519KeyPair();
  await appendFile(config, `[registrars.newcomer]\nkey = "${stranger.publicJwk.x}"\n`);
  host.child.kill('SIGHUP');
  const taken = await logged(host, 'registrar "newcomer" now has another key', 1);
  assert.deepEqual(taken.installations, ['one', 'two']);
  assert.deepEqual(
    (await client(stranger).status()).capsules.map((capsule) => capsule.name),
    ['one', 'two'],
  );
  assert.equal(host.child.exitCode, null, 'the host runs on');
});
