import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { STORE_KINDS, type StoreKind } from './backends.ts';

/** The stores a served version granted, `kind:label`, with where each one's data is (`describeBackends`). */
export type ServedStores = Record<string, string>;

/**
 * What to say when a version no longer grants stores the last one served had: in dev, renaming a
 * label (bucket `attachments` to `files`) serves a new, empty store, and the old one's data
 * stays where it was, out of the capsule's reach, as `host install` says of a host's. Empty when
 * nothing was dropped.
 */
export function droppedStoresNotes(before: ServedStores, after: ServedStores, stateDir: string): string[] {
  const dropped = Object.keys(before).filter((store) => !(store in after));
  return dropped.map((store) => {
    const kind = store.slice(0, store.indexOf(':')) as StoreKind;
    const added = Object.keys(after).filter((other) => other.startsWith(`${kind}:`) && !(other in before));
    const where = (before[store] ?? '').endsWith('(embedded)') ? stateDir : before[store];
    const instead =
      added.length > 0 ? `, and not served as ${added.join(', ')}, which ${added.length === 1 ? 'is a new store' : 'are new stores'}` : '';
    return `${store} is no longer granted: what it stored is kept in ${where}${instead}. Grant ${store.slice(kind.length + 1)} again in stratum.toml to serve it (a store's data stays under its label: renaming one starts an empty store).`;
  });
}

/** Only the stores, from a `describeBackends` list (which also has outbound origins). */
export function servedStores(lines: readonly { grant: string; backend: string }[]): ServedStores {
  return Object.fromEntries(
    lines.filter((line) => STORE_KINDS.some((kind) => line.grant.startsWith(`${kind}:`))).map((line) => [line.grant, line.backend]),
  );
}

/** The stores the last version served had, as `saveServedStores` kept them: a restart compares with them too. */
export async function loadServedStores(file: string): Promise<ServedStores | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    return Object.fromEntries(Object.entries(parsed).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
  } catch {
    return undefined;
  }
}

export async function saveServedStores(file: string, stores: ServedStores): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(`${file}.tmp`, `${JSON.stringify(stores)}\n`);
  await rename(`${file}.tmp`, file);
}
