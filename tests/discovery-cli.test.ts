// `stratum host keygen` and `stratum dns check`, run through the CLI's main() against an
// embedded DNS server on loopback.
import assert from 'node:assert/strict';
import { mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readKeyFile } from '@stratum/core';
import { hostKeyFromJwk, parseHostRecord, publishDomainLink, publishHostRecord, startEmbeddedDnsServer } from '@stratum/discovery';
import { runCli as run } from './support/cli.ts';
import { removeDir } from './support/temp.ts';

test('host keygen writes an owner-only key file, prints the record to publish, and never overwrites', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-keygen-'));
  t.after(() => removeDir(dir));
  const out = join(dir, 'host-key.json');
  const result = await run([
    'host',
    'keygen',
    '--out',
    out,
    '--host',
    'h1.example.net',
    '--api',
    'https://h1.example.net/v1',
    '--wit',
    'wasi:http@0.2.0',
    '--json',
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal((await stat(out)).mode & 0o777, 0o600);
  const key = hostKeyFromJwk(await readKeyFile(out));
  const printed = JSON.parse(result.stdout) as { publicKey: string; thumbprint: string; record: { name: string; strings: string[] } };
  assert.equal(printed.publicKey, key.publicKey);
  assert.equal(printed.thumbprint, key.thumbprint);
  assert.equal(printed.record.name, '_stratum-host.h1.example.net');
  assert.deepEqual(parseHostRecord(printed.record.strings).interfaces, [{ name: 'wasi:http', version: '0.2.0' }]);

  const again = await run(['host', 'keygen', '--out', out]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists/);
  assert.equal(hostKeyFromJwk(await readKeyFile(out)).publicKey, key.publicKey, 'the first key is untouched');

  const bad = await run([
    'host',
    'keygen',
    '--out',
    join(dir, 'other.json'),
    '--host',
    'h1.example.net',
    '--api',
    'http://h1.example.net/',
  ]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /https/);
  await assert.rejects(stat(join(dir, 'other.json')), 'a rejected record leaves no key file behind');
  assert.equal((await run(['host', 'keygen', '--host', 'h1.example.net'])).code, 2, '--host without --api is a usage error');
});

test('dns check shows the link, the host record and routing, and says whether they agree', async (t) => {
  const dns = await startEmbeddedDnsServer({ zones: ['example.test'] });
  t.after(() => dns.stop());
  const key = '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo';
  const capsule = `sha256:${'ab'.repeat(32)}`;
  await dns.apply([{ op: 'add', name: 'h1.example.test', record: { type: 'A', data: '192.0.2.7' } }]);
  await publishHostRecord(dns, 'h1.example.test', { publicKey: key, api: 'https://h1.example.test/v1', interfaces: [] });
  await publishDomainLink(
    dns,
    'shop.example.test',
    { host: 'h1.example.test', capsule, registrar: 'registrar.test' },
    { cname: 'h1.example.test' },
  );

  const good = await run(['dns', 'check', 'shop.example.test', '--resolver', dns.address]);
  assert.equal(good.code, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /host h1\.example\.test, capsule sha256:abab/);
  assert.match(good.stdout, new RegExp(`key ${key}`));
  assert.match(good.stdout, /CNAME h1\.example\.test -> 192\.0\.2\.7/);
  assert.match(good.stdout, /agree/);

  await publishDomainLink(
    dns,
    'shop.example.test',
    { host: 'h1.example.test', capsule, registrar: 'registrar.test' },
    { addresses: ['198.51.100.1'] },
  );
  const bad = await run(['dns', 'check', 'shop.example.test', '--server', dns.address, '--json']);
  assert.equal(bad.code, 1);
  const report = JSON.parse(bad.stdout) as { problems: string[] };
  assert.deepEqual(report.problems, ['shop.example.test points at 198.51.100.1, which h1.example.test does not resolve to']);

  // A link to a host that publishes no record: what prints one.
  await publishDomainLink(
    dns,
    'lost.example.test',
    { host: 'h2.example.test', capsule, registrar: 'registrar.test' },
    { cname: 'h2.example.test' },
  );
  const unpublished = await run(['dns', 'check', 'lost.example.test', '--server', dns.address]);
  assert.equal(unpublished.code, 1);
  assert.match(
    unpublished.stdout,
    /h2\.example\.test publishes no _stratum-host record \(its operator prints it with `stratum host record --api <url>`\)/,
  );

  const none = await run(['dns', 'check', 'nothing.example.test', '--server', dns.address]);
  assert.equal(none.code, 1);
  assert.match(none.stdout, /_stratum\.nothing\.example\.test has no v=stratum1 TXT record/);

  assert.equal((await run(['dns', 'check'])).code, 2);
  const badServer = await run(['dns', 'check', 'shop.example.test', '--server', 'not-an-address']);
  assert.equal(badServer.code, 1);
  assert.match(badServer.stderr, /not a DNS server address/);
});
