import type { IncomingHttpHeaders } from 'node:http';
import type { LookupFunction } from 'node:net';
import { StratumError } from '@stratum/core';
import { headerValueBytes, headerValueText } from '../../wasi/header-value.ts';
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
  body?: Uint8Array;
}

export interface OutboundResponse {
  status: number;
  headers: [string, Uint8Array][];
  body: Uint8Array[];
  /** Request and response bytes on the wire (headers approximated), for metering. */
  egressBytes: number;
}

export interface OutboundLimits {
  maxResponseBytes: number;
  connectTimeoutMs: number;
  /** From sending the request to the end of the response. */
  timeoutMs: number;
}

export const DEFAULT_OUTBOUND_LIMITS: OutboundLimits = { maxResponseBytes: 16 * 1024 * 1024, connectTimeoutMs: 10_000, timeoutMs: 30_000 };

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

function responseHeaders(headers: IncomingHttpHeaders): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    for (const one of Array.isArray(value) ? value : [value]) out.push([name, headerValueBytes(one)]);
  }
  return out;
}

export async function outboundFetch(
  request: OutboundRequest,
  policy: OutboundPolicy,
  limits: OutboundLimits = DEFAULT_OUTBOUND_LIMITS,
): Promise<OutboundResponse> {
  const target = await checkOutbound(new URL(request.url), policy);
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of request.headers) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) continue;
    const text = typeof value === 'string' ? value : headerValueText(value);
    const existing = headers[lower];
    headers[lower] = existing === undefined ? text : [...(Array.isArray(existing) ? existing : [existing]), text];
  }
  const body = request.body ?? new Uint8Array();
  if (body.byteLength > 0 || !['GET', 'HEAD'].includes(request.method)) headers['content-length'] = String(body.byteLength);
  // Not imported statically: importing node:http as an ES module reads every export, and its
  // WebSocket getters load Node's bundled undici, 25 ms of every capsule worker's start.
  const send = process.getBuiltinModule(target.url.protocol === 'https:' ? 'node:https' : 'node:http').request;

  return new Promise<OutboundResponse>((resolve, reject) => {
    let settled = false;
    const fail = (error: OutboundError) => {
      if (settled) return;
      settled = true;
      clearTimeout(connecting);
      clearTimeout(overall);
      reject(error);
      outgoing.destroy();
    };
    // Not Node.js's `timeout` option: that one fires whenever the socket is idle that long, so a
    // server that took 10 s to start its answer (a language model's, say) or paused that long
    // within it failed as "could not connect", whatever the overall timeout said.
    const outgoing = send(target.url, { method: request.method, headers, lookup: pinned(target), agent: false }, (response) => {
      const chunks: Uint8Array[] = [];
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.byteLength;
        if (received > limits.maxResponseBytes) {
          fail(new OutboundError('response-too-large', `the response from ${target.url.origin} is over ${limits.maxResponseBytes} bytes`));
          return;
        }
        chunks.push(new Uint8Array(chunk));
      });
      response.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(overall);
        clearTimeout(connecting);
        const headerBytes = Object.entries(request.headers).reduce((sum, [name, value]) => sum + name.length + value.length + 4, 0);
        resolve({
          status: response.statusCode ?? 502,
          headers: responseHeaders(response.headers),
          body: chunks,
          egressBytes: headerBytes + body.byteLength + received,
        });
      });
      response.on('error', (error) =>
        fail(new OutboundError('protocol', `the response from ${target.url.origin} broke off`, { cause: error })),
      );
    });
    const overall = setTimeout(
      () => fail(new OutboundError('connection-timeout', `${target.url.origin} did not answer within ${limits.timeoutMs} ms`)),
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
      clearTimeout(overall);
      const refused = error.code === 'ECONNREFUSED' || error.code === 'EHOSTUNREACH' || error.code === 'ENETUNREACH';
      fail(
        new OutboundError(
          refused ? 'connection-refused' : 'protocol',
          `request to ${target.url.origin} failed: ${error.code ?? error.message}`,
          { cause: error },
        ),
      );
    });
    outgoing.end(body);
  });
}
