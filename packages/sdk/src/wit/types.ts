import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { runToolchain } from '../build/toolchain.ts';

/** The WIT specification this SDK builds against: `spec/wit` in the Stratum repository. */
export const specWitDir = fileURLToPath(new URL('../../../../spec/wit/', import.meta.url));
export const CAPSULE_WORLD = 'stratum:capsule/capsule';

const generatedDir = new URL('./', import.meta.url);
const GUEST_FILE = 'guest.generated.d.ts';
const HOST_FILE = 'host.generated.d.ts';

const header = (kind: string) =>
  `// Generated from spec/wit (world ${CAPSULE_WORLD}) by \`jco types${kind === 'guest' ? ' --guest' : ''}\`; do not edit.\n` +
  '// Regenerate with `node packages/sdk/src/wit/types.ts`; tests/wit.test.ts checks it is current.\n';

/**
 * The TypeScript declarations of every interface in the capsule world, as one file each:
 * `guest` (ambient `declare module 'stratum:keyvalue/store@0.1.0'` blocks, what a capsule
 * imports) and `host` (one exported namespace per interface, what a host implements).
 */
export async function generateWitTypes(): Promise<Record<string, string>> {
  const [guest, host] = await Promise.all([
    runToolchain({ op: 'types', witPath: specWitDir, worldName: CAPSULE_WORLD, guest: true }),
    runToolchain({ op: 'types', witPath: specWitDir, worldName: CAPSULE_WORLD, guest: false }),
  ]);
  return { [GUEST_FILE]: header('guest') + joinGuest(guest.files ?? {}), [HOST_FILE]: header('host') + joinHost(host.files ?? {}) };
}

const decoder = new TextDecoder();
const sortedInterfaces = (files: Record<string, Uint8Array>) =>
  Object.entries(files)
    .filter(([name]) => name.startsWith('interfaces/'))
    .sort(([a], [b]) => a.localeCompare(b));

function joinGuest(files: Record<string, Uint8Array>): string {
  return sortedInterfaces(files)
    .map(([, bytes]) => decoder.decode(bytes).trim())
    .join('\n\n')
    .concat('\n');
}

const pascal = (id: string) => id.replace(/(^|-)([a-z0-9])/g, (_, _dash: string, letter: string) => letter.toUpperCase());

/** Host declarations come as one module per interface; wrap each in a namespace named after it. */
function joinHost(files: Record<string, Uint8Array>): string {
  const parts = sortedInterfaces(files).map(([name, bytes]) => {
    const id = name.replace(/^interfaces\//, '').replace(/\.d\.ts$/, '');
    const namespace = pascal(id);
    const body = decoder
      .decode(bytes)
      .replace(/^\/\/\/ <reference.*\n/gm, '')
      .replace(/^import type \{ ([^}]+) \} from '\.\/([a-z0-9-]+)\.js';$/gm, (_, names: string, from: string) => {
        const ns = pascal(from);
        return names
          .split(',')
          .map((part) => part.trim())
          .filter(Boolean)
          .map((part) => {
            const [original, alias] = part.split(/\s+as\s+/);
            return `type ${alias ?? original} = ${ns}.${original};`;
          })
          .join('\n');
      })
      .replace(/import\('\.\/([a-z0-9-]+)\.js'\)\./g, (_, from: string) => `${pascal(from)}.`)
      .replace(/^export (declare )?/gm, 'export ')
      .trim();
    return `/** ${id} */\nexport namespace ${namespace} {\n${body
      .split('\n')
      .map((line) => (line ? `  ${line}` : line))
      .join('\n')}\n}`;
  });
  return `${parts.join('\n\n')}\n`;
}

/** Writes the generated files beside this module; returns the names of those that changed. */
export async function writeWitTypes(): Promise<string[]> {
  const changed: string[] = [];
  for (const [name, text] of Object.entries(await generateWitTypes())) {
    const url = new URL(name, generatedDir);
    const current = await readFile(url, 'utf8').catch(() => undefined);
    if (current !== text) {
      await writeFile(url, text);
      changed.push(name);
    }
  }
  return changed;
}

export async function readWitTypes(): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const name of [GUEST_FILE, HOST_FILE]) out[name] = await readFile(new URL(name, generatedDir), 'utf8').catch(() => undefined);
  return out;
}

if (import.meta.main) {
  const changed = await writeWitTypes();
  console.log(changed.length > 0 ? `updated ${changed.join(', ')}` : 'WIT types are current');
}
