/**
 * A capsule worker's first module: turns on V8's code cache for everything the worker loads
 * next (the runtime's modules, the capabilities, jco's glue), so a new instance does not parse
 * and compile them again, then loads the worker proper. It imports nothing else statically: a
 * static import would be compiled before the cache is on.
 *
 * Plain JavaScript, not TypeScript: the cache also holds the type-stripped source of the `.ts`
 * modules, and a `.ts` entry would have to be stripped before the cache is on, which loads
 * Node.js's TypeScript stripper (a WebAssembly build of swc) into every thread: about 40 ms of
 * each new instance and 3 MiB of its memory (bench/README.md).
 */
import { enableCompileCache } from 'node:module';
import { workerData } from 'node:worker_threads';

/** @type {{ compileCacheDir?: string; init?: { compileCacheDir?: string } }} */
const boot = workerData;
const cacheDir = boot.compileCacheDir ?? boot.init?.compileCacheDir;
if (cacheDir) enableCompileCache(cacheDir);
await import('./capsule-worker.ts');
