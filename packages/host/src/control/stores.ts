import type { Capabilities } from '@stratum/manifest';

/** One store of a capsule, as the state endpoints name it (spec/host-api.md section 5.11). */
export interface StoreRef {
  capability: 'keyvalue' | 'sql' | 'bucket';
  label: string;
}

/** Store labels by capability, as a capsule's status carries them (`stores`, `retainedStores`). */
export interface StoreLabels {
  keyvalue: string[];
  sql: string[];
  bucket: string[];
}

const ORDER: readonly StoreRef['capability'][] = ['keyvalue', 'sql', 'bucket'];

/** Every store a manifest grants: what a move copies. */
export function storesOf(capabilities: Pick<Capabilities, 'keyvalue' | 'sql' | 'bucket'>): StoreRef[] {
  return [
    ...capabilities.keyvalue.map((label) => ({ capability: 'keyvalue' as const, label })),
    ...capabilities.sql.map((label) => ({ capability: 'sql' as const, label })),
    ...capabilities.bucket.map((label) => ({ capability: 'bucket' as const, label })),
  ];
}

/** The stores as a status carries them, each capability's labels in the order given. */
export function labelsOf(stores: readonly StoreRef[]): StoreLabels {
  const labels = (capability: StoreRef['capability']) => stores.filter((one) => one.capability === capability).map((one) => one.label);
  return { keyvalue: labels('keyvalue'), sql: labels('sql'), bucket: labels('bucket') };
}

/** Each store once, by capability (keyvalue, sql, bucket) and then label, whichever lists name it. */
export function unionStores(...lists: readonly (readonly StoreRef[])[]): StoreRef[] {
  const seen = new Map<string, StoreRef>();
  for (const store of lists.flat()) seen.set(storeName(store), { capability: store.capability, label: store.label });
  return [...seen.values()].sort(
    (a, b) => ORDER.indexOf(a.capability) - ORDER.indexOf(b.capability) || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0),
  );
}

/** The stores of `stores` that `without` does not name. */
export function storesBesides(stores: readonly StoreRef[], without: readonly StoreRef[]): StoreRef[] {
  const other = new Set(without.map(storeName));
  return stores.filter((store) => !other.has(storeName(store)));
}

/** `capability/label`, as the uninstall's `deleted` and the CLI name a store. */
export function storeName(store: StoreRef): string {
  return `${store.capability}/${store.label}`;
}
