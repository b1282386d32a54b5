import { parseDuration, parseSize, StratumError } from '@stratum/core';
import { nearest } from '@stratum/manifest/nearest';
import {
  type ErrorCode,
  FutureIncomingResponse,
  IncomingResponse,
  type OutgoingBody,
  OutgoingRequest,
  outgoingBodyWhole,
  type RequestOptions,
  receiveOutgoingBody,
} from '../../wasi/http-types.ts';
import { HostResource } from '../canonical-abi.ts';
import type { Capability } from '../contract.ts';
import { WitError } from '../contract.ts';
import { DEFAULT_OUTBOUND_LIMITS, OutboundError, type OutboundLimits, outboundFetch, type StreamedRequestBody } from './fetch.ts';
import { OutboundRefused } from './policy.ts';

/**
 * Outbound HTTP: `wasi:http/outgoing-handler`, to the manifest's `outbound` origins only, never
 * to the host's loopback or private addresses unless host config allows their range
 * (`[outbound] allow_addresses = ["10.1.0.0/16"]`). A refused request reaches the guest as
 * `HTTP-request-denied`, and the reason goes to the capsule's log. The request body is sent as
 * the guest writes it, after `handle` (whole, with its length, when the guest finished it before
 * the connection opened).
 */
export interface OutboundSettings {
  origins: string[];
  allowAddresses: string[];
  limits: OutboundLimits;
}

const HOST_KEYS = ['allow_addresses', 'max_response_size', 'timeout'];

export function parseOutboundHostConfig(hostConfig: unknown): { allowAddresses: string[]; limits: OutboundLimits } {
  const result = { allowAddresses: [] as string[], limits: { ...DEFAULT_OUTBOUND_LIMITS } };
  if (hostConfig === undefined || hostConfig === null) return result;
  const problems: string[] = [];
  if (typeof hostConfig !== 'object' || Array.isArray(hostConfig)) problems.push('[outbound] must be a table');
  const table = (hostConfig ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(table)) {
    if (HOST_KEYS.includes(key)) continue;
    const guess = nearest(key, HOST_KEYS);
    problems.push(`[outbound] unknown key "${key}"${guess ? ` (did you mean "${guess}"?)` : ''}`);
  }
  if (table.allow_addresses !== undefined) {
    if (!Array.isArray(table.allow_addresses) || !table.allow_addresses.every((range) => typeof range === 'string')) {
      problems.push('[outbound] allow_addresses must be a list of CIDR ranges such as "10.1.0.0/16"');
    } else result.allowAddresses = table.allow_addresses as string[];
  }
  try {
    if (table.max_response_size !== undefined) result.limits.maxResponseBytes = parseSize(String(table.max_response_size));
  } catch {
    problems.push('[outbound] max_response_size is not a size such as "16mb"');
  }
  try {
    if (table.timeout !== undefined) result.limits.timeoutMs = parseDuration(String(table.timeout));
  } catch {
    problems.push('[outbound] timeout is not a duration such as "30s"');
  }
  if (problems.length > 0) {
    throw new StratumError('HOST_CONFIG_INVALID', 'host.toml: [outbound] is not valid', {
      details: problems,
      hint: `[outbound] takes: ${HOST_KEYS.join(', ')}.`,
    });
  }
  return result;
}

/** wasi:http's error-code for a failure the host could not foresee as a refusal. */
function errorCode(error: unknown): { tag: string; val?: unknown } {
  if (error instanceof OutboundError) {
    if (error.failure === 'connection-refused') return { tag: 'connection-refused' };
    if (error.failure === 'connection-timeout') return { tag: 'connection-timeout' };
    if (error.failure === 'response-too-large') return { tag: 'HTTP-response-body-size', val: undefined };
    return { tag: 'HTTP-protocol-error' };
  }
  return { tag: 'internal-error', val: 'the outbound request failed' };
}

const outbound: Capability<OutboundSettings> = {
  name: 'outbound',
  interfaces: ['wasi:http/outgoing-handler'],
  configure(context) {
    const host = parseOutboundHostConfig(context.hostConfig);
    if (context.imports.length === 0) return { settings: { origins: [], ...host } };
    const origins = context.manifest.capabilities.outbound;
    // JS toolchains import the outgoing handler whether or not the code fetches anything, so
    // a capsule without outbound origins is linked to a handler that refuses every request,
    // synchronously (no JSPI for it).
    if (origins.length === 0) return { settings: { origins: [], ...host } };
    // No JSPI import of its own: `handle` answers at once; the wait is wasi:io/poll's (wasi's
    // capability makes it asynchronous when the manifest allows an outbound origin).
    return { settings: { origins, ...host } };
  },
  prepare(context) {
    const { origins, allowAddresses, limits } = context.settings;
    if (origins.length === 0) {
      return {
        imports: {
          'wasi:http/outgoing-handler': {
            handle(request?: OutgoingRequest, options?: RequestOptions): never {
              passedOn(request, options);
              context.log('warn', 'request refused: the manifest allows no outbound origin ([capabilities] outbound)', 'outbound');
              throw new WitError({ tag: 'HTTP-request-denied' });
            },
          },
        },
      };
    }
    return {
      imports: {
        'wasi:http/outgoing-handler': {
          // Returns the future at once and does the request on the thread's event loop: the
          // guest goes on (other fetches, its response) and waits on the future with
          // wasi:io/poll, which the wasi capability makes asynchronous for a capsule like this.
          handle(request: OutgoingRequest, options: RequestOptions | undefined): FutureIncomingResponse {
            passedOn(request, options);
            const scope = context.currentRequest();
            if (scope && scope.outboundRemaining <= 0) {
              context.log('warn', 'request refused: this request used up its outbound requests', 'outbound');
              throw new WitError({ tag: 'HTTP-request-denied' });
            }
            if (scope) scope.outboundRemaining--;
            const parts = OutgoingRequest.parts(request);
            if (!parts.authority) throw new WitError({ tag: 'HTTP-request-URI-invalid' });
            const url = `${parts.scheme}://${parts.authority}${parts.pathWithQuery ?? '/'}`;
            const abandon = new AbortController();
            const work = outboundFetch(
              { method: parts.method, url, headers: parts.headers, ...(parts.body ? { body: streamedBody(parts.body) } : {}) },
              { origins, allowAddresses },
              limits,
              {
                onBodyFailure: (error) => context.log('warn', `response body failed: ${error.message}`, 'outbound'),
                signal: abandon.signal,
              },
            ).then(
              (response) => ({ tag: 'ok' as const, val: new IncomingResponse(response.status, response.headers, response.body) }),
              (error: unknown) => {
                if (error instanceof OutboundRefused) {
                  context.log('warn', `request refused: ${error.message}`, 'outbound');
                  return { tag: 'err' as const, val: { tag: 'HTTP-request-denied' } as ErrorCode };
                }
                if (error instanceof TypeError) return { tag: 'err' as const, val: { tag: 'HTTP-request-URI-invalid' } as ErrorCode };
                if (abandon.signal.aborted) return { tag: 'err' as const, val: errorCode(error) as ErrorCode };
                context.log('warn', `request failed: ${error instanceof Error ? error.message : String(error)}`, 'outbound');
                return { tag: 'err' as const, val: errorCode(error) as ErrorCode };
              },
            );
            // Whatever of it is still under way when the request ends is abandoned: StarlingMonkey
            // keeps the future of a fetch its AbortSignal aborted, and nothing reads it after.
            scope?.atEnd(() => abandon.abort());
            return FutureIncomingResponse.later(work, () => abandon.abort());
          },
        },
      },
    };
  },
};

export default outbound;

/** What the guest writes to a request's body at most at once: the socket takes it, and a server that lags fails the request past a bound. */
const WRITE_BUDGET = 1024 * 1024;

/** The guest's request body for `outboundFetch`: whole if it is finished already, else streamed as it is written. */
function streamedBody(body: OutgoingBody): StreamedRequestBody {
  return {
    whole() {
      const chunks = outgoingBodyWhole(body);
      return chunks && new Uint8Array(Buffer.concat(chunks));
    },
    stream(sink) {
      receiveOutgoingBody(body, {
        capacity: () => WRITE_BUDGET,
        chunk: (bytes) => sink.write(bytes),
        flush() {},
        end: () => sink.end(),
        overLimit() {},
        abandoned: () => sink.abandoned(),
      });
    },
  };
}

/** `handle` takes the request and its options as owned handles, which jco's glue forgets then. */
function passedOn(request: OutgoingRequest | undefined, options: RequestOptions | undefined): void {
  if (request) HostResource.release(request);
  if (options) HostResource.release(options);
}
