import assert from 'node:assert/strict';
import { test } from 'node:test';
import { multipartBoundary, parseMultipart } from './multipart.ts';

const bytes = (...parts: (string | number[])[]) =>
  Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : Buffer.from(part))));

/** A form's entries: strings as they are, files as [name, type, bytes]. */
async function entries(form: FormData): Promise<[string, unknown][]> {
  const out: [string, unknown][] = [];
  for (const [name, value] of form) {
    out.push([name, typeof value === 'string' ? value : [value.name, value.type, [...new Uint8Array(await value.arrayBuffer())]]]);
  }
  return out;
}

test('the boundary is read from a multipart/form-data Content-Type, quoted or not; other types have none', () => {
  assert.equal(multipartBoundary('multipart/form-data; boundary=abc'), 'abc');
  assert.equal(multipartBoundary('Multipart/Form-Data;charset=utf-8; BOUNDARY="a b;c"'), 'a b;c');
  assert.equal(multipartBoundary('multipart/form-data'), undefined);
  assert.equal(multipartBoundary('multipart/form-data; xboundary=abc'), undefined);
  assert.equal(multipartBoundary('application/x-www-form-urlencoded'), null);
  assert.equal(multipartBoundary(null), null);
});

test("a file part keeps its exact bytes, delimiter-like lines included; a preamble, the boundary's padding and an epilogue are ignored", async () => {
  const body = bytes(
    'a preamble\r\n--b0 \t\r\n',
    'content-disposition: form-data; name="f"; filename="q\\"uote\\\\.bin"\r\nContent-Type: application/octet-stream\r\n\r\n',
    [0, 13, 10, 45, 45, 98, 13, 10, 0x80, 0xff],
    '\r\n--b0\r\n',
    'Content-Disposition: form-data; name="t"\r\n\r\n',
    [0xef, 0xbb, 0xbf, 0x63, 0x61, 0x66, 0xe9],
    '\r\n--b0\r\n',
    'Content-Disposition: form-data; name=plain; filename=C:\\a.txt\r\n\r\n',
    '\r\n--b0--\r\nan epilogue',
  );
  assert.deepEqual(await entries(parseMultipart(body, 'b0')), [
    ['f', ['q"uote\\.bin', 'application/octet-stream', [0, 13, 10, 45, 45, 98, 13, 10, 0x80, 0xff]]],
    // UTF-8 without its byte order mark, a byte that is not UTF-8 replaced.
    ['t', 'caf\ufffd'],
    ['plain', ['C:\\a.txt', 'text/plain', []]],
  ]);
});

test('a body that is not multipart with its boundary is a TypeError that says why', () => {
  const cases: [string, RegExp][] = [
    ['no boundary at all', /it has no boundary "b0"/],
    ['--b0\r\nContent-Disposition: form-data; name="a"\r\n\r\nnever closed', /a part is not closed by the boundary "b0"/],
    ['--b0\r\nContent-Disposition: form-data; name="a"\r\n', /a part's headers do not end with an empty line/],
    ['--b0\r\nContent-Type: text/plain\r\n\r\nx\r\n--b0--', /a part has no Content-Disposition with a name/],
    ['--b0x\r\n', /a boundary is not followed by a line break or "--"/],
  ];
  for (const [body, why] of cases) {
    assert.throws(
      () => parseMultipart(Buffer.from(body), 'b0'),
      (error: unknown) =>
        error instanceof TypeError &&
        /^formData\(\): the multipart\/form-data body cannot be read: /.test(error.message) &&
        why.test(error.message),
      body,
    );
  }
  assert.equal([...parseMultipart(Buffer.from('--b0--'), 'b0')].length, 0);
});
