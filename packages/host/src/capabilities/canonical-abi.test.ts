import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { GuestMemory } from './canonical-abi.ts';
import { fakeInstance } from './fake-instance.ts';

test('writeString encodes into an allocation of exactly the UTF-8 length, whatever the text', () => {
  const { lowering, memory, out } = fakeInstance();
  const sizes: number[] = [];
  const realloc = (old: number, oldSize: number, align: number, size: number) => {
    sizes.push(size);
    return lowering.realloc(old, oldSize, align, size);
  };
  const guest = new GuestMemory({ ...lowering, realloc });
  // Any UTF-16, lone surrogates too: both sides write them as U+FFFD.
  const units = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)), maxLength: 40 });
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), units), (text) => {
      const at = out();
      sizes.length = 0;
      guest.writeString(at, text);
      const view = new DataView(memory.buffer);
      const ptr = view.getUint32(at, true);
      const length = view.getUint32(at + 4, true);
      const expected = new TextEncoder().encode(text);
      assert.deepEqual(sizes, [expected.length]);
      assert.equal(length, expected.length);
      assert.deepEqual(new Uint8Array(memory.buffer, ptr, length), expected);
    }),
  );
});

test('writeString is right when the allocation grows the memory', () => {
  const { lowering, memory, out } = fakeInstance();
  const guest = new GuestMemory(lowering);
  const at = out();
  const text = `${'é'.repeat(40_000)}ok`;
  guest.writeString(at, text);
  const view = new DataView(memory.buffer);
  assert.equal(new TextDecoder().decode(new Uint8Array(memory.buffer, view.getUint32(at, true), view.getUint32(at + 4, true))), text);
});

test('passingBytes and bytes are copies the guest cannot change afterwards', () => {
  const { lowering, memory, put } = fakeInstance();
  const guest = new GuestMemory(lowering);
  for (const size of [0, 5, 4096, 20_000]) {
    const source = Uint8Array.from({ length: size }, (_, index) => index % 251);
    const ptr = put(source);
    const passing = guest.passingBytes(ptr, size);
    const kept = guest.bytes(ptr, size);
    new Uint8Array(memory.buffer, ptr, size).fill(0xff);
    assert.deepEqual(new Uint8Array(passing), source);
    assert.deepEqual(kept, source);
    assert.notEqual(passing.buffer, memory.buffer);
  }
});
