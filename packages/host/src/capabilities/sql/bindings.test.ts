import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from '@bytecodealliance/jco';
import { silentLogger } from '@stratum/core';
import { fakeInstance } from '../fake-instance.ts';
import { sqliteSql } from './backends/sqlite.ts';
import { sqlImports } from './bindings.ts';
import type { SqlDatabase } from './types.ts';

const CABI_LOWER = Symbol.for('cabiLower');

/** The shared fake instance, with the SQL interface's arguments and results. */
function sqlInstance() {
  const guest = fakeInstance();
  const { view, put, realloc, memory, text } = guest;
  return {
    ...guest,
    /** A string argument: pointer and length. */
    str(value: string): [number, number] {
      const bytes = new TextEncoder().encode(value);
      return [put(bytes), bytes.length];
    },
    /** A `list<value>` argument, written the way the guest's bindings write it. */
    values(values: { tag: string; val?: unknown }[]): [number, number] {
      const base = realloc(0, 0, 8, values.length * 16);
      values.forEach((value, i) => {
        const at = base + i * 16;
        const cases = ['null', 'integer', 'real', 'text', 'blob'];
        view().setUint8(at, cases.indexOf(value.tag));
        if (value.tag === 'integer') view().setBigInt64(at + 8, value.val as bigint, true);
        if (value.tag === 'real') view().setFloat64(at + 8, value.val as number, true);
        if (value.tag === 'text' || value.tag === 'blob') {
          const bytes = value.tag === 'text' ? new TextEncoder().encode(value.val as string) : (value.val as Uint8Array);
          const ptr = put(bytes);
          view().setUint32(at + 8, ptr, true);
          view().setUint32(at + 12, bytes.length, true);
        }
      });
      return [base, values.length];
    },
    /** Reads a `list<value>` the host wrote. */
    readValues(ptr: number, len: number) {
      return Array.from({ length: len }, (_, i) => {
        const at = ptr + i * 16;
        const tag = ['null', 'integer', 'real', 'text', 'blob'][view().getUint8(at)];
        if (tag === 'integer') return { tag, val: view().getBigInt64(at + 8, true) };
        if (tag === 'real') return { tag, val: view().getFloat64(at + 8, true) };
        const [p, l] = [view().getUint32(at + 8, true), view().getUint32(at + 12, true)];
        if (tag === 'text') return { tag, val: text(p, l) };
        if (tag === 'blob') return { tag, val: new Uint8Array(memory.buffer, p, l).slice() };
        return { tag };
      });
    },
  };
}

type Lowered = (...args: number[]) => void;

async function setup(t: { after(fn: () => unknown): void }, synchronous = true) {
  const dataDir = mkdtempSync(join(tmpdir(), 'stratum-sql-abi-'));
  const backend = sqliteSql({ dataDir });
  t.after(async () => {
    await backend.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const opened = await backend.open({ capsule: 'abi', label: 'default' });
  // The same database answering with promises, as PostgreSQL does.
  const db: SqlDatabase = synchronous
    ? opened
    : { ...opened, query: async (sql, params) => opened.query(sql, params), execute: async (sql, params) => opened.execute(sql, params) };
  const imports = sqlImports({ databases: new Map([['default', db]]), logger: silentLogger, synchronous });
  const { Connection, open } = imports['stratum:sql/database'] as {
    Connection: { prototype: Record<string, Record<symbol, ((lowering: unknown) => Lowered) | undefined>> };
    open(label: string): { [Symbol.dispose](): void };
  };
  return { open, lower: (method: string) => Connection.prototype[method]?.[CABI_LOWER] };
}

test('sql query and execute at the canonical ABI: values of every type, outcomes and error variants as jco reads them', async (t) => {
  const { open, lower } = await setup(t);
  const guest = sqlInstance();
  const query = lower('query')?.(guest.lowering);
  const execute = lower('execute')?.(guest.lowering);
  assert.ok(query && execute);
  const connection = open('default');
  const handle = guest.handle(connection);

  let out = guest.out();
  execute(
    handle,
    ...guest.str('CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT UNIQUE, b BLOB, n TEXT)'),
    ...guest.values([]),
    out,
  );
  let view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getBigUint64(out + 8, true), view.getUint8(out + 16)], [0, 0n, 0], 'ok, no rows, no key');

  const row = [
    { tag: 'integer', val: 7n },
    { tag: 'integer', val: -9223372036854775808n },
    { tag: 'real', val: -0.25 },
    { tag: 'text', val: 'héllo ✓ 😀' },
    { tag: 'blob', val: new Uint8Array([0, 1, 255]) },
    { tag: 'null' },
  ];
  out = guest.out();
  execute(handle, ...guest.str('INSERT INTO t (id, i, r, s, b, n) VALUES (?, ?, ?, ?, ?, ?)'), ...guest.values(row), out);
  view = guest.view();
  assert.deepEqual(
    [view.getUint8(out), view.getBigUint64(out + 8, true), view.getUint8(out + 16), view.getBigInt64(out + 24, true)],
    [0, 1n, 1, 7n],
    'ok, one row, some(7)',
  );

  out = guest.out();
  query(handle, ...guest.str('SELECT id, i, r, s, b, n AS "ß" FROM t WHERE id = ?'), ...guest.values([{ tag: 'integer', val: 7n }]), out);
  view = guest.view();
  assert.equal(view.getUint8(out), 0);
  const [columnsPtr, columnsLen] = [view.getUint32(out + 4, true), view.getUint32(out + 8, true)];
  const columns = Array.from({ length: columnsLen }, (_, i) =>
    guest.text(guest.view().getUint32(columnsPtr + i * 8, true), guest.view().getUint32(columnsPtr + i * 8 + 4, true)),
  );
  assert.deepEqual(columns, ['id', 'i', 'r', 's', 'b', 'ß']);
  const [rowsPtr, rowsLen] = [view.getUint32(out + 12, true), view.getUint32(out + 16, true)];
  assert.equal(rowsLen, 1);
  assert.equal(view.getUint32(rowsPtr, true) % 8, 0, 'values are 8-aligned');
  assert.deepEqual(guest.readValues(view.getUint32(rowsPtr, true), view.getUint32(rowsPtr + 4, true)), row);

  out = guest.out();
  query(handle, ...guest.str('SELECT s FROM t WHERE id = -1'), ...guest.values([]), out);
  view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getUint32(out + 8, true), view.getUint32(out + 16, true)], [0, 1, 0], 'one column, no rows');

  out = guest.out();
  query(handle, ...guest.str('SELEKT 1'), ...guest.values([]), out);
  view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getUint8(out + 4)], [1, 2], 'err(invalid-query(...))');
  assert.match(guest.text(view.getUint32(out + 8, true), view.getUint32(out + 12, true)), /syntax error/);

  out = guest.out();
  execute(handle, ...guest.str('INSERT INTO t (s) VALUES (?)'), ...guest.values([{ tag: 'text', val: 'héllo ✓ 😀' }]), out);
  view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getUint8(out + 8)], [1, 3], 'err(constraint-violation(...)), payload aligned to 8');
  assert.match(guest.text(view.getUint32(out + 12, true), view.getUint32(out + 16, true)), /UNIQUE/);

  connection[Symbol.dispose]();
  assert.throws(() => query(handle, ...guest.str('SELECT 1'), ...guest.values([]), guest.out()), /unknown resource/);
});

test('sql query and execute at the canonical ABI on an asynchronous backend suspend the guest (JSPI)', async (t) => {
  const { open, lower } = await setup(t, false);
  const guest = sqlInstance();
  const query = lower('query')?.(guest.lowering);
  const execute = lower('execute')?.(guest.lowering);
  assert.ok(query && execute);
  assert.ok(!(query instanceof Function) && !(execute instanceof Function), 'wrapped in WebAssembly.Suspending');
  // A core module that calls the imports from a promising export, as a JSPI-transpiled component does.
  const wat = `(module
    (import "env" "memory" (memory 1 64))
    (import "env" "query" (func $query (param i32 i32 i32 i32 i32 i32)))
    (import "env" "execute" (func $execute (param i32 i32 i32 i32 i32 i32)))
    (func (export "query") (param i32 i32 i32 i32 i32 i32)
      (call $query (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4) (local.get 5)))
    (func (export "execute") (param i32 i32 i32 i32 i32 i32)
      (call $execute (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4) (local.get 5))))`;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(await parse(wat)), {
    env: {
      memory: guest.lowering.memory,
      query: query as unknown as WebAssembly.ImportValue,
      execute: execute as unknown as WebAssembly.ImportValue,
    },
  });
  const call = (name: string, ...args: number[]) => WebAssembly.promising(instance.exports[name] as (...args: number[]) => void)(...args);
  const handle = guest.handle(open('default'));

  let out = guest.out();
  await call('execute', handle, ...guest.str('CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)'), ...guest.values([]), out);
  assert.equal(guest.view().getUint8(out), 0);
  out = guest.out();
  await call('execute', handle, ...guest.str('INSERT INTO t (s) VALUES (?)'), ...guest.values([{ tag: 'text', val: 'x' }]), out);
  let view = guest.view();
  assert.deepEqual(
    [view.getUint8(out), view.getBigUint64(out + 8, true), view.getUint8(out + 16), view.getBigInt64(out + 24, true)],
    [0, 1n, 1, 1n],
  );
  out = guest.out();
  await call('query', handle, ...guest.str('SELECT s FROM t'), ...guest.values([]), out);
  view = guest.view();
  const [rowsPtr, rowsLen] = [view.getUint32(out + 12, true), view.getUint32(out + 16, true)];
  assert.equal(rowsLen, 1);
  assert.deepEqual(guest.readValues(view.getUint32(rowsPtr, true), view.getUint32(rowsPtr + 4, true)), [{ tag: 'text', val: 'x' }]);
  out = guest.out();
  await call('query', handle, ...guest.str('SELECT nope FROM t'), ...guest.values([]), out);
  view = guest.view();
  assert.deepEqual([view.getUint8(out), view.getUint8(out + 4)], [1, 2], 'a rejected call is err(invalid-query(...))');
});
