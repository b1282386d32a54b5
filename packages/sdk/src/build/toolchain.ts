import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { StratumError } from '@stratum/core';
import type { ToolchainRequest, ToolchainResponse } from './toolchain-worker.ts';

const workerPath = fileURLToPath(new URL('./toolchain-worker.ts', import.meta.url));

/**
 * How long one toolchain job may run. componentize-js takes seconds (about 15 s for an example on
 * a slow 2-core VM); a job still running after this is hung, not slow, and a build or `stratum
 * dev` waiting on it would wait for ever without a word.
 */
export const TOOLCHAIN_TIMEOUT_MS = 10 * 60_000;

/** Runs one toolchain job in a fresh Node.js process (see toolchain-worker.ts for why). */
export function runToolchain(request: ToolchainRequest, options: { timeoutMs?: number } = {}): Promise<ToolchainResponse & { ok: true }> {
  const timeoutMs = options.timeoutMs ?? TOOLCHAIN_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = fork(workerPath, [], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // Uint8Array survives the trip only with the structured-clone serialisation.
      serialization: 'advanced',
      execArgv: [],
    });
    // componentize-js prints its own progress; keep it so it can be shown when the job fails.
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let response: ToolchainResponse | undefined;
    child.once('message', (message) => {
      response = message as ToolchainResponse;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => reject(toolchainError(error.message, output)));
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        const limit = timeoutMs >= 1000 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`;
        reject(
          toolchainError(`the ${request.op} job did not finish within ${limit} and was stopped`, output, {
            code: 'TOOLCHAIN_TIMEOUT',
            headline: `the component toolchain (${request.op}) took longer than ${limit}`,
            hint: 'Run the build again; if it hangs again, report it with the output above.',
          }),
        );
      } else if (response?.ok) resolve(response);
      else if (response) reject(toolchainError(response.message, output));
      else reject(toolchainError(`the toolchain process exited with ${signal ?? `code ${code}`}`, output));
    });
    child.send(request);
  });
}

function toolchainError(
  message: string,
  output: string,
  {
    code = 'TOOLCHAIN_FAILED',
    headline = 'the component toolchain failed',
    hint,
  }: { code?: string; headline?: string; hint?: string } = {},
): StratumError {
  const details = `${message}\n${output}`
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.length > 0)
    .slice(0, 40);
  return new StratumError(code, headline, { details, user: false, ...(hint ? { hint } : {}) });
}
