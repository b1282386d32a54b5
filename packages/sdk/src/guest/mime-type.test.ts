import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blobType } from './mime-type.ts';

/** Content-Type fields, each list one response's (several: the field repeated). */
const CASES: string[][] = [
  [],
  ['text/plain'],
  ['Text/HTML; Charset=UTF-8'],
  ['Application/JSON; Charset="UTF-8"'],
  ['  text/html  ;  charset = utf-8 ; q=1 '],
  ['text/html;charset=utf-8;charset=latin1'],
  ['text/html;CHARSET=a;charset=b'],
  ['multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW'],
  ['multipart/form-data; boundary="a b;c"'],
  ['text/plain; name="a \\"quoted\\" \\\\ value"'],
  ['text/plain; name="unterminated'],
  ['text/plain; name="x"garbage; other=y'],
  ['text/plain; =novalue; noequals; empty=; ok=1'],
  ['text/plain; é=1; x=é'],
  ['text/plain; x="ÿ"'],
  ['text/plain; x=a b'],
  ['text'],
  ['/plain'],
  ['text/'],
  ['te xt/plain'],
  ['*/*'],
  ['text/html, */*'],
  ['text/html;charset=gbk, text/html'],
  ['text/html;charset=gbk, text/plain'],
  ['text/html;charset=gbk, text/html;x=y'],
  ['text/html;charset=gbk, invalid, text/html'],
  ['text/html', 'application/json'],
  ['text/html; charset="a,b"', 'text/html'],
  ['image/svg+xml'],
  ['application/vnd.api+json; ext="https://jsonapi.org/ext/atomic"'],
  [''],
  [' , '],
];

test("blob()'s type is the Content-Type as the Fetch standard extracts and serializes it, lower-cased as a Blob's: as Node.js gives it", async () => {
  for (const fields of CASES) {
    const headers = new Headers();
    for (const field of fields) headers.append('content-type', field);
    // Bytes, which give no Content-Type of their own, as a string would.
    const expected = (await new Response(new Uint8Array(0), { headers }).blob()).type;
    assert.equal(blobType(headers.get('content-type')), expected, JSON.stringify(fields));
  }
  // A few by hand, in case Node.js's own were wrong alike.
  assert.equal(blobType('Application/JSON; Charset="UTF-8"'), 'application/json;charset=utf-8');
  assert.equal(blobType('text/html;charset=gbk, text/html'), 'text/html;charset=gbk');
  assert.equal(blobType('text/plain; x=a b'), 'text/plain;x="a b"');
  assert.equal(blobType(null), '');
});
