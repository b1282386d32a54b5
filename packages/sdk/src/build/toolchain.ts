import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { StratumError } from '@stratum/core';
import type { ToolchainRequest, ToolchainResponse } from './toolchain-worker.ts';

const workerPath = fileURLToPath(new URL('./toolchain-worker.ts', import.meta.url));

/** Runs one toolchain job in a fresh Node.js process (see toolchain-worker.ts for why). */
export function runToolchain(request: ToolchainRequest): Promise<ToolchainResponse & { ok: true }> {
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
    child.once('error', (error) => reject(toolchainError(error.message, output)));
    child.once('exit', (code, signal) => {
      if (response?.ok) resolve(response);
      else if (response) reject(toolchainError(response.message, output));
      else reject(toolchainError(`the toolchain process exited with ${signal ?? `code ${code}`}`, output));
    });
    child.send(request);
  });
}

function toolchainError(message: string, output: string): StratumError {
  const details = `${message}\n${output}`
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.length > 0)
    .slice(0, 40);
  return new StratumError('TOOLCHAIN_FAILED', 'the component toolchain failed', { details, user: false });
}
