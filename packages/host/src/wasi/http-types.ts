/**
 * wasi:http/types@0.2 for capsule workers: the resources of the incoming-handler bridge
 * (requests in, responses out, both bodies as in-memory streams), and the outgoing-request
 * resources that the `outbound` capability's `wasi:http/outgoing-handler` works with. Shared
 * runtime code, not a capability: `http` serves it, `outbound` builds on it.
 *
 * Errors follow jco's convention: a thrown plain value becomes the `result`'s `err`.
 */
import { acceptHollow, HostResource, real } from '../capabilities/canonical-abi.ts';
import { headerValueBytes } from './header-value.ts';
import { type ByteSource, CLOSED, InputStream, type IoError, OutputStream, type Pending, Pollable } from './io.ts';
import { lowerHttp } from './lowerings.ts';

export type Method =
  | { tag: 'get' | 'head' | 'post' | 'put' | 'delete' | 'connect' | 'options' | 'trace' | 'patch' }
  | { tag: 'other'; val: string };
export type Scheme = { tag: 'HTTP' } | { tag: 'HTTPS' } | { tag: 'other'; val: string };
/** wasi:http's error-code variant, as jco represents it. */
export type ErrorCode = { tag: string; val?: unknown };
type HeaderError = { tag: 'invalid-syntax' | 'forbidden' | 'immutable' };

const STANDARD_METHODS = new Set(['get', 'head', 'post', 'put', 'delete', 'connect', 'options', 'trace', 'patch']);

export function methodFromString(method: string): Method {
  const lower = method.toLowerCase();
  return STANDARD_METHODS.has(lower) ? ({ tag: lower } as Method) : { tag: 'other', val: method };
}

export function methodToString(method: Method): string {
  return method.tag === 'other' ? method.val : method.tag.toUpperCase();
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Header names no capsule may set: hop-by-hop ones, owned by the host's HTTP server. */
const FORBIDDEN = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

function validValue(value: Uint8Array): boolean {
  for (const byte of value) if (byte === 0x0a || byte === 0x0d || byte === 0x00) return false;
  return true;
}

function fieldsBytes(entries: readonly [string, Uint8Array][]): number {
  let bytes = 0;
  for (const [name, value] of entries) bytes += name.length + value.length;
  return bytes;
}

/** WASI 0.2's header-error has no case for size: `forbidden` is the one a guest reads as "not allowed here". */
function tooLarge(): never {
  throw { tag: 'forbidden' } satisfies HeaderError;
}

function immutable(): never {
  throw { tag: 'immutable' } satisfies HeaderError;
}

function checkName(name: string): void {
  if (!TOKEN.test(name)) throw { tag: 'invalid-syntax' } satisfies HeaderError;
  if (FORBIDDEN.has(name.toLowerCase())) throw { tag: 'forbidden' } satisfies HeaderError;
}

/** Header fields: an ordered list of (name, value); names compare case-insensitively. */
/**
 * The most a guest's fields may hold, names and values together. Browsers and proxies refuse a
 * response head far smaller (nginx's proxy buffers take 4 to 8 KiB by default, Node.js's client
 * 16 KiB); without a cap a capsule could send 13 MB of headers, which the host held and wrote
 * whole, where its body is cut off at `response_body`.
 */
export const MAX_FIELDS_BYTES = 64 * 1024;

export class Fields extends HostResource {
  #entries: [string, Uint8Array][];
  #immutable: boolean;
  /** What the entries hold, counted when a guest first adds to them (host-made fields are not counted until then). */
  #bytes = -1;

  constructor() {
    super();
    this.#entries = [];
    this.#immutable = false;
  }

  /** Host side: fields over entries the host already checked; `immutable` for request headers. */
  static adopt(entries: [string, Uint8Array][], isImmutable: boolean): Fields {
    const fields = new Fields();
    fields.#entries = entries;
    fields.#immutable = isImmutable;
    return fields;
  }

  static fromList(entries: [string, Uint8Array][]): Fields {
    let bytes = 0;
    for (const [name, value] of entries) {
      checkName(name);
      if (!validValue(value)) throw { tag: 'invalid-syntax' } satisfies HeaderError;
      bytes += name.length + value.length;
    }
    if (bytes > MAX_FIELDS_BYTES) tooLarge();
    return Fields.adopt(
      entries.map(([name, value]) => [name, value]),
      false,
    );
  }

  get(name: string): Uint8Array[] {
    const lower = name.toLowerCase();
    const values: Uint8Array[] = [];
    for (const [key, value] of this.#entries) if (key.toLowerCase() === lower) values.push(value);
    return values;
  }

  has(name: string): boolean {
    const lower = name.toLowerCase();
    return this.#entries.some(([key]) => key.toLowerCase() === lower);
  }

  set(name: string, values: Uint8Array[]): void {
    if (this.#immutable) immutable();
    checkName(name);
    for (const value of values) if (!validValue(value)) throw { tag: 'invalid-syntax' } satisfies HeaderError;
    const lower = name.toLowerCase();
    const kept = this.#entries.filter(([key]) => key.toLowerCase() !== lower);
    let bytes = fieldsBytes(kept);
    for (const value of values) bytes += name.length + value.length;
    if (bytes > MAX_FIELDS_BYTES) tooLarge();
    this.#entries = kept;
    for (const value of values) this.#entries.push([name, value]);
    this.#bytes = bytes;
  }

  delete(name: string): void {
    if (this.#immutable) immutable();
    checkName(name);
    const lower = name.toLowerCase();
    this.#entries = this.#entries.filter(([key]) => key.toLowerCase() !== lower);
    this.#bytes = -1;
  }

  append(name: string, value: Uint8Array): void {
    if (this.#immutable) immutable();
    checkName(name);
    if (!validValue(value)) throw { tag: 'invalid-syntax' } satisfies HeaderError;
    if (this.#bytes < 0) this.#bytes = fieldsBytes(this.#entries);
    const bytes = this.#bytes + name.length + value.length;
    if (bytes > MAX_FIELDS_BYTES) tooLarge();
    this.#entries.push([name, value]);
    this.#bytes = bytes;
  }

  entries(): [string, Uint8Array][] {
    return this.#entries.map(([name, value]) => [name, value]);
  }

  clone(): Fields {
    return Fields.adopt(this.entries(), false);
  }

  /** Host side: the entries as they are (no copy). */
  static entriesOf(fields: Fields): [string, Uint8Array][] {
    return fields.#entries;
  }

  /** Host side: a read-only view sharing these entries (a resource's `headers()` child). */
  static view(fields: Fields): Fields {
    return Fields.adopt(fields.#entries, true);
  }

  /** Host side: freezes fields handed to a response or request. */
  static freeze(fields: Fields): void {
    fields.#immutable = true;
  }
}

/** What the worker knows of a request it serves. */
export interface IncomingRequestData {
  method: string;
  pathWithQuery: string;
  scheme: 'http' | 'https';
  authority: string;
  /** Flat list: name, value, name, value ... (Node's rawHeaders). */
  headers: string[];
  /** Chunks already received, or the stream they arrive through. */
  body: Uint8Array[] | ByteSource;
}

export class IncomingRequest extends HostResource {
  readonly #data: IncomingRequestData;
  #headers: Fields | undefined;
  #consumed = false;

  constructor(data: IncomingRequestData) {
    super();
    this.#data = data;
  }

  method(): Method {
    return methodFromString(this.#data.method);
  }

  pathWithQuery(): string | undefined {
    return this.#data.pathWithQuery;
  }

  scheme(): Scheme | undefined {
    return { tag: this.#data.scheme === 'https' ? 'HTTPS' : 'HTTP' };
  }

  authority(): string | undefined {
    return this.#data.authority;
  }

  headers(): Fields {
    if (!this.#headers) {
      const raw = this.#data.headers;
      const entries: [string, Uint8Array][] = [];
      for (let index = 0; index + 1 < raw.length; index += 2) {
        entries.push([(raw[index] as string).toLowerCase(), headerValueBytes(raw[index + 1] as string)]);
      }
      this.#headers = Fields.adopt(entries, true);
    }
    return Fields.view(this.#headers);
  }

  consume(): IncomingBody {
    if (this.#consumed) throw undefined;
    this.#consumed = true;
    return new IncomingBody(new InputStream(this.#data.body));
  }
}

export class IncomingBody extends HostResource {
  readonly #stream: InputStream;
  #taken = false;

  constructor(stream: InputStream) {
    super();
    this.#stream = stream;
  }

  stream(): InputStream {
    if (this.#taken) throw undefined;
    this.#taken = true;
    return this.#stream;
  }

  static finish(body: IncomingBody): FutureTrailers {
    HostResource.release(body);
    return new FutureTrailers();
  }
}

/** Trailers are not carried by the bridge: the future is ready at once with none. */
export class FutureTrailers extends HostResource {
  #taken = false;

  subscribe(): Pollable {
    return new Pollable();
  }

  get(): { tag: 'ok' | 'err'; val: unknown } | undefined {
    if (this.#taken) return { tag: 'err', val: undefined };
    this.#taken = true;
    return { tag: 'ok', val: { tag: 'ok', val: undefined } };
  }
}

/** Receives an outgoing body as the guest writes it: a response's, or an outbound request's. */
export interface BodyReceiver {
  /** How many more body bytes are allowed. */
  capacity(): number;
  chunk(bytes: Uint8Array): void;
  flush(): void;
  end(): void;
  /** The body went over its limit: the response is cut off. */
  overLimit(): void;
  /** The guest dropped the body without finishing it: what was sent of it is not the whole. */
  abandoned?(): void;
  /** Nobody reads it any more (the client left): writes fail as on a closed stream. */
  gone?(): boolean;
}

/** Receives a response: the ingress bridge implements it for each request. */
export interface ResponseReceiver extends BodyReceiver {
  /** The guest set the response (status and headers), or an error. */
  head(status: number, headers: [string, Uint8Array][]): void;
  failed(error: ErrorCode): void;
}

/** An outgoing body's bytes, kept until its response is handed to a receiver. */
class BodyBuffer {
  receiver: BodyReceiver | undefined;
  pending: Uint8Array[] = [];
  finished = false;

  attach(receiver: BodyReceiver): void {
    this.receiver = receiver;
    for (const chunk of this.pending) receiver.chunk(chunk);
    this.pending = [];
    if (this.finished) receiver.end();
  }
}

export class OutgoingBody extends HostResource {
  readonly buffer = new BodyBuffer();
  #stream: OutputStream | undefined;

  write(): OutputStream {
    if (this.#stream) throw undefined;
    const buffer = this.buffer;
    let pendingBytes = 0;
    this.#stream = new OutputStream({
      capacity: () => (buffer.finished ? 0 : buffer.receiver ? buffer.receiver.capacity() : bodyLimit - pendingBytes),
      write: (bytes) => {
        if (buffer.finished) throw CLOSED;
        const receiver = buffer.receiver;
        if (receiver) {
          if (receiver.gone?.()) throw CLOSED;
          if (bytes.length > receiver.capacity()) {
            receiver.overLimit();
            throw CLOSED;
          }
          receiver.chunk(bytes);
        } else {
          if (pendingBytes + bytes.length > bodyLimit) throw CLOSED;
          pendingBytes += bytes.length;
          buffer.pending.push(bytes);
        }
      },
      flush: () => buffer.receiver?.flush(),
    });
    return this.#stream;
  }

  static finish(passed: OutgoingBody, trailers: Fields | undefined): void {
    const body = real(passed);
    HostResource.release(body);
    if (trailers) HostResource.release(real(trailers));
    const buffer = body.buffer;
    if (buffer.finished) return;
    buffer.finished = true;
    buffer.receiver?.end();
  }

  override [Symbol.dispose](): void {
    super[Symbol.dispose]();
    if (!this.buffer.finished) this.buffer.receiver?.abandoned?.();
  }
}

let bodyLimit = Number.MAX_SAFE_INTEGER;

/** The response body limit of this worker's capsule, for bodies written before `set`. */
export function setResponseBodyLimit(bytes: number): void {
  bodyLimit = bytes;
}

export class OutgoingResponse extends HostResource {
  #status = 200;
  readonly #headers: Fields;
  #body: OutgoingBody | undefined;

  constructor(passed: Fields) {
    super();
    const headers = real(passed);
    HostResource.release(headers);
    Fields.freeze(headers);
    this.#headers = headers;
  }

  statusCode(): number {
    return this.#status;
  }

  setStatusCode(status: number): void {
    if (!Number.isInteger(status) || status < 100 || status > 999) throw undefined;
    this.#status = status;
  }

  headers(): Fields {
    return Fields.view(this.#headers);
  }

  body(): OutgoingBody {
    if (this.#body) throw undefined;
    this.#body = new OutgoingBody();
    return this.#body;
  }

  static deliver(response: OutgoingResponse, receiver: ResponseReceiver): void {
    receiver.head(response.#status, Fields.entriesOf(response.#headers));
    if (!response.#body) response.#body = new OutgoingBody();
    response.#body.buffer.attach(receiver);
  }
}

export class ResponseOutparam extends HostResource {
  #receiver: ResponseReceiver | undefined;

  constructor(receiver: ResponseReceiver) {
    super();
    this.#receiver = receiver;
  }

  static set(param: ResponseOutparam, response: { tag: 'ok'; val: OutgoingResponse } | { tag: 'err'; val: ErrorCode }): void {
    HostResource.release(param);
    const outgoing = response.tag === 'ok' ? real(response.val) : undefined;
    if (outgoing) HostResource.release(outgoing);
    const receiver = param.#receiver;
    if (!receiver) return;
    param.#receiver = undefined;
    if (outgoing) OutgoingResponse.deliver(outgoing, receiver);
    else receiver.failed(response.val as ErrorCode);
  }
}

/** The parts of an outgoing request, as the outbound capability reads them. */
export interface OutgoingRequestParts {
  method: string;
  scheme: 'http' | 'https' | string;
  authority: string | undefined;
  pathWithQuery: string | undefined;
  headers: [string, Uint8Array][];
  body: OutgoingBody | undefined;
}

export class OutgoingRequest extends HostResource {
  #method: Method = { tag: 'get' };
  #scheme: Scheme | undefined;
  #authority: string | undefined;
  #pathWithQuery: string | undefined;
  readonly #headers: Fields;
  #body: OutgoingBody | undefined;

  constructor(passed: Fields) {
    super();
    const headers = real(passed);
    HostResource.release(headers);
    Fields.freeze(headers);
    this.#headers = headers;
  }

  body(): OutgoingBody {
    if (this.#body) throw undefined;
    this.#body = new OutgoingBody();
    return this.#body;
  }

  method(): Method {
    return this.#method;
  }

  setMethod(method: Method): void {
    if (method.tag === 'other' && !TOKEN.test(method.val)) throw undefined;
    this.#method = method;
  }

  pathWithQuery(): string | undefined {
    return this.#pathWithQuery;
  }

  setPathWithQuery(path: string | undefined): void {
    if (path !== undefined && /[\s]/.test(path)) throw undefined;
    this.#pathWithQuery = path;
  }

  scheme(): Scheme | undefined {
    return this.#scheme;
  }

  setScheme(scheme: Scheme | undefined): void {
    this.#scheme = scheme;
  }

  authority(): string | undefined {
    return this.#authority;
  }

  setAuthority(authority: string | undefined): void {
    if (authority !== undefined && /[\s/?#@]/.test(authority)) throw undefined;
    this.#authority = authority;
  }

  headers(): Fields {
    return Fields.view(this.#headers);
  }

  static parts(request: OutgoingRequest): OutgoingRequestParts {
    const scheme = request.#scheme;
    return {
      method: methodToString(request.#method),
      scheme: scheme === undefined || scheme.tag === 'HTTPS' ? 'https' : scheme.tag === 'HTTP' ? 'http' : scheme.val,
      authority: request.#authority,
      pathWithQuery: request.#pathWithQuery,
      headers: Fields.entriesOf(request.#headers),
      body: request.#body,
    };
  }
}

/**
 * An outbound request's body for the outbound capability: whole, when the guest finished it
 * already; otherwise undefined, and `receiveOutgoingBody` streams it (what was written, then the
 * rest as it is written).
 */
export function outgoingBodyWhole(body: OutgoingBody): Uint8Array[] | undefined {
  return body.buffer.finished ? body.buffer.pending : undefined;
}

export function receiveOutgoingBody(body: OutgoingBody, receiver: BodyReceiver): void {
  body.buffer.attach(receiver);
}

export class RequestOptions extends HostResource {
  #connect: bigint | undefined;
  #firstByte: bigint | undefined;
  #betweenBytes: bigint | undefined;

  connectTimeout(): bigint | undefined {
    return this.#connect;
  }

  setConnectTimeout(duration: bigint | undefined): void {
    this.#connect = duration;
  }

  firstByteTimeout(): bigint | undefined {
    return this.#firstByte;
  }

  setFirstByteTimeout(duration: bigint | undefined): void {
    this.#firstByte = duration;
  }

  betweenBytesTimeout(): bigint | undefined {
    return this.#betweenBytes;
  }

  setBetweenBytesTimeout(duration: bigint | undefined): void {
    this.#betweenBytes = duration;
  }
}

export class IncomingResponse extends HostResource {
  readonly #status: number;
  readonly #headers: Fields;
  readonly #body: Uint8Array[] | ByteSource;
  #consumed = false;

  constructor(status: number, headers: [string, Uint8Array][], body: Uint8Array[] | ByteSource) {
    super();
    this.#status = status;
    this.#headers = Fields.adopt(headers, true);
    this.#body = body;
  }

  status(): number {
    return this.#status;
  }

  headers(): Fields {
    return Fields.view(this.#headers);
  }

  consume(): IncomingBody {
    if (this.#consumed) throw undefined;
    this.#consumed = true;
    return new IncomingBody(new InputStream(this.#body));
  }

  override [Symbol.dispose](): void {
    super[Symbol.dispose]();
    // Dropped unread: the rest of a streaming body is not wanted.
    if (!this.#consumed && !Array.isArray(this.#body)) this.#body.close?.();
  }
}

type FutureValue = { tag: 'ok'; val: IncomingResponse } | { tag: 'err'; val: ErrorCode };

/**
 * A response that the outbound capability settles, at once or when its work ends (`later`): the
 * guest goes on meanwhile, and waits for it with `wasi:io/poll` when it has nothing else to do.
 */
export class FutureIncomingResponse extends HostResource {
  #value: FutureValue | undefined;
  #taken = false;
  #pending: Pending | undefined;
  /** Called when the guest drops the future unsettled. */
  #abandon: (() => void) | undefined;
  #abandoned = false;

  constructor(value?: FutureValue) {
    super();
    this.#value = value;
  }

  /**
   * Settled with what `work` resolves to; `work` must not reject. `abandon` is called when the
   * guest drops the future before it is settled (a fetch aborted by its signal).
   */
  static later(work: Promise<FutureValue>, abandon?: () => void): FutureIncomingResponse {
    const future = new FutureIncomingResponse();
    const promise = work.then((value) => {
      future.#value = value;
      // Dropped meanwhile: nobody will read this response.
      if (future.#abandoned && value.tag === 'ok') value.val[Symbol.dispose]();
    });
    future.#pending = { promise, done: () => future.#value !== undefined };
    future.#abandon = abandon;
    return future;
  }

  override [Symbol.dispose](): void {
    super[Symbol.dispose]();
    if (this.#taken) return;
    this.#abandoned = true;
    if (this.#value === undefined) this.#abandon?.();
    else if (this.#value.tag === 'ok') this.#value.val[Symbol.dispose]();
  }

  settle(value: FutureValue): void {
    this.#value = value;
  }

  subscribe(): Pollable {
    return this.#value === undefined && this.#pending ? new Pollable(undefined, undefined, this.#pending) : new Pollable();
  }

  get(): { tag: 'ok' | 'err'; val: unknown } | undefined {
    if (this.#value === undefined) return undefined;
    if (this.#taken) return { tag: 'err', val: undefined };
    this.#taken = true;
    return { tag: 'ok', val: this.#value };
  }
}

export function httpErrorCode(_error: IoError): ErrorCode | undefined {
  return undefined;
}

// Handles of these classes may be made by the lowerings, which jco's glue does not know.
acceptHollow(Fields);
acceptHollow(OutgoingResponse);
acceptHollow(OutgoingBody);
lowerHttp({ Fields, IncomingRequest, IncomingResponse, OutgoingResponse, OutgoingBody, OutgoingRequest, OutputStream, ResponseOutparam });

export const httpTypes = {
  Fields,
  IncomingRequest,
  IncomingBody,
  FutureTrailers,
  OutgoingResponse,
  OutgoingBody,
  ResponseOutparam,
  OutgoingRequest,
  RequestOptions,
  IncomingResponse,
  FutureIncomingResponse,
  httpErrorCode,
};
