import { createHash, createHmac } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '@stratum/core';

/**
 * Ranged GETs and HEADs signed here and sent with node:http, past the AWS SDK's request
 * pipeline. The S3 backend runs on the capsule's thread, and a capsule reads an object 256 KiB at
 * a time: through the SDK each read allocated about 100 KB of short-lived objects, which in a
 * capsule worker's small heap set off a major collection every two or three reads (13 per 7 MiB
 * read, against 3 on a directory). Such a read cost the capsule 90 ms of CPU through the SDK and
 * 74 ms signed here (a directory: 26 ms).
 *
 * Only the plain case is done here: SigV4 where the SDK's endpoint rules give it for the bucket,
 * with the SDK's own credentials. The S3 backend takes the answers 200, 206, 404 and 416 from
 * here; for any other status, or none (a network error), it asks again through the SDK, which
 * retries and reads S3's error documents. A read refused here that the SDK then gets means the
 * signing here does not suit this store: it is logged, and reads go through the SDK from then on.
 */

/** The SHA-256 of an empty payload: the body a GET or HEAD signs. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export interface ReadCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

export interface ReadReply {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body of a GET (empty for a HEAD). */
  body: Uint8Array;
}

/** The path of an object key as S3 signs it: every byte percent-encoded but A-Z a-z 0-9 - . _ ~ and "/". */
export function encodeKey(key: string): string {
  return encodeURIComponent(key)
    .replace(/%2F/g, '/')
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/**
 * The headers that sign a GET or HEAD without a body (SigV4 with the payload hash in
 * `x-amz-content-sha256`): `headers` (lower-case names, `host` among them) plus the date, the
 * session token if any, and the authorization. `path` is sent and signed as given (S3 signs it
 * encoded once, not normalized).
 */
export function signRead(
  method: 'GET' | 'HEAD',
  path: string,
  headers: Record<string, string>,
  credentials: ReadCredentials,
  region: string,
  now: Date,
  signingKeys: Map<string, Buffer> = new Map(),
): Record<string, string> {
  const amzDate = now.toISOString().replace(/[-:]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const all: Record<string, string> = { ...headers, 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': amzDate };
  if (credentials.sessionToken) all['x-amz-security-token'] = credentials.sessionToken;
  const names = Object.keys(all).sort();
  const signedHeaders = names.join(';');
  const canonical = [method, path, '', ...names.map((name) => `${name}:${String(all[name]).trim()}`), '', signedHeaders, EMPTY_SHA256].join(
    '\n',
  );
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const keyId = `${day}/${region}/${credentials.secretAccessKey}`;
  let signingKey = signingKeys.get(keyId);
  if (!signingKey) {
    signingKey = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), region), 's3'), 'aws4_request');
    signingKeys.clear();
    signingKeys.set(keyId, signingKey);
  }
  all.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope},SignedHeaders=${signedHeaders},Signature=${hmac(signingKey, toSign).toString('hex')}`;
  return all;
}

export interface S3Reads {
  /**
   * A GET (of `range`, at most `limit` bytes) or HEAD of `key`, with whatever status S3 gave
   * (the body only with 200 or 206); undefined when it could not be sent or answered (the caller
   * asks through the SDK then, as for any status it does not take).
   */
  read(method: 'GET' | 'HEAD', key: string, range?: { header: string; limit: number }): Promise<ReadReply | undefined>;
  /** The SDK answered a read that S3 refused from here with `status`: the signing here does not suit this store. */
  refusedHere(status: number): void;
  close(): void;
}

interface ResolvedConfig {
  endpointProvider(params: Record<string, unknown>): {
    url: URL;
    properties?: { authSchemes?: { name?: string; signingRegion?: string }[] };
  };
  credentials(): Promise<ReadCredentials>;
  /** How far the SDK found the host's clock off S3's (it corrects for it; so must these reads). */
  systemClockOffset?: number;
}

export function s3Reads(
  client: S3Client,
  bucket: string,
  options: { endpoint?: string | undefined; region: string; forcePathStyle: boolean },
  logger: Logger,
): S3Reads {
  const config = client.config as unknown as ResolvedConfig;
  let target: { url: URL; region: string; base: string } | undefined;
  try {
    const resolved = config.endpointProvider({
      Bucket: bucket,
      Region: options.region,
      ...(options.endpoint ? { Endpoint: options.endpoint } : {}),
      ForcePathStyle: options.forcePathStyle,
      UseFIPS: false,
      UseDualStack: false,
      Accelerate: false,
    });
    const scheme = resolved.properties?.authSchemes?.[0];
    if (scheme === undefined || scheme.name === 'sigv4') {
      target = { url: resolved.url, region: scheme?.signingRegion ?? options.region, base: resolved.url.pathname.replace(/\/+$/, '') };
    }
  } catch (error) {
    logger.warn(
      { err: error instanceof Error ? error.message : String(error) },
      's3 bucket: reading through the SDK (no endpoint for its own reads)',
    );
  }
  const https = target?.url.protocol === 'https:';
  const agent = https ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  const signingKeys = new Map<string, Buffer>();

  function send(
    method: 'GET' | 'HEAD',
    url: URL,
    path: string,
    headers: Record<string, string>,
    limit: number,
  ): Promise<ReadReply | undefined> {
    return new Promise((resolve) => {
      const request = (https ? httpsRequest : httpRequest)(
        { protocol: url.protocol, hostname: url.hostname, port: url.port, method, path, headers, agent },
        (response) => {
          const status = response.statusCode ?? 0;
          // s3rver answers a range of an empty object with "bytes 0-0/0" and a byte it never sends.
          const empty = /\/0$/.test(response.headers['content-range'] ?? '');
          if ((status !== 200 && status !== 206) || empty) {
            if (empty) response.destroy();
            else response.resume();
            resolve({ status, headers: response.headers, body: new Uint8Array() });
            return;
          }
          const chunks: Buffer[] = [];
          let total = 0;
          response.on('data', (chunk: Buffer) => {
            total += chunk.byteLength;
            chunks.push(chunk);
            // More than asked for (a store that ignored the range): the SDK's way copes with it.
            if (total > limit) {
              response.destroy();
              resolve(undefined);
            }
          });
          response.on('end', () => {
            const body = new Uint8Array(total);
            let offset = 0;
            for (const chunk of chunks) {
              body.set(chunk, offset);
              offset += chunk.byteLength;
            }
            resolve({ status, headers: response.headers, body });
          });
          response.on('error', () => resolve(undefined));
        },
      );
      request.on('error', () => resolve(undefined));
      request.end();
    });
  }

  return {
    async read(method, key, range) {
      if (!target) return undefined;
      let credentials: ReadCredentials;
      try {
        credentials = await config.credentials();
      } catch {
        return undefined;
      }
      const path = `${target.base}/${encodeKey(key)}`;
      const headers = signRead(
        method,
        path,
        { host: target.url.host, ...(range ? { range: range.header } : {}) },
        credentials,
        target.region,
        new Date(Date.now() + (config.systemClockOffset ?? 0)),
        signingKeys,
      );
      return send(method, target.url, path, headers, range?.limit ?? 0);
    },
    refusedHere(status) {
      if (!target) return;
      target = undefined;
      logger.warn({ status }, 's3 bucket: a read the host signed was refused where the SDK was not; reading through the SDK from now on');
    },
    close() {
      agent.destroy();
    },
  };
}
