import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from '@bytecodealliance/jco';
import { silentLogger } from '@stratum/core';
import { fakeInstance } from '../fake-instance.ts';
import { sqliteKeyValue } from './backends/sqlite.ts';
import { keyValueImports } from './bindings.ts';
import type { KeyValueStore } from './types.ts';

const CABI_LOWER = Symbol.for('cabiLower');

type Lowered = (...args: number[]) => void;
type Bucket = { get(key: string): unknown; set(key: string, value: Uint8Array): unknown; [Symbol.dispose](): void };

/** The same store answering with promises, as Redis and NATS do. */
function asynchronousStore(store: KeyValueStore): KeyValueStore {
  return new Proxy(store, {
    get: (target, name) => {
      const member = Reflect.get(target, name);
      return typeof member === 'function' ? async (...args: unknown[]) => member.apply(target, args) : member;
    },
  });
}

async function setup(t: { after(fn: () => unknown): void }, synchronous = true) {
  const dataDir = mkdtempSync(join(tmpdir(), 'stratum-kv-abi-'));
  const backend = sqliteKeyValue({ dataDir, limits: { maxKeys: 3 } });
  t.after(async () => {
    await backend.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const store = await backend.open({ capsule: 'abi', label: 'default' });
  const quota: string[] = [];
  const imports = keyValueImports({
    stores: new Map([['default', synchronous ? store : asynchronousStore(store)]]),
    logger: silentLogger,
    onQuota: (message) => quota.push(message),
    synchronous,
  });
  const { Bucket, open } = imports['stratum:keyvalue/store'] as {
    Bucket: { prototype: Record<string, Record<symbol, ((lowering: unknown) => Lowered) | undefined>> };
    open(label: string): Bucket;
  };
  return { store, quota, open, lower: (method: string) => Bucket.prototype[method]?.[CABI_LOWER] };
}

const encode = (text: string) => new TextEncoder().encode(text);

test('keyvalue get and set at the canonical ABI: results, options and error variants laid out as jco reads them', async (t) => {
  const { store, quota, open, lower } = await setup(t);
  const guest = fakeInstance();
  const get = lower('get')?.(guest.lowering);
  const set = lower('set')?.(guest.lowering);
  assert.ok(get && set);
  const bucket = open('default');
  const handle = guest.handle(bucket);

  const key = encode('k✓');
  const value = new Uint8Array([0, 1, 255]);
  const valuePtr = guest.put(value);
  let out = guest.out();
  set(handle, guest.put(key), key.length, valuePtr, value.length, out);
  assert.equal(guest.view().getUint8(out), 0, 'ok');
  new Uint8Array(guest.lowering.memory.buffer, valuePtr, value.length).fill(9);
  assert.deepEqual(store.get('k✓'), value, 'the backend got a copy, not a view of guest memory');

  out = guest.out();
  get(handle, guest.put(key), key.length, out);
  let view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getUint8(out + 4)], [0, 1], 'ok(some(...))');
  assert.deepEqual(guest.bytes(view.getUint32(out + 8, true), view.getUint32(out + 12, true)), value);

  out = guest.out();
  get(handle, guest.put(encode('missing')), 7, out);
  view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getUint8(out + 4)], [0, 0], 'ok(none)');

  out = guest.out();
  get(handle, guest.put(encode('')), 0, out);
  view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getUint8(out + 4)], [1, 3], 'err(other(...))');
  assert.equal(guest.textAt(out + 8), 'invalid key: a key must not be empty');

  for (const extra of ['a', 'b']) store.set(extra, value);
  out = guest.out();
  set(handle, guest.put(encode('c')), 1, guest.put(value), value.length, out);
  view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getUint8(out + 4)], [1, 2], 'err(limit-exceeded(...))');
  assert.equal(guest.textAt(out + 8), 'the store holds 3 keys, its quota');
  assert.deepEqual(quota, ['the store holds 3 keys, its quota'], 'quota refusals are reported as through the glue');

  out = guest.out();
  set(handle, guest.put(encode('empty')), 5, guest.put(new Uint8Array()), 0, out);
  assert.equal(guest.view().getUint8(out), 1, 'still over quota');
  store.delete('a');
  set(handle, guest.put(encode('empty')), 5, guest.put(new Uint8Array()), 0, out);
  get(handle, guest.put(encode('empty')), 5, out);
  view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getUint8(out + 4), view.getUint32(out + 12, true)], [0, 1, 0], 'ok(some([]))');

  bucket[Symbol.dispose]();
  assert.throws(() => get(handle, guest.put(key), key.length, guest.out()), /unknown resource/, 'a dropped handle is gone');
});

test('keyvalue get and set at the canonical ABI on an asynchronous backend suspend the guest (JSPI) and write the same layouts', async (t) => {
  const { store, open, lower } = await setup(t, false);
  const guest = fakeInstance();
  const get = lower('get')?.(guest.lowering);
  const set = lower('set')?.(guest.lowering);
  assert.ok(get && set);
  assert.ok(!(get instanceof Function) && !(set instanceof Function), 'wrapped in WebAssembly.Suspending');
  // A core module that calls the imports from a promising export, as a JSPI-transpiled component does.
  const wat = `(module
    (import "env" "memory" (memory 1 64))
    (import "env" "get" (func $get (param i32 i32 i32 i32)))
    (import "env" "set" (func $set (param i32 i32 i32 i32 i32 i32)))
    (func (export "get") (param i32 i32 i32 i32) (call $get (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
    (func (export "set") (param i32 i32 i32 i32 i32 i32)
      (call $set (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4) (local.get 5))))`;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(await parse(wat)), {
    env: { memory: guest.lowering.memory, get: get as unknown as WebAssembly.ImportValue, set: set as unknown as WebAssembly.ImportValue },
  });
  const promising = (name: string) => WebAssembly.promising(instance.exports[name] as (...args: number[]) => void);
  const handle = guest.handle(open('default'));

  const key = encode('k');
  const value = new Uint8Array([4, 5, 6]);
  let out = guest.out();
  await promising('set')(handle, guest.put(key), key.length, guest.put(value), value.length, out);
  assert.equal(guest.view().getUint8(out), 0);
  assert.deepEqual(store.get('k'), value);

  out = guest.out();
  await promising('get')(handle, guest.put(key), key.length, out);
  let view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getUint8(out + 4)], [0, 1]);
  assert.deepEqual(guest.bytes(view.getUint32(out + 8, true), view.getUint32(out + 12, true)), value);

  out = guest.out();
  await promising('get')(handle, guest.put(encode('')), 0, out);
  view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getUint8(out + 4)], [1, 3], 'a rejected call is err(other(...))');
  assert.equal(guest.textAt(out + 8), 'invalid key: a key must not be empty');
});
