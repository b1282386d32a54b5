import { join } from 'node:path';
import { type Logger, StratumError } from '@stratum/core';
import { exportBucketState, importBucketState } from '../capabilities/bucket/index.ts';
import { exportKeyValueState, importKeyValueState } from '../capabilities/keyvalue/index.ts';
import type { SnapshotSource } from '../capabilities/snapshot-lines.ts';
import { exportSqlState, importSqlState } from '../capabilities/sql/index.ts';

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

function options(access: StateAccess, capability: StatefulCapability, capsule: string, label: string): StateOptions {
  if (!/^[a-z]([a-z0-9-]*[a-z0-9])?$/.test(capsule))
    throw new StratumError('INVALID_NAME', `"${capsule.slice(0, 80)}" is not a capsule name`);
  return {
    hostConfig: access.capabilityConfig[capability],
    dataDir: join(access.dataDir, 'capsules', capsule, capability),
    capsule,
    label,
    ...(access.logger ? { logger: access.logger } : {}),
  };
}

/** A capsule's state under one capability and label, as snapshot lines. */
export function exportState(access: StateAccess, capability: StatefulCapability, capsule: string, label: string): AsyncIterable<string> {
  return HANDLERS[capability].export(options(access, capability, capsule, label));
}

/** Replaces a capsule's state under one capability and label with a snapshot's; `source` is read twice (checked, then written). */
export function importState(
  access: StateAccess,
  capability: StatefulCapability,
  capsule: string,
  label: string,
  source: SnapshotSource,
): Promise<ImportedState> {
  return HANDLERS[capability].import(options(access, capability, capsule, label), source);
}
