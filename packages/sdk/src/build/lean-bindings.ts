// What componentize-js's generated bindings (the JavaScript that lowers each WIT call inside
// StarlingMonkey) spend on every call that does nothing for a capsule, removed before the
// component is made. Those bindings run in the engine's interpreter, where each statement
// counts: every call to the host built two object literals for `_debugLog`, which returns at
// once unless `process.env.JCO_DEBUG` is set (a capsule has no `process`), every string
// argument was measured a character at a time before TextEncoder copied it, every name the
// bindings declared was a global, looked up by name at each use (`enclosed`), every method of a
// resource made a function to call (`inlinedHelpers`), and every resource made was registered for
// finalization, which kept memory until a full collection (`unregistered`).

import { Script } from 'node:vm';

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
const LEAN_ENCODER = `function _utf8AllocateAndEncode(s, realloc, memory, where) {
  if (typeof s !== 'string') {
    const given = s === null ? 'null' : Array.isArray(s) ? 'an array' : typeof s === 'object' ? 'an object' : typeof s === 'undefined' ? 'undefined' : 'a ' + typeof s;
    throw new TypeError((where ? where + ': ' : '') + 'expected a string, received ' + given);
  }
  if (s.length === 0) { return { ptr: 1, len: 0 }; }
  const bytes = TEXT_ENCODER_UTF8.encode(s);
  const ptr = realloc(0, 0, 1, bytes.length);
  new Uint8Array(memory.buffer, ptr, bytes.length).set(bytes);
  return { ptr, len: bytes.length };
}`;

/** A call of the generated encoder with the name of the value it encodes. */
const ENCODE_CALL = /_utf8AllocateAndEncode\(([\w$]+), \$realloc, \$memory\)/g;

/** Where a function or class of the bindings starts: column 0, as the splicer writes them. */
const TOP_LEVEL_START = /^(?:function ([\w$]+)\(|class ([\w$]+) )/gm;

/** The name of the WIT function the next lowered call is to, in the call's debug log. */
const CALLED_FUNCTION = /_debugLog\('\[Instruction::CallWasm\] enter', \{\s*funcName: '([^']+)'/g;

/** An interface as the bindings name it: every character not a letter or a digit an underscore. */
const mangled = (name: string) => name.replace(/[^A-Za-z0-9]/g, '_');

/**
 * The interface a binding's function or resource class is of. Functions carry the whole name
 * (`import_wasi_logging_logging_0_1_0_draft$log`), resource classes only the interface's last
 * part and version (`import_store_0_1_0$Bucket`), matched against the world's interfaces.
 */
function interfaceOf(binding: string, interfaces: readonly string[]): string | undefined {
  const match = /^(?:import|export)_(.+)\$[^$]+$/.exec(binding);
  if (!match) return undefined;
  const name = match[1] as string;
  return (
    interfaces.find((candidate) => mangled(candidate) === name) ??
    interfaces.find((candidate) => mangled(candidate.slice(candidate.indexOf('/') + 1)) === name)
  );
}

/**
 * Each call of the string encoder with what it encodes for, as an error names it: `wasi:logging/
 * logging@0.1.0-draft log, argument 3`, `stratum:keyvalue/store@0.1.0 [method]bucket.get,
 * argument 1`. Its TypeError said only "expected a string, received [object]", with no frame a
 * capsule's author could tell from the bindings'. `interfaces` are the world's, for the names.
 */
function namedEncodes(code: string, interfaces: readonly string[]): { code: string; named: number } {
  const starts = Array.from(code.matchAll(TOP_LEVEL_START), (match) => ({
    at: match.index,
    name: (match[1] ?? match[2]) as string,
    method: match[2] !== undefined,
  }));
  const calls = Array.from(code.matchAll(CALLED_FUNCTION), (match) => ({ at: match.index, name: match[1] as string }));
  let named = 0;
  const rewritten = code.replace(ENCODE_CALL, (whole, value: string, at: number) => {
    let start: (typeof starts)[number] | undefined;
    for (const candidate of starts) if (candidate.at < at) start = candidate;
    if (!start) return whole;
    const end = starts.find((candidate) => candidate.at > at)?.at ?? code.length;
    const called = calls.find((candidate) => candidate.at > at && candidate.at < end)?.name;
    if (!called) return whole;
    const iface = interfaceOf(start.name, interfaces);
    const index = /^arg(\d+)$/.exec(value);
    // A method's arg0 is the resource; its first argument is arg1.
    const argument = index ? `argument ${Number(index[1]) + (start.method ? 0 : 1)}` : 'a string within its arguments';
    named++;
    return `_utf8AllocateAndEncode(${value}, $realloc, $memory, ${JSON.stringify(`${iface ? `${iface} ` : ''}${called}, ${argument}`)})`;
  });
  return { code: rewritten, named };
}

export interface LeanBindings {
  code: string;
  /** How many per-call debug logs went, and whether the encoder was replaced: a test checks both. */
  removedLogs: number;
  encoder: boolean;
  /** The functions and classes put back on the global object from the enclosing function. */
  globals: string[];
  /** How many resource methods had their helper inlined. */
  inlined: number;
  /** How many finalization registrations and unregistrations went. */
  finalization: number;
  /** How many calls of the string encoder name what they encode for. */
  named: number;
}

/** A function or class declared at the top level: the generated code indents those by 0 or 2. */
const TOP_LEVEL_DECLARATION = /^ {0,2}(?:(?:async[ \t]+)?function[ \t]*\*?[ \t]*|class[ \t]+)([A-Za-z_$][\w$]*)/gm;

/**
 * The bindings as the body of one arrow function instead of the top level of a script.
 * StarlingMonkey runs them as a classic script, where every name they declare (the memory, the
 * handle tables, the resource classes, the helpers: dozens of uses in one call to the host) is a
 * global, found by name at each use in SpiderMonkey's interpreter, which has no inline caches;
 * inside a function they are closure variables, read by slot. Measured in a capsule calling the
 * host in a loop (`method()` 1.55 -> 1.33 us, `headers().entries()` of three headers 19.9-22.6
 * -> 17.3-17.6 us), and in examples/hello's whole `handle` under load (fastest 112-114 -> 107-109
 * us; with a browser's request headers 220-223 -> 205-211 us). The engine finds `bindExports`
 * and the `export_*` functions on the global object, as a script's top-level functions are, so
 * each function and class declared at the top level is put back there. `typeof` tells which of
 * the names found are in scope: a function nested in another and indented the same way is not,
 * and is left alone.
 */
function enclosed(code: string): { code: string; globals: string[] } {
  const globals = [...new Set(Array.from(code.matchAll(TOP_LEVEL_DECLARATION), (match) => match[1] as string))];
  const putBack = globals.map((name) => `if (typeof ${name} === 'function') globalThis.${name} = ${name};`).join('\n');
  return { code: `(() => {\n${code}\n${putBack}\n})();\n`, globals };
}

/**
 * A resource method as the bindings generate it: a `helper` function made on every call, then
 * called with the resource as its first argument and the method's own arguments after it.
 */
const METHOD_WITH_HELPER =
  /^ {2}([A-Za-z_$][\w$]*)\(([^)]*)\) \{\n {4}function helper\((arg0(?:, [^)]*)?)\) \{\n([\s\S]*?)\n {4}\}\n {4}return helper\(this((?:, [^)]*)?)\);\n {2}\}/gm;

const parameterNames = (list: string | undefined) =>
  (list ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');

/**
 * Each resource method with its helper's body in place of the helper: no function object made
 * and no extra call on every call to the host (in SpiderMonkey's interpreter both count). The
 * method takes the helper's names for its arguments and `arg0` is the resource, as it was. Only
 * where that keeps the meaning: the call passes the method's arguments in order, and the body
 * neither reads `arguments` nor declares one of those names again, nor uses `this` except in
 * the resource constructors' `new.target === X ? this : ...` (never true in a method). Returns
 * the code and how many methods it rewrote. In a capsule calling the host in a loop (fastest of
 * 5 runs of 500 calls, three hosts of each in turn): `method()` 1.30-1.40 -> 1.16-1.21 us.
 */
function inlinedHelpers(code: string): { code: string; inlined: number } {
  let inlined = 0;
  const rewritten = code.replace(
    METHOD_WITH_HELPER,
    (whole, name: string, params: string, helperParams: string, body: string, callArgs: string) => {
      const own = parameterNames(params);
      const [first, ...rest] = parameterNames(helperParams);
      const passed = parameterNames(callArgs);
      if (first !== 'arg0' || rest.length !== own.length || passed.join() !== own.join()) return whole;
      if (/\barguments\b/.test(body) || /\b(?:let|const|var|class|function)\s+arg\d+\b/.test(body)) return whole;
      if (/\bthis\b/.test(body.replace(/new\.target === [\w$]+ \? this :/g, ''))) return whole;
      inlined++;
      return `  ${name}(${rest.join(', ')}) {\n    const arg0 = this;\n${body}\n  }`;
    },
  );
  return { code: rewritten, inlined };
}

/** A resource put into, or taken out of, the finalization registry of its type: one statement a line. */
const FINALIZATION_CALL = /^[ \t]*finalizationRegistry_[\w$]+\.(?:register|unregister)\([\w$, ]*\);[ \t]*\n/gm;

/** `code` without every match of `pattern` (a global one), and how many there were. */
function withoutAll(code: string, pattern: RegExp): { code: string; removed: number } {
  let removed = 0;
  const rewritten = code.replace(pattern, () => {
    removed++;
    return '';
  });
  return { code: rewritten, removed };
}

/**
 * The bindings without their finalization registrations. They register every resource they make
 * with a FinalizationRegistry, so that one the capsule forgets is dropped once collected, and take
 * it out again at its first method call (so that this rarely happened); but SpiderMonkey keeps
 * every registration's record until a full collection, about 250 bytes a resource made: a JS
 * capsule's memory climbed under load (hello about 2 KiB a request) until its collector held it
 * near 94 MiB, and the host replaced an instance of the default class near its 128 MiB limit.
 * Without them a resource lives until the capsule drops it (`[Symbol.dispose]()`, as the SDK
 * does with each one it makes) or hands it on, or until the instance ends. Returns the code and
 * how many statements went.
 */
function unregistered(code: string): { code: string; removed: number } {
  return withoutAll(code, FINALIZATION_CALL);
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
 * componentize-js version) is left as it was, and so are the whole bindings if the result does
 * not parse: the component is then as componentize-js made it.
 */
export function leanBindings(code: string, interfaces: readonly string[] = []): LeanBindings {
  // Before the debug logs go: they name the WIT function each lowered call is to.
  const encodes = namedEncodes(code, interfaces);
  const logs = withoutAll(encodes.code, CALL_LOGS);
  const removedLogs = logs.removed;
  let lean = logs.code;
  let encoder = false;
  const start = lean.indexOf(ENCODER_HEAD);
  const end = start === -1 ? -1 : encoderEnd(lean, start);
  // The encoder the version we know generates: it declares TEXT_ENCODER_UTF8 and loops over charCodeAt.
  if (end !== -1 && lean.includes('const TEXT_ENCODER_UTF8 = new TextEncoder();') && lean.slice(start, end).includes('charCodeAt')) {
    lean = lean.slice(0, start) + LEAN_ENCODER + lean.slice(end);
    encoder = true;
  }
  const registrations = unregistered(lean);
  const methods = inlinedHelpers(registrations.code);
  const { code: body, globals } = enclosed(methods.code);
  // A rewrite that broke the script's syntax would fail the component at its first start; the
  // bindings as componentize-js made them are better than that.
  try {
    new Script(body);
  } catch {
    return { code, removedLogs: 0, encoder: false, globals: [], inlined: 0, finalization: 0, named: 0 };
  }
  // A named call passes a fourth argument, which the generated encoder, if it stayed, ignores.
  return {
    code: body,
    removedLogs,
    encoder,
    globals,
    inlined: methods.inlined,
    finalization: registrations.removed,
    named: encodes.named,
  };
}
