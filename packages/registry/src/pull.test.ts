import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describePinnedSource, describePulled } from './pull.ts';

const DIGEST = `sha256:${'4e'.repeat(32)}`;

test('a pinned source is described by its digest, and a tag beside it as not checked', () => {
  assert.equal(
    describePinnedSource('oci://127.0.0.1:5000/me/counter:0.2.0', DIGEST),
    `oci://127.0.0.1:5000/me/counter@${DIGEST} (pinned by digest; tag 0.2.0 ignored)`,
  );
  assert.equal(describePinnedSource('oci://ghcr.io/me/counter', DIGEST), `oci://ghcr.io/me/counter@${DIGEST}`);
  assert.equal(describePulled({ reference: 'oci://ghcr.io/me/counter:1' }), 'oci://ghcr.io/me/counter:1');
});
