import { type FSWatcher, watch } from 'node:fs';
import { sep } from 'node:path';

/** Directories whose changes never call for a rebuild: dev's own state, build output, packages. */
export const IGNORED_DIRS: readonly string[] = ['.stratum', 'dist', 'node_modules', '.git'];

/** Whether a path (relative to the watched directory) is one a rebuild should follow. */
export function isWatchedPath(relativePath: string): boolean {
  const parts = relativePath.split(/[\\/]/);
  if (parts.some((part) => IGNORED_DIRS.includes(part))) return false;
  const name = parts.at(-1) ?? '';
  // Editors' swap, backup and lock files.
  if (name.endsWith('~') || /\.sw[a-p]$/.test(name) || name.startsWith('.#') || name === '4913') return false;
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
 * Watches a directory tree (fs.watch, recursive) and calls `onChange` once per burst of
 * changes, with the relative paths that changed. Editors write a file in several steps
 * (truncate, write, rename), so changes are collected until none came for `debounceMs`.
 *
 * @example
 * const watcher = watchDirectory('examples/counter', (paths) => console.log('changed', paths));
 * watcher.close();
 */
export function watchDirectory(dir: string, onChange: (paths: string[]) => void, options: WatchOptions = {}): DirectoryWatcher {
  const debounceMs = options.debounceMs ?? 150;
  const alsoWatch = new Set((options.alsoWatch ?? []).map((path) => path.split('/').join(sep)));
  const changed = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const watcher: FSWatcher = watch(dir, { recursive: true, persistent: true }, (_event, filename) => {
    if (closed || filename === null) return;
    const path = filename.toString();
    if (!isWatchedPath(path) && !alsoWatch.has(path)) return;
    changed.add(path);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const paths = [...changed].sort();
      changed.clear();
      if (!closed) onChange(paths);
    }, debounceMs);
  });
  watcher.on('error', (error) => options.onError?.(error));
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      watcher.close();
    },
  };
}
