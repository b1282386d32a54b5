/**
 * Errors the SDK throws inside a capsule. A Stratum import returns `result<_, error>`; the
 * component bindings throw its error value, and the SDK turns that into a `CapabilityError`
 * whose `code` is the WIT variant's case (`no-such-store`, `limit-exceeded`, ...).
 */
export class CapabilityError extends Error {
  /** The WIT error case, such as `no-such-store`, `invalid-query` or `limit-exceeded`. */
  readonly code: string;
  /** The capability that failed, such as `keyvalue`, `sql` or `bucket`. */
  readonly capability: string;

  constructor(capability: string, code: string, message: string) {
    super(message);
    this.name = 'CapabilityError';
    this.capability = capability;
    this.code = code;
  }
}

interface Variant {
  tag: string;
  val?: unknown;
}

const isVariant = (value: unknown): value is Variant =>
  typeof value === 'object' && value !== null && typeof (value as { tag?: unknown }).tag === 'string';

/** The WIT error value a binding threw: componentize-js puts it on `payload`, or throws it bare. */
export function witError(thrown: unknown): Variant | undefined {
  if (isVariant(thrown)) return thrown;
  const payload = typeof thrown === 'object' && thrown !== null ? (thrown as { payload?: unknown }).payload : undefined;
  return isVariant(payload) ? payload : undefined;
}

/**
 * A WIT error value a binding threw, as text: its case, and its string or the debug string of
 * wasi:io's `error` resource. jco's ComponentError that carries it says only "[object Object]
 * (see error.payload)". Undefined for anything else.
 */
export function witErrorText(thrown: unknown): string | undefined {
  // An Error of the capsule's or the SDK's own says what it means, whatever fields it has.
  if (thrown instanceof Error && !thrown.message.endsWith('(see error.payload)')) return undefined;
  const variant = witError(thrown);
  if (!variant) return undefined;
  let detail = variant.val;
  const resource = detail as { toDebugString?: () => unknown } | undefined;
  if (typeof resource?.toDebugString === 'function') {
    try {
      detail = resource.toDebugString();
    } catch {
      // A resource already dropped: its case alone says what failed.
      detail = undefined;
    }
  }
  return `WIT error ${variant.tag}${typeof detail === 'string' && detail !== '' ? `: ${detail}` : ''}`;
}

/** Calls a Stratum import and turns a thrown WIT error into a CapabilityError that names it. */
export function call<T>(capability: string, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (thrown) {
    throw toCapabilityError(capability, what, thrown);
  }
}

export function toCapabilityError(capability: string, what: string, thrown: unknown): Error {
  if (thrown instanceof CapabilityError) return thrown;
  const variant = witError(thrown);
  if (!variant) return ownError(thrown);
  const detail = typeof variant.val === 'string' && variant.val !== '' ? `: ${variant.val}` : '';
  return new CapabilityError(capability, variant.tag, `${capability} ${what} failed (${variant.tag}${detail})`);
}

/** A value as an argument check names it: `a string`, `an object`, `an array`, `a Date`, `null`. */
export function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a Date';
  return typeof value === 'object' ? 'an object' : typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`;
}

/** Whether a value is an Error, whichever global made it. */
export function isErrorLike(value: unknown): value is Error {
  return value instanceof Error || Object.prototype.toString.call(value) === '[object Error]';
}

/**
 * The capsule's own Error for one thrown in componentize-js's bindings, which run in another
 * global: a `TypeError` there is no `instanceof TypeError` here, and `catch (e) { if (e instanceof
 * TypeError) ... }` in the capsule missed it. Made here, its frames are the capsule's call.
 */
function ownError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (!isErrorLike(thrown)) return new Error(String(thrown));
  const Kind = thrown.name === 'TypeError' ? TypeError : thrown.name === 'RangeError' ? RangeError : Error;
  return new Kind(thrown.message);
}

/**
 * An uncaught error as a developer needs it: its name and message, then where it was thrown.
 * SpiderMonkey's `stack` holds only the frames (V8's starts with the message), so printing the
 * stack alone showed where a capsule failed but not why.
 */
export function describeError(error: unknown): string {
  // SpiderMonkey's out-of-memory exception is this bare string, which says nothing of the limit.
  if (error === 'out of memory') {
    return "uncaught out of memory: the JavaScript heap could not grow within the instance's memory limit ([resources] memory in stratum.toml)";
  }
  const wit = witErrorText(error);
  if (wit !== undefined) return `uncaught ${wit}`;
  // An Error of another global (the bindings' TypeError for an argument of the wrong type) is
  // described as one: String() gave its message alone, without its frames.
  if (!isErrorLike(error)) return `uncaught ${typeof error === 'string' ? JSON.stringify(error) : String(error)}`;
  return errorWithFrames(error, 0);
}

/** How many causes deep `errorWithFrames` follows `cause`, in case causes loop. */
const CAUSES_SHOWN = 4;

/** An Error's name and message, its frames, and its `cause`s after it, as Node.js prints them. */
export function errorWithFrames(error: Error, depth = 0): string {
  const heading = `${error.name}: ${error.message}`;
  const stack = capsuleFrames(error.stack ?? '');
  let text = stack.startsWith(heading) ? stack : `${heading}\n${stack}`.trimEnd();
  const cause: unknown = error.cause;
  if (cause !== undefined && depth < CAUSES_SHOWN) {
    const shown =
      witErrorText(cause) ??
      (isErrorLike(cause) ? errorWithFrames(cause, depth + 1) : typeof cause === 'string' ? JSON.stringify(cause) : String(cause));
    text += `\ncaused by: ${shown}`;
  }
  return text;
}

/**
 * A frame of the HTTP adapter's entry function, `stratumHandle` (http.ts), as SpiderMonkey writes
 * it (`stratumHandle@file:1:2`, `async*stratumHandle@...` after an await) or V8 (`    at stratumHandle (`).
 */
const ADAPTER_FRAME = /^(?:async\*|\s+at (?:async )?)?stratumHandle[@ ]/;

/**
 * The frames above the adapter's entry: the capsule's own, and the SDK's when the error came
 * from inside it. Below it are only componentize-js's bindings and the engine calling it, which
 * name files of the build machine and say nothing about the capsule.
 */
function capsuleFrames(stack: string): string {
  const lines = stack.split('\n').filter((line) => !BINDINGS_FRAME.test(line));
  const entry = lines.findIndex((line) => ADAPTER_FRAME.test(line));
  return lines.slice(0, entry === -1 ? lines.length : entry).join('\n');
}

/**
 * A frame in componentize-js's bindings, which the engine runs as `initializer.js` from a
 * directory of the build machine: a path that says nothing to the capsule's author, above the
 * capsule's own frames when a binding refuses an argument (its message names the call).
 */
const BINDINGS_FRAME = /^[^@]*@\/.*\/initializer\.js:\d+:\d+$/;
