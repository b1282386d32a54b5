// Builds WAT capsules (the tiny example, the hostile fixtures) into components, each once per
// machine: cached under node_modules/.cache/stratum-tiny/ by a hash of the WAT, the build
// script and the WIT it embeds. A build takes about a second, so parallel test files that race
// both build it and the atomic rename keeps one.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { componentFromWat } from '../../examples/tiny/build.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cacheDir = join(root, 'node_modules', '.cache', 'stratum-tiny');

async function witHash(hash: ReturnType<typeof createHash>): Promise<void> {
  const deps = join(root, 'spec', 'wit', 'deps');
  for (const name of (await readdir(deps)).sort()) {
    if (!name.startsWith('wasi-')) continue;
    hash.update(name).update(await readFile(join(deps, name, 'package.wit')));
  }
}

/**
 * Builds (or finds) the component for a WAT file; returns the component's path. `worldText`: its
 * world (`componentFromWat`), when not in a `.wit` beside the WAT.
 */
export async function buildWat(watPath: string, worldText?: string): Promise<string> {
  const wat = await readFile(watPath, 'utf8');
  // A `.wit` beside the WAT gives its world (with imports of its own); the default is tiny's.
  const world = worldText ?? (await readFile(watPath.replace(/\.wat$/, '.wit'), 'utf8').catch(() => undefined));
  const hash = createHash('sha256')
    .update(wat)
    .update(world ?? '')
    .update(await readFile(join(root, 'examples', 'tiny', 'build.ts')));
  await witHash(hash);
  const name =
    watPath
      .split('/')
      .at(-1)
      ?.replace(/\.wat$/, '') ?? 'capsule';
  const target = join(cacheDir, `${name}-${hash.digest('hex').slice(0, 24)}.wasm`);
  try {
    await stat(target);
    return target;
  } catch {
    await mkdir(cacheDir, { recursive: true });
    const component = await componentFromWat(wat, world);
    const temporary = `${target}.${process.pid}.tmp`;
    await writeFile(temporary, component);
    await rename(temporary, target);
    return target;
  }
}

/** The tiny example capsule (examples/tiny), built and cached like the other examples. */
export function buildTiny(): Promise<string> {
  return buildWat(join(root, 'examples', 'tiny', 'tiny.wat'));
}

/** A hostile fixture from tests/fixtures/hostile/<name>.wat. */
export function buildHostile(
  name: 'loop' | 'memory' | 'table' | 'big-table' | 'many-tables' | 'huge-body' | 'trap' | 'probe' | 'moody' | 'init-loop' | 'chatty',
): Promise<string> {
  return buildWat(join(root, 'tests', 'fixtures', 'hostile', `${name}.wat`));
}
