/**
 * For tests of the canonical-ABI lowerings (canonical-abi.ts): a stand-in for a component
 * instance as jco's glue presents it to a `cabiLower` function. A memory, a bump `cabi_realloc`
 * that grows the memory on every call (so a view kept across an allocation is detached and fails
 * loudly), and a handle table.
 */
const CABI_REP = Symbol.for('cabiRep');

export function fakeInstance() {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 64 });
  let top = 8;
  const realloc = (_old: number, _oldSize: number, align: number, size: number) => {
    top = Math.ceil(top / align) * align;
    const ptr = top;
    top += size;
    memory.grow(Math.max(0, Math.ceil((top - memory.buffer.byteLength) / 65536)));
    return ptr;
  };
  const table: number[] = [0, 0];
  const view = () => new DataView(memory.buffer);
  const text = (ptr: number, len: number) => new TextDecoder().decode(new Uint8Array(memory.buffer, ptr, len));
  return {
    memory,
    realloc,
    lowering: { memory, realloc, resourceTables: [table] },
    /** A handle for a resource the host handed out, as jco's tables record it. */
    handle(resource: object) {
      table.push(0, ((resource as Record<symbol, number>)[CABI_REP] ?? 0) | (1 << 30));
      return table.length / 2 - 1;
    },
    /** Copies bytes into the guest's memory; returns where. */
    put(bytes: Uint8Array, align = 1) {
      const ptr = realloc(0, 0, align, bytes.length);
      new Uint8Array(memory.buffer, ptr, bytes.length).set(bytes);
      return ptr;
    },
    /** A return area. */
    out: () => realloc(0, 0, 8, 32),
    view,
    bytes: (ptr: number, len: number) => new Uint8Array(memory.buffer, ptr, len).slice(),
    text,
    /** The string whose pointer and length are stored at `at`. */
    textAt: (at: number) => text(view().getUint32(at, true), view().getUint32(at + 4, true)),
  };
}
