import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Logger, StratumError } from '@stratum/core';
import { exportBucketState, importBucketState } from '../capabilities/bucket/index.ts';
import { exportKeyValueState, importKeyValueState } from '../capabilities/keyvalue/index.ts';
import type { SnapshotSource } from '../capabilities/snapshot-lines.ts';
import { dropSqlState, exportSqlState, importSqlState } from '../capabilities/sql/index.ts';
import type { StoreRef } from './stores.ts';

/** Capabilities whose state moves with a capsule (spec/snapshot.md), by name. */
export const STATEFUL_CAPABILITIES = ['keyvalue', 'sql', 'bucket'] as const;
export type StatefulCapability = (typeof STATEFUL_CAPABILITIES)[number];

interface StateOptions {
  hostConfig: unknown;
  dataDir: string;
  capsule: string;
  label: string;
  logger?: Logger;
}

/** What an import answers: the snapshot's records, and how many of them were left out as the spec says (keyvalue's expired keys). */
export interface ImportedState {
  records: number;
  skipped: number;
}

const HANDLERS: Record<
  StatefulCapability,
  {
    export: (options: StateOptions) => AsyncIterable<string>;
    import: (options: StateOptions, source: SnapshotSource) => Promise<ImportedState>;
  }
> = {
  keyvalue: { export: exportKeyValueState, import: importKeyValueState },
  sql: { export: exportSqlState, import: importSqlState },
  bucket: { export: exportBucketState, import: importBucketState },
};

/** Where capsules' state lives: host.toml's capability tables and the runtime's data directory. */
export interface StateAccess {
  capabilityConfig: Readonly<Record<string, unknown>>;
  /** The runtime's data directory; a capsule's state is under `capsules/<capsule>/<capability>`. */
  dataDir: string;
  logger?: Logger;
}

export function isStatefulCapability(name: string): name is StatefulCapability {
  return (STATEFUL_CAPABILITIES as readonly string[]).includes(name);
}

/** A capsule's name, checked: it becomes a directory under the data directory. */
function capsuleDir(access: StateAccess, capsule: string): string {
  if (!/^[a-z]([a-z0-9-]*[a-z0-9])?$/.test(capsule))
    throw new StratumError('INVALID_NAME', `"${capsule.slice(0, 80)}" is not a capsule name`);
  return join(access.dataDir, 'capsules', capsule);
}

function options(access: StateAccess, capability: StatefulCapability, capsule: string, label: string): StateOptions {
  return {
    hostConfig: access.capabilityConfig[capability],
    dataDir: join(capsuleDir(access, capsule), capability),
    capsule,
    label,
    ...(access.logger ? { logger: access.logger } : {}),
  };
}

/** A capsule's state under one capability and label, as snapshot lines. */
export function exportState(access: StateAccess, capability: StatefulCapability, capsule: string, label: string): AsyncIterable<string> {
  return HANDLERS[capability].export(options(access, capability, capsule, label));
}

/**
 * Deletes everything a capsule stored under the labels given, whatever backend holds each (a
 * registrar deleting a customer's data with its installation): each SQL database is dropped with
 * what its backend made for it, each other store replaced with an empty snapshot, as an import
 * would, then what the embedded backends keep on disk under the capsule's name goes too. Returns the stores emptied, as `capability/label`.
 */
export async function deleteState(access: StateAccess, capsule: string, stores: readonly StoreRef[]): Promise<string[]> {
  const deleted: string[] = [];
  for (const { capability, label } of stores) {
    if (capability === 'sql') {
      // Emptied, a PostgreSQL database kept its schema and its login role, cluster-wide.
      await dropSqlState(options(access, capability, capsule, label));
      deleted.push(`${capability}/${label}`);
      continue;
    }
    const header = `${JSON.stringify({ 'stratum-snapshot': 1, capability, label, created: new Date().toISOString() })}\n`;
    const trailer = `${JSON.stringify({ end: { records: 0, sha256: createHash('sha256').update(header).digest('hex') } })}\n`;
    await importState(access, capability, capsule, label, () => [header + trailer]);
    deleted.push(`${capability}/${label}`);
  }
  await rm(capsuleDir(access, capsule), { recursive: true, force: true });
  return deleted;
}

/** Replaces a capsule's state under one capability and label with a snapshot's; `source` is read once or twice (checked, then written: `importSnapshot`). */
export function importState(
  access: StateAccess,
  capability: StatefulCapability,
  capsule: string,
  label: string,
  source: SnapshotSource,
): Promise<ImportedState> {
  return HANDLERS[capability].import(options(access, capability, capsule, label), source);
}
