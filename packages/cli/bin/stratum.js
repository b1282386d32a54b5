#!/usr/bin/env node
// The `stratum` launcher. Stratum needs Node.js 24 (JSPI, node:sqlite, type stripping); this file
// stays plain JavaScript so that an older Node.js can still read it and hand over to Node.js 24:
// the one on PATH when it is new enough, else the `node` package the repository installs.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
const entry = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'main.ts');

if (major >= 24) {
  // V8's code cache for Stratum's own modules and its dependencies (Node.js keeps it under the
  // system's temporary directory, or NODE_COMPILE_CACHE): a host or `stratum dev` then starts
  // without parsing and compiling a few hundred modules again.
  const { enableCompileCache } = await import('node:module');
  enableCompileCache?.();
  // A reader that has gone (`stratum host logs | head -1`) ends the command quietly, as it ends
  // cat or git; unhandled, Node.js threw the write's EPIPE with its stack.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error) => {
      if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw error;
    });
  }
  const { main } = await import(entry);
  process.exitCode = await main(process.argv.slice(2));
} else {
  let dir = dirname(fileURLToPath(import.meta.url));
  let node24;
  for (;;) {
    const candidate = join(dir, 'node_modules', 'node', 'bin', 'node');
    if (existsSync(candidate)) {
      node24 = candidate;
      break;
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  if (!node24) {
    console.error(`error: Stratum needs Node.js 24 or newer; this is Node.js ${process.versions.node}.`);
    console.error('  Install Node.js 24, or run `npm ci` in the Stratum checkout, which brings its own.');
    process.exit(2);
  }
  const child = spawn(node24, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  // A signal sent to the launcher alone (`kill`, a process manager, `timeout`) is passed on: the
  // child would otherwise run on without it. Not SIGINT: a terminal's Ctrl-C reaches the whole
  // process group, the child too, and a second one would cut its shutdown short; the launcher
  // only waits for the child to finish.
  const forwarded = { SIGTERM: () => child.kill('SIGTERM'), SIGHUP: () => child.kill('SIGHUP'), SIGINT: () => {} };
  for (const [signal, handler] of Object.entries(forwarded)) process.on(signal, handler);
  child.on('error', (error) => {
    console.error(`error: could not start ${node24}: ${error.message}`);
    process.exit(2);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      for (const [name, handler] of Object.entries(forwarded)) process.off(name, handler);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
}
