import { PassThrough } from 'node:stream';
import { main } from '@stratum/cli';

/**
 * Runs `stratum <argv>` through the CLI's main() in this process, as a user would in a shell:
 * exit code and output. `onStderr` is told the standard error so far each time more comes.
 */
export async function runCli(argv: string[], onStderr?: (text: string) => void): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString();
    onStderr?.(err);
  });
  const code = await main(argv, { stdout, stderr });
  return { code, stdout: out, stderr: err };
}
