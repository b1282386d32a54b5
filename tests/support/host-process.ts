import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../packages/cli/bin/stratum.js', import.meta.url));

export interface HostProcess {
  child: ChildProcess;
  ingress: URL;
  control: URL;
  /** The exit code, or the signal that ended it. */
  exited: Promise<number | NodeJS.Signals | null>;
  stdout(): string;
  stderr(): string;
  /** Every JSON log line so far. */
  logLines(): Record<string, unknown>[];
}

export interface HostProcessOptions {
  /** The program and script to run instead of this Node.js and the CLI (a launcher under an older Node.js). */
  command?: [string, string];
  env?: NodeJS.ProcessEnv;
  /** Told the process as soon as it is spawned, so that a test's clean-up can stop it even if it never comes up. */
  spawned?: (child: ChildProcess, exited: HostProcess['exited']) => void;
}

/**
 * Runs `stratum host start --config <config> --log-format json` and resolves once its log says
 * it is up, with the addresses that line gives.
 */
export function startHostProcess(config: string, options: HostProcessOptions = {}): Promise<HostProcess> {
  const [program, script] = options.command ?? [process.execPath, cli];
  const child = spawn(program, [script, 'host', 'start', '--config', config, '--log-format', 'json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env ? { env: options.env } : {}),
  });
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  options.spawned?.(child, exited);
  let stdout = '';
  let stderr = '';
  // Whole lines only: a chunk may end inside one.
  const logLines = () =>
    stderr
      .slice(0, stderr.lastIndexOf('\n') + 1)
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (!stderr.includes('"msg":"stratum-host is up"')) return;
      const up = logLines().find((line) => line.msg === 'stratum-host is up');
      if (typeof up?.ingress !== 'string' || typeof up.control !== 'string') return;
      resolve({
        child,
        ingress: new URL(up.ingress),
        control: new URL(up.control),
        exited,
        stdout: () => stdout,
        stderr: () => stderr,
        logLines,
      });
    });
    void exited.then((code) => reject(new Error(`stratum host start exited with ${code}:\n${stdout}\n${stderr}`)));
  });
}
