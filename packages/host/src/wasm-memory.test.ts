import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from '@bytecodealliance/jco';
import { isStratumError } from '@stratum/core';
import fc from 'fast-check';
import {
  applyMemoryCaps,
  capMemory,
  HOST_MEMORY_IMPORT,
  hostedMemories,
  MAX_TABLE_ELEMENTS,
  prepareMemoryCaps,
  WASM_PAGE,
} from './wasm-memory.ts';

async function instantiate(wat: string, maxBytes: number, imports?: WebAssembly.Imports): Promise<Record<string, unknown>> {
  const module = await WebAssembly.compile(capMemory(await parse(wat), maxBytes));
  return new WebAssembly.Instance(module, imports).exports;
}

test('a memory without a maximum gets the cap as its maximum', async () => {
  const exports = await instantiate(
    '(module (memory (export "m") 1) (func (export "f") (result i32) (memory.grow (i32.const 100))))',
    4 * WASM_PAGE,
  );
  const memory = exports.m as WebAssembly.Memory;
  // Growing from inside the module past the cap fails the way the guest expects: -1.
  assert.equal((exports.f as () => number)(), -1);
  assert.equal(memory.grow(3), 1);
  assert.throws(() => memory.grow(1), RangeError);
});

test('a lower maximum is kept, and other sections still work', async () => {
  const exports = await instantiate(
    '(module (memory (export "m") 1 2) (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))',
    10 * WASM_PAGE,
  );
  assert.equal((exports.add as (a: number, b: number) => number)(2, 3), 5);
  const memory = exports.m as WebAssembly.Memory;
  assert.equal(memory.grow(1), 1);
  assert.throws(() => memory.grow(1), RangeError);
});

test('an imported memory is capped too, and the other import kinds are read past intact', async () => {
  const wat =
    '(module (import "env" "f" (func)) (import "env" "mem" (memory 1 100)) (global (import "env" "g") i32) (table (import "env" "t") 1 funcref))';
  const env = () => ({ f: () => {}, g: 1, t: new WebAssembly.Table({ initial: 1, element: 'anyfunc' }) });
  const roomy = new WebAssembly.Memory({ initial: 1, maximum: 4 });
  await instantiate(wat, 4 * WASM_PAGE, { env: { ...env(), mem: roomy } });
  // Capped at 2 pages, the import no longer accepts a memory that may grow to 4.
  await assert.rejects(instantiate(wat, 2 * WASM_PAGE, { env: { ...env(), mem: roomy } }), WebAssembly.LinkError);
  await instantiate(wat, 2 * WASM_PAGE, { env: { ...env(), mem: new WebAssembly.Memory({ initial: 1, maximum: 2 }) } });
});

test('a prepared module is capped in place, again and again, keeping a lower maximum it declared', async () => {
  const wat =
    '(module (import "env" "mem" (memory 1 3)) (memory $m (export "m") 1) (func (export "f") (result i32) (memory.grow $m (i32.const 1))))';
  const { bytes, slots } = prepareMemoryCaps(await parse(wat));
  assert.deepEqual(
    slots.map(({ where, min, max }) => ({ where, min, max })),
    [
      { where: 'an imported memory', min: 1, max: 3 },
      { where: 'memory 0', min: 1, max: undefined },
    ],
  );
  const pagesAfterGrowing = async (capPages: number) => {
    applyMemoryCaps(bytes, slots, capPages * WASM_PAGE);
    const module = await WebAssembly.compile(bytes);
    const mem = new WebAssembly.Memory({ initial: 1, maximum: Math.min(3, capPages) });
    const exports = new WebAssembly.Instance(module, { env: { mem } }).exports as { f: () => number; m: WebAssembly.Memory };
    while (exports.f() !== -1);
    return exports.m.buffer.byteLength / WASM_PAGE;
  };
  assert.equal(await pagesAfterGrowing(2), 2);
  assert.equal(await pagesAfterGrowing(7), 7);
  assert.equal(await pagesAfterGrowing(4), 4);
  // The import's own maximum (3) is lower than the cap: a memory that may grow to 4 is refused.
  applyMemoryCaps(bytes, slots, 10 * WASM_PAGE);
  const roomy = new WebAssembly.Memory({ initial: 1, maximum: 4 });
  assert.throws(() => new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: roomy } }), WebAssembly.LinkError);
});

test('an imported memory without a maximum is left open, but its initial size is still checked', async () => {
  const { bytes, slots } = prepareMemoryCaps(await parse('(module (import "env" "mem" (memory 3)))'));
  assert.equal(slots[0]?.offset, undefined);
  applyMemoryCaps(bytes, slots, 3 * WASM_PAGE);
  new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: new WebAssembly.Memory({ initial: 3 }) } });
  assert.throws(() => applyMemoryCaps(bytes, slots, 2 * WASM_PAGE), /an imported memory needs 196608 bytes/);
});

const hostMemory = (memory: WebAssembly.Memory) => ({ [HOST_MEMORY_IMPORT.module]: { [HOST_MEMORY_IMPORT.name]: memory } });

test("with hostMemory, a module's own memory is imported from the host, capped, and its data pages are named", async () => {
  const wat = `(module
    (import "env" "one" (func $one (result i32)))
    (memory (export "m") 2 10)
    (data (i32.const 70000) "abc")
    (data (i32.const 70002) "xyz")
    (data (i32.const 120000) "far")
    (data "passive")
    (func (export "at") (param i32) (result i32) (i32.add (call $one) (i32.load8_u (local.get 0))))
    (func (export "grow") (result i32) (memory.grow (i32.const 1))))`;
  const { bytes, slots } = prepareMemoryCaps(await parse(wat), { hostMemory: true });
  // Two overlapping segments make one range of whole pages; the third its own.
  assert.deepEqual(slots, [
    {
      where: 'memory 0',
      min: 2,
      max: 10,
      offset: slots[0]?.offset,
      hosted: {
        touch: [
          [69632, 73728],
          [118784, 122880],
        ],
      },
    },
  ]);
  applyMemoryCaps(bytes, slots, 3 * WASM_PAGE);
  const module = new WebAssembly.Module(bytes);
  assert.deepEqual(
    WebAssembly.Module.imports(module).map(({ module, name, kind }) => `${module}.${name}:${kind}`),
    ['env.one:function', `${HOST_MEMORY_IMPORT.module}.${HOST_MEMORY_IMPORT.name}:memory`],
  );
  const plan = hostedMemories({ 'm.wasm': slots }, 3 * WASM_PAGE)['m.wasm'];
  assert.deepEqual(plan, {
    initial: 2,
    maximum: 3,
    touch: [
      [69632, 73728],
      [118784, 122880],
    ],
  });
  const memory = new WebAssembly.Memory({ initial: plan?.initial ?? 0, maximum: plan?.maximum ?? 0 });
  const exports = new WebAssembly.Instance(module, { env: { one: () => 1 }, ...hostMemory(memory) }).exports as {
    at: (offset: number) => number;
    grow: () => number;
    m: WebAssembly.Memory;
  };
  // The data segments landed in the host's memory, which the module exports as its own.
  assert.equal(exports.m, memory);
  assert.equal(exports.at(70000), 1 + 'a'.charCodeAt(0));
  assert.equal(exports.at(70004), 1 + 'z'.charCodeAt(0));
  // The cap holds: one page more, then no more.
  assert.equal(exports.grow(), 2);
  assert.equal(exports.grow(), -1);
  // A memory that may grow past the cap does not link.
  const roomy = new WebAssembly.Memory({ initial: 2, maximum: 10 });
  assert.throws(() => new WebAssembly.Instance(module, { env: { one: () => 1 }, ...hostMemory(roomy) }), WebAssembly.LinkError);
});

test('with hostMemory, a module without imports gets an import section, and other modules keep their memories', async () => {
  const { bytes, slots } = prepareMemoryCaps(
    await parse(
      '(module (type (func (result i32))) (memory (export "m") 1) (data (i32.const 5) "a") (func (export "f") (type 0) (i32.load8_u (i32.const 5))))',
    ),
    { hostMemory: true },
  );
  assert.deepEqual(slots[0]?.hosted, { touch: [[0, 4096]] });
  applyMemoryCaps(bytes, slots, 4 * WASM_PAGE);
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
  const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), hostMemory(memory)).exports as { f: () => number };
  assert.equal(exports.f(), 'a'.charCodeAt(0));
  for (const wat of [
    '(module (import "env" "mem" (memory 1)) (func (export "f")))',
    '(module (memory 1) (memory 1))',
    '(module (memory 1 2 shared))',
    '(module (memory i64 1))',
    `(module (import "${HOST_MEMORY_IMPORT.module}" "f" (func)) (memory 1))`,
  ]) {
    const prepared = prepareMemoryCaps(await parse(wat), { hostMemory: true });
    assert.ok(
      prepared.slots.every((slot) => slot.hosted === undefined),
      `${wat} had its memory made an import`,
    );
    assert.ok(
      !WebAssembly.Module.imports(new WebAssembly.Module(prepared.bytes)).some(
        (entry) => entry.kind === 'memory' && entry.module === HOST_MEMORY_IMPORT.module,
      ),
    );
  }
});

test('a module that starts above the cap is refused with a clear error', async () => {
  assert.throws(
    () => capMemory(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0, 20]), 10 * WASM_PAGE),
    (error: unknown) => {
      assert.ok(isStratumError(error));
      assert.equal(error.code, 'MEMORY_OVER_LIMIT');
      assert.match(error.message, /1310720 bytes of memory at start, over its limit of 655360/);
      return true;
    },
  );
});

test("every table is capped at MAX_TABLE_ELEMENTS, a lower maximum kept, and the module's own tables counted", async () => {
  const wat = `(module
    (import "env" "t" (table 1 1000000 funcref))
    (import "env" "open" (table 1 externref))
    (table $free 1 funcref)
    (table $small 2 10 funcref)
    (elem (table $free) (i32.const 0) func $f)
    (func $f (result i32) (i32.const 7))
    (func (export "call") (result i32) (call_indirect $free (result i32) (i32.const 0)))
    (func (export "grow") (param i32) (result i32) (table.grow $free (ref.null func) (local.get 0)))
    (func (export "growSmall") (result i32) (table.grow $small (ref.null func) (i32.const 9))))`;
  const prepared = prepareMemoryCaps(await parse(wat));
  assert.equal(prepared.tableElements, MAX_TABLE_ELEMENTS + 10);
  const env = {
    open: new WebAssembly.Table({ initial: 1, element: 'externref' }),
    t: new WebAssembly.Table({ initial: 1, maximum: MAX_TABLE_ELEMENTS, element: 'anyfunc' }),
  };
  const exports = new WebAssembly.Instance(await WebAssembly.compile(prepared.bytes), { env }).exports as Record<
    string,
    (n?: number) => number
  >;
  // Its element segment still lands, and growing stops at the cap as the guest expects: -1.
  assert.equal(exports.call?.(), 7);
  assert.equal(exports.grow?.(MAX_TABLE_ELEMENTS - 1), 1);
  assert.equal(exports.grow?.(1), -1);
  assert.equal(exports.growSmall?.(), -1);
  // The import's maximum is the cap now: a table that may grow further is not accepted.
  const roomy = new WebAssembly.Table({ initial: 1, maximum: 1_000_000, element: 'anyfunc' });
  const module = await WebAssembly.compile(prepared.bytes);
  assert.throws(() => new WebAssembly.Instance(module, { env: { ...env, t: roomy } }), WebAssembly.LinkError);
});

test('a table that starts above MAX_TABLE_ELEMENTS is refused with a clear error', async () => {
  assert.throws(
    () => prepareMemoryCaps(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 4, 7, 1, 0x70, 0, 0x80, 0xad, 0xe2, 0x04])),
    (error: unknown) =>
      isStratumError(error) &&
      error.code === 'WASM_TABLE_OVER_LIMIT' &&
      error.message === `table 0 needs 10000000 elements at start, over the limit of ${MAX_TABLE_ELEMENTS}`,
  );
});

test('fuzz: any bytes either come back capped or fail with a StratumError', () => {
  const header = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(2, 4, 5, 1, 10), fc.integer({ min: 0, max: 100 }), (tail, id, pages) => {
      const bytes = new Uint8Array([...header, id, tail.length, ...tail]);
      try {
        const out = capMemory(bytes, pages * WASM_PAGE);
        assert.ok(out instanceof Uint8Array);
        const hosted = prepareMemoryCaps(bytes, { hostMemory: true });
        applyMemoryCaps(hosted.bytes, hosted.slots, pages * WASM_PAGE);
      } catch (error) {
        assert.ok(isStratumError(error), `unexpected ${String(error)}`);
      }
    }),
    { numRuns: 2000 },
  );
});
