import assert from 'node:assert/strict';
import { test } from 'node:test';
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

/** The module's encoder, run in Node.js against a memory of its own. */
function encoderOf(code: string) {
  const memory = { buffer: new ArrayBuffer(1 << 16) };
  let next = 8;
  const realloc = (_old: number, _oldLen: number, _align: number, size: number) => {
    const ptr = next;
    next += size;
    return ptr;
  };
  const start = code.indexOf('function _utf8AllocateAndEncode');
  const source = `${code.slice(0, code.indexOf('\nconst _debugLog'))}\nreturn _utf8AllocateAndEncode;`;
  assert.ok(start !== -1);
  const encode = new Function(source)() as (s: string, r: typeof realloc, m: typeof memory) => { ptr: number; len: number };
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
  assert.throws(() => thin(42 as unknown as string), /expected a string, received \[number\]/);
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
