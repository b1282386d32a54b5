import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runInContext, runInNewContext } from 'node:vm';
import { leanBindings } from './lean-bindings.ts';

// The shapes componentize-js 0.23 generates, written out here: a string encoder that measures a
// character at a time, and a lowered call logged on its way in and out.
const GENERATED = `const TEXT_DECODER_UTF8 = new TextDecoder();
const TEXT_ENCODER_UTF8 = new TextEncoder();
function _utf8AllocateAndEncode(s, realloc, memory) {
  if (typeof s !== 'string') {
    throw new TypeError('expected a string, received [' + typeof s + ']');
  }
  if (s.length === 0) { return { ptr: 1, len: 0 }; }
  let len = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch < 0x80) { len += 1; }
    else if (ch < 0x800) { len += 2; }
    else if (ch >= 0xd800 && ch <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { len += 4; i++; }
    else { len += 3; }
  }
  const ptr = realloc(0, 0, 1, len);
  const { read, written } = TEXT_ENCODER_UTF8.encodeInto(s, new Uint8Array(memory.buffer, ptr, len));
  if (read !== s.length || written !== len) {
    throw new Error('failed to encode whole string');
  }
  const res = { ptr, len };
  return res;
}

const _debugLog = (...args) => {
  if (!globalThis?.process?.env?.JCO_DEBUG) { return; }
  console.debug(...args);
};

function lowered(arg0) {
  var encodeRes = _utf8AllocateAndEncode(arg0, $realloc, $memory);
  _debugLog('[Instruction::CallWasm] enter', {
    funcName: 'normalize',
    paramCount: 3,
    async: false,
    postReturn: true,
  });
  const ret = $call(encodeRes.ptr, encodeRes.len);
  _debugLog('[Instruction::Return]', {
    funcName: 'normalize',
    paramCount: 1,
    async: false,
    postReturn: true
  });
  return ret;
}
`;

/** The bindings' encoder, the script run in a context of its own as the engine runs it, against a memory of its own. */
function encoderOf(code: string) {
  const memory = { buffer: new ArrayBuffer(1 << 16) };
  let next = 8;
  const realloc = (_old: number, _oldLen: number, _align: number, size: number) => {
    const ptr = next;
    next += size;
    return ptr;
  };
  const script = runInNewContext(`${code}\n;globalThis`, { TextEncoder, TextDecoder }) as Record<string, unknown>;
  const encode = script._utf8AllocateAndEncode as (s: string, r: typeof realloc, m: typeof memory) => { ptr: number; len: number };
  assert.equal(typeof encode, 'function');
  return (text: string) => {
    const { ptr, len } = encode(text, realloc, memory);
    return { ptr, bytes: [...new Uint8Array(memory.buffer, ptr, len)] };
  };
}

test('the per-call debug logs go, and the encoder copies a string without measuring it a character at a time', () => {
  const lean = leanBindings(GENERATED);
  assert.equal(lean.removedLogs, 2);
  assert.equal(lean.encoder, true);
  assert.doesNotMatch(lean.code, /_debugLog\('\[Instruction/);
  assert.match(lean.code, /const _debugLog = /, 'the logger itself stays, for the calls that remain');
  assert.doesNotMatch(lean.code.slice(lean.code.indexOf('function _utf8AllocateAndEncode')), /charCodeAt/);
  assert.match(lean.code, /const ret = \$call\(encodeRes\.ptr, encodeRes\.len\);/);
  // The same bytes for every kind of string, lone surrogates included (U+FFFD both ways).
  const [stock, thin] = [encoderOf(GENERATED), encoderOf(lean.code)];
  for (const text of ['', 'a', 'héllo', '€uro', '😀 ok', 'a\ud800b', '\udc00', 'x'.repeat(5000)]) {
    const [before, after] = [stock(text), thin(text)];
    assert.deepEqual(after.bytes, before.bytes, JSON.stringify(text.slice(0, 20)));
    if (text === '') assert.equal(after.ptr, 1, 'an empty string is at pointer 1, with nothing allocated');
  }
  assert.throws(() => thin(42 as unknown as string), /^TypeError: expected a string, received a number$/);
});

// A function and a resource method as the splicer writes them, each encoding a string argument.
const CALLS = `${GENERATED}
function import_wasi_logging_logging_0_1_0_draft$log(arg0, arg1, arg2) {
  var encodeRes = _utf8AllocateAndEncode(arg1, $realloc, $memory);
  var encodeRes = _utf8AllocateAndEncode(arg2, $realloc, $memory);
  _debugLog('[Instruction::CallWasm] enter', {
    funcName: 'log',
    paramCount: 5,
    async: false,
    postReturn: false,
  });
  return [arg0, encodeRes];
}
class import_store_0_1_0$Bucket {
  get(arg0) {
    function helper(arg0, arg1) {
      var encodeRes = _utf8AllocateAndEncode(arg1, $realloc, $memory);
      _debugLog('[Instruction::CallWasm] enter', {
        funcName: '[method]bucket.get',
        paramCount: 3,
        async: false,
        postReturn: true,
      });
      return encodeRes;
    }
    return helper(this, arg0);
  }
}
`;

test('a string argument of another type is a TypeError naming the WIT function and the argument, not only what it received', () => {
  const lean = leanBindings(CALLS, ['wasi:logging/logging@0.1.0-draft', 'stratum:keyvalue/store@0.1.0', 'wasi:config/store@0.2.0-draft']);
  assert.equal(lean.named, 4);
  const memory = { buffer: new ArrayBuffer(1 << 16) };
  const context = { TextEncoder, TextDecoder, $realloc: () => 8, $memory: memory, $call: () => 0 };
  runInNewContext(lean.code, context);
  const global = context as unknown as Record<string, unknown>;
  const log = global.import_wasi_logging_logging_0_1_0_draft$log as (...args: unknown[]) => unknown;
  assert.throws(
    () => log('info', '', { id: 7 }),
    (error: Error) =>
      error.name === 'TypeError' &&
      error.message === 'wasi:logging/logging@0.1.0-draft log, argument 3: expected a string, received an object',
  );
  assert.throws(
    () => log('info', undefined, 'm'),
    /^TypeError: wasi:logging\/logging@0\.1\.0-draft log, argument 2: expected a string, received undefined$/,
  );
  const Bucket = global.import_store_0_1_0$Bucket as new () => { get(key: unknown): unknown };
  assert.throws(
    () => new Bucket().get(42),
    /^TypeError: stratum:keyvalue\/store@0\.1\.0 \[method\]bucket\.get, argument 1: expected a string, received a number$/,
  );
  // Strings still go through.
  assert.doesNotThrow(() => log('info', 'notes', 'hello'));
});

test('bindings of another shape are left as they are', () => {
  const other = GENERATED.replaceAll('charCodeAt', 'codePointAt').replace(
    /_debugLog\('\[Instruction::Return\]'/,
    "_debugLog('[Instruction::Exit]'",
  );
  const lean = leanBindings(other);
  assert.equal(lean.encoder, false);
  assert.equal(lean.removedLogs, 1);
  assert.match(lean.code, /_debugLog\('\[Instruction::Exit\]'/);
  assert.ok(lean.code.includes(other.slice(other.indexOf('function _utf8AllocateAndEncode'), other.indexOf('\nconst _debugLog'))));
});

// The shape of the rest: the engine's globals read at the top level, resource classes whose
// methods nest a helper, a function nesting one at the same indentation as the tail's, an export
// the engine calls by name, and the splicer's indented tail.
const SCRIPT = `let { TextEncoder, TextDecoder } = contentGlobal;
let repTable = new Map();
let [$memory, $call] = $bindings;
delete globalThis.$bindings;
class import_types$Fields {
  entries() {
    function helper(arg0) {
      return $call(arg0) + repTable.size;
    }
    return helper(1);
  }
}
function import_poll(arg0) {
  function lift(value) { return value + 1; }
  return lift(arg0);
}
async function export_handler$handle(arg0) {
  return incomingHandle(new import_types$Fields(), import_poll(arg0));
}
defineBuiltinModule('wasi:http/types', { Fields: import_types$Fields });
  let incomingHandle;
  function bindExports(sourceName) {
    incomingHandle = $source_mod.handle;
    repTable.set('source', sourceName);
  }
`;

function engine() {
  const modules = new Map<string, unknown>();
  const context = {
    contentGlobal: { TextEncoder, TextDecoder },
    $bindings: [{ buffer: new ArrayBuffer(8) }, (value: number) => value * 10],
    defineBuiltinModule: (name: string, value: unknown) => modules.set(name, value),
    $source_mod: { handle: (fields: { entries(): number }, arg: number) => fields.entries() + arg },
  };
  return { context, modules };
}

test('the bindings run inside one function: their names are closure variables, and what the engine calls is on the global', async () => {
  const lean = leanBindings(SCRIPT);
  assert.deepEqual(lean.globals.sort(), ['bindExports', 'export_handler$handle', 'import_poll', 'import_types$Fields', 'lift']);
  const { context, modules } = engine();
  runInNewContext(lean.code, context);
  const global = context as unknown as Record<string, unknown>;
  assert.equal(typeof global.bindExports, 'function');
  assert.equal(typeof global.export_handler$handle, 'function');
  assert.equal(global.$bindings, undefined, 'the top level still ran: it deleted $bindings');
  assert.ok(modules.has('wasi:http/types'));
  assert.equal(typeof global.import_poll, 'function', 'a top-level function stays a global, as in a script');
  // The script's own other names are no longer globals, and no nested function was put on the global.
  for (const name of ['repTable', '$memory', '$call', 'incomingHandle', 'helper', 'lift'])
    assert.equal(runInContext(`typeof ${name}`, global), 'undefined', name);
  (global.bindExports as (name: string) => void)('capsule.js');
  assert.equal(await (global.export_handler$handle as (arg: number) => Promise<number>)(5), 10 + 1 + 6);

  // As componentize-js makes it, the same script leaves every one of those names global.
  const stock = engine();
  runInNewContext(SCRIPT, stock.context);
  assert.equal(runInContext('typeof repTable', stock.context), 'object');
});

// Resource methods as the splicer writes them: a helper made and called on every call.
const METHODS = `class import_types$Fields {
  get(arg0) {
    function helper(arg0, arg1) {
      var handle0 = arg0[symbolRscHandle];
      var rsc1 = new.target === import_types$Fields ? this : Object.create(import_types$Fields.prototype);
      return [handle0, arg1, rsc1 instanceof import_types$Fields];
    }
    return helper(this, arg0);
  }
  entries() {
    function helper(arg0) {
      return arg0[symbolRscHandle] * 2;
    }
    return helper(this);
  }
  swapped(arg0, arg1) {
    function helper(arg0, arg1, arg2) {
      return [arg1, arg2];
    }
    return helper(this, arg1, arg0);
  }
  counted(arg0) {
    function helper(arg0, arg1) {
      return arguments.length;
    }
    return helper(this, arg0);
  }
}
const symbolRscHandle = Symbol('handle');
function make(handle) {
  const fields = Object.create(import_types$Fields.prototype);
  fields[symbolRscHandle] = handle;
  return fields;
}
`;

test("resource methods run their helper's body in place, where that keeps what they do", () => {
  const lean = leanBindings(METHODS);
  assert.equal(lean.inlined, 2, 'get and entries; not the method passing its arguments out of order, nor the one reading `arguments`');
  assert.equal(lean.code.match(/function helper\(/g)?.length, 2);
  const run = (code: string) => {
    const context: Record<string, unknown> = {};
    runInNewContext(`${code}\n;globalThis.fields = make(21);`, context);
    const fields = context.fields as Record<string, (...args: unknown[]) => unknown>;
    // Through JSON: the values are the other context's arrays.
    return JSON.parse(JSON.stringify([fields.get?.('accept'), fields.entries?.(), fields.swapped?.('a', 'b'), fields.counted?.('x')]));
  };
  assert.deepEqual(run(lean.code), run(METHODS));
  assert.deepEqual(run(lean.code), [[21, 'accept', true], 42, ['b', 'a'], 2]);
});

test('bindings the rewrites would leave unparsable are left as componentize-js made them', () => {
  const broken = `${SCRIPT}\nfunction unfinished(arg0) {\n`;
  const lean = leanBindings(broken);
  assert.equal(lean.code, broken);
  assert.deepEqual([lean.removedLogs, lean.encoder, lean.globals, lean.inlined, lean.finalization], [0, false, [], 0, 0]);
});

// A resource's life as the splicer writes it: registered for finalization when made, taken out
// when dropped.
const LIFE = `const dropped = [];
const symbolRscHandle = Symbol('handle');
const finalizationRegistry_import$types$fields = new FinalizationRegistry((handle) => {
  dropped.push(handle);
});
class import_types$Fields {
  static dropped() {
    return dropped;
  }
  static make(handle) {
    var rsc0 = Object.create(import_types$Fields.prototype);
    Object.defineProperty(rsc0, symbolRscHandle, { writable: true, value: handle});
    finalizationRegistry_import$types$fields.register(rsc0, handle, rsc0);
    return rsc0;
  }
  [Symbol.dispose]() {
    finalizationRegistry_import$types$fields.unregister(this);
    dropped.push(this[symbolRscHandle]);
    this[symbolRscHandle] = undefined;
  }
}
`;

test('resources are not registered for finalization; dropping one still drops its handle', () => {
  const lean = leanBindings(LIFE);
  assert.equal(lean.finalization, 2);
  assert.doesNotMatch(lean.code, /\.(?:un)?register\(/);
  assert.match(lean.code, /new FinalizationRegistry/, 'the registries stay, unused');
  const context: Record<string, unknown> = {};
  runInNewContext(lean.code, context);
  const dropped = runInNewContext('import_types$Fields.make(7)[Symbol.dispose](); import_types$Fields.dropped()', context);
  assert.deepEqual(JSON.parse(JSON.stringify(dropped)), [7]);
});
