// `stratum host keygen`'s next step: a registrar's key does nothing until a host's operator
// trusts it in host.toml and reloads the host, which a new user had to find out from a 401.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli as run } from './support/cli.ts';
import { removeDir } from './support/temp.ts';

test('host keygen says how a host comes to trust the key: [registrars.<name>] key and domain in its host.toml, then a restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-keygen-next-'));
  t.after(() => removeDir(dir));
  const out = join(dir, 'registrar-key.json');
  const text = await run(['host', 'keygen', '--out', out]);
  assert.equal(text.code, 0, text.stderr);
  const publicKey = /^public key {2}(\S+)$/m.exec(text.stdout)?.[1];
  assert.ok(publicKey, text.stdout);
  assert.match(text.stdout, /adds its public key to that host's host\.toml\n {2}\[registrars\.<name>\]\n/);
  // With the registrar's domain, which its links name: without it a host serves that registrar no public domain.
  assert.ok(
    text.stdout.includes(
      `\n  key = "${publicKey}"\n  domain = "<the registrar's domain>"\nand reloads the host (SIGHUP: systemctl reload, kill -HUP)`,
    ),
    text.stdout,
  );
  assert.match(
    text.stdout,
    /\nThe domain is what the registrar= of its domains' _stratum links names: without it the host\nserves that registrar only names under localhost, test, example and invalid/,
  );
  assert.ok(text.stdout.includes(`then sign with --key ${out}.`), text.stdout);

  const json = await run(['host', 'keygen', '--out', join(dir, 'second.json'), '--json']);
  assert.equal(json.code, 0, json.stderr);
  const printed = JSON.parse(json.stdout) as { publicKey: string; next: string };
  assert.ok(
    printed.next.includes(
      `[registrars.<name>]\n  key = "${printed.publicKey}"\n  domain = "<the registrar's domain>"\nand reloads the host`,
    ),
    printed.next,
  );

  const host = await run([
    'host',
    'keygen',
    '--out',
    join(dir, 'host.json'),
    '--host',
    'h1.example.net',
    '--api',
    'https://h1.example.net/v1',
  ]);
  assert.equal(host.code, 0, host.stderr);
  assert.ok(host.stdout.includes(`Next: name it in h1.example.net's host.toml as [host] key = "${join(dir, 'host.json')}"`), host.stdout);
});
