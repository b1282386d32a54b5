import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { type Logger, redactUrl, silentLogger } from '@stratum/core';
import { BackendOutage } from '../../backend-failure.ts';
import {
  addCounter,
  checkBatch,
  checkKey,
  checkScope,
  checkTtl,
  checkValue,
  compareKeys,
  DEFAULT_KEYVALUE_LIMITS,
  encodeCounter,
  type KeyPage,
  type KeyValueBackend,
  type KeyValueEntry,
  KeyValueError,
  type KeyValueLimits,
  type KeyValueStore,
  keysQuotaError,
  LIST_PAGE_SIZE,
  parseCounter,
  restorable,
  type StoreScope,
  sameBytes,
} from '../types.ts';

export interface NatsKeyValueOptions {
  /** `nats://[user:password@]host:port`; a token goes in the user part with no password. */
  url: string;
  /** Bucket names are `<bucketPrefix>_<capsule length>_<capsule>_<label>`. */
  bucketPrefix?: string;
  /** JetStream replicas for new buckets (1, 3 or 5). */
  replicas?: number;
  limits?: Partial<KeyValueLimits>;
  logger?: Logger;
}

/** JetStream API error codes the backend turns into the interface's errors. */
const WRONG_LAST_SEQUENCE = 10071;
const MAX_MESSAGES = 10077;
const MAX_RETRIES = 64;

/*
 * Keys: NATS KV keys allow only [-/_=.A-Za-z0-9], with `.` separating subject tokens, so every
 * other byte (and `=` and `.`) is written `=XX`. Values: one leading byte says whether an
 * expiry follows (8 bytes, ms since the epoch, big-endian), because nats-server 2.9 ignores
 * per-message TTLs; expired values read as absent and are purged when seen.
 * Quota: the bucket's stream has max_msgs = maxKeys, discard new and one message per subject,
 * so the server itself refuses a new key beyond the quota (and still accepts replacing one);
 * deletes purge the subject, leaving no marker that would count.
 */
export function encodeNatsKey(key: string): string {
  let out = '';
  for (const byte of Buffer.from(key)) {
    const char = String.fromCharCode(byte);
    out += /[-/_A-Za-z0-9]/.test(char) ? char : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeNatsKey(encoded: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    if (encoded[i] === '=') {
      bytes.push(Number.parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(encoded.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString();
}

function wrap(value: Uint8Array, expiresAt: number | undefined): Uint8Array {
  if (expiresAt === undefined) return Buffer.concat([Buffer.from([0]), value]);
  const header = Buffer.alloc(9);
  header[0] = 1;
  header.writeBigUInt64BE(BigInt(expiresAt), 1);
  return Buffer.concat([header, value]);
}

function unwrap(stored: Uint8Array): { value: Uint8Array; expiresAt?: number } {
  const buffer = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  if (buffer[0] === 1) return { value: new Uint8Array(buffer.subarray(9)), expiresAt: Number(buffer.readBigUInt64BE(1)) };
  return { value: new Uint8Array(buffer.subarray(1)) };
}

function apiCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

function isWrongSequence(error: unknown): boolean {
  return apiCode(error) === WRONG_LAST_SEQUENCE || /wrong last sequence/.test(String((error as Error | null)?.message));
}

function isMaxMessages(error: unknown): boolean {
  return apiCode(error) === MAX_MESSAGES || /maximum messages exceeded/.test(String((error as Error | null)?.message));
}

export function natsBucketName(prefix: string, scope: StoreScope): string {
  return `${prefix}_${scope.capsule.length}_${scope.capsule}_${scope.label}`;
}

/** The server and credentials a `nats://[user:password@]host:port` URL names; a user alone is a token. */
function serverOptions(text: string): NodeConnectionOptions {
  const url = new URL(text);
  const user = decodeURIComponent(url.username);
  const pass = decodeURIComponent(url.password);
  return {
    servers: `${url.hostname}:${url.port || '4222'}`,
    ...(user && pass ? { user, pass } : user ? { token: user } : {}),
  };
}

/**
 * Connects once, with the backend's credentials, and asks JetStream for the account's info: what
 * a host's start checks (backend-check.ts). Nothing is made; the connection is closed after, or
 * as soon as `signal` aborts.
 */
export async function checkNatsServer(url: string, signal: AbortSignal): Promise<void> {
  const nc = await connect({ ...serverOptions(url), reconnect: false });
  const closing = () => void nc.close().catch(() => {});
  signal.addEventListener('abort', closing, { once: true });
  try {
    signal.throwIfAborted();
    await (await jetstreamManager(nc, { checkAPI: false })).getAccountInfo();
  } finally {
    signal.removeEventListener('abort', closing);
    await nc.close();
  }
}

/** NATS JetStream KV: one bucket per capsule and label; atomic updates by revision. */
export function natsKeyValue(options: NatsKeyValueOptions): KeyValueBackend {
  const limits = { ...DEFAULT_KEYVALUE_LIMITS, ...options.limits };
  const logger = options.logger ?? silentLogger;
  let connection: Promise<{ nc: NatsConnection; kvm: Kvm; jsm: JetStreamManager }> | undefined;

  async function connectOnce() {
    const nc = await connect({ ...serverOptions(options.url), maxReconnectAttempts: -1 });
    return { nc, kvm: new Kvm(nc), jsm: await jetstreamManager(nc) };
  }

  const outage = new BackendOutage(logger, `the nats key-value backend at ${redactUrl(options.url)}`);
  function failure(error: unknown): KeyValueError {
    if (error instanceof KeyValueError) return error;
    outage.failed(error);
    return new KeyValueError('other', 'the key-value backend is unavailable', { cause: error });
  }

  return {
    type: 'nats',
    synchronous: false,
    async open(scope: StoreScope) {
      checkScope(scope);
      try {
        connection ??= connectOnce();
        const { kvm, jsm } = await connection;
        const name = natsBucketName(options.bucketPrefix ?? 'stratum_kv', scope);
        const kv = await kvm.create(name, { history: 1, replicas: options.replicas ?? 1 });
        const stream = `KV_${name}`;
        const info = await jsm.streams.info(stream);
        if (info.config.max_msgs !== limits.maxKeys || info.config.discard !== 'new') {
          await jsm.streams.update(stream, { ...info.config, max_msgs: limits.maxKeys, discard: 'new' as typeof info.config.discard });
        }
        outage.answered();
        return openStore(kv, jsm, stream, `$KV.${name}.`, limits, failure, outage);
      } catch (error) {
        throw failure(error);
      }
    },
    async close() {
      const current = connection;
      connection = undefined;
      // A connection that never opened has nothing to drain (and its error was reported at open).
      if (current) await (await current.catch(() => undefined))?.nc.drain();
    },
  };
}

interface Current {
  value: Uint8Array;
  expiresAt?: number;
  /** The subject's last sequence; 0 when it has none. */
  revision: number;
  live: boolean;
}

function openStore(
  kv: KV,
  jsm: JetStreamManager,
  stream: string,
  subjectPrefix: string,
  limits: KeyValueLimits,
  failure: (error: unknown) => KeyValueError,
  outage: BackendOutage,
): KeyValueStore {
  async function guarded<T>(work: () => Promise<T>): Promise<T> {
    try {
      const result = await work();
      outage.answered();
      return result;
    } catch (error) {
      throw failure(error);
    }
  }

  async function read(key: string): Promise<Current | undefined> {
    const entry = await kv.get(encodeNatsKey(key));
    if (entry?.operation !== 'PUT') return entry ? { value: new Uint8Array(), revision: entry.revision, live: false } : undefined;
    const { value, expiresAt } = unwrap(entry.value);
    const live = expiresAt === undefined || expiresAt > Date.now();
    return expiresAt === undefined ? { value, revision: entry.revision, live } : { value, expiresAt, revision: entry.revision, live };
  }

  async function liveValue(key: string): Promise<Uint8Array | undefined> {
    const current = await read(key);
    if (current && !current.live) await purgeIf(key, current.revision);
    return current?.live ? current.value : undefined;
  }

  async function purge(key: string): Promise<void> {
    await jsm.streams.purge(stream, { filter: subjectPrefix + encodeNatsKey(key) });
  }

  /** Purges an expired key unless it changed since it was read. */
  async function purgeIf(key: string, revision: number): Promise<void> {
    const again = await read(key);
    if (again && again.revision === revision && !again.live) await purge(key);
  }

  async function pruneExpired(): Promise<void> {
    for (const key of await allKeys()) {
      const current = await read(key);
      if (current && !current.live) await purgeIf(key, current.revision);
    }
  }

  /** Runs a write; over the key quota, expired keys are purged once and the write tried again. */
  async function admitted<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      if (!isMaxMessages(error)) throw error;
    }
    await pruneExpired();
    try {
      return await write();
    } catch (error) {
      throw isMaxMessages(error) ? keysQuotaError(limits) : error;
    }
  }

  /** Writes only when the subject is still at `revision` (0: has no message); false when it moved. */
  async function writeIf(key: string, stored: Uint8Array, revision: number): Promise<boolean> {
    try {
      const subject = encodeNatsKey(key);
      // kv.update refuses revision 0; create sends the same "expected last sequence 0" header.
      await admitted(() => (revision === 0 ? kv.create(subject, stored) : kv.update(subject, stored, revision)));
      return true;
    } catch (error) {
      if (isWrongSequence(error)) return false;
      throw error;
    }
  }

  async function put(key: string, value: Uint8Array, expiresAt: number | undefined): Promise<void> {
    await admitted(() => kv.put(encodeNatsKey(key), wrap(value, expiresAt)));
  }

  async function allKeys(): Promise<string[]> {
    const keys: string[] = [];
    for await (const encoded of await kv.keys()) keys.push(decodeNatsKey(encoded));
    return keys.sort(compareKeys);
  }

  async function listKeys(cursor?: string, pageSize = LIST_PAGE_SIZE): Promise<KeyPage> {
    const candidates = (await allKeys()).filter((key) => cursor === undefined || compareKeys(key, cursor) > 0);
    const keys: string[] = [];
    let more = false;
    for (const key of candidates) {
      if ((await liveValue(key)) === undefined) continue;
      if (keys.length === pageSize) {
        more = true;
        break;
      }
      keys.push(key);
    }
    const last = keys.at(-1);
    return more && last !== undefined ? { keys, cursor: last } : { keys };
  }

  async function* entries(): AsyncIterable<KeyValueEntry> {
    for (const key of await guarded(allKeys)) {
      const current = await guarded(() => read(key));
      if (!current?.live) continue;
      yield current.expiresAt === undefined ? { key, value: current.value } : { key, value: current.value, expiresAt: current.expiresAt };
    }
  }

  return {
    get: (key) =>
      guarded(async () => {
        checkKey(key, limits);
        return liveValue(key);
      }),
    set: (key, value, ttlMs) =>
      guarded(async () => {
        checkKey(key, limits);
        checkValue(value, limits);
        checkTtl(ttlMs);
        await put(key, value, ttlMs === undefined ? undefined : Date.now() + ttlMs);
      }),
    delete: (key) =>
      guarded(async () => {
        checkKey(key, limits);
        await purge(key);
      }),
    exists: (key) =>
      guarded(async () => {
        checkKey(key, limits);
        return (await liveValue(key)) !== undefined;
      }),
    listKeys: (cursor, pageSize) => guarded(() => listKeys(cursor, pageSize)),
    increment: (key, delta) =>
      guarded(async () => {
        checkKey(key, limits);
        for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
          const current = await read(key);
          const live = current?.live ? current : undefined;
          const next = addCounter(parseCounter(live?.value), delta);
          const encoded = encodeCounter(next);
          checkValue(encoded, limits);
          if (await writeIf(key, wrap(encoded, live?.expiresAt), current?.revision ?? 0)) return next;
        }
        throw new KeyValueError('other', 'increment gave up after too many concurrent updates');
      }),
    compareAndSwap: (key, expected, replacement) =>
      guarded(async () => {
        checkKey(key, limits);
        checkValue(replacement, limits);
        for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
          const current = await read(key);
          if (!sameBytes(current?.live ? current.value : undefined, expected)) return false;
          if (await writeIf(key, wrap(replacement, undefined), current?.revision ?? 0)) return true;
        }
        throw new KeyValueError('other', 'compare-and-swap gave up after too many concurrent updates');
      }),
    getMany: (keys) =>
      guarded(async () => {
        checkBatch(keys.length);
        for (const key of keys) checkKey(key, limits);
        return Promise.all(keys.map(liveValue));
      }),
    setMany: (pairs) =>
      guarded(async () => {
        checkBatch(pairs.length);
        for (const [key, value] of pairs) {
          checkKey(key, limits);
          checkValue(value, limits);
        }
        for (const [key, value] of pairs) await put(key, value, undefined);
      }),
    deleteMany: (keys) =>
      guarded(async () => {
        checkBatch(keys.length);
        for (const key of keys) checkKey(key, limits);
        await Promise.all(keys.map(purge));
      }),
    usage: () =>
      guarded(async () => {
        let keys = 0;
        let bytes = 0;
        for await (const entry of entries()) {
          keys++;
          bytes += Buffer.byteLength(entry.key) + entry.value.byteLength;
        }
        return { keys, bytes };
      }),
    entries,
    clear: () =>
      guarded(async () => {
        await jsm.streams.purge(stream);
      }),
    drop: () =>
      guarded(async () => {
        try {
          await kv.destroy();
        } catch (error) {
          // Dropping is idempotent: a bucket already gone is what was asked for.
          if (!/stream not found/i.test(String((error as Error | null)?.message))) throw error;
        }
      }),
    restore: (entries) =>
      guarded(async () => {
        // All of a batch at once, so the acknowledgements overlap (one at a time, 5,000 keys took
        // 887 ms); the stream's own limit enforces the key quota.
        await Promise.all(restorable(entries, limits).map((entry) => put(entry.key, entry.value, entry.expiresAt)));
      }),
  };
}
