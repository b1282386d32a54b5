// The wasi:http and wasi:io lowerings against a stand-in for jco's hybrid glue: handle tables
// laid out as jco lays them out (a free list at slot 0, the flag bit on owned entries), the glue's
// own way of giving a host object to the guest (through `[cabiRep]`), its hollow stand-ins for
// handles it does not know, and its drop. The real glue runs in the runtime tests (tiny, hello).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CABI_DISPOSE, CABI_LOWER, CABI_REP, HostResource, type Lowering } from '../capabilities/canonical-abi.ts';
import { fakeInstance } from '../capabilities/fake-instance.ts';
import { Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam, type ResponseReceiver } from './http-types.ts';
import { IoError, OutputStream } from './io.ts';

const FLAG = 1 << 30;
type Core = (...args: (number | bigint)[]) => number | undefined;

function guest() {
  const { memory, realloc, view, out, textAt, put } = fakeInstance();
  const newTable = (): number[] => [FLAG, 0];
  // What jco's glue keeps for the objects it gave the guest itself.
  const captured = new Map<number[], Map<number, object>>();
  return {
    memory,
    newTable,
    view,
    /** The core function a lowering gives for these tables. */
    lower(fn: object, tables: number[][]): Core {
      const lowering: Lowering = { memory, realloc, resourceTables: tables };
      return (fn as Record<symbol, (lowering: Lowering) => Core>)[CABI_LOWER]?.(lowering) as Core;
    },
    /** jco's glue giving the guest an owned handle to a host object. */
    glueGive(table: number[], object: object): number {
      const rep = (object as Record<symbol, number>)[CABI_REP] as number;
      const map = captured.get(table) ?? new Map();
      captured.set(table, map);
      map.set(rep, object);
      table.push(0, rep | FLAG);
      return table.length / 2 - 1;
    },
    /** jco's glue lifting a handle: the object it captured, or a hollow stand-in. */
    glueLift<T extends object>(table: number[], handle: number, type: { prototype: T }): T {
      const rep = (table[handle * 2 + 1] as number) & ~FLAG;
      const known = captured.get(table)?.get(rep) as T | undefined;
      if (known) return known;
      const hollow = Object.create(type.prototype) as T;
      Object.defineProperty(hollow, CABI_REP, { writable: true, value: rep });
      return hollow;
    },
    /** jco's drop: dispose what it captured, else ask the class. */
    glueDrop(table: number[], handle: number, type: object): void {
      const rep = (table[handle * 2 + 1] as number) & ~FLAG;
      table[handle * 2] = (table[0] as number) | FLAG;
      table[0] = handle | FLAG;
      const known = captured.get(table)?.get(rep) as { [Symbol.dispose]?: () => void } | undefined;
      if (known) {
        known[Symbol.dispose]?.();
        captured.get(table)?.delete(rep);
      } else (type as Record<symbol, (rep: number) => void>)[CABI_DISPOSE]?.(rep);
    },
    out,
    put(text: string) {
      const bytes = new TextEncoder().encode(text);
      return [put(bytes), bytes.length] as const;
    },
    text: textAt,
  };
}

function receiver() {
  const seen = { status: 0, headers: [] as [string, Uint8Array][], body: '', ended: false };
  const decoder = new TextDecoder();
  const target: ResponseReceiver = {
    head: (status, headers) => Object.assign(seen, { status, headers }),
    failed: () => {},
    capacity: () => 1 << 20,
    chunk: (bytes) => {
      seen.body += decoder.decode(bytes);
    },
    flush: () => {},
    end: () => {
      seen.ended = true;
    },
    overLimit: () => {},
  };
  return { seen, target };
}

test('a response made through the lowerings reaches the receiver, with tables in any order', () => {
  const g = guest();
  const before = HostResource.live();
  // Numbered as a component might number them; each lowering gets its tables sorted by number.
  const [streams, fieldsTable, responses, bodies, params, errors] = [
    g.newTable(),
    g.newTable(),
    g.newTable(),
    g.newTable(),
    g.newTable(),
    g.newTable(),
  ];
  const newFields = g.lower(Fields, [fieldsTable]);
  const newResponse = g.lower(OutgoingResponse, [fieldsTable, responses]);
  const append = g.lower(Fields.prototype.append, [fieldsTable]);
  const setStatus = g.lower(OutgoingResponse.prototype.setStatusCode, [responses]);
  const body = g.lower(OutgoingResponse.prototype.body, [responses, bodies]);
  const write = g.lower(OutgoingBody.prototype.write, [streams, bodies]);
  const writeAndFlush = g.lower(OutputStream.prototype.blockingWriteAndFlush, [streams, errors]);
  const finish = g.lower(OutgoingBody.finish, [fieldsTable, bodies]);

  const headers = newFields() as number;
  const out = g.out();
  const [name, nameLen] = g.put('content-type');
  const [value, valueLen] = g.put('text/plain');
  append(headers, name, nameLen, value, valueLen, out);
  assert.equal(g.view().getUint8(out), 0);
  const [bad, badLen] = g.put('transfer-encoding');
  append(headers, bad, badLen, value, valueLen, out);
  assert.deepEqual([g.view().getUint8(out), g.view().getUint8(out + 1)], [1, 1], 'forbidden is header-error case 1, after the result byte');

  const response = newResponse(headers) as number;
  assert.notEqual(((fieldsTable[headers * 2] as number) & FLAG) >>> 0, 0, 'the constructor took the fields handle (its slot is free)');
  assert.equal(setStatus(response, 99), 1, 'an invalid status is the result error');
  assert.equal(setStatus(response, 201), 0);
  body(response, out);
  assert.equal(g.view().getUint8(out), 0);
  const bodyHandle = g.view().getInt32(out + 4, true);
  assert.equal(bodies.length, 4, 'the body handle is in the bodies table');
  body(response, out);
  assert.equal(g.view().getUint8(out), 1, 'a second body is refused');
  write(bodyHandle, out);
  const stream = g.view().getInt32(out + 4, true);
  assert.equal(streams.length, 4, 'the stream handle is in the streams table');
  const [hello, helloLen] = g.put('hello');
  writeAndFlush(stream, hello, helloLen, out);
  assert.equal(g.view().getUint8(out), 0);

  // The outparam comes from jco's glue (the export call); set takes it and the response.
  const { seen, target } = receiver();
  const paramHandle = g.glueGive(params, new ResponseOutparam(target));
  const set = g.lower(ResponseOutparam.set, [params, responses]);
  set(paramHandle, 0, response, 0n, 0, 0, 0, 0, 0);
  assert.notEqual(((responses[response * 2] as number) & FLAG) >>> 0, 0, 'set took the response handle');
  g.glueDrop(streams, stream, OutputStream);
  finish(bodyHandle, 0, 0, out);
  assert.equal(g.view().getUint8(out), 0);
  assert.deepEqual(
    {
      status: seen.status,
      headers: seen.headers.map(([n, v]) => `${n}: ${new TextDecoder().decode(v)}`),
      body: seen.body,
      ended: seen.ended,
    },
    { status: 201, headers: ['content-type: text/plain'], body: 'hello', ended: true },
  );
  assert.equal(HostResource.live(), before, 'every representation went back once its handle was gone');
});

test('response-outparam.set: an error-code reaches the receiver by its case; a response made without the lowerings is accepted through the glue', () => {
  const g = guest();
  const [params, responses] = [g.newTable(), g.newTable()];
  const set = g.lower(ResponseOutparam.set, [params, responses]);
  const failed: string[] = [];
  const first = receiver();
  first.target.failed = (error) => failed.push(error.tag);
  set(g.glueGive(params, new ResponseOutparam(first.target)), 1, 15, 0n, 0, 0, 0, 0, 0);
  assert.deepEqual(failed, ['HTTP-request-denied']);

  // Without hybrid bindings the glue calls the class itself, with a hollow stand-in for a
  // response whose handle a lowering made.
  const second = receiver();
  const fieldsTable: number[] = g.newTable();
  const newResponse = g.lower(OutgoingResponse, [fieldsTable, responses]);
  const response = newResponse(g.lower(Fields, [fieldsTable])() as number) as number;
  const hollow = g.glueLift(responses, response, OutgoingResponse);
  ResponseOutparam.set(new ResponseOutparam(second.target), { tag: 'ok', val: hollow });
  assert.equal(second.seen.status, 200);
});

test('an incoming request is read through the lowerings; representations are reused, not counted up', () => {
  const g = guest();
  const [fieldsTable, requests] = [g.newTable(), g.newTable()];
  const method = g.lower(IncomingRequest.prototype.method, [requests]);
  const path = g.lower(IncomingRequest.prototype.pathWithQuery, [requests]);
  const scheme = g.lower(IncomingRequest.prototype.scheme, [requests]);
  const headersOf = g.lower(IncomingRequest.prototype.headers, [fieldsTable, requests]);
  const entries = g.lower(Fields.prototype.entries, [fieldsTable]);
  const reps = new Set<number>();
  for (let round = 0; round < 50; round++) {
    const request = new IncomingRequest({
      method: round % 2 ? 'PURGE' : 'GET',
      pathWithQuery: `/r/${round}`,
      scheme: 'https',
      authority: 'a.test',
      headers: ['X-Round', String(round)],
      body: [],
    });
    const handle = g.glueGive(requests, request);
    reps.add((requests[handle * 2 + 1] as number) & ~FLAG);
    const out = g.out();
    method(handle, out);
    if (round % 2) assert.deepEqual([g.view().getUint8(out), g.text(out + 4)], [9, 'PURGE']);
    else assert.equal(g.view().getUint8(out), 0);
    path(handle, out);
    assert.deepEqual([g.view().getUint8(out), g.text(out + 4)], [1, `/r/${round}`]);
    scheme(handle, out);
    assert.deepEqual([g.view().getUint8(out), g.view().getUint8(out + 4)], [1, 1]);
    const headers = headersOf(handle) as number;
    entries(headers, out);
    assert.equal(g.view().getUint32(out + 4, true), 1);
    const entry = g.view().getUint32(out, true);
    assert.deepEqual([g.text(entry), g.text(entry + 8)], ['x-round', String(round)]);
    g.glueDrop(fieldsTable, headers, Fields);
    g.glueDrop(requests, handle, IncomingRequest);
  }
  assert.ok(reps.size <= 2, `a dropped request's representation is reused (${reps.size} used)`);
});

test('stream errors: closed is case 1; a failure gives the guest an error handle it can read', () => {
  const g = guest();
  const [errors, streams] = [g.newTable(), g.newTable()];
  let fail: unknown;
  const stream = new OutputStream({
    capacity: () => 10,
    write: () => {
      throw fail;
    },
    flush: () => {},
  });
  const handle = g.glueGive(streams, stream);
  const write = g.lower(OutputStream.prototype.write, [errors, streams]);
  const out = g.out();
  const [ptr, len] = g.put('x');
  fail = { tag: 'closed' };
  write(handle, ptr, len, out);
  assert.deepEqual([g.view().getUint8(out), g.view().getUint8(out + 4)], [1, 1]);
  fail = { tag: 'last-operation-failed', val: new IoError('disk on fire') };
  write(handle, ptr, len, out);
  assert.deepEqual([g.view().getUint8(out), g.view().getUint8(out + 4)], [1, 0]);
  const error = g.view().getInt32(out + 8, true);
  assert.equal(errors.length, 4, 'the error handle is in the errors table');
  // to-debug-string stays with the glue, which only has a hollow stand-in for it.
  assert.equal(g.glueLift(errors, error, IoError).toDebugString(), 'disk on fire');
  fail = new Error('a host bug');
  assert.throws(() => write(handle, ptr, len, out), /a host bug/, 'a thrown Error traps instead of becoming a stream error');
});

test('a bad handle traps and names the resource; a borrowed handle cannot be passed on as owned', () => {
  const g = guest();
  const [fieldsTable, responses] = [g.newTable(), g.newTable()];
  const newFields = g.lower(Fields, [fieldsTable]);
  const newResponse = g.lower(OutgoingResponse, [fieldsTable, responses]);
  const setStatus = g.lower(OutgoingResponse.prototype.setStatusCode, [responses]);
  assert.throws(
    () => setStatus(7, 200),
    (error) => error instanceof WebAssembly.RuntimeError && /OutgoingResponse/.test(error.message),
  );
  const headers = newFields() as number;
  fieldsTable[headers * 2] = 5; // lent out: a borrow scope is open on it
  assert.throws(() => newResponse(headers), /borrowed, not owned/);
});

test('fuzz: whatever handles a guest passes, a lowering gets an object of its own class or traps, and nothing leaks', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom('fields', 'drop', 'has', 'response', 'status'), fc.integer({ min: -2, max: 12 })), {
        maxLength: 60,
      }),
      (steps) => {
        const g = guest();
        const before = HostResource.live();
        // Two tables a lowering cannot tell apart by their order: numbered the other way round.
        const [responses, fieldsTable] = [g.newTable(), g.newTable()];
        const newFields = g.lower(Fields, [fieldsTable]);
        const has = g.lower(Fields.prototype.has, [fieldsTable]);
        const newResponse = g.lower(OutgoingResponse, [responses, fieldsTable]);
        const setStatus = g.lower(OutgoingResponse.prototype.setStatusCode, [responses]);
        const [name, nameLen] = g.put('x');
        const live = { fields: new Set<number>(), responses: new Set<number>() };
        for (const [step, handle] of steps) {
          const valid = step === 'response' || step === 'drop' || step === 'has' ? live.fields.has(handle) : live.responses.has(handle);
          try {
            if (step === 'fields') live.fields.add(newFields() as number);
            else if (step === 'has') assert.equal(has(handle, name, nameLen), 0);
            else if (step === 'status') assert.equal(setStatus(handle, 200), 0);
            else if (step === 'response') {
              const response = newResponse(handle) as number;
              live.fields.delete(handle);
              live.responses.add(response);
            } else if (valid) {
              g.glueDrop(fieldsTable, handle, Fields);
              live.fields.delete(handle);
            }
            if (step !== 'fields' && step !== 'drop')
              assert.ok(valid, `${step} accepted handle ${handle}, which is not a live one of its class`);
          } catch (error) {
            if (error instanceof assert.AssertionError) throw error;
            assert.ok(error instanceof WebAssembly.RuntimeError, String(error));
            assert.ok(!valid, `${step} refused the live handle ${handle}: ${String(error)}`);
          }
        }
        for (const handle of live.fields) g.glueDrop(fieldsTable, handle, Fields);
        for (const handle of live.responses) g.glueDrop(responses, handle, OutgoingResponse);
        assert.equal(HostResource.live(), before);
      },
    ),
    { numRuns: 300 },
  );
});
