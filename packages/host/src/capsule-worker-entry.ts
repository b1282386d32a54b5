/**
 * A capsule worker's first module: turns on V8's code cache for everything the worker loads
 * next (the runtime's modules, the capabilities, jco's glue), so a new instance does not parse
 * and compile them again, then loads the worker proper. It imports nothing else statically: a
 * static import would be compiled before the cache is on.
 */
import { enableCompileCache } from 'node:module';
import { workerData } from 'node:worker_threads';

const boot = workerData as { compileCacheDir?: string; init?: { compileCacheDir?: string } };
const cacheDir = boot.compileCacheDir ?? boot.init?.compileCacheDir;
if (cacheDir) enableCompileCache(cacheDir);
await import('./capsule-worker.ts');
