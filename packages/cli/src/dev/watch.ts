import { type Dirent, type FSWatcher, readdirSync, type Stats, statSync, watch } from 'node:fs';
import { join, sep } from 'node:path';

/** Directories whose changes never call for a rebuild: dev's own state, build output, packages. */
export const IGNORED_DIRS: readonly string[] = ['.stratum', 'dist', 'node_modules', '.git'];

/** Whether a path (relative to the watched directory) is one a rebuild should follow. */
export function isWatchedPath(relativePath: string): boolean {
  const parts = relativePath.split(/[\\/]/);
  if (parts.some((part) => IGNORED_DIRS.includes(part))) return false;
  const name = parts.at(-1) ?? '';
  // Editors' swap, backup and lock files.
  if (name.endsWith('~') || /\.sw[a-p]$/.test(name) || name.startsWith('.#') || name === '4913') return false;
  // `stratum push --pin`'s copy of the manifest, pinned to what it pushed: nothing dev serves.
  if (name.endsWith('.pinned.toml')) return false;
  return true;
}

export interface DirectoryWatcher {
  close(): void;
}

export interface WatchOptions {
  /** Quiet time after the last change before `onChange` runs. Default 150 ms. */
  debounceMs?: number;
  /** Paths (relative to `dir`) followed even inside an ignored directory, such as a prebuilt component. */
  alsoWatch?: readonly string[];
  onError?: (error: Error) => void;
}

/**
 * Watches a directory tree and calls `onChange` once per burst of changes, with the relative
 * paths that changed. Editors write a file in several steps (truncate, write, rename), so changes
 * are collected until none came for `debounceMs`.
 *
 * Each directory gets a watcher of its own (not one recursive `fs.watch`): on Linux, Node's
 * recursive watcher watches files by inode and goes deaf to a file once it is replaced by a
 * rename, which is how `sed -i` and many editors save. A directory's watcher sees its entries by
 * name, whatever their inode; directories created later are watched as they appear.
 *
 * @example
 * const watcher = watchDirectory('examples/counter', (paths) => console.log('changed', paths));
 * watcher.close();
 */
export function watchDirectory(dir: string, onChange: (paths: string[]) => void, options: WatchOptions = {}): DirectoryWatcher {
  const debounceMs = options.debounceMs ?? 150;
  const alsoWatch = new Set((options.alsoWatch ?? []).map((path) => path.split('/').join(sep)));
  const followed = (path: string) =>
    isWatchedPath(path) || alsoWatch.has(path) || [...alsoWatch].some((item) => item.startsWith(`${path}${sep}`));
  const watchers = new Map<string, FSWatcher>();
  const changed = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const noteChange = (path: string) => {
    changed.add(path);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const paths = [...changed].sort();
      changed.clear();
      if (!closed) onChange(paths);
    }, debounceMs);
  };

  const watchTree = (relativeDir: string) => {
    if (closed || watchers.has(relativeDir)) return;
    const absolute = join(dir, relativeDir);
    let watcher: FSWatcher;
    try {
      watcher = watch(absolute, { persistent: true }, (_event, filename) => {
        if (closed || filename === null) return;
        const path = relativeDir ? join(relativeDir, filename.toString()) : filename.toString();
        if (!followed(path)) return;
        if (isWatchedPath(path) || alsoWatch.has(path)) noteChange(path);
        // A directory created (or moved in) since: follow it too.
        if (statSyncQuiet(join(dir, path))?.isDirectory()) watchTree(path);
      });
    } catch (error) {
      // The directory went away between listing and watching: nothing to follow there.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    watcher.on('error', (error) => {
      watcher.close();
      watchers.delete(relativeDir);
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && relativeDir === '') options.onError?.(error);
    });
    watchers.set(relativeDir, watcher);
    for (const entry of readdirQuiet(absolute)) {
      const path = relativeDir ? join(relativeDir, entry.name) : entry.name;
      if (entry.isDirectory() && followed(path)) watchTree(path);
    }
  };
  watchTree('');

  return {
    close() {
      closed = true;
      clearTimeout(timer);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}

function statSyncQuiet(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function readdirQuiet(path: string): Dirent[] {
  try {
    return readdirSync(path, { withFileTypes: true });
  } catch {
    return [];
  }
}
