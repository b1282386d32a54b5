import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StratumError } from '@stratum/core';
import { startEmbeddedDnsServer } from './embedded-server.ts';
import { interfaceSatisfies, missingInterfaces } from './records.ts';
import { DiscoveryResolver, parseServerAddress } from './resolver.ts';

const LINK = ['host=h1.example.test', `capsule=sha256:${'a'.repeat(64)}`, 'registrar=registrar.test'];

test('the resolver picks the one v=stratum1 record at a name (spec section 3.4)', async (t) => {
  const dns = await startEmbeddedDnsServer({ zones: ['example.test'] });
  t.after(() => dns.stop());
  const resolver = new DiscoveryResolver({ servers: [dns.address] });
  const name = '_stratum.shop.example.test';
  const set = (...records: string[][]) =>
    dns.apply([{ op: 'replace', name, type: 'TXT', records: records.map((data) => ({ type: 'TXT', data })) }]);

  await set(['google-site-verification=abc'], ['V=stratum1', ...LINK]);
  assert.equal(
    (await resolver.domainLink('shop.example.test'))?.host,
    'h1.example.test',
    'other protocols ignored; the v key is case-insensitive',
  );

  await set(['v=stratum2', 'whatever=1'], ['v=stratum1', ...LINK]);
  assert.equal((await resolver.domainLink('shop.example.test'))?.host, 'h1.example.test', 'a later version beside stratum1 is skipped');

  await set(['v=stratum2', 'whatever=1']);
  await assert.rejects(
    resolver.domainLink('shop.example.test'),
    (error: unknown) => error instanceof StratumError && error.code === 'TXT_UNSUPPORTED_VERSION',
  );

  await set(['spf1 -all']);
  assert.equal(await resolver.domainLink('shop.example.test'), undefined);
});

test('lookups against a server that is not there fail with DNS_LOOKUP_FAILED, naming the server', async () => {
  const resolver = new DiscoveryResolver({ servers: ['127.0.0.1:9'], timeoutMs: 200, tries: 1 });
  await assert.rejects(resolver.txt('example.test'), (error: unknown) => {
    assert.ok(error instanceof StratumError);
    assert.equal(error.code, 'DNS_LOOKUP_FAILED');
    assert.ok(error.details.some((line) => line.includes('127.0.0.1:9')));
    return true;
  });
});

test('server addresses: host:port, [v6]:port, bare addresses; names are refused', () => {
  assert.deepEqual(parseServerAddress('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 });
  assert.deepEqual(parseServerAddress('127.0.0.1'), { host: '127.0.0.1', port: 53 });
  assert.deepEqual(parseServerAddress('[::1]:5353'), { host: '::1', port: 5353 });
  assert.deepEqual(parseServerAddress('::1'), { host: '::1', port: 53 });
  for (const bad of ['ns1.example.net:53', '127.0.0.1:0', '127.0.0.1:70000', '', '[::1]:x']) {
    assert.throws(
      () => parseServerAddress(bad),
      (error: unknown) => error instanceof StratumError && error.code === 'DNS_SERVER_INVALID',
      bad,
    );
  }
});

test('WIT compatibility follows semver, and a package covers its interfaces', () => {
  const offered = { name: 'stratum:keyvalue', version: '0.1.3' };
  assert.equal(interfaceSatisfies(offered, { name: 'stratum:keyvalue', version: '0.1.0' }), true);
  assert.equal(interfaceSatisfies(offered, { name: 'stratum:keyvalue/store', version: '0.1.2' }), true);
  assert.equal(interfaceSatisfies(offered, { name: 'stratum:keyvalue', version: '0.1.4' }), false, 'older patch');
  assert.equal(interfaceSatisfies(offered, { name: 'stratum:keyvalue', version: '0.2.0' }), false, '0.x minors differ');
  assert.equal(interfaceSatisfies({ name: 'wasi:http', version: '1.4.0' }, { name: 'wasi:http', version: '1.2.9' }), true);
  assert.equal(interfaceSatisfies({ name: 'wasi:http', version: '2.0.0' }, { name: 'wasi:http', version: '1.2.0' }), false);
  assert.equal(interfaceSatisfies({ name: 'stratum:sql/query', version: '0.1.0' }, { name: 'stratum:sql', version: '0.1.0' }), false);
  assert.deepEqual(
    missingInterfaces({ interfaces: [offered] }, [
      { name: 'stratum:sql', version: '0.1.0' },
      { name: 'stratum:keyvalue', version: '0.1.0' },
    ]),
    [{ name: 'stratum:sql', version: '0.1.0' }],
  );
});
