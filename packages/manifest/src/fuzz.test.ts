// Untrusted manifests: whatever the bytes, parsing ends in a manifest or a ManifestError whose
// every problem has a position and a message. Nothing else may escape (no TypeError, no
// RangeError, no hang).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { ManifestError, parseManifestBytes } from './parse.ts';

const examplesDir = new URL('../../../spec/capsule/examples/', import.meta.url);
const seeds = ['valid', 'invalid'].flatMap((kind) =>
  readdirSync(new URL(`${kind}/`, examplesDir))
    .filter((name) => name.endsWith('.toml'))
    .map((name) => new Uint8Array(readFileSync(new URL(`${kind}/${name}`, examplesDir)))),
);

const encoder = new TextEncoder();
const VALUES = [
  '1',
  '-0',
  '3.5',
  'inf',
  'nan',
  'true',
  '"x"',
  "''",
  '[]',
  '{}',
  '[1, "a"]',
  '{ a = 1 }',
  '1979-05-27T07:32:00Z',
  '07:32:00',
  '99999999999999999999',
  '0x1F',
  '"""\nmulti\n"""',
];

let runs = 0;

function check(bytes: Uint8Array): void {
  runs++;
  try {
    parseManifestBytes(bytes, 'fuzz.toml');
  } catch (error) {
    if (!(error instanceof ManifestError))
      throw new Error(`escaped: ${String(error)} for ${JSON.stringify(new TextDecoder().decode(bytes).slice(0, 200))}`);
    assert.ok(error.problems.length > 0);
    for (const problem of error.problems) {
      assert.ok(problem.line >= 1 && problem.column >= 1, JSON.stringify(problem));
      assert.ok(problem.message.length > 0 && problem.message.length < 2000);
    }
  }
}

const seed = fc.constantFrom(...seeds);

const mutation = fc.oneof(
  // random bytes, including invalid UTF-8
  { arbitrary: fc.uint8Array({ maxLength: 512 }), weight: 3 },
  // truncations
  { arbitrary: fc.tuple(seed, fc.nat()).map(([bytes, cut]) => bytes.slice(0, cut % (bytes.length + 1))), weight: 3 },
  // byte flips, insertions and deletions
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        seed,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 })), { minLength: 1, maxLength: 8 }),
      )
      .map(([bytes, edits]) => {
        const out = [...bytes];
        for (const [at, byte, kind] of edits) {
          const index = at % (out.length + 1);
          if (kind === 0) out[index] = byte;
          else if (kind === 1) out.splice(index, 0, byte);
          else out.splice(index, 1);
        }
        return new Uint8Array(out);
      }),
  },
  // a value of the wrong type somewhere
  {
    weight: 4,
    arbitrary: fc.tuple(seed, fc.nat(), fc.constantFrom(...VALUES)).map(([bytes, which, value]) => {
      const lines = new TextDecoder().decode(bytes).split('\n');
      const assignments = lines.map((line, index) => (/=/.test(line) ? index : -1)).filter((index) => index >= 0);
      const target = assignments[which % Math.max(assignments.length, 1)];
      if (target !== undefined) lines[target] = `${lines[target]?.split('=')[0]}= ${value}`;
      return encoder.encode(lines.join('\n'));
    }),
  },
  // deep nesting of arrays and inline tables
  fc
    .tuple(fc.integer({ min: 1, max: 20_000 }), fc.boolean())
    .map(([depth, arrays]) =>
      encoder.encode(
        arrays ? `stratum = ${'['.repeat(depth)}1${']'.repeat(depth)}\n` : `stratum = ${'{ a = '.repeat(depth)}1${' }'.repeat(depth)}\n`,
      ),
    ),
  // deep nesting by dotted keys and table headers, alone and inside inline tables
  fc.tuple(fc.integer({ min: 1, max: 60_000 }), fc.constantFrom('key', 'header', 'inline')).map(([depth, where]) => {
    const dotted = Array.from({ length: depth }, () => 'a').join('.');
    const text =
      where === 'key'
        ? `stratum = 1\n${dotted} = 1\n`
        : where === 'header'
          ? `stratum = 1\n[${dotted}]\nb = 1\n`
          : `stratum = 1\nx = { ${dotted} = 1 }\n`;
    return encoder.encode(text);
  }),
  // huge strings in every position a string goes
  fc
    .tuple(seed, fc.oneof(fc.integer({ min: 1000, max: 10_000 }), fc.constant(300_000)), fc.constantFrom('a', 'é', '\\u0000', '"', '\n'))
    .map(([bytes, size, char]) => {
      const text = new TextDecoder().decode(bytes);
      return encoder.encode(text.replace(/"[^"\n]*"/, `"${char.repeat(size / char.length)}"`));
    }),
  // many keys and tables
  fc
    .integer({ min: 1, max: 200 })
    .map((count) => encoder.encode(`stratum = 1\n${Array.from({ length: count }, (_, i) => `[t${i}]\nk = ${i}`).join('\n')}`)),
);

test('10,000 mutated manifests end in a clean result or a clean ManifestError', () => {
  fc.assert(
    fc.property(mutation, (bytes) => check(bytes)),
    { numRuns: 10_000, seed: Number(process.env.FUZZ_SEED ?? 20261125) },
  );
  assert.ok(runs >= 10_000);
});

test('every seed still parses or fails cleanly as it is', () => {
  for (const bytes of seeds) check(bytes);
});
