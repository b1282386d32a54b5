// The modules' top-level code runs where there is no host to answer a capability: `stratum build`
// runs it once, inside componentize-js (wizer), and snapshots the heap it leaves; `stratum dev`
// runs it on an instance's first request, before that request is handed to the capsule. A store,
// database or bucket opened there cannot exist (in a build the engine traps, and the toolchain
// reports an "unknown imported function" with ten lines of wasm backtrace and no source line), and
// a config value read there would be the build machine's, baked into the component. So the SDK's
// capability entry points refuse while the top level runs, with an Error whose frames and heading
// name the caller's line; the build maps those to the sources, and the host does for `stratum dev`.

let topLevel = true;

/** The adapter (http.ts) calls this as each request begins: the top-level code has run by then. */
export function requestsBegun(): void {
  topLevel = false;
}

/** Whether the modules' top-level code is running: no request has begun on this instance. */
export function atTopLevel(): boolean {
  return topLevel;
}

/** A stack frame as SpiderMonkey writes it (`fn@file:1:2`) or V8 (`    at fn (file:1:2)`). */
const FRAME = /^(?:.*@|\s+at (?:.*\()?)(.+):(\d+):(\d+)\)?$/;

/**
 * Where the code that called the SDK's entry point is, from a stack taken in the function that
 * refuses: its frames are that function, the entry point, then the caller.
 */
export function callerOf(stack: string): { file: string; line: number; column: number } | undefined {
  const frames = stack.split('\n').flatMap((line) => {
    const match = FRAME.exec(line);
    return match ? [{ file: match[1] as string, line: Number(match[2]), column: Number(match[3]) }] : [];
  });
  return frames[2];
}

/**
 * Throws when the top-level code runs: `call` is what was called, as the capsule wrote it
 * (`openKeyValue("ratelimit")`), `lazily` the same open kept for later (`let kv; … kv ??= ...`).
 * Called directly by the SDK's entry point, so that the caller is two frames up.
 */
export function refuseAtTopLevel(call: string, lazily: string, why = 'where no key-value store, database, bucket or config exists'): void {
  if (!topLevel) return;
  const caller = callerOf(new Error().stack ?? '');
  const at = caller ? ` at ${caller.file}:${caller.line}:${caller.column}` : '';
  const message = `${call} was called by the modules' top-level code${at}, which runs once while the component is built (in stratum dev, before an instance's first request), ${why}: call it inside fetch(), or lazily, on first use (${lazily})`;
  // SpiderMonkey's Error takes a file and a line after the message, and heads its report with them:
  // the build's error then starts at the capsule's line, not at this one.
  const error = caller
    ? new (Error as new (message: string, file: string, line: number) => Error)(message, caller.file, caller.line)
    : new Error(message);
  if (caller && 'columnNumber' in error) {
    Object.defineProperty(error, 'columnNumber', { value: caller.column, writable: true, configurable: true });
  }
  throw error;
}
