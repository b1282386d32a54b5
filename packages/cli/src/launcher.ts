import { realpathSync } from 'node:fs';
import { delimiter, dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This checkout's `stratum` launcher. */
export const LAUNCHER = fileURLToPath(new URL('../bin/stratum.js', import.meta.url));

function realpath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * The PATH of the user's own shell, as far as it can be told: npm and npx run a command with
 * node_modules/.bin directories put before it, for that command only (and outside the checkout
 * `npx stratum` offers to install an unrelated npm package of that name). @npmcli/run-script puts
 * its node-gyp-bin directory last among them: the directories after it are the user's. Without
 * it, a node_modules/.bin is taken for npm's. Run without npm, every directory is the user's: a
 * node_modules/.bin they put on their PATH themselves too.
 */
function usersPath(path: string, env: NodeJS.ProcessEnv): string[] {
  const dirs = path.split(delimiter).filter(Boolean);
  if (env.npm_execpath === undefined && env.npm_lifecycle_event === undefined) return dirs;
  const npmsEnd = dirs.findIndex((dir) => /[\\/]node-gyp-bin[\\/]?$/.test(dir));
  if (npmsEnd !== -1) return dirs.slice(npmsEnd + 1);
  return dirs.filter((dir) => !dir.replace(/[\\/]$/, '').endsWith(`${sep}node_modules${sep}.bin`));
}

/**
 * How a user runs this `stratum` from a shell of their own: `stratum` when a directory on their
 * PATH holds it (`usersPath`), else the launcher's path and how to put it there.
 */
export function stratumInvocation(path = process.env.PATH ?? '', env: NodeJS.ProcessEnv = process.env): { command: string; hint?: string } {
  const launcher = realpath(LAUNCHER) ?? LAUNCHER;
  for (const dir of usersPath(path, env)) {
    if (realpath(join(dir, 'stratum')) === launcher) return { command: 'stratum' };
  }
  const checkout = dirname(dirname(dirname(dirname(LAUNCHER))));
  return {
    command: LAUNCHER,
    hint: `\`stratum\` is not on your PATH: \`npm link -w @stratum/cli\` in ${checkout} puts it there (once).`,
  };
}
