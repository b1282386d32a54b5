import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lowerPattern, lowerPropertyEscapes, stringProperties } from './unicode-properties.ts';

const SAMPLES = ['héllo123', 'ÄÖÜß', '日本語', '😀 x', 'a-b_c', ' \t', 'İı', 'e\u0301', 'αβγ def', '١٢٣', ''];

test('a lowered pattern matches what the property escape matched, in and out of classes, negated, and with other flags', () => {
  for (const [pattern, flags] of [
    ['[\\p{L}\\p{N}]+', 'u'],
    ['^\\P{L}+$', 'u'],
    ['[^\\p{L}]', 'gu'],
    ['[\\P{N}x]+', 'u'],
    ['\\p{Script=Greek}+', 'u'],
    ['\\p{Extended_Pictographic}', 'u'],
    ['\\p{Lu}', 'iu'],
    ['(?<word>\\p{Letter}+)\\s\\p{Nd}*', 'u'],
  ] as const) {
    const lowered = lowerPattern(pattern);
    assert.ok(lowered !== undefined && !/\\[pP]\{/.test(lowered), pattern);
    const native = new RegExp(pattern, flags);
    const ranges = new RegExp(lowered, flags);
    for (const sample of SAMPLES) {
      assert.deepEqual(sample.match(ranges), sample.match(native), `${pattern} on ${JSON.stringify(sample)}`);
    }
  }
});

test('what is not a property escape Node.js knows is left alone', () => {
  assert.equal(lowerPattern('\\\\p{L}'), undefined, 'an escaped backslash, then the letters p{L}');
  assert.equal(lowerPattern('\\p{NoSuchProperty}'), undefined);
  assert.equal(lowerPattern('[a-z]+\\d'), undefined);
});

test('only regular expression literals with the u (or v) flag change; strings, division and other flags do not', () => {
  const code = [
    'const a = /[\\p{L}\\p{N}]/u, half = x / 2 / y;',
    "const s = '\\\\p{L}', t = `\\\\P{N}`;",
    'const plain = /\\p{L}/g;',
    'function f(z) { return /\\P{L}/gu.test(z); }',
  ].join('\n');
  const { code: lowered, lowered: count } = lowerPropertyEscapes(code, 'script');
  assert.equal(count, 2);
  const lines = lowered.split('\n');
  assert.match(lines[0] ?? '', /^const a = \/\[(\\u\{[0-9a-f]+\}(-\\u\{[0-9a-f]+\})?)+\]\/u, half = x \/ 2 \/ y;$/);
  assert.equal(lines[1], "const s = '\\\\p{L}', t = `\\\\P{N}`;");
  assert.equal(lines[2], 'const plain = /\\p{L}/g;');
  assert.match(lines[3] ?? '', /^function f\(z\) \{ return \/\[\^(\\u\{[0-9a-f]+\}(-\\u\{[0-9a-f]+\})?)+\]\/gu\.test\(z\); \}$/);
  // Code without any is returned as it was, without being read.
  assert.deepEqual(lowerPropertyEscapes('const a = 1 / 2;', 'module'), { code: 'const a = 1 / 2;', lowered: 0, unreadable: [] });
});

test('a v-flag pattern is lowered to nested classes, which its set operations take: the same matches, with i too', () => {
  for (const [pattern, flags] of [
    ['[\\p{L}--[a-z]]', 'v'],
    ['[\\p{L}&&\\p{Script=Greek}]+', 'v'],
    ['^[\\P{L}\\d]+$', 'v'],
    ['\\p{Lu}', 'iv'],
    ['[^\\p{Ll}]', 'iv'],
    ['\\P{Ll}+', 'giv'],
    ['[[\\p{N}--\\p{Nd}]\\q{ab|c}]', 'v'],
    ['(?<word>\\p{Letter}+)\\s[\\p{Nd}--[0-4]]*', 'v'],
  ] as const) {
    const lowered = lowerPattern(pattern, true);
    assert.ok(lowered !== undefined && !/\\[pP]\{/.test(lowered), pattern);
    const native = new RegExp(pattern, flags);
    const ranges = new RegExp(lowered, flags);
    for (const sample of [...SAMPLES, 'ABCabc', 'Σσς', '½٣5', 'ab c']) {
      assert.deepEqual(sample.match(ranges), sample.match(native), `${pattern}/${flags} on ${JSON.stringify(sample)}`);
    }
  }
});

test("v-flag literals are lowered; a property of strings, which has no ranges, is named with the literal's place", () => {
  const code = 'const a = /[\\p{L}--[a-z]]/v;\nconst emoji = /^\\p{RGI_Emoji}+$/v, b = /\\p{Emoji_Keycap_Sequence}|\\p{N}/gv;\n';
  const { code: lowered, lowered: count, unreadable } = lowerPropertyEscapes(code, 'module');
  assert.equal(count, 2);
  assert.match(lowered.split('\n')[0] ?? '', /^const a = \/\[\[(\\u\{[0-9a-f]+\}(-\\u\{[0-9a-f]+\})?)+\]--\[a-z\]\]\/v;$/);
  assert.deepEqual(unreadable, [
    { start: code.indexOf('/^'), literal: '/^\\p{RGI_Emoji}+$/v', properties: ['RGI_Emoji'] },
    { start: code.indexOf('/\\p{Emoji_K'), literal: '/\\p{Emoji_Keycap_Sequence}|\\p{N}/gv', properties: ['Emoji_Keycap_Sequence'] },
  ]);
  assert.deepEqual(stringProperties('\\\\p{RGI_Emoji}[\\p{L}]'), []);
});
