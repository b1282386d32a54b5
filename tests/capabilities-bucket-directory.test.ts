// The directory backend's unfinished uploads when the thread writing them ends without a word: a
// capsule's worker is terminated mid-request when the capsule is stopped or passes a limit.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { directoryBucket } from '../packages/host/src/capabilities/bucket/backends/directory.ts';

const DIRECTORY_MODULE = new URL('../packages/host/src/capabilities/bucket/backends/directory.ts', import.meta.url).href;

function tempRoot(t: TestContext): string {
  const root = mkdtempSync(join(tmpdir(), 'stratum-bucket-uploads-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

/** Every file under the bucket's uploads folder: the bytes of unfinished uploads. */
function unfinished(root: string): string[] {
  const uploads = join(root, 'capsule', 'default', 'uploads');
  return readdirSync(uploads, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && !/\.lock(ing)?$/.test(entry.name))
    .map((entry) => entry.name);
}

/**
 * A thread like a capsule's worker that starts an upload, writes to it and then waits to be
 * terminated (listening keeps it alive: a thread left with nothing to do ends, and its uploads
 * rightly go), holding the upload (the guest's handle) but not the bucket or the backend, and
 * collecting its garbage: the upload alone must keep its file.
 */
async function uploadingThread(root: string): Promise<Worker> {
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
    require('node:v8').setFlagsFromString('--expose-gc');
    const gc = require('node:vm').runInNewContext('gc');
    import(workerData.module).then(async ({ directoryBucket }) => {
      const bucket = await directoryBucket({ root: workerData.root }).open({ capsule: 'capsule', label: 'default' });
      globalThis.upload = bucket.startUpload('video.mp4');
      globalThis.upload.write(new Uint8Array(1000));
    }).then(async () => {
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      parentPort.on('message', () => {});
      parentPort.postMessage('written');
    });`,
    { eval: true, workerData: { root, module: DIRECTORY_MODULE } },
  );
  await once(worker, 'message');
  return worker;
}

test('directory bucket: an upload whose thread was terminated goes when the bucket is next opened, and not while the thread lives', async (t) => {
  const root = tempRoot(t);
  const worker = await uploadingThread(root);
  assert.equal(unfinished(root).length, 1);

  // Another instance opens the bucket meanwhile: the upload is still being written.
  const sibling = directoryBucket({ root });
  await sibling.open({ capsule: 'capsule', label: 'default' });
  await sibling.close();
  assert.equal(unfinished(root).length, 1);

  await worker.terminate();
  const next = directoryBucket({ root });
  const bucket = await next.open({ capsule: 'capsule', label: 'default' });
  assert.deepEqual(unfinished(root), []);
  assert.deepEqual(readdirSync(join(root, 'capsule', 'default', 'uploads')), [], 'and the lock with it');
  assert.equal(bucket.head('video.mp4'), undefined);
  await next.close();
});

test('directory bucket: aborted, dropped-on-close and failed uploads leave no file', async (t) => {
  const root = tempRoot(t);
  const backend = directoryBucket({ root, limits: { maxObjectBytes: 1500 } });
  const bucket = await backend.open({ capsule: 'capsule', label: 'default' });
  const aborted = bucket.startUpload('aborted') as ReturnType<typeof bucket.startUpload> & { abort(): void; write(c: Uint8Array): void };
  aborted.write(new Uint8Array(100));
  aborted.abort();
  const tooLarge = bucket.startUpload('too-large') as { write(c: Uint8Array): void };
  tooLarge.write(new Uint8Array(1000));
  assert.throws(() => tooLarge.write(new Uint8Array(1000)), /limit/);
  const left = bucket.startUpload('left') as { write(c: Uint8Array): void };
  left.write(new Uint8Array(100));
  assert.equal(unfinished(root).length, 1);
  // A worker retired gracefully closes its backends.
  await backend.close();
  assert.deepEqual(readdirSync(join(root, 'capsule', 'default', 'uploads')), []);
});
