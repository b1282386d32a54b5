import { PassThrough } from 'node:stream';
import type { TestContext } from 'node:test';
import { DevCapsule, type DevCapsuleOptions } from '../../packages/cli/src/dev/capsule.ts';
import { DevOutput } from '../../packages/cli/src/dev/output.ts';

/** A DevCapsule of the project in `dir`, alone on no port, closed after the test; `said()` is what dev printed so far. */
export async function openDevCapsule(
  t: TestContext,
  dir: string,
  options: Partial<DevCapsuleOptions> = {},
): Promise<{ capsule: DevCapsule; said: () => string }> {
  const stream = new PassThrough();
  let said = '';
  stream.on('data', (chunk: Buffer) => {
    said += chunk.toString();
  });
  const capsule = await DevCapsule.open({
    dir,
    alone: true,
    port: 0,
    flags: [],
    output: new DevOutput(stream, { json: false }),
    ...options,
  });
  t.after(() => capsule.close());
  return { capsule, said: () => said };
}
