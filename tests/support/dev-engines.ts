// Dev engines for tests: kept beside the examples' builds (node_modules/.cache) rather than in
// the user's cache, and shared by every test file and every run (an engine takes 20 s to build).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { devEngineCacheDir } from '@stratum/sdk/build';

/** What tests set XDG_CACHE_HOME to for `stratum dev`. */
export const testCacheHome = join(fileURLToPath(new URL('../../', import.meta.url)), 'node_modules', '.cache');

export const testEngineCacheDir = devEngineCacheDir({ XDG_CACHE_HOME: testCacheHome });
