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
 * Format code shared by the capabilities that use it (keyvalue, sql), like snapshot-lines.ts.
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

  /** Copies `bytes` into a new guest allocation and writes its pointer and length at `at`. */
  writeList(at: number, bytes: Uint8Array): void {
    // realloc may grow the memory, which detaches every view taken before it.
    const ptr = this.#realloc(0, 0, 1, bytes.byteLength);
    new Uint8Array(this.#memory.buffer, ptr, bytes.byteLength).set(bytes);
    const view = this.view();
    view.setUint32(at, ptr, true);
    view.setUint32(at + 4, bytes.byteLength, true);
  }

  /**
   * Allocates a list of `count` elements of `size` bytes, writes its pointer and length at `at`,
   * and returns the pointer for the caller to fill. Offsets stay valid when the memory grows.
   */
  allocList(at: number, count: number, size: number, align: number): number {
    const ptr = this.#realloc(0, 0, align, count * size);
    const view = this.view();
    view.setUint32(at, ptr, true);
    view.setUint32(at + 4, count, true);
    return ptr;
  }

  writeString(at: number, text: string): void {
    this.writeList(at, encoder.encode(text));
  }
}

/** The representation a borrowed or owned handle stands for, as jco's tables store it. */
function handleRep(table: number[], handle: number): number {
  return (table[(handle << 1) + 1] ?? 0) & ~HANDLE_FLAG;
}

/** Resources by the representation given to jco; an entry goes when the guest drops its handle. */
export class RepTable<T extends object> {
  readonly #entries = new Map<number, T>();
  #next = 1;

  add(resource: T): void {
    const rep = this.#next++;
    this.#entries.set(rep, resource);
    Object.defineProperty(resource, CABI_REP, { value: rep });
  }

  remove(resource: T): void {
    this.#entries.delete((resource as { [CABI_REP]?: number })[CABI_REP] ?? 0);
  }

  get(rep: number): T {
    const resource = this.#entries.get(rep);
    if (!resource) throw new TypeError(`unknown resource representation ${rep}`);
    return resource;
  }
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
 * Gives a resource method its canonical-ABI lowering: when jco's glue instantiates, `make` gets
 * the instance's memory and a way from a handle of the method's resource to its representation,
 * and returns the core function the guest calls.
 */
export function lowerMethod(
  method: object,
  asynchronous: boolean,
  make: (memory: GuestMemory, rep: (handle: number) => number) => (...args: number[]) => MaybePromise<void>,
): void {
  Object.defineProperty(method, CABI_LOWER, {
    value: (lowering: Lowering) => {
      const table = lowering.resourceTables[0] ?? [];
      return coreImport(
        make(new GuestMemory(lowering), (handle) => handleRep(table, handle)),
        asynchronous,
      );
    },
  });
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
