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
 * How a user runs this `stratum` from a shell of their own: `stratum` when a directory on their
 * PATH holds it, else the launcher's path and how to put it there. A `node_modules/.bin` on the
 * PATH does not count: npx and npm scripts put the checkout's there for one command only, and
 * outside the checkout `npx stratum` offers to install an unrelated npm package of that name.
 */
export function stratumInvocation(path = process.env.PATH ?? ''): { command: string; hint?: string } {
  const launcher = realpath(LAUNCHER) ?? LAUNCHER;
  for (const dir of path.split(delimiter)) {
    if (!dir || dir.endsWith(`${sep}node_modules${sep}.bin`)) continue;
    if (realpath(join(dir, 'stratum')) === launcher) return { command: 'stratum' };
  }
  const checkout = dirname(dirname(dirname(dirname(LAUNCHER))));
  return {
    command: LAUNCHER,
    hint: `\`stratum\` is not on your PATH: \`npm link -w @stratum/cli\` in ${checkout} puts it there (once).`,
  };
}
