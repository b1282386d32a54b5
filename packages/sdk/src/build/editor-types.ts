import { lstat, mkdir, readlink, rm, stat, symlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This SDK's package directory: what a capsule project's `@stratum/sdk` imports are typed from. */
export const sdkPackageDir = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/**
 * The tsconfig.json `stratum init` writes: capsule code runs on StarlingMonkey's ECMAScript and web
 * APIs (Fetch, streams, Web Crypto), not Node.js's nor a browser's, so no library of TypeScript's
 * is taken whole: `@stratum/sdk/engine` (engine-types.ts) names the ECMAScript ones the engine
 * implements and declares the web globals a capsule has, without those it lacks (`URLPattern`,
 * `caches`, `navigator`, `Response.error`). No `@types/*` package an npm dependency brings is
 * taken in by default. The SDK is TypeScript source, imported with `.ts` extensions, hence
 * `allowImportingTsExtensions` (with `noEmit`: `stratum build` bundles).
 */
export const PROJECT_TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'ESNext',
    moduleResolution: 'Bundler',
    lib: [],
    types: ['@stratum/sdk/engine'],
    strict: true,
    noEmit: true,
    allowImportingTsExtensions: true,
    skipLibCheck: true,
  },
  include: ['src'],
};

/**
 * Makes `@stratum/sdk` resolvable from a capsule project for its editor and `tsc`: the SDK is
 * not on the npm registry, so `stratum init`, `dev` and `build` link the one they run with into
 * the project's `node_modules/@stratum/sdk` (a symlink, which `npm install` may prune and the
 * next command puts back). A project that already reaches an `@stratum/sdk` (a workspace, a
 * real install) is left alone. The build itself never needs the link: it maps the SDK's
 * modules itself.
 */
export async function linkSdkForEditors(projectDir: string): Promise<'linked' | 'present'> {
  const link = join(resolve(projectDir), 'node_modules', '@stratum', 'sdk');
  const own = await lstat(link).catch(() => undefined);
  if (own?.isSymbolicLink()) {
    const target = resolve(dirname(link), await readlink(link));
    // Ours from another checkout or version that is gone: point it at this one.
    if (target === sdkPackageDir || (await stat(target).catch(() => undefined))) return 'present';
    await rm(link);
  } else if (own) return 'present';
  else if (await reachable(dirname(resolve(projectDir)))) return 'present';
  await mkdir(dirname(link), { recursive: true });
  await symlink(sdkPackageDir, link, 'junction');
  return 'linked';
}

/** Whether Node.js's lookup from `dir` up finds a `node_modules/@stratum/sdk`. */
async function reachable(dir: string): Promise<boolean> {
  for (let at = dir; ; at = dirname(at)) {
    if (await stat(join(at, 'node_modules', '@stratum', 'sdk')).catch(() => undefined)) return true;
    if (dirname(at) === at) return false;
  }
}
