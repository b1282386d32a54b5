import { access } from 'node:fs/promises';

/** Whether anything (a file, a directory, a link) is at `path`. */
export function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
