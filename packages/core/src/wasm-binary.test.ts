import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { appendCustomSection, readCustomSection } from './wasm-binary.ts';

// The smallest module with a section: one type, () -> ().
const MODULE = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00]);
const text = (bytes: Uint8Array | undefined) => (bytes ? new TextDecoder().decode(bytes) : undefined);

test('a custom section added to a binary reads back, and the binary stays valid', () => {
  const payload = new TextEncoder().encode('{"version":3}'.repeat(20));
  const withSection = appendCustomSection(MODULE, 'stratum:js-source-map', payload);
  assert.equal(WebAssembly.validate(withSection), true);
  assert.equal(text(readCustomSection(withSection, 'stratum:js-source-map')), '{"version":3}'.repeat(20));
  assert.equal(readCustomSection(withSection, 'other'), undefined);
  assert.equal(readCustomSection(MODULE, 'stratum:js-source-map'), undefined);
  // The first of two sections with the name.
  const twice = appendCustomSection(withSection, 'stratum:js-source-map', new Uint8Array([1]));
  assert.equal(WebAssembly.validate(twice), true);
  assert.equal(text(readCustomSection(twice, 'stratum:js-source-map')), '{"version":3}'.repeat(20));
});

test('a section that claims more bytes than there are, or a binary that is not one, reads as none', () => {
  const withSection = appendCustomSection(MODULE, 'name', new Uint8Array(300));
  assert.equal(readCustomSection(withSection.subarray(0, withSection.length - 1), 'name'), undefined);
  assert.equal(readCustomSection(new TextEncoder().encode('not wasm at all'), 'name'), undefined);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => {
      const bytes = new Uint8Array([...MODULE.subarray(0, 8), ...tail]);
      const found = readCustomSection(bytes, 'name');
      assert.ok(found === undefined || found instanceof Uint8Array);
    }),
  );
});
