/**
 * Helpers for imports implemented at the canonical ABI, for jco's `importBindings: 'hybrid'`
 * glue: when an import function carries `[Symbol.for('cabiLower')]`, the glue calls it once at
 * instantiation with the instance's memory, `cabi_realloc` and handle tables, and wires the
 * function it returns straight into the core module. A call then skips jco's per-call lifting,
 * lowering and task bookkeeping (bench/README.md has the measurements). Other glue ignores the
 * symbol, so such functions are inert unless the component was transpiled that way.
 *
 * The returned function replaces jco's JSPI wrapper as well, so for an asynchronous backend it
 * is itself a `WebAssembly.Suspending` (see {@link coreImport}).
 *
 * Shared by the keyvalue and SQL capabilities and by the wasi:http and wasi:io lowerings.
 */
import { WitError } from './contract.ts';

export const CABI_LOWER = Symbol.for('cabiLower');
/** jco reads a resource's representation from this property when it first hands it to the guest. */
export const CABI_REP = Symbol.for('cabiRep');
/** The flag jco's handle tables set on the representation slot. */
const HANDLE_FLAG = 1 << 30;

export type Realloc = (old: number, oldSize: number, align: number, size: number) => number;

/** What jco passes to a `cabiLower` function. */
export interface Lowering {
  memory: WebAssembly.Memory;
  realloc: Realloc;
  resourceTables: number[][];
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** `text`'s length in UTF-8: most strings a guest is given are ASCII, counted without a call into Node.js. */
function utf8Length(text: string): number {
  for (let index = 0; index < text.length; index++) if (text.charCodeAt(index) >= 0x80) return Buffer.byteLength(text, 'utf8');
  return text.length;
}

/** Reads and writes one instance's linear memory; the view is renewed when the memory grows. */
export class GuestMemory {
  readonly #memory: WebAssembly.Memory;
  readonly #realloc: Realloc;
  #view: DataView;

  constructor(lowering: Lowering) {
    this.#memory = lowering.memory;
    this.#realloc = lowering.realloc;
    this.#view = new DataView(lowering.memory.buffer);
  }

  view(): DataView {
    if (this.#view.buffer !== this.#memory.buffer) this.#view = new DataView(this.#memory.buffer);
    return this.#view;
  }

  string(ptr: number, len: number): string {
    return decoder.decode(new Uint8Array(this.#memory.buffer, ptr, len));
  }

  /** A copy: the backend may keep it, and the guest may reuse its memory. */
  bytes(ptr: number, len: number): Uint8Array {
    return new Uint8Array(this.#memory.buffer.slice(ptr, ptr + len));
  }

  /**
   * A copy that the host lets go of soon: a stream's writes, passed on within their request.
   * A small one is cut from Node.js's shared pool, so that it has no ArrayBuffer of its own: each
   * new ArrayBuffer costs about 1.3 us here and counts towards V8's external memory, whose limit
   * starts collections, and a request makes several. Not for what may be kept (a backend's value,
   * the header fields a capsule reuses as templates), which would hold the pool's whole 8 KiB.
   */
  passingBytes(ptr: number, len: number): Uint8Array {
    return Buffer.from(new Uint8Array(this.#memory.buffer, ptr, len));
  }

  /** Copies `bytes` into a new guest allocation and writes its pointer and length at `at`. */
  writeList(at: number, bytes: Uint8Array): void {
    this.#allocBytes(at, bytes.byteLength).set(bytes);
  }

  /**
   * Allocates a list of `count` elements of `size` bytes, writes its pointer and length at `at`,
   * and returns the pointer for the caller to fill. Offsets stay valid when the memory grows.
   */
  allocList(at: number, count: number, size: number, align: number): number {
    const ptr = this.#realloc(0, 0, align, count * size);
    this.#writeSlice(at, ptr, count);
    return ptr;
  }

  /** Encodes `text` straight into a new guest allocation (no array of its own between). */
  writeString(at: number, text: string): void {
    encoder.encodeInto(text, this.#allocBytes(at, utf8Length(text)));
  }

  /** A new guest allocation of `length` bytes, its pointer and length written at `at`, to fill. */
  #allocBytes(at: number, length: number): Uint8Array {
    // realloc may grow the memory, which detaches every view taken before it.
    const ptr = this.#realloc(0, 0, 1, length);
    this.#writeSlice(at, ptr, length);
    return new Uint8Array(this.#memory.buffer, ptr, length);
  }

  #writeSlice(at: number, ptr: number, length: number): void {
    const view = this.view();
    view.setUint32(at, ptr, true);
    view.setUint32(at + 4, length, true);
  }
}

/** jco calls this static on a resource's class when the guest drops a handle the host made. */
export const CABI_DISPOSE = Symbol.for('cabiDispose');

// One representation space for every HostResource in this thread, so a representation names
// one object whatever its class, and a representation is reused once its handle is gone (jco's
// own counters only grow, and its tables' flag bit caps them at 2^30).
const byRep: (HostResource | undefined)[] = [undefined];
const freeReps: number[] = [];

/**
 * A resource whose handles host code may make itself (wasi:http, wasi:io), as well as jco's
 * glue. jco reads `[cabiRep]` when its glue first hands the object to the guest: the getter gives
 * the object a representation then, so an object the guest never sees has none. It goes back
 * when the guest drops the handle (`[Symbol.dispose]`, or `[cabiDispose]` for a handle the host
 * made, which jco's glue does not know) or passes it on as an owned argument (`release`).
 *
 * jco's glue meets a handle the host made without knowing its object: it builds a hollow one,
 * `Object.create(Class.prototype)` with the representation as an own `[cabiRep]`. {@link real}
 * turns it back into the object; {@link acceptHollow} does so for every method of a class.
 */
export class HostResource {
  #rep = 0;
  #hostMade = false;
  /** jco's glue may still hold it under its representation: never give that out again. */
  #pinned = false;

  get [CABI_REP](): number {
    if (this.#rep === 0) {
      const rep = freeReps.pop() ?? byRep.length;
      byRep[rep] = this;
      this.#rep = rep;
    }
    return this.#rep;
  }

  /**
   * The guest holds no handle to it any more (it dropped it, or passed it on through jco's glue,
   * which forgets it then); its representation may be reused.
   */
  static release(resource: HostResource): void {
    const rep = resource.#rep;
    if (rep === 0 || resource.#pinned) return;
    byRep[rep] = undefined;
    freeReps.push(rep);
    resource.#rep = 0;
    resource.#hostMade = false;
  }

  static [CABI_DISPOSE](rep: number): void {
    byRep[rep]?.[Symbol.dispose]();
  }

  [Symbol.dispose](): void {
    HostResource.release(this);
  }

  /** Host side: marks a handle the host made, which jco's glue holds no reference to. */
  static hostMade(resource: HostResource): number {
    resource.#hostMade = true;
    return resource[CABI_REP];
  }

  /**
   * Host side: the guest passed an owned handle on. One that jco's glue made stays in the glue's
   * capture table under its representation, so that representation is never given out again.
   */
  static consumed(resource: HostResource): void {
    if (resource.#hostMade) HostResource.release(resource);
    else resource.#pinned = true;
  }

  /** How many representations are held (tests: nothing leaks per request). */
  static live(): number {
    return byRep.length - 1 - freeReps.length;
  }
}

/** The object a hollow stand-in from jco's glue stands for; any other value as it is. */
export function real<T>(value: T): T {
  if (typeof value !== 'object' || value === null || !Object.hasOwn(value, CABI_REP)) return value;
  return (byRep[(value as unknown as { [CABI_REP]: number })[CABI_REP]] as T | undefined) ?? value;
}

/** Wraps every method of a class so that it runs on the real object when jco's glue passes a hollow one. */
export function acceptHollow(type: { prototype: object }): void {
  const prototype = type.prototype as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(prototype)) {
    const method = prototype[name];
    if (name === 'constructor' || typeof method !== 'function') continue;
    prototype[name] = function (this: object, ...args: unknown[]) {
      return (method as (...args: unknown[]) => unknown).apply(real(this), args);
    };
  }
}

type ResourceClass<T> = abstract new (...args: never[]) => T;

// Which class each of jco's handle tables holds, learned from a live handle: jco passes a
// lowering the tables of every resource in the function's type, ordered by the component's
// table numbering, not by the type's order.
const tableClasses = new WeakMap<number[], unknown>();

function liveObject(table: number[], handle: number): HostResource | undefined {
  const slot = table[(handle << 1) + 1];
  if (!slot || ((table[handle << 1] ?? HANDLE_FLAG) & HANDLE_FLAG) !== 0) return undefined;
  return byRep[slot & ~HANDLE_FLAG];
}

function unknownHandle(handle: number, type: { name: string }): never {
  throw new WebAssembly.RuntimeError(`unknown resource handle ${handle} for a ${type.name}`);
}

/** The handle tables jco gave one lowering, for the HostResource classes of its function's type. */
export class HandleTables {
  readonly #tables: number[][];
  readonly #found = new Map<unknown, number[]>();

  constructor(tables: number[][]) {
    this.#tables = tables;
  }

  #table<T>(type: ResourceClass<T>, handle: number | undefined): number[] {
    const found = this.#found.get(type);
    if (found) return found;
    let table = this.#tables.find((candidate) => tableClasses.get(candidate) === type);
    if (!table && handle !== undefined)
      table = this.#tables.find((candidate) => !tableClasses.has(candidate) && liveObject(candidate, handle) instanceof type);
    if (!table) {
      const unknown = this.#tables.filter((candidate) => !tableClasses.has(candidate));
      if (unknown.length === 1 && handle === undefined) table = unknown[0];
    }
    if (!table) return handle === undefined ? unknownHandle(0, type) : unknownHandle(handle, type);
    tableClasses.set(table, type);
    this.#found.set(type, table);
    return table;
  }

  /** The object behind a handle the guest lends (or owns and keeps). */
  borrow<T>(type: ResourceClass<T>, handle: number): T {
    const object = liveObject(this.#table(type, handle), handle);
    if (!(object instanceof type)) return unknownHandle(handle, type);
    return object;
  }

  /**
   * The object behind an owned handle the guest passes on: the handle is removed, as jco's glue
   * does. `onlyGlueMakes`: every handle of this class is made by jco's glue, which writes its
   * capture entry anew whenever it hands out a representation, so the stale entry it keeps for
   * this one is never read and the representation may be reused at once.
   */
  take<T extends HostResource>(type: ResourceClass<T>, handle: number, onlyGlueMakes = false): T {
    const table = this.#table(type, handle);
    const object = liveObject(table, handle);
    if (!(object instanceof type)) return unknownHandle(handle, type);
    if (((table[(handle << 1) + 1] as number) & HANDLE_FLAG) === 0 || table[handle << 1] !== 0)
      throw new WebAssembly.RuntimeError(`handle ${handle} for a ${type.name} is borrowed, not owned`);
    table[handle << 1] = (table[0] as number) | HANDLE_FLAG;
    table[0] = handle | HANDLE_FLAG;
    if (onlyGlueMakes) HostResource.release(object);
    else HostResource.consumed(object);
    return object;
  }

  /** Gives the guest an owned handle to `resource`, in its class's table. */
  give<T extends HostResource>(type: ResourceClass<T>, resource: T): number {
    const table = this.#table(type, undefined);
    const rep = HostResource.hostMade(resource) | HANDLE_FLAG;
    const free = (table[0] as number) & ~HANDLE_FLAG;
    if (free === 0) {
      table.push(0, rep);
      return (table.length >> 1) - 1;
    }
    table[0] = table[free << 1] as number;
    table[free << 1] = 0;
    table[(free << 1) + 1] = rep;
    return free;
  }
}

/**
 * Lowers a function over HostResources: `make` gets the instance's handle tables and memory once
 * per instance and returns the core function. jco passes no memory to a function whose type needs
 * none, and such a `make` must not touch it. `asynchronous`: the function returns a promise when
 * its backend is asynchronous (see {@link coreImport}); a function is asked at each instantiation.
 */
export function lowerResourceFunction(
  fn: object,
  make: (handles: HandleTables, memory: GuestMemory) => (...args: never[]) => unknown,
  asynchronous: boolean | (() => boolean) = false,
): void {
  Object.defineProperty(fn, CABI_LOWER, {
    value: (lowering: Partial<Lowering>) =>
      coreImport(
        make(new HandleTables(lowering.resourceTables ?? []), lowering.memory ? new GuestMemory(lowering as Lowering) : NO_MEMORY) as (
          ...args: number[]
        ) => MaybePromise<void>,
        typeof asynchronous === 'function' ? asynchronous() : asynchronous,
      ),
  });
}

const NO_MEMORY = new Proxy({} as GuestMemory, {
  get() {
    throw new TypeError('this lowering was given no memory');
  },
});

/** A value the host threw for the guest (jco's convention: it becomes the result's `err`), not a bug. */
export function guestError(error: unknown): unknown {
  if (error instanceof Error) throw error;
  return error;
}

type MaybePromise<T> = T | Promise<T>;

/** JSPI's import wrapper (Node.js 24), which TypeScript's libraries do not declare yet. */
const Suspending = (WebAssembly as unknown as { Suspending: new (fn: (...args: never[]) => unknown) => object }).Suspending;

/**
 * What a `cabiLower` function returns: `fn` itself, or, when its backend is asynchronous, `fn`
 * wrapped in `WebAssembly.Suspending` (V8 suspends the guest while the promise is pending; the
 * component was transpiled with JSPI, so the export that leads here is promising). A call that
 * returns a plain value does not suspend.
 */
function coreImport(fn: (...args: number[]) => MaybePromise<void>, asynchronous: boolean): unknown {
  return asynchronous ? new Suspending(fn) : fn;
}

/**
 * Runs `work` and hands its value to `write`; a thrown or rejected WitError is written as the
 * `result`'s error case instead (1 at `out`, the variant at `errorAt`). Anything else is rethrown
 * and traps the instance, as it does through jco's glue. A promise when `work` returns one.
 */
export function settle<T>(
  memory: GuestMemory,
  out: number,
  errorAt: number,
  cases: VariantCases,
  work: () => MaybePromise<T>,
  write: (value: T) => void,
): MaybePromise<void> {
  const failed = (error: unknown) => {
    if (!(error instanceof WitError)) throw error;
    memory.view().setUint8(out, 1);
    writeVariant(memory, errorAt, cases, error.payload);
  };
  let value: MaybePromise<T>;
  try {
    value = work();
  } catch (error) {
    return failed(error);
  }
  if (value instanceof Promise) return value.then(write, failed);
  write(value);
}

/** A WIT variant's cases in order: the name, and whether it carries a string. */
export type VariantCases = readonly (readonly [name: string, text: boolean])[];

/** Writes a variant `{ tag, val? }` at `at`: the case's index, then its string if it has one. */
export function writeVariant(memory: GuestMemory, at: number, cases: VariantCases, payload: unknown): void {
  const { tag, val } = (payload ?? {}) as { tag?: unknown; val?: unknown };
  const index = cases.findIndex(([name]) => name === tag);
  if (index === -1) throw new TypeError(`invalid variant case ${String(tag)}`);
  memory.view().setUint8(at, index);
  if (!cases[index]?.[1]) return;
  if (typeof val !== 'string') throw new TypeError(`the variant case ${String(tag)} needs a string`);
  memory.writeString(at + 4, val);
}
