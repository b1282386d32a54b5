// The WebAssembly JS API as the host uses it. TypeScript declares it only in its DOM lib, which
// this Node.js project does not load; these are the parts the runtime calls, after the
// WebAssembly JS API and JS Promise Integration specifications.
declare global {
  namespace WebAssembly {
    interface ModuleImportDescriptor {
      module: string;
      name: string;
      kind: 'function' | 'table' | 'memory' | 'global' | 'tag';
    }
    class Module {
      constructor(bytes: BufferSource);
      static imports(module: Module): ModuleImportDescriptor[];
    }
    class Instance {
      constructor(module: Module, imports?: Imports);
      readonly exports: Record<string, unknown>;
    }
    class Memory {
      constructor(descriptor: { initial: number; maximum?: number; shared?: boolean });
      readonly buffer: ArrayBuffer;
      grow(delta: number): number;
    }
    class Table {
      constructor(descriptor: { initial: number; maximum?: number; element: 'anyfunc' | 'externref' });
    }
    class RuntimeError extends Error {}
    class CompileError extends Error {}
    class LinkError extends Error {}
    type ImportValue = unknown;
    type Imports = Record<string, Record<string, ImportValue>>;
    function compile(bytes: BufferSource): Promise<Module>;
    function validate(bytes: BufferSource): boolean;
  }
}

export {};
