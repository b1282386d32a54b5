import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressRanges, peerInRanges } from './address-ranges.ts';

test('a peer is in the ranges by its own family, an IPv4 peer of a dual-stack socket as IPv4', () => {
  const ranges = addressRanges(['127.0.0.0/8', '10.1.0.0/16', '::1/128', 'fd00::/8']);
  assert.equal(peerInRanges('127.0.0.1', ranges), true);
  assert.equal(peerInRanges('::ffff:127.0.0.1', ranges), true);
  assert.equal(peerInRanges('::ffff:7f00:1', ranges), true);
  assert.equal(peerInRanges('10.1.200.3', ranges), true);
  assert.equal(peerInRanges('10.2.0.1', ranges), false);
  assert.equal(peerInRanges('::ffff:10.2.0.1', ranges), false);
  assert.equal(peerInRanges('::1', ranges), true);
  assert.equal(peerInRanges('fd12::5', ranges), true);
  assert.equal(peerInRanges('2001:db8::1', ranges), false);
  // NAT64 addresses are other hosts, not the IPv4 address inside them.
  assert.equal(peerInRanges('64:ff9b::7f00:1', ranges), false);
  assert.equal(peerInRanges(undefined, ranges), false);
  assert.equal(peerInRanges('not an address', ranges), false);
});

test('a range that is not one is refused, naming it', () => {
  for (const bad of ['10.0.0.0/33', '::/129', 'example.com/8', '/8', '10.0.0.0/x']) {
    assert.throws(() => addressRanges([bad]), { code: 'HOST_CONFIG_INVALID', message: `"${bad}" is not an address range` });
  }
});
