import type { Logger } from '@stratum/core';
import { HostResource, lowerResourceFunction, settle, type VariantCases } from '../canonical-abi.ts';
import { type ImportObjects, WitError } from '../contract.ts';
import { KeyValueError, type KeyValueStore, type MaybePromise } from './types.ts';

/**
 * The import objects for `stratum:keyvalue/{store,atomics,batch}` and
 * `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2`, over stores already opened for the
 * capsule's granted labels. Values are as jco lowers them: s64/u64 as bigint, list<u8> as
 * Uint8Array, option as undefined, resources as instances of the classes given here.
 * A function returns a promise exactly when its store's backend is asynchronous.
 */
export interface KeyValueBindingOptions {
  stores: ReadonlyMap<string, KeyValueStore>;
  logger: Logger;
  /** Called for every quota refusal, so the host can log and count it. */
  onQuota?: (message: string) => void;
  /** Called when the guest opens a label the manifest does not grant (its error case has no text). */
  onNotGranted?: (label: string) => void;
  /**
   * Every store's backend is synchronous. When not, the component is transpiled with JSPI, and
   * the methods served at the canonical ABI (../canonical-abi.ts) suspend the guest themselves.
   */
  synchronous: boolean;
}

type Flavour = 'stratum' | 'wasi';

/** The error variant's payload; wasi:keyvalue has no limit-exceeded, so that becomes `other`. */
function payload(error: unknown, flavour: Flavour, logger: Logger, onQuota?: (message: string) => void): unknown {
  if (error instanceof WitError) return error.payload;
  if (error instanceof KeyValueError) {
    if (error.kind === 'limit-exceeded') onQuota?.(error.message);
    if (error.kind === 'no-such-store' || error.kind === 'access-denied') return { tag: error.kind };
    if (error.kind === 'limit-exceeded' && flavour === 'stratum') return { tag: 'limit-exceeded', val: error.message };
    return { tag: 'other', val: error.message };
  }
  logger.error({ err: error instanceof Error ? error.message : String(error) }, 'key-value operation failed unexpectedly');
  return { tag: 'other', val: 'internal error in the key-value store' };
}

function call<T>(flavour: Flavour, logger: Logger, work: () => MaybePromise<T>, onQuota?: (message: string) => void): MaybePromise<T> {
  try {
    const result = work();
    if (result instanceof Promise) {
      return result.catch((error: unknown) => {
        throw new WitError(payload(error, flavour, logger, onQuota));
      });
    }
    return result;
  } catch (error) {
    throw new WitError(payload(error, flavour, logger, onQuota));
  }
}

function then<T, U>(value: MaybePromise<T>, next: (value: T) => U): MaybePromise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

function toNumber(value: bigint, what: string): number {
  if (value < 1n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw new KeyValueError('other', `invalid ${what} ${value}`);
  return Number(value);
}

function bindings(flavour: Flavour, options: KeyValueBindingOptions) {
  const { stores, logger, onQuota } = options;
  const run = <T>(work: () => MaybePromise<T>) => call(flavour, logger, work, onQuota);

  class Bucket extends HostResource {
    readonly store: KeyValueStore;
    constructor(store: KeyValueStore) {
      super();
      this.store = store;
    }
    get(key: string) {
      return run(() => this.store.get(key));
    }
    set(key: string, value: Uint8Array) {
      return run(() => this.store.set(key, value));
    }
    setWithTtl(key: string, value: Uint8Array, ttlMs: bigint) {
      return run(() => this.store.set(key, value, toNumber(ttlMs, 'TTL')));
    }
    delete(key: string) {
      return run(() => this.store.delete(key));
    }
    exists(key: string) {
      return run(() => this.store.exists(key));
    }
    listKeys(cursor: string | undefined) {
      return run(() => then(this.store.listKeys(cursor), (page) => ({ keys: page.keys, cursor: page.cursor })));
    }
  }

  function open(label: string): Bucket {
    const store = stores.get(label);
    if (!store) {
      options.onNotGranted?.(label);
      throw new WitError({ tag: 'no-such-store' });
    }
    return new Bucket(store);
  }

  const getMany = (bucket: Bucket, keys: string[]) =>
    run(() =>
      then(bucket.store.getMany(keys), (values) =>
        values.map((value, i) => (value === undefined ? undefined : ([keys[i] as string, value] as [string, Uint8Array]))),
      ),
    );
  const setMany = (bucket: Bucket, pairs: [string, Uint8Array][]) => run(() => bucket.store.setMany(pairs));
  const deleteMany = (bucket: Bucket, keys: string[]) => run(() => bucket.store.deleteMany(keys));
  const increment = (bucket: Bucket, key: string, delta: bigint) => run(() => bucket.store.increment(key, delta));
  if (flavour === 'stratum') lowerBucket(Bucket, !options.synchronous);
  return { Bucket, open, getMany, setMany, deleteMany, increment, run };
}

const STRATUM_ERROR: VariantCases = [
  ['no-such-store', false],
  ['access-denied', false],
  ['limit-exceeded', true],
  ['other', true],
];

interface BucketMethods {
  get(key: string): MaybePromise<Uint8Array | undefined>;
  set(key: string, value: Uint8Array): MaybePromise<void>;
}

/**
 * `stratum:keyvalue/store`'s get and set at the canonical ABI. The results are laid out as
 * `result<option<list<u8>>, error>` and `result<_, error>`: the result's case at +0, its payload
 * from +4 (the option's case at +4 and its list at +8, or the error's case at +4 and its string
 * at +8). Errors come from the same methods the glue calls, so they map the same way.
 */
function lowerBucket(type: abstract new (...args: never[]) => BucketMethods, asynchronous: boolean): void {
  const prototype = type.prototype;
  lowerResourceFunction(
    prototype.get,
    (handles, memory) => (handle: number, keyPtr: number, keyLen: number, out: number) => {
      const bucket = handles.borrow(type, handle);
      const key = memory.string(keyPtr, keyLen);
      return settle(
        memory,
        out,
        out + 4,
        STRATUM_ERROR,
        () => bucket.get(key),
        (value) => {
          const view = memory.view();
          view.setUint8(out, 0);
          view.setUint8(out + 4, value === undefined ? 0 : 1);
          if (value !== undefined) memory.writeList(out + 8, value);
        },
      );
    },
    asynchronous,
  );
  lowerResourceFunction(
    prototype.set,
    (handles, memory) => (handle: number, keyPtr: number, keyLen: number, valuePtr: number, valueLen: number, out: number) => {
      const bucket = handles.borrow(type, handle);
      const key = memory.string(keyPtr, keyLen);
      const value = memory.bytes(valuePtr, valueLen);
      return settle(
        memory,
        out,
        out + 4,
        STRATUM_ERROR,
        () => bucket.set(key, value),
        () => memory.view().setUint8(out, 0),
      );
    },
    asynchronous,
  );
}

export function keyValueImports(options: KeyValueBindingOptions): ImportObjects {
  const stratum = bindings('stratum', options);
  const wasi = bindings('wasi', options);

  /** wasi:keyvalue's compare-and-swap: a handle that remembers the value it saw. */
  class Cas {
    readonly bucket: InstanceType<typeof wasi.Bucket>;
    readonly key: string;
    readonly seen: Uint8Array | undefined;
    constructor(bucket: InstanceType<typeof wasi.Bucket>, key: string, seen: Uint8Array | undefined) {
      this.bucket = bucket;
      this.key = key;
      this.seen = seen;
    }
    static new(bucket: InstanceType<typeof wasi.Bucket>, key: string) {
      return wasi.run(() => then(bucket.store.get(key), (seen) => new Cas(bucket, key, seen)));
    }
    current() {
      return this.seen;
    }
  }

  function swap(cas: Cas, value: Uint8Array): MaybePromise<void> {
    const storeError = (error: unknown) => {
      try {
        call('wasi', options.logger, () => {
          throw error;
        });
      } catch (mapped) {
        throw new WitError({ tag: 'store-error', val: (mapped as WitError).payload });
      }
    };
    const failed = (): MaybePromise<never> =>
      then(cas.bucket.store.get(cas.key), (seen) => {
        throw new WitError({ tag: 'cas-failed', val: new Cas(cas.bucket, cas.key, seen) });
      });
    try {
      const swapped = cas.bucket.store.compareAndSwap(cas.key, cas.seen, value);
      if (swapped instanceof Promise) {
        return swapped.then(
          (ok) => (ok ? undefined : failed()),
          (error: unknown) => storeError(error),
        );
      }
      return swapped ? undefined : failed();
    } catch (error) {
      if (error instanceof WitError) throw error;
      return storeError(error);
    }
  }

  return {
    'stratum:keyvalue/store': { Bucket: stratum.Bucket, open: stratum.open },
    'stratum:keyvalue/atomics': {
      increment: stratum.increment,
      compareAndSwap: (
        bucket: InstanceType<typeof stratum.Bucket>,
        key: string,
        expected: Uint8Array | undefined,
        replacement: Uint8Array,
      ) => stratum.run(() => bucket.store.compareAndSwap(key, expected, replacement)),
    },
    'stratum:keyvalue/batch': { getMany: stratum.getMany, setMany: stratum.setMany, deleteMany: stratum.deleteMany },
    'wasi:keyvalue/store': { Bucket: wasi.Bucket, open: wasi.open },
    'wasi:keyvalue/atomics': { increment: wasi.increment, Cas, swap },
    'wasi:keyvalue/batch': { getMany: wasi.getMany, setMany: wasi.setMany, deleteMany: wasi.deleteMany },
  };
}

/** Every function of these interfaces that calls the backend, in jco's async-import syntax. */
export function keyValueAsyncImports(imports: readonly string[]): string[] {
  const functions: Record<string, string[]> = {
    'stratum:keyvalue/store': [
      '[method]bucket.get',
      '[method]bucket.set',
      '[method]bucket.set-with-ttl',
      '[method]bucket.delete',
      '[method]bucket.exists',
      '[method]bucket.list-keys',
    ],
    'stratum:keyvalue/atomics': ['increment', 'compare-and-swap'],
    'stratum:keyvalue/batch': ['get-many', 'set-many', 'delete-many'],
    'wasi:keyvalue/store': [
      '[method]bucket.get',
      '[method]bucket.set',
      '[method]bucket.delete',
      '[method]bucket.exists',
      '[method]bucket.list-keys',
    ],
    'wasi:keyvalue/atomics': ['increment', '[static]cas.new', 'swap'],
    'wasi:keyvalue/batch': ['get-many', 'set-many', 'delete-many'],
  };
  return imports.flatMap((versioned) => (functions[versioned.split('@')[0] ?? ''] ?? []).map((fn) => `${versioned}#${fn}`));
}
