import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isStratumError } from '@stratum/core';
import { checkZone, linkSwitcher } from './link-switch.ts';

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
