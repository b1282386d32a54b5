// Every capsule thread loads the capability modules its capsule uses, and a spare loads those
// of every installed capsule, so what they import is paid by each instance in time and memory.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { CAPABILITY_MODULES } from './index.ts';

/** Imports `modules` in a new thread and returns every module URL that was resolved on the way. */
async function loadedBy(modules: string[]): Promise<string[]> {
  const source = `
    import { registerHooks } from 'node:module';
    import { parentPort, workerData } from 'node:worker_threads';
    const seen = [];
    registerHooks({ resolve(specifier, context, next) { const result = next(specifier, context); seen.push(result.url); return result; } });
    for (const url of workerData) await import(url);
    parentPort.postMessage(seen);
  `;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(source)}`), { workerData: modules });
  try {
    return await new Promise<string[]>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  } finally {
    await worker.terminate();
  }
}

test('the capability modules load neither the manifest parser nor a backend client library', async () => {
  const seen = await loadedBy(CAPABILITY_MODULES.map((entry) => entry.module));
  // Sanity: the hook saw the capabilities themselves.
  assert.ok(seen.some((url) => url.endsWith('/capabilities/keyvalue/index.ts')));
  // The manifest package's index brings ajv, its schemas and a TOML parser (about 60 ms and
  // 2 MiB of every instance); the backends' libraries load only when a label uses them.
  const heavy =
    /\/packages\/manifest\/src\/index\.ts$|\/node_modules\/(ajv|toml-eslint-parser|ioredis|postgres|@nats-io|@aws-sdk|@smithy)\//;
  assert.deepEqual(
    seen.filter((url) => heavy.test(url)),
    [],
  );
});
