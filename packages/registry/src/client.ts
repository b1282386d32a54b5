import { createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatBytes, type Logger, StratumError, silentLogger } from '@stratum/core';
import { type AuthChallenge, parseChallenges } from './challenge.ts';
import type { CredentialsProvider, RegistryCredentials } from './credentials.ts';
import { digestOf, newDigester } from './digest.ts';
import { isLoopbackRegistry, type OciReference } from './reference.ts';

export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST_MEDIA_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST_MEDIA_TYPE = 'application/vnd.docker.distribution.manifest.list.v2+json';
/** Without an Accept header the distribution registry answers 404 MANIFEST_UNKNOWN for OCI manifests. */
const MANIFEST_ACCEPT = [OCI_MANIFEST_MEDIA_TYPE, OCI_INDEX_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE, DOCKER_LIST_MEDIA_TYPE].join(', ');

/** The distribution registry's own limit for a manifest. */
export const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_BLOB_BYTES = 512 * 1024 * 1024;
/** Blobs up to this size go up in one request; larger ones in chunks of this size. */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;
const MIN_UPLOAD_BYTES_PER_SECOND = 32 * 1024;

export interface TransferProgress {
  phase: 'upload' | 'download';
  digest: string;
  /** Bytes moved so far, and the blob's size. */
  done: number;
  total: number;
}

export interface RegistryClientOptions {
  /** Credentials, or where to find them per registry; default: anonymous. */
  credentials?: RegistryCredentials | CredentialsProvider;
  /** Use plain HTTP; default: only for loopback registries (localhost, 127.0.0.0/8, ::1). */
  plainHttp?: boolean;
  /** Manifests larger than this are refused before they are read (default 4 MiB). */
  maxManifestBytes?: number;
  /** Blobs larger than this are refused before they are read (default 512 MiB). */
  maxBlobBytes?: number;
  /** Blobs above this size are uploaded in chunks of this size (default 8 MiB). */
  chunkBytes?: number;
  signal?: AbortSignal;
  /** How long to wait for a response's headers, and for the next bytes of a blob (default 30 s). */
  timeoutMs?: number;
  logger?: Logger;
  /** For tests and proxies; default: the global fetch. */
  fetch?: typeof fetch;
}

export interface BlobSource {
  digest: string;
  size: number;
  /** Reads `length` bytes at `offset`. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A blob held in memory, as a {@link BlobSource}. */
export function bytesSource(bytes: Uint8Array): BlobSource {
  return { digest: digestOf(bytes), size: bytes.length, read: async (offset, length) => bytes.subarray(offset, offset + length) };
}

/** A blob in a file, hashed once up front, as a {@link BlobSource}. */
export async function fileSource(path: string): Promise<BlobSource> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const hash = newDigester();
    for await (const chunk of handle.createReadStream({ autoClose: false, start: 0 })) hash.update(chunk as Buffer);
    return {
      digest: `sha256:${hash.digest('hex')}`,
      size,
      async read(offset, length) {
        const reader = await open(path, 'r');
        try {
          const buffer = Buffer.alloc(Math.min(length, size - offset));
          const { bytesRead } = await reader.read(buffer, 0, buffer.length, offset);
          if (bytesRead !== buffer.length)
            throw new StratumError('REGISTRY_SOURCE_CHANGED', `${path} changed while it was being pushed`, { user: false });
          return buffer;
        } finally {
          await reader.close();
        }
      },
    };
  } finally {
    await handle.close();
  }
}

export type BlobPushResult = 'exists' | 'mounted' | 'uploaded';

export interface FetchedManifest {
  bytes: Uint8Array;
  digest: string;
  mediaType: string;
}

interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** `pull` or `pull,push`, for the bearer-token scope. */
  actions: string;
  /** Extra repositories to pull from in the same token (the source of a cross-repository mount). */
  alsoPull?: string;
  /** Aborts the request and its body; a download uses it when the body stalls. */
  abort?: AbortController;
}

const describe = (reference: OciReference) => `${reference.registry}/${reference.repository}`;

/**
 * A client for the OCI distribution API over plain fetch: manifests and blobs, monolithic and
 * chunked uploads, cross-repository mounts, anonymous, basic and bearer-token authentication.
 * Everything it reads from the network is bounded and checked against its digest as it streams.
 *
 * @example
 * const client = new RegistryClient({ credentials: credentialsFrom() });
 * const { bytes } = await client.getManifest(parseReference('oci://127.0.0.1:5000/acme/hello:1.0'));
 */
export class RegistryClient {
  readonly maxManifestBytes: number;
  readonly maxBlobBytes: number;
  readonly chunkBytes: number;
  readonly timeoutMs: number;
  private readonly options: RegistryClientOptions;
  private readonly logger: Logger;
  private readonly fetch: typeof fetch;
  /** The Authorization header that worked, per registry and scope. */
  private readonly authorizations = new Map<string, string>();

  constructor(options: RegistryClientOptions = {}) {
    this.options = options;
    this.maxManifestBytes = options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
    this.maxBlobBytes = options.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
    this.chunkBytes = Math.max(1, options.chunkBytes ?? DEFAULT_CHUNK_BYTES);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.logger = options.logger ?? silentLogger;
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  baseUrl(registry: string): string {
    const plain = this.options.plainHttp ?? isLoopbackRegistry(registry);
    return `${plain ? 'http' : 'https'}://${registry}`;
  }

  /** Fetches a manifest by tag or digest; with `expectedDigest`, refuses any other bytes. */
  async getManifest(reference: OciReference, expectedDigest?: string): Promise<FetchedManifest> {
    const target = expectedDigest ?? reference.digest ?? reference.tag ?? 'latest';
    const url = `${this.baseUrl(reference.registry)}/v2/${reference.repository}/manifests/${target}`;
    return this.withDeadline(url, (abort) => this.readManifest(reference, url, target, expectedDigest, abort));
  }

  /** Runs a whole small exchange (headers and body) under the timeout. */
  private async withDeadline<T>(url: string, exchange: (abort: AbortController) => Promise<T>): Promise<T> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(timedOut(url, 'finished answering', this.timeoutMs)), this.timeoutMs);
    try {
      return await exchange(abort);
    } catch (error) {
      // Once the deadline has passed, whatever broke, the deadline is the reason.
      if (abort.signal.aborted && abort.signal.reason instanceof StratumError) throw abort.signal.reason;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  private async readManifest(
    reference: OciReference,
    url: string,
    target: string,
    expectedDigest: string | undefined,
    abort: AbortController,
  ): Promise<FetchedManifest> {
    const response = await this.request(reference, url, { headers: { accept: MANIFEST_ACCEPT }, actions: 'pull', abort });
    if (response.status !== 200)
      throw await this.responseError(response, `cannot get the manifest ${describe(reference)}:${target}`, reference);
    const declared = contentLength(response);
    if (declared !== undefined && declared > this.maxManifestBytes) {
      await response.body?.cancel();
      throw tooLarge('manifest', `${describe(reference)}:${target}`, declared, this.maxManifestBytes);
    }
    const bytes = await readCapped(response, this.maxManifestBytes, () =>
      tooLarge('manifest', `${describe(reference)}:${target}`, undefined, this.maxManifestBytes),
    );
    const digest = digestOf(bytes);
    const wanted = expectedDigest ?? reference.digest;
    if (wanted !== undefined && digest !== wanted) throw mismatch('manifest', describe(reference), wanted, digest);
    const claimed = response.headers.get('docker-content-digest');
    if (claimed?.startsWith('sha256:') && claimed !== digest) throw mismatch('manifest', describe(reference), claimed, digest);
    return { bytes, digest, mediaType: (response.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '' };
  }

  /** Uploads a manifest under a tag (or under its digest when `tag` is undefined); returns its digest. */
  async putManifest(reference: OciReference, bytes: Uint8Array, mediaType: string, tag?: string): Promise<string> {
    const digest = digestOf(bytes);
    const url = `${this.baseUrl(reference.registry)}/v2/${reference.repository}/manifests/${tag ?? digest}`;
    const response = await this.request(reference, url, {
      method: 'PUT',
      headers: { 'content-type': mediaType },
      body: bytes,
      actions: 'pull,push',
    });
    if (response.status !== 201 && response.status !== 200)
      throw await this.responseError(response, `cannot push the manifest to ${describe(reference)}`, reference);
    await response.body?.cancel();
    const claimed = response.headers.get('docker-content-digest');
    if (claimed?.startsWith('sha256:') && claimed !== digest) throw mismatch('pushed manifest', describe(reference), digest, claimed);
    return digest;
  }

  /** Whether the repository holds a blob (HEAD). */
  async hasBlob(reference: OciReference, digest: string): Promise<boolean> {
    const url = `${this.baseUrl(reference.registry)}/v2/${reference.repository}/blobs/${digest}`;
    const response = await this.request(reference, url, { method: 'HEAD', actions: 'pull,push' });
    await response.body?.cancel();
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw await this.responseError(response, `cannot check for blob ${digest} in ${describe(reference)}`, reference);
  }

  /**
   * Puts a blob in the repository, unless it is there already: first a cross-repository mount
   * from `mountFrom` (another repository on the same registry) when given, then a monolithic
   * upload for small blobs or a chunked one for large blobs.
   */
  async pushBlob(
    reference: OciReference,
    source: BlobSource,
    options: { mountFrom?: readonly string[]; onProgress?: (progress: TransferProgress) => void } = {},
  ): Promise<BlobPushResult> {
    if (source.size > this.maxBlobBytes) throw tooLarge('blob', source.digest, source.size, this.maxBlobBytes);
    if (await this.hasBlob(reference, source.digest)) return 'exists';
    const base = `${this.baseUrl(reference.registry)}/v2/${reference.repository}/blobs/uploads/`;
    let location: string | undefined;
    for (const from of options.mountFrom ?? []) {
      if (from === reference.repository) continue;
      const url = `${base}?mount=${encodeURIComponent(source.digest)}&from=${encodeURIComponent(from)}`;
      const response = await this.request(reference, url, { method: 'POST', actions: 'pull,push', alsoPull: from });
      await response.body?.cancel();
      if (response.status === 201) {
        this.logger.debug({ digest: source.digest, from }, 'blob mounted');
        return 'mounted';
      }
      // 202: the registry does not offer the mount (or the source lacks the blob) and has
      // started an ordinary upload instead.
      if (response.status === 202) {
        location = this.uploadLocation(response, reference);
        break;
      }
    }
    if (location === undefined) {
      const response = await this.request(reference, base, { method: 'POST', actions: 'pull,push' });
      if (response.status !== 202) throw await this.responseError(response, `cannot start an upload to ${describe(reference)}`, reference);
      await response.body?.cancel();
      location = this.uploadLocation(response, reference);
    }
    const report = (done: number) => options.onProgress?.({ phase: 'upload', digest: source.digest, done, total: source.size });
    report(0);
    if (source.size > this.chunkBytes) {
      for (let offset = 0; offset < source.size; offset += this.chunkBytes) {
        const chunk = await source.read(offset, this.chunkBytes);
        const response = await this.request(reference, location, {
          method: 'PATCH',
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${offset}-${offset + chunk.length - 1}`,
          },
          body: chunk,
          actions: 'pull,push',
        });
        if (response.status !== 202)
          throw await this.responseError(response, `cannot upload blob ${source.digest} to ${describe(reference)}`, reference);
        await response.body?.cancel();
        location = this.uploadLocation(response, reference);
        report(offset + chunk.length);
      }
      await this.finishUpload(reference, location, source.digest, undefined);
    } else {
      await this.finishUpload(reference, location, source.digest, await source.read(0, source.size));
    }
    report(source.size);
    return 'uploaded';
  }

  private async finishUpload(reference: OciReference, location: string, digest: string, body: Uint8Array | undefined): Promise<void> {
    const url = new URL(location);
    url.searchParams.set('digest', digest);
    const response = await this.request(reference, url.toString(), {
      method: 'PUT',
      headers: body ? { 'content-type': 'application/octet-stream' } : {},
      ...(body ? { body } : {}),
      actions: 'pull,push',
    });
    if (response.status !== 201)
      throw await this.responseError(response, `cannot finish the upload of blob ${digest} to ${describe(reference)}`, reference);
    await response.body?.cancel();
    const claimed = response.headers.get('docker-content-digest');
    if (claimed?.startsWith('sha256:') && claimed !== digest) throw mismatch('uploaded blob', describe(reference), digest, claimed);
  }

  private uploadLocation(response: Response, reference: OciReference): string {
    const location = response.headers.get('location');
    if (!location)
      throw new StratumError('REGISTRY_PROTOCOL', `${reference.registry} started an upload without a Location header`, { user: false });
    return new URL(location, `${this.baseUrl(reference.registry)}/`).toString();
  }

  /**
   * Streams a blob into `tempPath`, hashing and counting as it goes. Any problem (wrong size,
   * wrong digest, a connection cut short) deletes the file and throws; the caller renames the
   * file into place only when this returns. `expectedSize` is undefined when no manifest names
   * the blob (a pull by component digest alone); the digest check still decides. Returns the size.
   */
  async downloadBlob(
    reference: OciReference,
    digest: string,
    expectedSize: number | undefined,
    tempPath: string,
    onProgress?: (progress: TransferProgress) => void,
  ): Promise<number> {
    if (expectedSize !== undefined && expectedSize > this.maxBlobBytes) throw tooLarge('blob', digest, expectedSize, this.maxBlobBytes);
    const abort = new AbortController();
    const response = await this.openBlob(reference, digest, abort);
    const declared = contentLength(response);
    if (expectedSize !== undefined && declared !== undefined && declared !== expectedSize) {
      await response.body?.cancel();
      throw new StratumError(
        'REGISTRY_SIZE_MISMATCH',
        `${reference.registry} offered ${declared} bytes for blob ${digest}, but the manifest says ${expectedSize}`,
        { hint: 'The registry or a proxy is serving other bytes than the manifest names; nothing was kept.' },
      );
    }
    if (declared !== undefined && declared > this.maxBlobBytes) {
      await response.body?.cancel();
      throw tooLarge('blob', digest, declared, this.maxBlobBytes);
    }
    // Without a manifest, the size is what the response declares, and the digest check decides.
    const size = expectedSize ?? declared;
    const limit = size ?? this.maxBlobBytes;
    if (!response.body)
      throw new StratumError('REGISTRY_PROTOCOL', `${reference.registry} sent no body for blob ${digest}`, { user: false });
    const hash = newDigester();
    let done = 0;
    // A body that stops arriving is given up after the timeout, like a response that never starts.
    const url = `${this.baseUrl(reference.registry)}/v2/${reference.repository}/blobs/${digest}`;
    let idle: NodeJS.Timeout | undefined;
    const watch = () => {
      clearTimeout(idle);
      idle = setTimeout(
        () => abort.abort(timedOut(url, `sent more after ${done} of ${size ?? 'unknown'} bytes`, this.timeoutMs)),
        this.timeoutMs,
      );
    };
    watch();
    const verify = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        watch();
        done += chunk.length;
        if (done > limit) {
          callback(
            size === undefined
              ? tooLarge('blob', digest, undefined, limit)
              : new StratumError('REGISTRY_SIZE_MISMATCH', `${reference.registry} sent more than the ${size} bytes of blob ${digest}`),
          );
          return;
        }
        hash.update(chunk);
        onProgress?.({ phase: 'download', digest, done, total: size ?? done });
        callback(null, chunk);
      },
      flush(callback) {
        if (size !== undefined && done < size) {
          callback(truncated(reference, digest, done, size));
          return;
        }
        const actual = `sha256:${hash.digest('hex')}`;
        callback(actual === digest ? null : mismatch('blob', describe(reference), digest, actual));
      },
    });
    try {
      await pipeline(
        Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
        verify,
        createWriteStream(tempPath, { flags: 'wx' }),
      );
    } catch (error) {
      await rm(tempPath, { force: true });
      if (error instanceof StratumError) throw error;
      if (this.options.signal?.aborted) throw error;
      if (abort.signal.reason instanceof StratumError) throw abort.signal.reason;
      // undici reports a body cut short by the server as a generic "terminated".
      throw truncated(reference, digest, done, size, error);
    } finally {
      clearTimeout(idle);
    }
    return done;
  }

  private async openBlob(reference: OciReference, digest: string, abort?: AbortController): Promise<Response> {
    const url = `${this.baseUrl(reference.registry)}/v2/${reference.repository}/blobs/${digest}`;
    const response = await this.request(reference, url, { actions: 'pull', ...(abort ? { abort } : {}) });
    if (response.status !== 200)
      throw await this.responseError(response, `cannot get blob ${digest} from ${describe(reference)}`, reference);
    return response;
  }

  /** Sends a request, answering a 401 challenge once (basic or bearer) and remembering what worked. */
  private async request(reference: OciReference, url: string, options: RequestOptions): Promise<Response> {
    const scope = `repository:${reference.repository}:${options.actions}${options.alsoPull ? ` repository:${options.alsoPull}:pull` : ''}`;
    const key = `${reference.registry} ${scope}`;
    const send = (authorization: string | undefined) =>
      this.send(
        url,
        {
          method: options.method ?? 'GET',
          headers: { 'user-agent': 'stratum', ...options.headers, ...(authorization ? { authorization } : {}) },
          ...(options.body ? { body: options.body } : {}),
        },
        options.abort,
      );
    const known = this.authorizations.get(key) ?? this.authorizations.get(`${reference.registry} basic`);
    const first = await send(known);
    if (first.status !== 401) return first;
    await first.body?.cancel();
    const challenges = parseChallenges(first.headers.get('www-authenticate'));
    const authorization = await this.answer(reference, challenges, scope);
    const second = await send(authorization);
    if (second.status === 401) {
      await second.body?.cancel();
      const credentials = await this.credentialsFor(reference.registry);
      throw unauthorized(
        reference,
        credentials !== undefined,
        credentials ? 'the registry refused the credentials' : 'the registry wants credentials for this repository',
      );
    }
    if (authorization.startsWith('Basic ')) this.authorizations.set(`${reference.registry} basic`, authorization);
    else this.authorizations.set(key, authorization);
    return second;
  }

  private async send(
    url: string,
    init: { method: string; headers: Record<string, string>; body?: Uint8Array },
    abort: AbortController = new AbortController(),
  ): Promise<Response> {
    const signal = this.options.signal ? AbortSignal.any([this.options.signal, abort.signal]) : abort.signal;
    // The clock runs while a request body goes up too, so a large chunk gets time for it at a
    // slow but working rate.
    const allowance = this.timeoutMs + ((init.body?.length ?? 0) / MIN_UPLOAD_BYTES_PER_SECOND) * 1000;
    const timer = setTimeout(() => abort.abort(timedOut(url, 'answered', allowance)), allowance);
    try {
      return await this.fetch(url, { ...init, redirect: 'follow', signal });
    } catch (error) {
      if (this.options.signal?.aborted) throw error;
      if (abort.signal.reason instanceof StratumError) throw abort.signal.reason;
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new RegistryUnreachableError(new URL(url).host, cause?.code ?? cause?.message ?? String(error), init.method, url, error);
    } finally {
      clearTimeout(timer);
    }
  }

  private async credentialsFor(registry: string): Promise<RegistryCredentials | undefined> {
    const { credentials } = this.options;
    if (credentials === undefined) return undefined;
    return typeof credentials === 'function' ? credentials(registry) : credentials;
  }

  private async answer(reference: OciReference, challenges: AuthChallenge[], scope: string): Promise<string> {
    const credentials = await this.credentialsFor(reference.registry);
    const bearer = challenges.find((challenge) => challenge.scheme === 'bearer');
    if (bearer) return `Bearer ${await this.fetchToken(reference, bearer, scope, credentials)}`;
    if (challenges.some((challenge) => challenge.scheme === 'basic')) {
      if (!credentials) throw unauthorized(reference, false, 'the registry asks for a user name and password');
      return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    throw unauthorized(
      reference,
      credentials !== undefined,
      'the registry answered 401 without a challenge Stratum understands (basic or bearer)',
    );
  }

  /** The bearer-token flow of the distribution spec: ask the realm for a token for this scope. */
  private async fetchToken(
    reference: OciReference,
    challenge: AuthChallenge,
    scope: string,
    credentials: RegistryCredentials | undefined,
  ): Promise<string> {
    const realm = challenge.params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? '');
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('not http');
    } catch {
      throw new StratumError('REGISTRY_PROTOCOL', `${reference.registry} asked for a bearer token without a usable realm`, {
        details: [`realm: ${JSON.stringify(realm ?? null)}`],
        user: false,
      });
    }
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    for (const part of scope.split(' ')) url.searchParams.append('scope', part);
    const headers: Record<string, string> = { 'user-agent': 'stratum' };
    if (credentials) headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    const response = await this.send(url.toString(), { method: 'GET', headers });
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw unauthorized(
        reference,
        credentials !== undefined,
        `the token service at ${url.host} refused ${credentials ? 'the credentials' : 'an anonymous token'}`,
      );
    }
    if (response.status !== 200) throw await this.responseError(response, `the token service at ${url.host} failed`, reference);
    const body = await readCapped(
      response,
      MAX_TOKEN_RESPONSE_BYTES,
      () =>
        new StratumError('REGISTRY_PROTOCOL', `the token service at ${url.host} sent more than ${formatBytes(MAX_TOKEN_RESPONSE_BYTES)}`, {
          user: false,
        }),
    );
    let parsed: { token?: unknown; access_token?: unknown };
    try {
      parsed = JSON.parse(Buffer.from(body).toString('utf8')) as typeof parsed;
    } catch {
      parsed = {};
    }
    const token =
      typeof parsed?.token === 'string' ? parsed.token : typeof parsed?.access_token === 'string' ? parsed.access_token : undefined;
    if (!token || !/^[\x21-\x7e]+$/.test(token)) {
      throw new StratumError('REGISTRY_PROTOCOL', `the token service at ${url.host} sent no usable token`, { user: false });
    }
    return token;
  }

  private async responseError(response: Response, what: string, reference: OciReference): Promise<StratumError> {
    let details: string[] = [];
    try {
      const body = await readCapped(response, MAX_ERROR_BODY_BYTES, () => new Error('long'));
      const parsed = JSON.parse(Buffer.from(body).toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
      details = (parsed.errors ?? []).slice(0, 5).map((error) => `${String(error.code)}: ${String(error.message)}`.slice(0, 300));
    } catch {
      await response.body?.cancel().catch(() => {});
    }
    const status = `HTTP ${response.status}`;
    if (response.status === 404) {
      return new StratumError('REGISTRY_NOT_FOUND', `${what}: not found`, {
        details: [status, ...details],
        hint: `Check the repository, and the tag or digest, in ${reference.registry}/${reference.repository}.`,
      });
    }
    if (response.status === 403) return unauthorized(reference, true, `${what}: access denied (${status})`);
    if (response.status === 413) {
      return new StratumError('REGISTRY_TOO_LARGE', `${what}: the registry refused it as too large`, { details: [status, ...details] });
    }
    return new StratumError('REGISTRY_ERROR', `${what}: the registry answered ${status}`, { details, user: response.status < 500 });
  }
}

/** A registry that could not be reached at all: no answer, not even an error status. */
export class RegistryUnreachableError extends StratumError {
  /** `host[:port]`, as the URL named it. */
  readonly registry: string;
  /** What the network said: `ECONNREFUSED`, `ENOTFOUND`. */
  readonly reason: string;

  constructor(registry: string, reason: string, method: string, url: string, cause: unknown) {
    super('REGISTRY_UNREACHABLE', `cannot reach ${registry}`, {
      details: [`${method} ${url}: ${reason}`],
      hint: 'Check the registry address and that it is running; a registry on another host must speak HTTPS.',
      cause,
    });
    this.registry = registry;
    this.reason = reason;
  }
}

function contentLength(response: Response): number | undefined {
  const header = response.headers.get('content-length');
  if (header === null || !/^[0-9]+$/.test(header)) return undefined;
  return Number(header);
}

/** Reads a response body whole, but stops (and throws) as soon as it passes `max` bytes. */
async function readCapped(response: Response, max: number, tooBig: () => Error): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel();
      throw tooBig();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

function timedOut(url: string, what: string, ms: number): StratumError {
  return new StratumError('REGISTRY_TIMEOUT', `${new URL(url).host} has not ${what} in ${Math.round(ms / 1000)} s`, {
    details: [url],
    hint: 'The registry or the network is stalled; nothing was kept. Try again, or raise the timeout.',
  });
}

function tooLarge(kind: string, what: string, size: number | undefined, max: number): StratumError {
  return new StratumError(
    'REGISTRY_TOO_LARGE',
    `the ${kind} ${what} is ${size === undefined ? 'larger than' : `${formatBytes(size)}, more than`} the ${formatBytes(max)} allowed`,
    {
      hint: `Nothing was kept. If the ${kind} is genuine, raise the limit (max${kind === 'manifest' ? 'Manifest' : 'Blob'}Bytes).`,
    },
  );
}

function mismatch(kind: string, where: string, expected: string, actual: string): StratumError {
  return new StratumError('REGISTRY_DIGEST_MISMATCH', `the ${kind} from ${where} does not match its digest`, {
    details: [`expected ${expected}`, `received ${actual}`],
    hint: 'The registry (or something between) served other bytes than the digest names; nothing was kept.',
  });
}

function truncated(reference: OciReference, digest: string, done: number, size: number | undefined, cause?: unknown): StratumError {
  return new StratumError(
    'REGISTRY_TRUNCATED',
    `blob ${digest} from ${reference.registry} ended after ${done}${size === undefined ? '' : ` of ${size}`} bytes`,
    {
      hint: 'The connection was cut short; nothing was kept. Try again.',
      ...(cause !== undefined ? { cause } : {}),
    },
  );
}

function unauthorized(reference: OciReference, hadCredentials: boolean, why: string): StratumError {
  return new StratumError('REGISTRY_UNAUTHORIZED', `not allowed into ${reference.registry}/${reference.repository}: ${why}`, {
    hint: hadCredentials
      ? 'Check the user name and password (or token) for this registry, and that they may access this repository.'
      : `Give credentials: set STRATUM_REGISTRY_USERNAME and STRATUM_REGISTRY_PASSWORD, or add "${reference.registry}" to the auths of ~/.config/stratum/registry-auth.json (docker's config.json format).`,
  });
}
