import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isStratumError } from '@stratum/core';
import { checkZone, linkSwitcher, planLinks } from './link-switch.ts';

test('a TSIG key file that is not there is named, with what to give instead', async () => {
  const missing = '/nonexistent/stratum-test/update.key';
  await assert.rejects(linkSwitcher({ server: '127.0.0.1:53', zone: 'shop.net', keyFile: missing, addresses: [] }), (error: unknown) => {
    assert.ok(isStratumError(error), String(error));
    assert.equal(error.message, `cannot read the TSIG key file ${missing}: there is no such file`);
    assert.match(error.hint ?? '', /keymgr -t <name>.*tsig-keygen <name>/);
    return true;
  });
});

test('a domain outside --zone is refused naming the zone to give; the zone itself and names under it pass', () => {
  checkZone('Shop.org.', ['shop.org', 'www.shop.org', 'a.b.shop.org']);
  for (const outside of ['www.other.org', 'evilshop.org']) {
    assert.throws(
      () => checkZone('shop.org', ['shop.org', outside]),
      (error: unknown) => {
        assert.ok(isStratumError(error), String(error));
        assert.equal(error.message, `${outside} is not in the zone shop.org (--zone)`);
        assert.equal(error.hint, `Give --zone the zone that holds ${outside}.`);
        return true;
      },
    );
  }
});

test("planLinks names --registrar first, then the new host's word, host.toml's, and the current link's; and finds links it would take", () => {
  const link = (host: string, registrar: string) => ({
    version: 'stratum1' as const,
    host,
    capsule: `sha256:${'a'.repeat(64)}`,
    registrar,
  });
  const current = new Map([
    ['a.shop.org', link('H1.hosting.net', 'Acme.org')],
    ['b.shop.org', link('h3.hosting.net', 'acme.org')],
    ['c.shop.org', undefined],
  ]);
  const domains = ['a.shop.org', 'b.shop.org', 'c.shop.org'];
  const base = { domains, current, host: 'h2.hosting.net', leaving: ['h1.hosting.net'] };
  // Only the current links: c has none, so nothing names its registrar.
  const linksOnly = planLinks(base);
  assert.deepEqual(
    [...linksOnly.registrars],
    [
      ['a.shop.org', 'acme.org'],
      ['b.shop.org', 'acme.org'],
    ],
  );
  assert.deepEqual(linksOnly.unknown, ['c.shop.org']);
  // b names a third host; a, the host a move leaves, is no conflict (names compare without case).
  assert.deepEqual(
    linksOnly.conflicts.map(({ domain, otherHost, otherRegistrar }) => [domain, otherHost, otherRegistrar]),
    [['b.shop.org', true, false]],
  );
  // The new host's word beats host.toml's, and --registrar beats both.
  const hosted = planLinks({ ...base, expected: { checked: true, registrar: 'other.org' }, signer: 'config.org' });
  assert.equal(hosted.registrars.get('c.shop.org'), 'other.org');
  assert.equal(hosted.sources.get('c.shop.org'), 'host');
  assert.deepEqual(
    hosted.conflicts.map(({ domain, otherHost, otherRegistrar }) => [domain, otherHost, otherRegistrar]),
    [
      ['a.shop.org', false, true],
      ['b.shop.org', true, true],
    ],
  );
  assert.equal(planLinks({ ...base, signer: 'config.org' }).sources.get('c.shop.org'), 'config');
  const given = planLinks({ ...base, given: 'acme.org', expected: { checked: false, registrar: 'other.org' } });
  assert.deepEqual([...given.sources.values()], ['given', 'given', 'given']);
  assert.deepEqual(given.unknown, []);
});
