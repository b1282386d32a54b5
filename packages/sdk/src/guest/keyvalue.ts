/// <reference path="../wit/guest.generated.d.ts" />
import { compareAndSwap as casImport, increment as incrementImport } from 'stratum:keyvalue/atomics@0.1.0';
import { deleteMany as deleteManyImport, getMany as getManyImport, setMany as setManyImport } from 'stratum:keyvalue/batch@0.1.0';
import { type Bucket, open } from 'stratum:keyvalue/store@0.1.0';
import { ownBytes } from './binding-arrays.ts';
import { call, toCapabilityError } from './errors.ts';
import { deltaArgument, keyError, ttlArgument, valueArgument } from './keyvalue-arguments.ts';
import { refuseAtTopLevel } from './top-level.ts';

export type KeyValueInput = string | Uint8Array;

export interface SetOptions {
  /** The key disappears after this many milliseconds. */
  ttlMs?: number;
}

/** One page of keys; pass `cursor` back to `listKeys` for the next. */
export interface KeyPage {
  keys: string[];
  cursor: string | undefined;
}

/**
 * A key-value store the manifest grants (`[capabilities] keyvalue = ["default"]`). Calls are
 * synchronous inside the capsule: the host answers them while the component waits.
 */
export interface KeyValueStore {
  readonly label: string;
  get(key: string): Uint8Array | undefined;
  getText(key: string): string | undefined;
  getJson<T = unknown>(key: string): T | undefined;
  set(key: string, value: KeyValueInput, options?: SetOptions): void;
  setJson(key: string, value: unknown, options?: SetOptions): void;
  delete(key: string): void;
  has(key: string): boolean;
  /** One page of keys, in ascending byte order. */
  listKeys(cursor?: string): KeyPage;
  /** Every key, page by page. */
  keys(): Generator<string>;
  /** Adds `delta` (default 1) to the integer at `key` (missing counts as 0) atomically; returns the new value. */
  increment(key: string, delta?: number): number;
  /** Sets `key` to `replacement` only if its value is `expected` (undefined: not set); returns whether it did. */
  compareAndSwap(key: string, expected: KeyValueInput | undefined, replacement: KeyValueInput): boolean;
  /** The values that are set, by key. */
  getMany(keys: readonly string[]): Map<string, Uint8Array>;
  setMany(entries: Iterable<readonly [string, KeyValueInput]>): void;
  deleteMany(keys: readonly string[]): void;
}

const decoder = new TextDecoder();
const opened = new Map<string, KeyValueStore>();

/**
 * Opens a key-value store by its label in the manifest. The handle is kept for the instance's
 * life, so opening the same label again is free. Call it inside `fetch()` (or in a function it
 * calls): the modules' top-level code runs while the component is built, where no store exists.
 *
 * @example
 * import { openKeyValue } from '@stratum/sdk/keyvalue';
 * const kv = openKeyValue();
 * const visits = kv.increment('visits');
 */
export function openKeyValue(label = 'default'): KeyValueStore {
  refuseAtTopLevel(`openKeyValue(${JSON.stringify(label)})`, `let kv; … kv ??= openKeyValue(${JSON.stringify(label)})`);
  const existing = opened.get(label);
  if (existing) return existing;
  const bucket: Bucket = call('keyvalue', `open("${label}")`, () => open(label));
  const op = <T>(what: string, fn: () => T) => call('keyvalue', what, fn);
  // The per-operation methods catch inline rather than through `op`: the guest's interpreter
  // pays for every closure and string built on each call, and a get is a tight loop's body.
  // A key of another type failed in the bindings' string encoder; said here, only once it has.
  const failed = (what: string, key: string, thrown: unknown, method = what) =>
    keyError(method, key) ?? toCapabilityError('keyvalue', `${what}("${key}")`, thrown);
  const store: KeyValueStore = {
    label,
    get(key) {
      let value: Uint8Array | undefined;
      try {
        value = bucket.get(key);
      } catch (thrown) {
        throw failed('get', key, thrown);
      }
      return value === undefined ? undefined : ownBytes(value);
    },
    getText(key) {
      const value = store.get(key);
      return value === undefined ? undefined : decoder.decode(value);
    },
    getJson<T>(key: string) {
      const text = store.getText(key);
      return text === undefined ? undefined : (JSON.parse(text) as T);
    },
    set(key, value, options) {
      const ttl = options?.ttlMs === undefined ? undefined : ttlArgument(`set("${key}")`, options.ttlMs);
      const data = valueArgument('set', key, value);
      try {
        if (ttl === undefined) bucket.set(key, data);
        else bucket.setWithTtl(key, data, ttl);
      } catch (thrown) {
        throw failed('set', key, thrown);
      }
    },
    setJson: (key, value, options) => store.set(key, JSON.stringify(value), options),
    delete(key) {
      try {
        bucket.delete(key);
      } catch (thrown) {
        throw failed('delete', key, thrown);
      }
    },
    has(key) {
      try {
        return bucket.exists(key);
      } catch (thrown) {
        throw failed('exists', key, thrown, 'has');
      }
    },
    listKeys(cursor) {
      const page = op('list-keys', () => bucket.listKeys(cursor));
      // Array.from: the binding's array is another global's, as its byte arrays are (binding-arrays.ts).
      return { keys: Array.from(page.keys), cursor: page.cursor };
    },
    *keys() {
      let cursor: string | undefined;
      do {
        const page = store.listKeys(cursor);
        yield* page.keys;
        cursor = page.cursor;
      } while (cursor !== undefined);
    },
    increment(key, delta = 1) {
      const call = `increment("${key}")`;
      const by = deltaArgument(call, delta);
      try {
        return Number(incrementImport(bucket, key, by));
      } catch (thrown) {
        throw failed('increment', key, thrown);
      }
    },
    compareAndSwap(key, expected, replacement) {
      const old = expected === undefined ? undefined : valueArgument('compareAndSwap', key, expected);
      const value = valueArgument('compareAndSwap', key, replacement);
      try {
        return casImport(bucket, key, old, value);
      } catch (thrown) {
        throw failed('compare-and-swap', key, thrown, 'compareAndSwap');
      }
    },
    getMany(keys) {
      const found = new Map<string, Uint8Array>();
      for (const entry of op('get-many', () => getManyImport(bucket, [...keys]))) if (entry) found.set(entry[0], ownBytes(entry[1]));
      return found;
    },
    setMany(entries) {
      const pairs: [string, Uint8Array][] = [];
      for (const [key, value] of entries) {
        const error = keyError('setMany', key);
        if (error) throw error;
        pairs.push([key, valueArgument('setMany', key, value)]);
      }
      op('set-many', () => setManyImport(bucket, pairs));
    },
    deleteMany: (keys) => op('delete-many', () => deleteManyImport(bucket, [...keys])),
  };
  opened.set(label, store);
  return store;
}
