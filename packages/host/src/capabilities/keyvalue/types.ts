import { StratumError } from '@stratum/core';

/**
 * The key-value seam: one interface that every backend (SQLite, Redis, NATS JetStream KV)
 * implements, and that the WIT bindings (`stratum:keyvalue`, `wasi:keyvalue@0.2.0-draft2`)
 * serve. Synchronous backends return plain values so that a capsule bound only to them can be
 * transpiled without JSPI; asynchronous ones return promises.
 */
export type MaybePromise<T> = T | Promise<T>;

/** Whose store: the installation's name on the host and the manifest's label. */
export interface StoreScope {
  capsule: string;
  label: string;
}

export interface KeyValueLimits {
  /** Largest key in UTF-8 bytes (the WIT fixes 1024). */
  maxKeyBytes: number;
  /** Largest value in bytes (the WIT promises at least 1 MiB). */
  maxValueBytes: number;
  /** Most keys one store may hold. */
  maxKeys: number;
}

export const DEFAULT_KEYVALUE_LIMITS: KeyValueLimits = {
  maxKeyBytes: 1024,
  maxValueBytes: 1024 * 1024,
  maxKeys: 100_000,
};

/** The most keys `listKeys` returns in one page (the WIT's figure). */
export const LIST_PAGE_SIZE = 1000;
/** The most keys a batch call takes (the WIT's figure). */
export const MAX_BATCH = 1000;

/** The WIT error variant's cases; `invalid` (an empty key, a malformed number) reaches the guest as `other`. */
export type KeyValueErrorKind = 'no-such-store' | 'access-denied' | 'limit-exceeded' | 'other';

/** An error a guest may see: its message never names a path, a URL or a credential. */
export class KeyValueError extends StratumError {
  readonly kind: KeyValueErrorKind;
  constructor(kind: KeyValueErrorKind, message: string, options: { cause?: unknown } = {}) {
    super(kind === 'limit-exceeded' ? 'KEYVALUE_QUOTA' : 'KEYVALUE_ERROR', message, { ...options, user: kind !== 'other' });
    this.name = 'KeyValueError';
    this.kind = kind;
  }
}

export interface KeyPage {
  keys: string[];
  /** Pass to the next call; absent when there are no more keys. */
  cursor?: string;
}

/** One key in a snapshot: the value and, when it has a TTL, when it expires (ms since the epoch). */
export interface KeyValueEntry {
  key: string;
  value: Uint8Array;
  expiresAt?: number;
}

export interface KeyValueUsage {
  keys: number;
  /** Key bytes plus value bytes, as the capsule sees them (not the backend's overhead). */
  bytes: number;
}

/** One capsule's store under one label. Every method is atomic for the keys it names. */
export interface KeyValueStore {
  get(key: string): MaybePromise<Uint8Array | undefined>;
  /** Replaces the value and any TTL; with `ttlMs` the key disappears after that many ms. */
  set(key: string, value: Uint8Array, ttlMs?: number): MaybePromise<void>;
  delete(key: string): MaybePromise<void>;
  exists(key: string): MaybePromise<boolean>;
  /** Keys in ascending byte order, after `cursor`. */
  listKeys(cursor?: string, pageSize?: number): MaybePromise<KeyPage>;
  /** Adds `delta` to the decimal s64 at `key` (unset counts as 0); keeps the key's TTL. */
  increment(key: string, delta: bigint): MaybePromise<bigint>;
  /** Sets `key` only when its value is `expected` (undefined: not set). Clears any TTL, as `set` does. */
  compareAndSwap(key: string, expected: Uint8Array | undefined, replacement: Uint8Array): MaybePromise<boolean>;
  getMany(keys: readonly string[]): MaybePromise<(Uint8Array | undefined)[]>;
  setMany(entries: readonly (readonly [string, Uint8Array])[]): MaybePromise<void>;
  deleteMany(keys: readonly string[]): MaybePromise<void>;
  usage(): MaybePromise<KeyValueUsage>;
  /** Every live key, for a snapshot; order is ascending by key. */
  entries(): AsyncIterable<KeyValueEntry>;
  /** Removes every key (before a snapshot import). */
  clear(): MaybePromise<void>;
  /** Removes the store itself (its keys and whatever holds them), when the capsule is uninstalled. */
  drop(): MaybePromise<void>;
  /**
   * Writes entries exactly (value and expiry), bypassing nothing but TTL arithmetic; a snapshot
   * import hands them over in batches, which a backend with transactions writes in one.
   */
  restore(entries: readonly KeyValueEntry[]): MaybePromise<void>;
}

/**
 * What a backend writes of a restore batch: every entry's key and value checked first (so a bad
 * one writes nothing of the batch), then those not expired by `now`.
 */
export function restorable(entries: readonly KeyValueEntry[], limits: KeyValueLimits, now = Date.now()): KeyValueEntry[] {
  for (const entry of entries) {
    checkKey(entry.key, limits);
    checkValue(entry.value, limits);
  }
  return entries.filter((entry) => entry.expiresAt === undefined || entry.expiresAt > now);
}

export interface KeyValueBackend {
  readonly type: string;
  /** True when every store method returns a plain value (no JSPI needed). */
  readonly synchronous: boolean;
  open(scope: StoreScope): Promise<KeyValueStore>;
  close(): Promise<void>;
}

const SCOPE_PART = /^[a-z][a-z0-9_-]{0,62}$/;

/** Scope parts are embedded in file names, key prefixes and bucket names: refuse anything else. */
export function checkScope(scope: StoreScope): void {
  for (const [what, value] of [
    ['capsule', scope.capsule],
    ['label', scope.label],
  ] as const) {
    if (!SCOPE_PART.test(value)) {
      throw new StratumError('KEYVALUE_SCOPE', `invalid ${what} name "${value}" for a key-value store`, {
        hint: 'Names are 1 to 63 lowercase letters, digits, "-" and "_", starting with a letter.',
        user: false,
      });
    }
  }
}

const encoder = new TextEncoder();

export function checkKey(key: string, limits: KeyValueLimits): void {
  if (typeof key !== 'string' || key.length === 0) throw new KeyValueError('other', 'invalid key: a key must not be empty');
  // A UTF-16 code unit is at most 3 UTF-8 bytes: most keys need no counting (it runs on every call).
  if (key.length * 3 <= limits.maxKeyBytes) return;
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > limits.maxKeyBytes) {
    throw new KeyValueError('limit-exceeded', `key is ${bytes} bytes, over the limit of ${limits.maxKeyBytes}`);
  }
}

export function checkValue(value: Uint8Array, limits: KeyValueLimits): void {
  if (value.byteLength > limits.maxValueBytes) {
    throw new KeyValueError('limit-exceeded', `value is ${value.byteLength} bytes, over the limit of ${limits.maxValueBytes}`);
  }
}

export function checkTtl(ttlMs: number | undefined): void {
  if (ttlMs === undefined) return;
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) throw new KeyValueError('other', `invalid TTL ${ttlMs}: give at least 1 ms`);
}

export function checkBatch(count: number): void {
  if (count > MAX_BATCH) throw new KeyValueError('limit-exceeded', `${count} keys in one batch, over the limit of ${MAX_BATCH}`);
}

export function keysQuotaError(limits: KeyValueLimits): KeyValueError {
  return new KeyValueError('limit-exceeded', `the store holds ${limits.maxKeys} keys, its quota`);
}

const S64_MIN = -(2n ** 63n);
const S64_MAX = 2n ** 63n - 1n;

/** Parses a stored counter: decimal text of a signed 64-bit integer, as Redis's INCRBY accepts. */
export function parseCounter(value: Uint8Array | undefined): bigint {
  if (value === undefined) return 0n;
  const text = new TextDecoder().decode(value);
  if (!/^-?(0|[1-9][0-9]{0,18})$/.test(text)) throw new KeyValueError('other', 'value is not an integer or out of range');
  const parsed = BigInt(text);
  if (parsed < S64_MIN || parsed > S64_MAX) throw new KeyValueError('other', 'value is not an integer or out of range');
  return parsed;
}

export function addCounter(current: bigint, delta: bigint): bigint {
  const sum = current + delta;
  if (sum < S64_MIN || sum > S64_MAX) throw new KeyValueError('other', 'increment or decrement would overflow');
  return sum;
}

export function encodeCounter(value: bigint): Uint8Array {
  return encoder.encode(value.toString());
}

export function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Buffer.compare(a, b) === 0;
}

/** Byte-order comparison of keys, as SQLite's BINARY collation and Redis's ZRANGEBYLEX use. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
