import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import { StratumError } from '@stratum/core';
import { headerValueBytes, headerValueText } from '../../wasi/header-value.ts';
import { type ByteSource, CLOSED, EMPTY, failed, type Pending } from '../../wasi/io.ts';
import { type CheckedTarget, checkOutbound, type OutboundPolicy } from './policy.ts';

/**
 * One outbound HTTP request, sent only to the address `checkOutbound` approved: the socket's
 * lookup is replaced by that address, so nothing re-resolves the name, while TLS still checks
 * the certificate against the name. Redirects are not followed: the guest gets the 3xx, and
 * any request it makes to the new location is checked like the first.
 */
export interface OutboundRequest {
  method: string;
  url: string;
  headers: [string, Uint8Array | string][];
  body?: Uint8Array | StreamedRequestBody;
}

/**
 * A request body the guest writes while the request goes (wasi:http: `handle` comes first, the
 * body's writes after it): sent whole, with its length, when the guest finished it before the
 * connection opened, else chunked as it is written.
 */
export interface StreamedRequestBody {
  whole(): Uint8Array | undefined;
  stream(sink: { write(chunk: Uint8Array): void; end(): void; abandoned(): void }): void;
}

/** Bytes of a streamed request body waiting for a server that reads slower than the guest writes; past it the request fails. */
const MAX_UNSENT_BYTES = 64 * 1024 * 1024;

export interface OutboundResponse {
  status: number;
  headers: [string, Uint8Array][];
  /** Streams in after the head: the guest reads it as it arrives. */
  body: ArrivingBody;
}

export interface OutboundLimits {
  maxResponseBytes: number;
  connectTimeoutMs: number;
  /** From sending the request to the end of the response's body. */
  timeoutMs: number;
}

export const DEFAULT_OUTBOUND_LIMITS: OutboundLimits = { maxResponseBytes: 16 * 1024 * 1024, connectTimeoutMs: 10_000, timeoutMs: 30_000 };

const ABANDONED = 'the capsule abandoned the request';

export type OutboundFailure = 'connection-refused' | 'connection-timeout' | 'response-too-large' | 'protocol';

export class OutboundError extends StratumError {
  readonly failure: OutboundFailure;
  constructor(failure: OutboundFailure, message: string, options: { cause?: unknown } = {}) {
    super('OUTBOUND_FAILED', message, { ...options, user: false });
    this.name = 'OutboundError';
    this.failure = failure;
  }
}

/** Headers the host sets or that belong to one connection; the guest's values are dropped. */
/** Sent when the guest's request has no User-Agent of its own. */
const OUTBOUND_USER_AGENT = 'stratum';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'host',
  'content-length',
]);

function pinned(target: CheckedTarget): LookupFunction {
  return ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  }) as LookupFunction;
}

/**
 * Asked for when the guest asks for no coding of its own. The Fetch standard has the user agent
 * send it and decode what comes, and browsers, Node.js, Deno and Workers do: an API's JSON comes
 * compressed, typically to a fifth or less. zstd is neither asked for nor decoded: a frame may
 * demand a 128 MiB window, which a hostile server would make the host allocate.
 */
const ACCEPTED_CODINGS = 'gzip, deflate, br';

/**
 * The decoder for a response's one content coding, when the host knows it; the guest receives the
 * decoded body, whoever asked for the coding, as `fetch()` does everywhere else (and a guest on
 * wasi:http sees a response the server sent uncompressed, which every client must handle).
 * Lenient at the end, as browsers and undici are: servers that cut their last block short exist.
 */
function contentDecoder(
  response: IncomingMessage,
  method: string,
): { coding: string; decoder: Readable & NodeJS.WritableStream } | undefined {
  const status = response.statusCode ?? 0;
  // No body to decode, or a 206's slice of the encoded bytes, which cannot be decoded alone.
  if (method === 'HEAD' || status === 204 || status === 206 || status === 304) return undefined;
  const header = response.headers['content-encoding'];
  const coding = typeof header === 'string' ? header.trim().toLowerCase() : undefined;
  if (coding === undefined || coding === 'identity') return undefined;
  // Loaded on first use, as node:http is below: most capsule threads never decode.
  const zlib = process.getBuiltinModule('node:zlib');
  const sync = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  if (coding === 'gzip' || coding === 'x-gzip') return { coding, decoder: zlib.createGunzip(sync) };
  if (coding === 'deflate') return { coding, decoder: zlib.createInflate(sync) };
  if (coding === 'br') {
    const brotliSync = { flush: zlib.constants.BROTLI_OPERATION_FLUSH, finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH };
    return { coding, decoder: zlib.createBrotliDecompress(brotliSync) };
  }
  return undefined;
}

function responseHeaders(headers: IncomingHttpHeaders, decoded: boolean): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  for (const [name, value] of Object.entries(headers)) {
    // The length stays: the body streams in whole or fails, and code reads it (a download's progress).
    if (value === undefined || (HOP_BY_HOP.has(name) && name !== 'content-length')) continue;
    // Both describe the encoded bytes, which the guest never sees.
    if (decoded && (name === 'content-encoding' || name === 'content-length')) continue;
    for (const one of Array.isArray(value) ? value : [value]) out.push([name, headerValueBytes(one)]);
  }
  return out;
}

export async function outboundFetch(
  request: OutboundRequest,
  policy: OutboundPolicy,
  limits: OutboundLimits = DEFAULT_OUTBOUND_LIMITS,
  options: {
    /** A failure after the head (the body cut off, too large or too slow), which the guest meets as a stream error. */
    onBodyFailure?: (error: OutboundError) => void;
    /** Ends the exchange wherever it is: the guest gave up on it. */
    signal?: AbortSignal;
  } = {},
): Promise<OutboundResponse> {
  const { onBodyFailure, signal } = options;
  const target = await checkOutbound(new URL(request.url), policy);
  if (signal?.aborted) throw new OutboundError('protocol', ABANDONED);
  const headers: Record<string, string | string[]> = {};
  // The length the guest declared for a body it streams (StarlingMonkey does for a string or a
  // buffer); held to it below. Anything but one plain number is no declaration.
  const declaredLengths: string[] = [];
  for (const [name, value] of request.headers) {
    const lower = name.toLowerCase();
    const text = typeof value === 'string' ? value : headerValueText(value);
    if (lower === 'content-length') declaredLengths.push(text.trim());
    if (HOP_BY_HOP.has(lower)) continue;
    const existing = headers[lower];
    headers[lower] = existing === undefined ? text : [...(Array.isArray(existing) ? existing : [existing]), text];
  }
  // Some APIs (GitHub's, for one) refuse a request without a User-Agent, as browsers, Deno and
  // Node.js's fetch always send one.
  headers['user-agent'] ??= OUTBOUND_USER_AGENT;
  // Not for a range, which would be a slice of the encoded bytes.
  if (request.method !== 'HEAD' && headers.range === undefined) headers['accept-encoding'] ??= ACCEPTED_CODINGS;
  const declared = declaredLengths.length === 1 && /^[0-9]{1,15}$/.test(declaredLengths[0] ?? '') ? Number(declaredLengths[0]) : undefined;
  // Looked at once the name is resolved: a guest that wrote its body at once has finished it.
  const requestBody = request.body;
  const whole = requestBody === undefined ? new Uint8Array() : requestBody instanceof Uint8Array ? requestBody : requestBody.whole();
  if (whole && (whole.byteLength > 0 || !['GET', 'HEAD'].includes(request.method))) headers['content-length'] = String(whole.byteLength);
  else if (!whole && declared !== undefined) headers['content-length'] = String(declared);
  // Not imported statically: importing node:http as an ES module reads every export, and its
  // WebSocket getters load Node's bundled undici, 25 ms of every capsule worker's start.
  const send = process.getBuiltinModule(target.url.protocol === 'https:' ? 'node:https' : 'node:http').request;

  return new Promise<OutboundResponse>((resolve, reject) => {
    let body: ArrivingBody | undefined;
    let stopDecoding: (() => void) | undefined;
    let done = false;
    /** Ends the exchange: the timers stop, and the connection closes unless it ended well. */
    const finish = (destroy: boolean): boolean => {
      if (done) return false;
      done = true;
      clearTimeout(connecting);
      clearTimeout(overall);
      if (destroy) {
        outgoing.destroy();
        stopDecoding?.();
      }
      return true;
    };
    const fail = (error: OutboundError) => {
      if (!finish(true)) return;
      signal?.removeEventListener('abort', abandoned);
      if (!body) {
        reject(error);
        return;
      }
      body.fail(error.message);
      if (!signal?.aborted) onBodyFailure?.(error);
    };
    const abandoned = () => fail(new OutboundError('protocol', ABANDONED));
    signal?.addEventListener('abort', abandoned, { once: true });
    // Not Node.js's `timeout` option: that one fires whenever the socket is idle that long, so a
    // server that took 10 s to start its answer (a language model's, say) or paused that long
    // within it failed as "could not connect", whatever the overall timeout said.
    const outgoing = send(target.url, { method: request.method, headers, lookup: pinned(target), agent: false }, (response) => {
      let received = 0;
      const decoding = contentDecoder(response, request.method);
      const source: Readable = decoding ? response.pipe(decoding.decoder) : response;
      stopDecoding = () => decoding?.decoder.destroy();
      const arriving = new ArrivingBody(source, () => finish(true));
      body = arriving;
      source.on('data', (chunk: Buffer) => {
        received += chunk.byteLength;
        if (received > limits.maxResponseBytes) {
          const decoded = decoding ? ` once decoded (${decoding.coding})` : '';
          fail(
            new OutboundError(
              'response-too-large',
              `the response from ${target.url.origin} is over ${limits.maxResponseBytes} bytes${decoded}`,
            ),
          );
          return;
        }
        arriving.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      });
      source.on('end', () => {
        if (!finish(false)) return;
        signal?.removeEventListener('abort', abandoned);
        arriving.end();
      });
      decoding?.decoder.on('error', (error: Error) =>
        fail(new OutboundError('protocol', `the response from ${target.url.origin} is not valid ${decoding.coding}: ${error.message}`)),
      );
      // Closed before its end: the server or the connection broke off. (With a decoder, the
      // response closes before the decoded body ends.)
      response.on('close', () => {
        if (!response.complete) fail(new OutboundError('protocol', `the response from ${target.url.origin} broke off before its end`));
      });
      resolve({ status: response.statusCode ?? 502, headers: responseHeaders(response.headers, decoding !== undefined), body: arriving });
    });
    const overall = setTimeout(
      () =>
        fail(
          new OutboundError(
            'connection-timeout',
            body
              ? `the response from ${target.url.origin} did not end within ${limits.timeoutMs} ms`
              : `${target.url.origin} did not answer within ${limits.timeoutMs} ms`,
          ),
        ),
      limits.timeoutMs,
    );
    // Until the connection is made (and, for https, its TLS handshake done).
    const connecting = setTimeout(
      () => fail(new OutboundError('connection-timeout', `could not connect to ${target.url.origin} within ${limits.connectTimeoutMs} ms`)),
      limits.connectTimeoutMs,
    );
    outgoing.once('socket', (socket) => {
      socket.once(target.url.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(connecting));
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => {
      const refused = error.code === 'ECONNREFUSED' || error.code === 'EHOSTUNREACH' || error.code === 'ENETUNREACH';
      fail(
        new OutboundError(
          refused ? 'connection-refused' : 'protocol',
          `request to ${target.url.origin} failed: ${error.code ?? error.message}`,
          { cause: error },
        ),
      );
    });
    if (whole || requestBody === undefined || requestBody instanceof Uint8Array) {
      outgoing.end(whole);
      return;
    }
    let sent = 0;
    const mismatch = () =>
      fail(
        new OutboundError(
          'protocol',
          `the capsule declared a request body of ${declared} bytes and wrote ${sent > (declared ?? 0) ? 'more' : sent}`,
        ),
      );
    requestBody.stream({
      write(chunk) {
        if (done) return;
        if (outgoing.writableLength > MAX_UNSENT_BYTES) {
          fail(
            new OutboundError(
              'protocol',
              `${target.url.origin} read the request body slower than the capsule wrote ${MAX_UNSENT_BYTES} bytes of it`,
            ),
          );
          return;
        }
        sent += chunk.byteLength;
        if (declared !== undefined && sent > declared) mismatch();
        else outgoing.write(chunk);
      },
      end() {
        if (done) return;
        if (declared !== undefined && sent !== declared) mismatch();
        else outgoing.end();
      },
      abandoned: () => fail(new OutboundError('protocol', 'the capsule dropped the request body before it finished it')),
    });
  });
}

/** Bytes held for a guest that reads slower than the server sends; past it the socket is paused. */
const HELD_BYTES = 1024 * 1024;

/**
 * An outbound response's body as it arrives on this thread's event loop, for the guest's input
 * stream: a read takes what has come, a wait is asynchronous (`arrival`), and the server is
 * paused while more than {@link HELD_BYTES} wait for the guest.
 */
export class ArrivingBody implements ByteSource {
  /** The response, or its decoder: paused while the guest falls behind. */
  readonly #response: Readable;
  /** Closes the exchange when the guest drops the body before its end. */
  readonly #dropped: () => void;
  #chunks: Uint8Array[] = [];
  #held = 0;
  #ended = false;
  #failure: string | undefined;
  #wake: (() => void) | undefined;
  #next: Promise<void> | undefined;

  constructor(response: Readable, dropped: () => void) {
    this.#response = response;
    this.#dropped = dropped;
  }

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#held += chunk.byteLength;
    if (this.#held > HELD_BYTES) this.#response.pause();
    this.#arrived();
  }

  end(): void {
    this.#ended = true;
    this.#arrived();
  }

  fail(message: string): void {
    if (this.#ended) return;
    this.#failure = message;
    this.#arrived();
  }

  read(max: number): Uint8Array {
    const first = this.#chunks[0];
    if (first === undefined) {
      if (this.#failure !== undefined) throw failed(this.#failure);
      if (this.#ended) throw CLOSED;
      return EMPTY;
    }
    if (max === 0) return EMPTY;
    let taken = first;
    if (first.byteLength <= max) this.#chunks.shift();
    else {
      this.#chunks[0] = first.subarray(max);
      taken = first.subarray(0, max);
    }
    this.#held -= taken.byteLength;
    if (this.#held <= HELD_BYTES / 2 && this.#response.isPaused()) this.#response.resume();
    return taken;
  }

  ready(): boolean {
    return this.#chunks.length > 0 || this.#ended || this.#failure !== undefined;
  }

  wait(): void {
    throw new Error('an outbound response body is waited for with arrival(), not wait()');
  }

  arrival(): Pending {
    if (!this.#next) this.#next = new Promise<void>((resolve) => (this.#wake = resolve));
    return { promise: this.#next, done: () => this.ready() };
  }

  close(): void {
    this.#chunks = [];
    this.#held = 0;
    if (!this.#ended && this.#failure === undefined) this.#dropped();
  }

  #arrived(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    this.#next = undefined;
    wake?.();
  }
}
