// Which build of Stratum runs: its release, and the commit of the checkout it runs from when it
// runs from one. Every build of a release says the same version, so an operator who upgraded a
// host from one commit to another could not tell which one it ran (an operator's walkthrough).
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** The git commit (12 hex digits) of the checkout these files are in, or undefined outside one. */
function checkoutCommit(): string | undefined {
  try {
    let git = join(root, '.git');
    // A worktree's .git is a file naming its own git directory, whose commondir holds the refs.
    if (statSync(git).isFile())
      git = resolve(
        root,
        readFileSync(git, 'utf8')
          .replace(/^gitdir: /, '')
          .trim(),
      );
    const head = readFileSync(join(git, 'HEAD'), 'utf8').trim();
    if (/^[0-9a-f]{40}$/.test(head)) return head.slice(0, 12);
    const ref = /^ref: (refs\/\S+)$/.exec(head)?.[1];
    if (ref === undefined) return undefined;
    let common = git;
    try {
      common = resolve(git, readFileSync(join(git, 'commondir'), 'utf8').trim());
    } catch {
      // Not a worktree: the refs are here.
    }
    try {
      return readFileSync(join(common, ref), 'utf8').trim().slice(0, 12);
    } catch {
      // A ref packed by git gc lives in packed-refs.
      const line = readFileSync(join(common, 'packed-refs'), 'utf8')
        .split('\n')
        .find((one) => one.endsWith(` ${ref}`));
      return line && /^[0-9a-f]{40} /.test(line) ? line.slice(0, 12) : undefined;
    }
  } catch {
    return undefined;
  }
}

let cached: string | undefined;

/**
 * `0.1.0`, or `0.1.0+1a2b3c4d5e6f` (semver build metadata) when run from a git checkout.
 *
 * @example
 * console.log(`stratum ${releaseVersion()}`);
 */
export function releaseVersion(): string {
  if (cached === undefined) {
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    const commit = checkoutCommit();
    cached = commit ? `${version}+${commit}` : version;
  }
  return cached;
}
