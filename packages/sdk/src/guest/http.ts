/// <reference path="../wit/guest.generated.d.ts" />
// The adapter from a Workers-style `fetch(request)` handler to `wasi:http/incoming-handler`.
// componentize-js has a built-in fetch event, but it answers one request per instance (the second
// fails with "respondWith can't be called twice"); a host keeps an instance warm for many
// requests, so the capsule exports `incomingHandler` itself and this module implements it.

import { Fields, type IncomingRequest, type Method, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.10';
import type { OutputStream } from 'wasi:io/streams@0.2.10';
import type { Capsule, CapsuleEnv, ExecutionContext } from '../index.ts';
import './globals.ts';
import { describeError, witError } from './errors.ts';
import { settleTimeOrigin } from './performance.ts';
import { requestBodyError, streamClosed } from './request-body.ts';
import { keepHost } from './request-host.ts';
import { type BodySink, pipeBody } from './response-body.ts';
import { unreadBodyText } from './response-text.ts';
import { requestTimers } from './timers.ts';
import { requestsBegun } from './top-level.ts';

/** Headers a component may not set on a response: the host owns the connection. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'te',
  'trailer',
]);

/** blocking-write-and-flush takes at most 4096 bytes per call (wasi:io/streams). */
const WRITE_CHUNK = 4096;
const READ_CHUNK = 65536n;

const encoder = new TextEncoder();

const NON_ASCII = /[\u0080-\uffff]/;

/**
 * A header value's bytes as the Fetch API holds them: a ByteString, one character per byte, as
 * browsers, workerd and Node.js give them. UTF-8 would make a character over 0xff of valid UTF-8,
 * which `Headers` refuses (a TypeError, so the request failed), and the response's bytes would
 * differ from the request's. `fromCharCode` over the bytes is that, and in StarlingMonkey takes
 * half the time of the native UTF-8 decoder and an ASCII check (0.4 against 0.7 us for 15 bytes).
 */
function headerText(bytes: Uint8Array): string {
  // A call takes its arguments on the stack: longer values go in slices.
  if (bytes.length <= 8192) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  let latin1 = '';
  for (let offset = 0; offset < bytes.length; offset += 8192) {
    latin1 += String.fromCharCode.apply(null, bytes.subarray(offset, offset + 8192) as unknown as number[]);
  }
  return latin1;
}

/** The bytes of a header value the capsule set: each character a byte, as `headerText` reads them. */
function headerBytes(text: string): Uint8Array {
  if (!NON_ASCII.test(text)) return encoder.encode(text);
  // `Headers` holds ByteStrings, so every character is below 0x100.
  const bytes = new Uint8Array(text.length);
  for (let index = 0; index < text.length; index++) bytes[index] = text.charCodeAt(index);
  return bytes;
}

function methodName(method: Method): string {
  return method.tag === 'other' ? method.val : method.tag.toUpperCase();
}

/**
 * The request body as a stream that reads from the host only as the capsule consumes it, so an
 * upload is never held whole. `release` drops the WASI handles; it runs when the body ends, or
 * after the response when the capsule never read it (a child stream must go before its body).
 */
function bodyStream(incoming: IncomingRequest): { body: ReadableStream<Uint8Array>; release(): void } {
  const incomingBody = incoming.consume();
  const stream = incomingBody.stream();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    stream[Symbol.dispose]();
    incomingBody[Symbol.dispose]();
  };
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      try {
        const chunk = stream.blockingRead(READ_CHUNK);
        if (chunk.length > 0) controller.enqueue(chunk);
      } catch (error) {
        release();
        // The stream ends with a `closed` stream-error; anything else is a real failure.
        if (streamClosed(error)) controller.close();
        else controller.error(requestBodyError(error));
      }
    },
    cancel: release,
  });
  return { body, release };
}

/** `signal` becomes the request's (the Request follows it), which the adapter aborts when the client goes away. */
function toRequest(incoming: IncomingRequest, signal: AbortSignal): { request: Request; release(): void } {
  const method = methodName(incoming.method());
  // The Request is given the fields as a list: it makes its Headers from them once, where a
  // Headers made here first would have every field appended twice.
  const headers: [string, string][] = [];
  let host: string | null = null;
  let cookie = -1;
  const fields = incoming.headers();
  for (const [name, value] of fields.entries()) {
    const text = headerText(value);
    if (name.length === 4 && name.toLowerCase() === 'host') {
      // StarlingMonkey's Request drops Host (see request-host.ts); repeated, they read joined.
      host = host === null ? text : `${host}, ${text}`;
    } else if (name.length === 6 && name.toLowerCase() === 'cookie') {
      // Headers would join repeated fields with ", ", which splits no cookie: a client that sends its
      // cookies in several fields (as HTTP/2 allows) means them joined with "; " (RFC 9113 8.2.3).
      if (cookie === -1) {
        cookie = headers.length;
        headers.push([name, text]);
      } else {
        const entry = headers[cookie] as [string, string];
        entry[1] = `${entry[1]}; ${text}`;
      }
    } else {
      headers.push([name, text]);
    }
  }
  fields[Symbol.dispose]();
  const scheme = incoming.scheme();
  const protocol = scheme === undefined || scheme.tag === 'HTTP' ? 'http' : scheme.tag === 'HTTPS' ? 'https' : scheme.val;
  const authority = incoming.authority() ?? host ?? 'localhost';
  const url = `${protocol}://${authority}${incoming.pathWithQuery() ?? '/'}`;
  if (method === 'GET' || method === 'HEAD')
    return { request: withHost(new Request(url, { method, headers, signal }), host), release: () => {} };
  const { body, release } = bodyStream(incoming);
  // `duplex: 'half'` is what the Fetch standard asks for a streamed request body.
  return { request: withHost(new Request(url, { method, headers, body, duplex: 'half', signal } as RequestInit), host), release };
}

function withHost(request: Request, host: string | null): Request {
  if (host !== null) keepHost(request, host);
  return request;
}

/**
 * A response's header fields made once and cloned for each later response with the same ones.
 * `fields.from-list` is the costliest call a response makes (every name and value copied into
 * guest memory, checked by the host, the result lifted), while `fields.clone` takes no arguments;
 * most answers of a capsule carry one of a few header sets. A set becomes a template the second
 * time it is seen, so headers that differ on every response (a cookie, an ETag) do not crowd the
 * others out. Keyed by names and values, which hold no newline.
 *
 * StarlingMonkey puts a content-length in every Response's headers, which differs with the body,
 * so the key leaves its value out: a clone whose length differs from the template's gets its own
 * with `set` (one call more), and a length seen twice in a row becomes the template's. `set`, not
 * `append`: jco's preview2-shim (`jco serve`) gives a clone the original's list of entries, which
 * `append` would change for every later clone, while `set` makes the clone a list of its own.
 */
interface Template {
  fields: Fields;
  /** The content-length in `fields`. */
  length: string | undefined;
  /** The last length a response of this set had: the next with the same one remakes `fields`. */
  lastLength: string | undefined;
}
const templates = new Map<string, Template>();
const seenOnce = new Set<string>();
const MAX_TEMPLATES = 64;
const MAX_SEEN_ONCE = 256;
const MAX_TEMPLATE_KEY = 4096;

function fieldsOf(headers: Headers): Fields {
  const entries: [string, Uint8Array][] = [];
  headers.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name.toLowerCase())) entries.push([name, headerBytes(value)]);
  });
  return Fields.fromList(entries);
}

function templateFor(key: string, headers: Headers, length: string | undefined): Template | undefined {
  const kept = templates.get(key);
  if (kept || key.length > MAX_TEMPLATE_KEY) return kept;
  if (!seenOnce.has(key)) {
    if (seenOnce.size >= MAX_SEEN_ONCE) seenOnce.clear();
    seenOnce.add(key);
    return undefined;
  }
  seenOnce.delete(key);
  if (templates.size >= MAX_TEMPLATES) {
    const oldest = templates.keys().next().value as string;
    templates.get(oldest)?.fields[Symbol.dispose]();
    templates.delete(oldest);
  }
  const made: Template = { fields: fieldsOf(headers), length, lastLength: length };
  templates.set(key, made);
  return made;
}

function responseFields(response: Response): Fields {
  const headers = response.headers;
  let key = '';
  let length: string | undefined;
  // Headers iterate with lowercase names.
  headers.forEach((value, name) => {
    if (name === 'content-length') length = value;
    else key += `${name}\n${value}\n`;
  });
  // With and without a length are two sets: a clone can change a header but not lose one.
  const template = templateFor(length === undefined ? key : `content-length\n${key}`, headers, length);
  if (!template) return fieldsOf(headers);
  if (length === template.length) return template.fields.clone();
  if (length === template.lastLength) {
    template.fields[Symbol.dispose]();
    template.fields = fieldsOf(headers);
    template.length = length;
    return template.fields.clone();
  }
  template.lastLength = length;
  const fields = template.fields.clone();
  fields.set('content-length', [encoder.encode(length as string)]);
  return fields;
}

function write(stream: OutputStream, bytes: Uint8Array): void {
  for (let offset = 0; offset < bytes.length; offset += WRITE_CHUNK) {
    stream.blockingWriteAndFlush(bytes.subarray(offset, offset + WRITE_CHUNK));
  }
}

/**
 * Sends the response: at once when its body is a string or nothing (no promise made, and none
 * awaited: each costs a JS capsule several microseconds, SpiderMonkey recording the stack at
 * every promise made and settled), else a promise that ends when the body has streamed through.
 * `closed` runs when the host closed the body before it was whole.
 */
function send(response: Response, outparam: ResponseOutparam, method: string, closed: () => void): Promise<void> | undefined {
  const outgoing = new OutgoingResponse(responseFields(response));
  // An outgoing-response starts at 200: one call fewer for most answers.
  if (response.status !== 200) outgoing.setStatusCode(response.status);
  const body = outgoing.body();
  ResponseOutparam.set(outparam, { tag: 'ok', val: outgoing });
  const stream = body.write();
  const text = method === 'HEAD' ? undefined : unreadBodyText(response);
  if (text !== undefined && !written(stream, body, encoder.encode(text))) {
    closed();
    return undefined;
  }
  if (text === undefined && response.body && method !== 'HEAD') return streamBody(response.body, stream, body, closed);
  stream[Symbol.dispose]();
  OutgoingBody.finish(body, undefined);
  return undefined;
}

/**
 * Writes `bytes`, or, when the host has closed the body (the client went away, or the response is
 * over its size limit, which the host answers and logs), drops it unfinished and says so: the
 * response is cut short by the host, not an error of the capsule's to throw (thrown, it aborted
 * the instance).
 */
function written(stream: OutputStream, body: OutgoingBody, bytes: Uint8Array): boolean {
  try {
    write(stream, bytes);
    return true;
  } catch (error) {
    if (!streamClosed(error)) throw new Error(`writing the response body failed (${witError(error)?.tag ?? String(error)})`);
    stream[Symbol.dispose]();
    body[Symbol.dispose]();
    return false;
  }
}

/** Streams a body through in pieces (response-body.ts), so a large response is never held whole. */
function streamBody(source: ReadableStream<Uint8Array>, stream: OutputStream, body: OutgoingBody, closed: () => void): Promise<void> {
  let dropped = false;
  const sink: BodySink = {
    write(bytes) {
      if (written(stream, body, bytes)) return true;
      dropped = true;
      return false;
    },
    finish() {
      stream[Symbol.dispose]();
      OutgoingBody.finish(body, undefined);
    },
    abandon() {
      if (dropped) return;
      dropped = true;
      // Dropped without `finish`, the body is incomplete to the host, which does not end it cleanly.
      stream[Symbol.dispose]();
      body[Symbol.dispose]();
    },
  };
  return pipeBody(source, sink, closed);
}

/** Every request's `env`, frozen: a capsule's capabilities are modules, not bindings. */
const NO_ENV: CapsuleEnv = Object.freeze({});

/**
 * Set by `stratum dev`'s engine (`DEV_GLOBAL_KEY` in build/dev-engine.ts), and by nothing a
 * production build runs.
 */
const IN_DEV = Symbol.for('stratum.dev');
/** The config values the capsule read, in dev only (config.ts keeps them there). */
const DEV_CONFIG_VALUES = Symbol.for('stratum.dev.configValues');
if ((globalThis as Record<symbol, unknown>)[IN_DEV] !== undefined)
  (globalThis as Record<symbol, unknown>)[DEV_CONFIG_VALUES] ??= new Set<string>();

/**
 * What an uncaught error answers: on a host, nothing of the error, which may hold what the client
 * must not see; in `stratum dev`, what was thrown, for the developer's browser, as wrangler and
 * Spin show it there (the terminal has where it was thrown, at the sources' lines).
 */
function uncaughtAnswer(error: unknown): string {
  if ((globalThis as Record<symbol, unknown>)[IN_DEV] === undefined) return 'Internal Server Error';
  let thrown = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  // Config values the capsule read (config.ts) stay out of the page, secrets among them.
  const read = (globalThis as Record<symbol, unknown>)[DEV_CONFIG_VALUES];
  if (read instanceof Set) {
    for (const value of [...read].sort((a, b) => String(b).length - String(a).length)) {
      if (typeof value === 'string' && value.length >= 4) thrown = thrown.split(value).join('[a config value]');
    }
  }
  return `Internal Server Error: ${thrown}\n\n(stratum dev shows what was thrown, and the terminal where; a host answers "Internal Server Error" alone)\n`;
}

/**
 * Aborts a request's signal once its response can reach no one: Workers aborts `request.signal`
 * when the client goes away, so that what the request still does for it (a fetch given the
 * signal, a loop of an event stream that checks it) can stop.
 */
function abortRequest(controller: AbortController): void {
  // A listener that throws is reported by the engine, as the DOM standard says, not thrown here.
  controller.abort(
    new DOMException(
      "the host closed the response before it was whole: the client went away, or the body passed the host's size limit",
      'AbortError',
    ),
  );
}

function failure(status: number, message: string): Response {
  return new Response(message, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });
}

/**
 * Makes the `wasi:http/incoming-handler` export from a capsule's handler. `stratum build`
 * wires it up; a capsule never calls it.
 */
export function serve(capsule: Capsule): { handle(request: IncomingRequest, outparam: ResponseOutparam): Promise<void> } {
  if (typeof capsule?.fetch !== 'function') {
    throw new TypeError('the capsule must default-export an object with a fetch(request) method');
  }
  // Named so that an error's frames can be cut at it (errors.ts, ADAPTER_FRAME).
  return {
    handle: async function stratumHandle(incoming, outparam) {
      requestTimers.begin();
      settleTimeOrigin();
      requestsBegun();
      let method = 'GET';
      let release = () => {};
      let response: Response;
      const controller = new AbortController();
      const waiting: Promise<unknown>[] = [];
      const ctx: ExecutionContext = {
        waitUntil(promise) {
          waiting.push(Promise.resolve(promise));
        },
        passThroughOnException() {},
      };
      try {
        const converted = toRequest(incoming, controller.signal);
        release = converted.release;
        const { request } = converted;
        method = request.method;
        const result: unknown = await capsule.fetch(request, NO_ENV, ctx);
        response = result instanceof Response ? result : failure(500, 'the capsule returned something that is not a Response');
        if (!(result instanceof Response)) console.error(`fetch(${method} ${request.url}) returned ${typeof result}, not a Response`);
        // Found before its head goes out, it is a 500, as in Workers; found while its body is
        // sent, the response could only be cut off.
        if (response.bodyUsed) {
          throw new TypeError(
            'the Response returned has a body that was read already: return a new Response, or one cloned before the read',
          );
        }
      } catch (error) {
        console.error(describeError(error));
        response = failure(500, uncaughtAnswer(error));
      }
      try {
        const sending = send(response, outparam, method, () => abortRequest(controller));
        if (sending) await sending;
        // The response has ended; the request goes on until what it handed to waitUntil settles
        // (and what that handed on in turn).
        while (waiting.length > 0) {
          for (const outcome of await Promise.allSettled(waiting.splice(0))) {
            if (outcome.status === 'rejected') console.error(`waitUntil: ${describeError(outcome.reason)}`);
          }
        }
      } finally {
        // Every handle this request made is dropped, or a long-lived instance would leak them.
        release();
        incoming[Symbol.dispose]();
        // Its timers too, which would fire inside a later request (request-timers.ts).
        requestTimers.end();
      }
    },
  };
}
