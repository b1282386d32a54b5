import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { headerValueBytes, headerValueText } from './header-value.ts';
import { Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam, type ResponseReceiver } from './http-types.ts';
import { InputStream } from './io.ts';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) => new TextDecoder().decode(value);

test('fields: names compare case-insensitively and keep their order', () => {
  const fields = new Fields();
  fields.append('X-One', bytes('1'));
  fields.append('x-two', bytes('2'));
  fields.append('X-ONE', bytes('3'));
  assert.deepEqual(fields.get('x-one').map(text), ['1', '3']);
  assert.equal(fields.has('X-TWO'), true);
  fields.set('x-one', [bytes('4')]);
  assert.deepEqual(
    fields.entries().map(([name, value]) => `${name}=${text(value)}`),
    ['x-two=2', 'x-one=4'],
  );
  fields.delete('X-Two');
  assert.equal(fields.has('x-two'), false);
});

test('fields: a guest cannot set hop-by-hop headers, bad names or values with line breaks', () => {
  const fields = new Fields();
  assert.throws(
    () => fields.set('transfer-encoding', [bytes('chunked')]),
    (error) => (error as { tag: string }).tag === 'forbidden',
  );
  assert.throws(
    () => fields.append('bad name', bytes('x')),
    (error) => (error as { tag: string }).tag === 'invalid-syntax',
  );
  assert.throws(
    () => fields.append('x-split', bytes('a\r\nset-cookie: x')),
    (error) => (error as { tag: string }).tag === 'invalid-syntax',
  );
  assert.deepEqual(fields.entries(), []);
});

test('fields: request and response headers are immutable; a clone is not', () => {
  const request = new IncomingRequest({
    method: 'POST',
    pathWithQuery: '/x',
    scheme: 'http',
    authority: 'a.test',
    headers: ['Content-Type', 'text/plain'],
    body: [],
  });
  const headers = request.headers();
  assert.deepEqual(headers.get('content-type').map(text), ['text/plain']);
  assert.throws(
    () => headers.append('x', bytes('y')),
    (error) => (error as { tag: string }).tag === 'immutable',
  );
  const copy = headers.clone();
  copy.append('x', bytes('y'));
  assert.equal(copy.has('x'), true);
  assert.equal(request.headers().has('x'), false);
  const response = new OutgoingResponse(new Fields());
  assert.throws(
    () => response.headers().set('x', [bytes('1')]),
    (error) => (error as { tag: string }).tag === 'immutable',
  );
});

/** The value of `x-name` a capsule reads, for a request whose header had these bytes on the wire. */
function receivedHeader(wire: Iterable<number>): Uint8Array {
  const request = new IncomingRequest({
    method: 'GET',
    pathWithQuery: '/',
    scheme: 'http',
    authority: 'a.test',
    // As Node.js's parser makes header values: latin1, one character per byte.
    headers: ['X-Name', Buffer.from([...wire]).toString('latin1')],
    body: [],
  });
  return request.headers().get('x-name')[0] ?? new Uint8Array();
}

test('a request header value reaches the capsule as the bytes that were on the wire', () => {
  // "€" sent as UTF-8 arrives as three characters, and a lone latin1 "é" as one.
  const wire = [0x63, 0x61, 0x66, 0xe9, 0x20, 0xe2, 0x82, 0xac];
  assert.deepEqual([...receivedHeader(wire)], wire);
});

test('fuzz: any header value crosses from Node.js to the capsule and back byte for byte', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (wire) => {
      const value = receivedHeader(wire);
      assert.deepEqual([...value], [...wire]);
      // As Node.js's server writes a response header back.
      assert.deepEqual([...Buffer.from(headerValueText(value), 'latin1')], [...wire]);
      assert.deepEqual([...headerValueBytes(headerValueText(wire))], [...wire]);
    }),
  );
});

test('fuzz: fields from any list either hold exactly that list or refuse it with a header error', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.string({ maxLength: 12 }), fc.uint8Array({ maxLength: 12 })), { maxLength: 6 }), (entries) => {
      try {
        const fields = Fields.fromList(entries);
        assert.deepEqual(fields.entries(), entries);
      } catch (error) {
        assert.ok(!(error instanceof Error), `threw an Error (a trap) instead of a header error: ${String(error)}`);
        assert.ok(['invalid-syntax', 'forbidden'].includes((error as { tag: string }).tag));
      }
    }),
    { numRuns: 1000 },
  );
});

test('a request body reads chunk by chunk, then the stream reports closed', async () => {
  const request = new IncomingRequest({
    method: 'PUT',
    pathWithQuery: '/',
    scheme: 'http',
    authority: 'a.test',
    headers: [],
    body: [bytes('hello '), bytes('world')],
  });
  const stream = request.consume().stream();
  assert.equal(text(stream.read(4n)), 'hell');
  assert.equal(text(stream.read(100n)), 'o ');
  assert.equal(text(await stream.blockingRead(100n)), 'world');
  assert.throws(
    () => stream.read(1n),
    (error) => (error as { tag: string }).tag === 'closed',
  );
  assert.throws(() => request.consume());
  assert.throws(
    () => new InputStream().read(1n),
    (error) => (error as { tag: string }).tag === 'closed',
  );
});

test('a response written before it is set reaches the receiver in order: head, body, end', () => {
  const events: string[] = [];
  const receiver: ResponseReceiver = {
    head: (status, headers) => events.push(`head ${status} ${headers.map(([name, value]) => `${name}=${text(value)}`).join(',')}`),
    failed: (error) => events.push(`failed ${error.tag}`),
    capacity: () => 1024,
    chunk: (chunk) => events.push(`chunk ${text(chunk)}`),
    flush: () => {},
    end: () => events.push('end'),
    overLimit: () => events.push('over'),
  };
  const headers = new Fields();
  headers.append('content-type', bytes('text/plain'));
  const response = new OutgoingResponse(headers);
  response.setStatusCode(201);
  const body = response.body();
  body.write().blockingWriteAndFlush(bytes('early'));
  ResponseOutparam.set(new ResponseOutparam(receiver), { tag: 'ok', val: response });
  assert.throws(() => response.body());
  assert.throws(() => response.setStatusCode(42));
  OutgoingBody.finish(body, undefined);
  assert.deepEqual(events, ['head 201 content-type=text/plain', 'chunk early', 'end']);
});

test("a guest's fields hold at most 64 KiB of names and values: an append, set or from-list past it is refused, and a delete makes room again", () => {
  const kib = (count: number) => new Uint8Array(count * 1024).fill(0x61);
  const fields = new Fields();
  fields.append('a', kib(40));
  assert.throws(
    () => fields.append('b', kib(30)),
    (error: unknown) => (error as { tag?: string }).tag === 'forbidden',
  );
  assert.deepEqual(
    fields.entries().map(([name]) => name),
    ['a'],
  );
  fields.append('b', kib(20));
  assert.throws(
    () => fields.set('c', [kib(3), kib(2)]),
    (error: unknown) => (error as { tag?: string }).tag === 'forbidden',
  );
  // Replacing a field counts what it replaces out.
  fields.set('b', [kib(23)]);
  fields.delete('a');
  fields.append('c', kib(40));
  assert.deepEqual(
    fields.entries().map(([name, value]) => [name, value.length]),
    [
      ['b', 23 * 1024],
      ['c', 40 * 1024],
    ],
  );
  assert.throws(
    () => Fields.fromList(Array.from({ length: 200 }, (_, index): [string, Uint8Array] => [`h${index}`, kib(1)])),
    (error: unknown) => (error as { tag?: string }).tag === 'forbidden',
  );
  // A clone of full fields is as full.
  assert.throws(
    () => fields.clone().append('d', kib(2)),
    (error: unknown) => (error as { tag?: string }).tag === 'forbidden',
  );
});
