import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StratumError } from '@stratum/core';
import { parseTsigKey } from './tsig.ts';

const SECRET = 'q0Vz2yJ5wVwWmE3kq3y5fJd3v9X8y0Yc0p3Xr2l4s5o=';

test("a TSIG key reads from Knot's keymgr, BIND's tsig-keygen and the one-line -y form alike", () => {
  const expected = { name: 'stratum-update', secret: SECRET, algorithm: 'hmac-sha256' };
  const knot = `# hmac-sha256:stratum-update:${SECRET}\nkey:\n  - id: stratum-update\n    algorithm: hmac-sha256\n    secret: ${SECRET}\n`;
  const bind = `key "stratum-update" {\n\talgorithm hmac-sha256;\n\tsecret "${SECRET}";\n};\n`;
  assert.deepEqual(parseTsigKey(knot, 'knot.key'), expected);
  assert.deepEqual(parseTsigKey(bind, 'bind.key'), expected);
  assert.deepEqual(parseTsigKey(`hmac-sha256:stratum-update:${SECRET}\n`, 'line.key'), expected);
  assert.deepEqual(parseTsigKey(`stratum-update:${SECRET}`, 'line.key'), expected);
});

test('a file that is not a TSIG key, another algorithm or a short secret is refused, naming the file', () => {
  const refused = (text: string, message: RegExp) =>
    assert.throws(
      () => parseTsigKey(text, 'update.key'),
      (error: unknown) => error instanceof StratumError && error.code === 'TSIG_KEY_INVALID' && message.test(error.message),
    );
  refused('', /^update\.key holds no TSIG key$/);
  refused('{"name": "x"}', /^update\.key holds no TSIG key$/);
  refused(`key "k" {\n algorithm hmac-md5;\n secret "${SECRET}";\n};`, /the key k is hmac-md5; only hmac-sha256 is supported/);
  refused('k:c2hvcnQ=', /the secret of the key k is not base64 of at least 16 bytes/);
  refused('k:not base64!', /the secret of the key k is not base64/);
});
