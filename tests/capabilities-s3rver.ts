import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error s3rver ships no type declarations
import S3rver from 's3rver';
import type { S3BucketOptions } from '../packages/host/src/capabilities/bucket/backends/s3.ts';
import { freePort } from './support/services.ts';

interface Running {
  close(): Promise<void>;
}

let shared: Promise<{ options: S3BucketOptions; server: Running; dir: string }> | undefined;

/**
 * One s3rver per test file, on a free loopback port under a temp directory, stopped when the
 * file's tests are done (`after(stopS3rver)`). Every test uses its own capsule names, so they can share it.
 */
export async function startS3rver(): Promise<{ options: S3BucketOptions }> {
  shared ??= (async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'stratum-s3rver-'));
    const server = new S3rver({
      port,
      address: '127.0.0.1',
      directory: dir,
      silent: process.env.S3RVER_DEBUG !== '1',
      configureBuckets: [{ name: 'stratum-test' }],
    }) as {
      run(): Promise<unknown>;
      close(): Promise<void>;
    };
    await server.run();
    return {
      server,
      dir,
      options: {
        location: 's3://stratum-test/capsules',
        endpoint: `http://127.0.0.1:${port}`,
        region: 'us-east-1',
        accessKeyId: 'S3RVER',
        secretAccessKey: 'S3RVER',
        forcePathStyle: true,
      },
    };
  })();
  return { options: (await shared).options };
}

/** Stops the shared s3rver; call from the test file's `after`. */
export async function stopS3rver(): Promise<void> {
  if (!shared) return;
  const running = await shared;
  shared = undefined;
  await running.server.close();
  rmSync(running.dir, { recursive: true, force: true });
}
