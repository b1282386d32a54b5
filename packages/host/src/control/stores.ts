import type { Capabilities } from '@stratum/manifest';

/** One store of a capsule, as the state endpoints name it (spec/host-api.md section 5.11). */
export interface StoreRef {
  capability: 'keyvalue' | 'sql' | 'bucket';
  label: string;
}

/** Every store a manifest grants: what a move copies, and what deleting a capsule's data empties. */
export function storesOf(capabilities: Pick<Capabilities, 'keyvalue' | 'sql' | 'bucket'>): StoreRef[] {
  return [
    ...capabilities.keyvalue.map((label) => ({ capability: 'keyvalue' as const, label })),
    ...capabilities.sql.map((label) => ({ capability: 'sql' as const, label })),
    ...capabilities.bucket.map((label) => ({ capability: 'bucket' as const, label })),
  ];
}
