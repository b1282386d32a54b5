import { createWriteStream, openAsBlob } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage, isStratumError, StratumError } from '@stratum/core';
import type { Capabilities } from '@stratum/manifest';
import type { CapsuleStatus } from '../runtime-types.ts';
import type { ControlClient, HostIdentity, InstallOptions } from './client.ts';

/** One store of a capsule, as the state endpoints name it (spec/host-api.md section 5.11). */
export interface StoreRef {
  capability: 'keyvalue' | 'sql' | 'bucket';
  label: string;
}

/** Every store a manifest grants: what a move copies. */
export function storesOf(capabilities: Pick<Capabilities, 'keyvalue' | 'sql' | 'bucket'>): StoreRef[] {
  return [
    ...capabilities.keyvalue.map((label) => ({ capability: 'keyvalue' as const, label })),
    ...capabilities.sql.map((label) => ({ capability: 'sql' as const, label })),
    ...capabilities.bucket.map((label) => ({ capability: 'bucket' as const, label })),
  ];
}

export type MoveStep =
  | { step: 'install'; name: string }
  | { step: 'drain'; name: string }
  /** A store's copy begins, and then, every few seconds of a long export, how far it has come. */
  | { step: 'copying'; store: StoreRef; exportedBytes?: number }
  /** The store's snapshot is whole, and goes to the new host. */
  | { step: 'importing'; store: StoreRef; bytes: number }
  | { step: 'copy'; store: StoreRef; records: number; bytes: number }
  | { step: 'link'; domains: string[]; host: string }
  | { step: 'start'; name: string }
  | { step: 'resume'; name: string; reason: string };

export interface MoveOptions {
  /** The host the capsule runs on now, and its name there. */
  from: ControlClient;
  name: string;
  /** The host it moves to, and what to install there (its name defaults to `name`). */
  to: ControlClient;
  install: Omit<InstallOptions, 'start'>;
  /** The stores to copy; `storesOf(manifest.capabilities)` for all of them. */
  stores: StoreRef[];
  onStep?: (step: MoveStep) => void;
  /**
   * Points the capsule's domains at the new host (their `_stratum` links, and their routing)
   * after its state is copied and before it starts there: a host checks a domain's link when it
   * first serves it (spec/discovery.md section 5.3). Resolves to what points them back, which runs
   * before the old host starts again if the start fails.
   */
  switchLinks?: (installed: CapsuleStatus, host: HostIdentity) => Promise<() => Promise<void>>;
  /** Where each store's snapshot waits between export and import; the system's temporary directory by default. */
  spoolDir?: string;
  /**
   * A command the user can run against the old host (`from`) or the new one (`to`), for what a
   * failed move could not put back; by default `stratum <words>`, with no option to reach either.
   */
  command?: (side: 'from' | 'to', words: readonly string[]) => string;
}

export interface MoveResult {
  status: CapsuleStatus;
  /** Records copied, by `capability/label`. */
  records: Record<string, number>;
  /** From the source's drain to the target's start: how long neither host served. */
  downtimeMs: number;
}

/**
 * Moves a capsule to another host in the order spec/host-api.md section 5.11 gives: refuse a
 * name the new host has already (the install would replace that installation), install on the
 * new host without starting, drain the old one, export each store and import it, point the
 * domains' links at the new host (`switchLinks`, when given), start the new one. The old
 * installation is left drained, not removed, so that it can be started again. If anything fails
 * after the drain, the links go back, the old one is started again (and the new one, which the
 * move installed, uninstalled) before the error is thrown, so the capsule keeps serving from
 * where it was.
 */
export async function moveCapsule(options: MoveOptions): Promise<MoveResult> {
  const { from, to, name, stores, onStep } = options;
  const target = options.install.name ?? name;
  // Installing "on the new host" would then replace the installation being moved.
  const [fromHost, toHost] = await Promise.all([from.identity(), to.identity()]);
  if (fromHost.key.x === toHost.key.x) {
    throw new StratumError('MOVE_SAME_HOST', `both addresses reach the same host, ${fromHost.name}: there is nowhere to move ${name} to`, {
      hint: 'Give the control API of another host as the destination.',
    });
  }
  // An install under a name the new host has would replace that installation (an operator's
  // replaces any registrar's), and the way back would then remove it: the name must be free there.
  const existing = await to.capsule(target).catch((error: unknown) => {
    if (isStratumError(error) && error.code === 'CAPSULE_NOT_FOUND') return undefined;
    throw error;
  });
  if (existing) throw nameTaken(target, toHost.name, `(${existing.state}, serving ${existing.domains.join(', ')})`);
  // Before the old host stops serving: a refusal here (a domain taken, config, limits) costs nothing.
  onStep?.({ step: 'install', name: target });
  const installed = await to.install({ ...options.install, name: target, start: false }).catch((error: unknown) => {
    // Another registrar's installation, which the new host answers 404 to this key and refuses to replace.
    if (isStratumError(error) && error.code === 'NAME_TAKEN') throw nameTaken(target, toHost.name, "(another registrar's)", error);
    throw error;
  });
  onStep?.({ step: 'drain', name });
  const drained = performance.now();
  const records: Record<string, number> = {};
  let unlink: (() => Promise<void>) | undefined;
  try {
    await from.drain(name);
    for (const store of stores) {
      onStep?.({ step: 'copying', store });
      const { records: copied, bytes } = await copyStore(from, name, to, target, store, options.spoolDir, onStep);
      records[`${store.capability}/${store.label}`] = copied;
      onStep?.({ step: 'copy', store, records: copied, bytes });
    }
    if (options.switchLinks) {
      onStep?.({ step: 'link', domains: installed.domains, host: toHost.name });
      unlink = await options.switchLinks(installed, toHost);
    }
    onStep?.({ step: 'start', name: target });
    const status = await to.start(target);
    return { status, records, downtimeMs: performance.now() - drained };
  } catch (error) {
    const reason = errorMessage(error);
    onStep?.({ step: 'resume', name, reason });
    const command = options.command ?? ((_side, words) => ['stratum', ...words].join(' '));
    // The links first: the old host checks them when it starts again.
    const [relinked] = unlink ? await Promise.allSettled([unlink()]) : [];
    const [restarted, removed] = await Promise.allSettled([from.start(name), to.uninstall(target)]);
    // What could not be put back, each where it is, and what the user does about it.
    const left: string[] = [];
    const remedies: string[] = [];
    if (relinked?.status === 'rejected') {
      left.push(`could not point its domains' links back at ${fromHost.name}: ${errorMessage(relinked.reason)}`);
      remedies.push(`Point each domain's _stratum link back at ${fromHost.name} (\`stratum dns check <domain>\` shows it).`);
    }
    if (restarted.status === 'rejected') {
      left.push(`could not start it on ${fromHost.name} again: ${errorMessage(restarted.reason)}`);
      remedies.push(`Start it on the old host, where its state is as it was: \`${command('from', ['host', 'serve', name])}\`.`);
    }
    if (removed.status === 'rejected') {
      left.push(`could not remove the copy installed on ${toHost.name}: ${errorMessage(removed.reason)}`);
      remedies.push(
        `Once ${toHost.name} answers, remove that copy and any state copied into it: \`${command('to', ['host', 'uninstall', target])}\`.`,
      );
    }
    const where =
      restarted.status === 'rejected'
        ? ', and so did putting it back'
        : relinked?.status === 'rejected'
          ? `; it runs on ${fromHost.name} again, but its domains' links still name ${toHost.name}`
          : '; it serves from the old host again';
    throw new StratumError('MOVE_FAILED', `moving ${name} failed${where}`, {
      details: [reason, ...left],
      ...(remedies.length > 0 ? { hint: remedies.join(' ') } : {}),
      cause: error,
      user: left.length > 0 || (isStratumError(error) && error.user),
    });
  }
}

/** The refusal of a move whose name on the new host is another installation's there. */
function nameTaken(target: string, host: string, which: string, cause?: unknown): StratumError {
  return new StratumError('MOVE_NAME_TAKEN', `${host} already has a capsule named ${target} ${which}: moving there would replace it`, {
    hint: `Give the capsule another name on ${host} (host move --name), or remove that installation there first if it is a copy left by an earlier move.`,
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * One store's snapshot from the old host to the new one, through a file: the import's signature
 * covers the body's hash, which is known only once the whole snapshot is in, and a store may
 * hold gigabytes (a bucket), more than memory or one string can.
 */
async function copyStore(
  from: ControlClient,
  name: string,
  to: ControlClient,
  target: string,
  store: StoreRef,
  spoolDir = tmpdir(),
  onStep?: (step: MoveStep) => void,
): Promise<{ records: number; bytes: number }> {
  const dir = await mkdtemp(join(spoolDir, 'stratum-move-'));
  let exportedBytes = 0;
  const ticker = setInterval(() => onStep?.({ step: 'copying', store, exportedBytes }), PROGRESS_EVERY_MS);
  try {
    const file = join(dir, `${store.capability}-${store.label}.jsonl`);
    const counted = async function* (chunks: AsyncIterable<Uint8Array>) {
      for await (const chunk of chunks) {
        exportedBytes += chunk.byteLength;
        yield chunk;
      }
    };
    await pipeline(Readable.fromWeb(await from.exportState(name, store.capability, store.label)), counted, createWriteStream(file));
    clearInterval(ticker);
    const snapshot = await openAsBlob(file);
    onStep?.({ step: 'importing', store, bytes: snapshot.size });
    const imported = await to.importState(target, store.capability, store.label, snapshot);
    return { records: imported.records, bytes: snapshot.size };
  } finally {
    clearInterval(ticker);
    await rm(dir, { recursive: true, force: true });
  }
}

/** How often a long export says how far it has come. */
const PROGRESS_EVERY_MS = 3000;
