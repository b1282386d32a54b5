/**
 * wasi:io/streams and wasi:http/types at the canonical ABI, for jco's hybrid import bindings
 * (capabilities/canonical-abi.ts has the protocol). Every request crosses a dozen of these
 * imports, and jco's glue wraps each call in its async-task bookkeeping: in the tiny capsule's
 * worker profile the glue was 44% of the busy time and the garbage it made another 18%.
 *
 * Handles the host makes here (fields, responses, bodies, streams, errors) are unknown to jco's
 * glue, so every function that makes or takes an owned handle of those classes is lowered here,
 * and the classes accept jco's hollow stand-ins in the functions left to the glue. Functions the
 * glue keeps either touch only handles it made (request bodies, pollables, futures) or are rare.
 *
 * Layouts: a `result`'s case is a byte at +0 and its payload is aligned after it (+4 for a
 * pointer, a handle or a string, +8 for a u64, +1 for a payload-less variant such as
 * header-error); an `option` is laid out the same way.
 */
import { type GuestMemory, guestError, type HandleTables, lowerResourceFunction } from '../capabilities/canonical-abi.ts';
import type {
  Fields,
  IncomingRequest,
  IncomingResponse,
  OutgoingBody,
  OutgoingRequest,
  OutgoingResponse,
  ResponseOutparam,
} from './http-types.ts';
import { type InputStream, type IoError, type OutputStream, readsSuspend } from './io.ts';

interface StreamClasses {
  IoError: typeof IoError;
  InputStream: typeof InputStream;
  OutputStream: typeof OutputStream;
}

/** stream-error: `last-operation-failed(own<error>)` is case 0 (its handle at +4), `closed` case 1. */
function writeStreamError(memory: GuestMemory, handles: HandleTables, io: StreamClasses, at: number, error: unknown): void {
  const { tag, val } = (guestError(error) ?? {}) as { tag?: string; val?: unknown };
  const view = memory.view();
  if (tag === 'last-operation-failed' && val instanceof io.IoError) {
    const handle = handles.give(io.IoError, val);
    memory.view().setUint8(at, 0);
    memory.view().setInt32(at + 4, handle, true);
    return;
  }
  if (tag !== 'closed') throw new TypeError(`invalid stream-error ${String(tag)}`);
  view.setUint8(at, 1);
}

/**
 * A method returning `result<_, E>`, lowered as (self, ..., return area): `run` gets the object
 * and the core arguments; a value it throws for the guest goes to `failed`, which writes the case
 * and E.
 */
function unitResultMethod<S>(
  type: abstract new (...args: never[]) => S,
  run: (target: S, memory: GuestMemory, args: number[]) => void,
  failed: (memory: GuestMemory, handles: HandleTables, out: number, error: unknown) => void,
) {
  return (handles: HandleTables, memory: GuestMemory) =>
    (...args: number[]) => {
      const out = args[args.length - 1] as number;
      const target = handles.borrow(type, args[0] as number);
      try {
        run(target, memory, args);
      } catch (error) {
        failed(memory, handles, out, error);
        return;
      }
      memory.view().setUint8(out, 0);
    };
}

export function lowerStreams(io: StreamClasses): void {
  const { InputStream, OutputStream } = io;
  const output = OutputStream.prototype;

  /** `result<_, stream-error>` methods: the error after the case, at +4. */
  const unitResult = (run: (stream: OutputStream, memory: GuestMemory, args: number[]) => void) =>
    unitResultMethod(OutputStream, run, (memory, handles, out, error) => {
      memory.view().setUint8(out, 1);
      writeStreamError(memory, handles, io, out + 4, error);
    });
  const write = (stream: OutputStream, memory: GuestMemory, [, ptr, len]: number[]) =>
    stream.write(memory.passingBytes(ptr as number, len as number));
  const writeAndFlush = (stream: OutputStream, memory: GuestMemory, [, ptr, len]: number[]) =>
    stream.blockingWriteAndFlush(memory.passingBytes(ptr as number, len as number));
  lowerResourceFunction(output.write, unitResult(write));
  lowerResourceFunction(output.blockingWriteAndFlush, unitResult(writeAndFlush));
  lowerResourceFunction(
    output.flush,
    unitResult((stream) => stream.flush()),
  );
  lowerResourceFunction(
    output.blockingFlush,
    unitResult((stream) => stream.blockingFlush()),
  );
  lowerResourceFunction(output.checkWrite, (handles, memory) => (self: number, out: number) => {
    const stream = handles.borrow(OutputStream, self);
    let allowed: bigint;
    try {
      allowed = stream.checkWrite();
    } catch (error) {
      memory.view().setUint8(out, 1);
      writeStreamError(memory, handles, io, out + 8, error);
      return;
    }
    const view = memory.view();
    view.setUint8(out, 0);
    view.setBigUint64(out + 8, allowed, true);
  });

  /** `result<list<u8>, stream-error>`: (self, len, return area). */
  const read = (blocking: boolean) => (handles: HandleTables, memory: GuestMemory) => (self: number, len: bigint, out: number) => {
    const stream = handles.borrow(InputStream, self);
    const failed = (error: unknown) => {
      memory.view().setUint8(out, 1);
      writeStreamError(memory, handles, io, out + 4, error);
    };
    const succeeded = (bytes: Uint8Array) => {
      memory.view().setUint8(out, 0);
      memory.writeList(out + 4, bytes);
    };
    let bytes: Uint8Array | Promise<Uint8Array>;
    try {
      bytes = blocking ? stream.blockingRead(len) : stream.read(len);
    } catch (error) {
      failed(error);
      return;
    }
    if (bytes instanceof Uint8Array) succeeded(bytes);
    else return bytes.then(succeeded, failed);
  };
  lowerResourceFunction(InputStream.prototype.read, read(false));
  lowerResourceFunction(InputStream.prototype.blockingRead, read(true), readsSuspend);
}

interface HttpClasses {
  Fields: typeof Fields;
  IncomingRequest: typeof IncomingRequest;
  IncomingResponse: typeof IncomingResponse;
  OutgoingResponse: typeof OutgoingResponse;
  OutgoingBody: typeof OutgoingBody;
  OutgoingRequest: typeof OutgoingRequest;
  OutputStream: typeof OutputStream;
  ResponseOutparam: typeof ResponseOutparam;
}

const METHODS = ['get', 'head', 'post', 'put', 'delete', 'connect', 'options', 'trace', 'patch', 'other'];
const SCHEMES = ['HTTP', 'HTTPS', 'other'];
const HEADER_ERRORS = ['invalid-syntax', 'forbidden', 'immutable'];
/** error-code's cases in order: `response-outparam.set` lifts the case only (the host reads nothing else). */
const ERROR_CODES = [
  'DNS-timeout',
  'DNS-error',
  'destination-not-found',
  'destination-unavailable',
  'destination-IP-prohibited',
  'destination-IP-unroutable',
  'connection-refused',
  'connection-terminated',
  'connection-timeout',
  'connection-read-timeout',
  'connection-write-timeout',
  'connection-limit-reached',
  'TLS-protocol-error',
  'TLS-certificate-error',
  'TLS-alert-received',
  'HTTP-request-denied',
  'HTTP-request-length-required',
  'HTTP-request-body-size',
  'HTTP-request-method-invalid',
  'HTTP-request-URI-invalid',
  'HTTP-request-URI-too-long',
  'HTTP-request-header-section-size',
  'HTTP-request-header-size',
  'HTTP-request-trailer-section-size',
  'HTTP-request-trailer-size',
  'HTTP-response-incomplete',
  'HTTP-response-header-section-size',
  'HTTP-response-header-size',
  'HTTP-response-body-size',
  'HTTP-response-trailer-section-size',
  'HTTP-response-trailer-size',
  'HTTP-response-transfer-coding',
  'HTTP-response-content-coding',
  'HTTP-response-timeout',
  'HTTP-upgrade-failed',
  'HTTP-protocol-error',
  'loop-detected',
  'configuration-error',
  'internal-error',
];

/** A variant `{ tag, val? }` whose only payload is a string in its last case: the case at `at`, the string at +4. */
function writeStringVariant(memory: GuestMemory, at: number, cases: string[], value: { tag: string; val?: unknown }): void {
  const index = cases.indexOf(value.tag);
  if (index === -1) throw new TypeError(`invalid variant case ${value.tag}`);
  memory.view().setUint8(at, index);
  if (index === cases.length - 1) memory.writeString(at + 4, String(value.val));
}

function writeOptionString(memory: GuestMemory, out: number, value: string | undefined): void {
  memory.view().setUint8(out, value === undefined ? 0 : 1);
  if (value !== undefined) memory.writeString(out + 4, value);
}

/** header-error after a byte-aligned result case (+1) or a handle-aligned one (+4). */
function writeHeaderError(memory: GuestMemory, out: number, offset: number, error: unknown): void {
  const index = HEADER_ERRORS.indexOf(((guestError(error) ?? {}) as { tag?: string }).tag ?? '');
  if (index === -1) throw new TypeError('invalid header-error');
  const view = memory.view();
  view.setUint8(out, 1);
  view.setUint8(out + offset, index);
}

/** A `list<list<u8>>` (values) at `ptr`, `count` long. */
function readValues(memory: GuestMemory, ptr: number, count: number): Uint8Array[] {
  const values: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    const view = memory.view();
    values.push(memory.bytes(view.getUint32(ptr + index * 8, true), view.getUint32(ptr + index * 8 + 4, true)));
  }
  return values;
}

export function lowerHttp(http: HttpClasses): void {
  const { Fields, IncomingRequest, IncomingResponse, OutgoingResponse, OutgoingBody, OutgoingRequest, OutputStream, ResponseOutparam } =
    http;

  /** `result<own<T>>` with no error payload: (self, return area). */
  const ownResult =
    <S, T extends object>(self: abstract new (...args: never[]) => S, made: abstract new (...args: never[]) => T, make: (owner: S) => T) =>
    (handles: HandleTables, memory: GuestMemory) =>
    (handle: number, out: number) => {
      const owner = handles.borrow(self, handle);
      let value: T;
      try {
        value = make(owner);
      } catch (error) {
        guestError(error);
        memory.view().setUint8(out, 1);
        return;
      }
      const given = handles.give(made as never, value as never);
      const view = memory.view();
      view.setUint8(out, 0);
      view.setInt32(out + 4, given, true);
    };
  /** A child `own<fields>`: (self) -> handle. */
  const headersOf =
    <S>(self: abstract new (...args: never[]) => S, headers: (owner: S) => Fields) =>
    (handles: HandleTables) =>
    (handle: number) =>
      handles.give(Fields, headers(handles.borrow(self, handle)));

  // incoming-request: the per-request reads.
  const request = IncomingRequest.prototype;
  lowerResourceFunction(request.method, (handles, memory) => (self: number, out: number) => {
    writeStringVariant(memory, out, METHODS, handles.borrow(IncomingRequest, self).method());
  });
  lowerResourceFunction(request.scheme, (handles, memory) => (self: number, out: number) => {
    const scheme = handles.borrow(IncomingRequest, self).scheme();
    memory.view().setUint8(out, scheme === undefined ? 0 : 1);
    if (scheme !== undefined) writeStringVariant(memory, out + 4, SCHEMES, scheme);
  });
  lowerResourceFunction(request.pathWithQuery, (handles, memory) => (self: number, out: number) => {
    writeOptionString(memory, out, handles.borrow(IncomingRequest, self).pathWithQuery());
  });
  lowerResourceFunction(request.authority, (handles, memory) => (self: number, out: number) => {
    writeOptionString(memory, out, handles.borrow(IncomingRequest, self).authority());
  });
  lowerResourceFunction(
    request.headers,
    headersOf(IncomingRequest, (owner) => owner.headers()),
  );

  // fields: every function that makes a fields handle is here, so the glue never holds one.
  lowerResourceFunction(Fields, (handles) => () => handles.give(Fields, new Fields()));
  lowerResourceFunction(Fields.fromList, (handles, memory) => (ptr: number, count: number, out: number) => {
    const entries: [string, Uint8Array][] = [];
    for (let index = 0; index < count; index++) {
      const view = memory.view();
      const at = ptr + index * 16;
      const name = memory.string(view.getUint32(at, true), view.getUint32(at + 4, true));
      entries.push([name, memory.bytes(view.getUint32(at + 8, true), view.getUint32(at + 12, true))]);
    }
    let fields: Fields;
    try {
      fields = Fields.fromList(entries);
    } catch (error) {
      writeHeaderError(memory, out, 4, error);
      return;
    }
    const handle = handles.give(Fields, fields);
    const view = memory.view();
    view.setUint8(out, 0);
    view.setInt32(out + 4, handle, true);
  });
  const fields = Fields.prototype;
  lowerResourceFunction(fields.get, (handles, memory) => (self: number, namePtr: number, nameLen: number, out: number) => {
    const values = handles.borrow(Fields, self).get(memory.string(namePtr, nameLen));
    const list = memory.allocList(out, values.length, 8, 4);
    values.forEach((value, index) => {
      memory.writeList(list + index * 8, value);
    });
  });
  lowerResourceFunction(
    fields.has,
    (handles, memory) => (self: number, namePtr: number, nameLen: number) =>
      handles.borrow(Fields, self).has(memory.string(namePtr, nameLen)) ? 1 : 0,
  );
  /** `result<_, header-error>` methods: the error at +1. */
  const headerResult = (run: (target: Fields, memory: GuestMemory, args: number[]) => void) =>
    unitResultMethod(Fields, run, (memory, _handles, out, error) => writeHeaderError(memory, out, 1, error));
  lowerResourceFunction(
    fields.set,
    headerResult((target, memory, [, namePtr, nameLen, ptr, count]) =>
      target.set(memory.string(namePtr as number, nameLen as number), readValues(memory, ptr as number, count as number)),
    ),
  );
  lowerResourceFunction(
    fields.append,
    headerResult((target, memory, [, namePtr, nameLen, ptr, len]) =>
      target.append(memory.string(namePtr as number, nameLen as number), memory.bytes(ptr as number, len as number)),
    ),
  );
  lowerResourceFunction(
    fields.delete,
    headerResult((target, memory, [, namePtr, nameLen]) => target.delete(memory.string(namePtr as number, nameLen as number))),
  );
  lowerResourceFunction(fields.entries, (handles, memory) => (self: number, out: number) => {
    const entries = handles.borrow(Fields, self).entries();
    const list = memory.allocList(out, entries.length, 16, 4);
    entries.forEach(([name, value], index) => {
      memory.writeString(list + index * 16, name);
      memory.writeList(list + index * 16 + 8, value);
    });
  });
  lowerResourceFunction(fields.clone, (handles) => (self: number) => handles.give(Fields, handles.borrow(Fields, self).clone()));

  // outgoing-response, outgoing-body and outgoing-request's body and headers.
  lowerResourceFunction(OutgoingResponse, (handles) => (headers: number) => {
    const taken = handles.take(Fields, headers);
    return handles.give(OutgoingResponse, new OutgoingResponse(taken));
  });
  const response = OutgoingResponse.prototype;
  lowerResourceFunction(response.statusCode, (handles) => (self: number) => handles.borrow(OutgoingResponse, self).statusCode());
  lowerResourceFunction(response.setStatusCode, (handles) => (self: number, status: number) => {
    try {
      handles.borrow(OutgoingResponse, self).setStatusCode(status);
      return 0;
    } catch (error) {
      guestError(error);
      return 1;
    }
  });
  lowerResourceFunction(
    response.headers,
    headersOf(OutgoingResponse, (owner) => owner.headers()),
  );
  lowerResourceFunction(
    response.body,
    ownResult(OutgoingResponse, OutgoingBody, (owner) => owner.body()),
  );
  lowerResourceFunction(
    OutgoingRequest.prototype.body,
    ownResult(OutgoingRequest, OutgoingBody, (owner) => owner.body()),
  );
  lowerResourceFunction(
    OutgoingRequest.prototype.headers,
    headersOf(OutgoingRequest, (owner) => owner.headers()),
  );
  lowerResourceFunction(
    IncomingResponse.prototype.headers,
    headersOf(IncomingResponse, (owner) => owner.headers()),
  );
  lowerResourceFunction(
    OutgoingBody.prototype.write,
    ownResult(OutgoingBody, OutputStream, (owner) => owner.write()),
  );
  // (body, option<trailers>) -> result<_, error-code>: finishing never fails here.
  lowerResourceFunction(OutgoingBody.finish, (handles, memory) => (body: number, hasTrailers: number, trailers: number, out: number) => {
    const taken = handles.take(OutgoingBody, body);
    OutgoingBody.finish(taken, hasTrailers ? handles.take(Fields, trailers) : undefined);
    memory.view().setUint8(out, 0);
  });

  // (param, result<own<outgoing-response>, error-code>) flattened: the result's case, then the
  // response's handle or error-code's case (its payloads follow, unread).
  lowerResourceFunction(ResponseOutparam.set, (handles) => (param: number, failed: number, payload: number) => {
    // Only jco's glue makes response-outparam handles (each request's, in the export call).
    const outparam = handles.take(ResponseOutparam, param, true);
    if (failed) ResponseOutparam.set(outparam, { tag: 'err', val: { tag: ERROR_CODES[payload] ?? 'internal-error' } });
    else ResponseOutparam.set(outparam, { tag: 'ok', val: handles.take(OutgoingResponse, payload) });
  });
}
