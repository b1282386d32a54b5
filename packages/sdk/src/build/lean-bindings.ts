// What componentize-js's generated bindings (the JavaScript that lowers each WIT call inside
// StarlingMonkey) spend on every call that does nothing for a capsule, removed before the
// component is made. Those bindings run in the engine's interpreter, where each statement
// counts: every call to the host built two object literals for `_debugLog`, which returns at
// once unless `process.env.JCO_DEBUG` is set (a capsule has no `process`), and every string
// argument was measured a character at a time before TextEncoder copied it.

/** `_debugLog('[Instruction::CallWasm] enter', {...});` and `_debugLog('[Instruction::Return]', {...});` */
const CALL_LOGS = /_debugLog\('\[Instruction::(?:CallWasm\] enter|Return\])', \{[^{}]*\}\);/g;

/** The start of the generated string encoder, whose body is replaced whole. */
const ENCODER_HEAD = 'function _utf8AllocateAndEncode(s, realloc, memory) {';

/**
 * The same contract as the generated encoder (a string in, its UTF-8 bytes in guest memory from
 * `realloc`, `{ ptr, len }` out; an empty string at pointer 1), with the length taken from the
 * bytes TextEncoder made instead of a loop over the characters. Lone surrogates become U+FFFD as
 * before (`encodeInto` replaced them too).
 */
const LEAN_ENCODER = `function _utf8AllocateAndEncode(s, realloc, memory) {
  if (typeof s !== 'string') {
    throw new TypeError('expected a string, received [' + typeof s + ']');
  }
  if (s.length === 0) { return { ptr: 1, len: 0 }; }
  const bytes = TEXT_ENCODER_UTF8.encode(s);
  const ptr = realloc(0, 0, 1, bytes.length);
  new Uint8Array(memory.buffer, ptr, bytes.length).set(bytes);
  return { ptr, len: bytes.length };
}`;

export interface LeanBindings {
  code: string;
  /** How many per-call debug logs went, and whether the encoder was replaced: a test checks both. */
  removedLogs: number;
  encoder: boolean;
}

/** Ends of the generated encoder: the end of the function after its last `return res;`. */
function encoderEnd(code: string, start: number): number {
  const marker = code.indexOf('return res;', start);
  if (marker === -1) return -1;
  const close = code.indexOf('}', marker);
  return close === -1 ? -1 : close + 1;
}

/**
 * The bindings without their per-call waste. Anything not found as expected (another
 * componentize-js version) is left as it was: the component is then as componentize-js made it.
 */
export function leanBindings(code: string): LeanBindings {
  let removedLogs = 0;
  let lean = code.replace(CALL_LOGS, () => {
    removedLogs++;
    return '';
  });
  let encoder = false;
  const start = lean.indexOf(ENCODER_HEAD);
  const end = start === -1 ? -1 : encoderEnd(lean, start);
  // The encoder the version we know generates: it declares TEXT_ENCODER_UTF8 and loops over charCodeAt.
  if (end !== -1 && lean.includes('const TEXT_ENCODER_UTF8 = new TextEncoder();') && lean.slice(start, end).includes('charCodeAt')) {
    lean = lean.slice(0, start) + LEAN_ENCODER + lean.slice(end);
    encoder = true;
  }
  return { code: lean, removedLogs, encoder };
}
