import { createWriteStream, openAsBlob } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage, formatBytes, formatDuration, isStratumError, StratumError } from '@stratum/core';
import type { CapsuleStatus } from '../runtime-types.ts';
import {
  ControlApiError,
  type ControlClient,
  type HostIdentity,
  type InstallationStatus,
  type InstallOptions,
  type KeptData,
} from './client.ts';
import { type StoreRef, storeName, storesOf } from './stores.ts';

export type MoveStep =
  | { step: 'install'; name: string }
  | { step: 'drain'; name: string }
  /** A store's copy begins, and then, every few seconds of a long export, how far it has come. */
  | { step: 'copying'; store: StoreRef; exportedBytes?: number }
  /** The store's snapshot is whole, and goes to the new host. */
  | { step: 'importing'; store: StoreRef; bytes: number }
  | { step: 'copy'; store: StoreRef; records: number; bytes: number }
  /** Before the drain, the new host is asked whether its start would find the domains linked to it. */
  | { step: 'check-links'; domains: string[]; host: string }
  | { step: 'link'; domains: string[]; host: string }
  | { step: 'start'; name: string }
  /** The capsule was not serving on the old host: it is left so on the new one, not started. */
  | { step: 'leave'; name: string; state: 'installed' | 'stopped' }
  /** A step failed, timed out or was interrupted: what was changed goes back (`drained`: the old host is started again). */
  | { step: 'resume'; name: string; reason: string; drained: boolean }
  /**
   * One thing put back, or not. `keptData` (a `remove`): the copy was uninstalled without
   * deleting the name's data, as the new host held data under the name before the move (or may
   * have: an install cut short never said), which the move must not delete.
   */
  | { step: 'undo'; what: 'links' | 'start' | 'remove'; ok: boolean; keptData?: 'kept' | 'unknown' };

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
   * before the old host starts again if the start fails; gives it to `prepared` before it sends
   * the update, so that an update cut short (which the server may still apply) is put back too.
   */
  switchLinks?: (
    installed: CapsuleStatus,
    host: HostIdentity,
    prepared: (putBack: () => Promise<void>) => void,
  ) => Promise<() => Promise<void>>;
  /** Where each store's snapshot waits between export and import; the system's temporary directory by default. */
  spoolDir?: string;
  /**
   * A command the user can run against the old host (`from`) or the new one (`to`), for what a
   * failed move could not put back; by default `stratum <words>`, with no option to reach either.
   */
  command?: (side: 'from' | 'to', words: readonly string[]) => string;
  /**
   * How long each control call may take (each call that puts things back, too), and how long a
   * store's copy may go with neither bytes from the old host nor an answer from the new one: a
   * copy of any size goes on while it moves. 60 s by default.
   */
  timeoutMs?: number;
  /** Aborting it stops the move: what it changed goes back as when a step fails. */
  signal?: AbortSignal;
  /** Aborting it stops the putting back as well: the error then says what was left, and how to fix it. */
  abandon?: AbortSignal;
  /**
   * The new host keeps data under the name, left by an installation uninstalled there without
   * deleting it (the install answers `keptData`, spec/host-api.md section 5.1): replace it with
   * the copy. Without it such a move is refused before the drain, and the name's data there is
   * left as it was.
   */
  replaceKeptData?: boolean;
}

/** How long a control call of a move may take, unless told otherwise. */
export const MOVE_TIMEOUT_MS = 60_000;

export interface MoveResult {
  /** The capsule on the new host: running if it was running on the old one, else as it was there (`installed` or `stopped`). */
  status: CapsuleStatus;
  /** Records copied, by `capability/label`. */
  records: Record<string, number>;
  /** From the source's drain to the target's start: how long neither host served; 0 when it was not serving, as the move took nothing out of service. */
  downtimeMs: number;
  /**
   * Stores the name holds data in on the old host that its manifest no longer grants
   * (`retainedStores`): not copied, as no host exports or imports a store a manifest does not
   * grant, and left there under the name until its data is deleted.
   */
  leftBehind: StoreRef[];
  /**
   * With `replaceKeptData`: the new host held data under the name, left by an installation
   * uninstalled then, which the copy replaced in the stores copied; `retained` are the stores of
   * that data the manifest does not grant, which stay there under the name, out of reach.
   */
  keptData?: { uninstalledAt: string; retained: StoreRef[] };
}

/**
 * Moves a capsule to another host in the order spec/host-api.md section 5.11 gives: refuse a
 * name the new host has already (the install would replace that installation) and a manifest
 * that does not grant a store the old installation has (its state would stay behind), install on
 * the new host without starting, ask it whether a start would find the domains linked to it
 * (without `switchLinks`: the links must name it already), drain the old one, export each store
 * and import it, point the domains' links at the new host (`switchLinks`, when given), start the
 * new one. The old installation is left drained, not removed, so that it can be started again.
 * If anything fails after the install, runs out of time or is interrupted (`signal`), the links
 * go back, the old one is started again (and the new one, which the move installed, uninstalled)
 * before the error is thrown, so the capsule keeps serving from where it was.
 *
 * A name whose data the new host keeps (its install answers `keptData`: an installation of it
 * there was uninstalled without deleting it) is refused before the drain, unless
 * `replaceKeptData`: the copy would replace that data. A way back deletes the copy's data only
 * when the move created the name there; otherwise (kept data, or an install that never answered)
 * it uninstalls without deleting, leaving what the name held.
 *
 * A capsule that is not serving (installed and never started, stopped, or failed) is moved as it
 * is: neither drained nor started, left installed (or stopped) on the new host, and not started
 * on the old one if the move fails. A registrar that took a capsule out of service (its customer
 * stopped paying) must not find it serving again because it moved it.
 */
export async function moveCapsule(options: MoveOptions): Promise<MoveResult> {
  const { from, to, name, stores, onStep } = options;
  const target = options.install.name ?? name;
  const ms = options.timeoutMs ?? MOVE_TIMEOUT_MS;
  const moving = [options.signal, options.abandon];
  const ask = <T>(host: string, what: string, op: (signal: AbortSignal) => Promise<T>, stops = moving) =>
    bounded(`${host} did not answer (${what})`, ms, stops, op);
  // Installing "on the new host" would then replace the installation being moved.
  const [fromHost, toHost] = await Promise.all([
    ask('the old host', 'identity', (signal) => from.identity({ signal })),
    ask('the new host', 'identity', (signal) => to.identity({ signal })),
  ]);
  if (fromHost.key.x === toHost.key.x) {
    throw new StratumError('MOVE_SAME_HOST', `both addresses reach the same host, ${fromHost.name}: there is nowhere to move ${name} to`, {
      hint: 'Give the control API of another host as the destination.',
    });
  }
  // An install under a name the new host has would replace that installation (an operator's
  // replaces any registrar's), and the way back would then remove it: the name must be free there.
  const existing = await ask(toHost.name, `status of ${target}`, (signal) => to.capsule(target, { signal })).catch((error: unknown) => {
    if (isStratumError(error) && error.code === 'CAPSULE_NOT_FOUND') return undefined;
    throw error;
  });
  if (existing) throw nameTaken(target, toHost.name, `(${existing.state}, serving ${existing.domains.join(', ')})`);
  const current = await ask(fromHost.name, `status of ${name}`, (signal) => from.capsule(name, { signal }));
  // A drain under way is someone taking it out of service: which state to leave it in is theirs to settle first.
  if (current.state === 'draining') {
    throw new StratumError('MOVE_DRAINING', `${name} is draining on ${fromHost.name}: it is being taken out of service`, {
      hint: 'Move it once the drain has answered: it is then moved stopped, and stays stopped on the new host.',
    });
  }
  const serving = current.state === 'running';
  // What it is left as on the new host when it was not serving: `installed` stays installed, anything else stopped.
  const resting = current.state === 'installed' ? ('installed' as const) : ('stopped' as const);
  // A store the old installation has and the new one would not be granted would stay behind, its
  // state lost to the capsule: the manifest given is the wrong one, or an older one.
  const granted = grantedStores(current);
  const left = granted.filter((one) => !stores.some((store) => store.capability === one.capability && store.label === one.label));
  if (left.length > 0) {
    const named = left.map(storeName).join(', ');
    throw new StratumError(
      'MOVE_STATE_LEFT_BEHIND',
      `${name} on ${fromHost.name} has state in ${named}, which the manifest given does not grant`,
      {
        details: [`its state would stay behind on ${fromHost.name}, and the capsule on ${toHost.name} start without it`],
        hint: `Give the directory of the capsule ${name} runs (its manifest grants ${named}), or copy that state yourself (\`host export\`, \`host import\`).`,
      },
    );
  }
  // Before the old host stops serving: a refusal here (a domain taken, config, limits) costs nothing.
  onStep?.({ step: 'install', name: target });
  let installed: (InstallationStatus & { keptData?: KeptData }) | undefined;
  /** The refusal of a name whose data the new host keeps: what it installed goes, the data stays. */
  let keptRefusal: StratumError | undefined;
  let drained: number | undefined;
  const records: Record<string, number> = {};
  let unlink: (() => Promise<void>) | undefined;
  /** The link update, which a timeout or Ctrl-C stops waiting for but not from reaching the server. */
  let switching: Promise<() => Promise<void>> | undefined;
  try {
    installed = await ask(toHost.name, `install ${target}`, (signal) =>
      to.install({ ...options.install, name: target, start: false }, { signal }),
    ).catch((error: unknown) => {
      // Another registrar's installation, which the new host answers 404 to this key and refuses to replace.
      if (isStratumError(error) && error.code === 'NAME_TAKEN') throw nameTaken(target, toHost.name, "(another registrar's)", error);
      throw error;
    });
    // The name held the data of an installation uninstalled there: the copy would replace it
    // (an import replaces a store whole), and a way back that deleted the copy would delete it.
    if (installed.keptData && !options.replaceKeptData) {
      keptRefusal = keptDataRefusal(name, target, fromHost.name, toHost.name, installed, serving, options.command);
      throw keptRefusal;
    }
    // Without a link switch the links must name the new host already, or its start refuses: found
    // now, before the old host stops serving, not after the drain and the copy.
    if (serving && !options.switchLinks) {
      onStep?.({ step: 'check-links', domains: installed.domains, host: toHost.name });
      await checkLinksFirst(to, toHost, installed, ask);
    }
    if (serving) {
      onStep?.({ step: 'drain', name });
      drained = performance.now();
      await ask(fromHost.name, `drain ${name}`, (signal) => from.drain(name, { signal }));
    }
    for (const store of stores) {
      onStep?.({ step: 'copying', store });
      const { records: copied, bytes } = await copyStore(from, name, to, target, store, options, ms);
      records[`${store.capability}/${store.label}`] = copied;
      onStep?.({ step: 'copy', store, records: copied, bytes });
    }
    if (options.switchLinks) {
      const switchLinks = options.switchLinks;
      const linked = installed;
      onStep?.({ step: 'link', domains: linked.domains, host: toHost.name });
      unlink = await bounded(`the DNS update did not answer`, ms, moving, () => {
        switching = switchLinks(linked, toHost, (putBack) => {
          unlink = putBack;
        });
        return switching;
      });
    }
    const leftBehind = retainedStores(current);
    const kept = installed.keptData
      ? { keptData: { uninstalledAt: installed.keptData.uninstalledAt, retained: retainedStores(installed) } }
      : {};
    if (drained === undefined) {
      onStep?.({ step: 'leave', name: target, state: resting });
      // Recorded as stopped there, as it was here: a restart of the new host keeps it out of service too.
      const status = resting === 'stopped' ? await ask(toHost.name, `stop ${target}`, (signal) => to.stop(target, { signal })) : installed;
      return { status, records, downtimeMs: 0, leftBehind, ...kept };
    }
    onStep?.({ step: 'start', name: target });
    const status = await ask(toHost.name, `start ${target}`, (signal) => to.start(target, { signal }));
    return { status, records, downtimeMs: performance.now() - drained, leftBehind, ...kept };
  } catch (error) {
    // The host refused the install: nothing changed, nothing to put back.
    if (installed === undefined && !cutShort(error, options)) throw error;
    if (error === keptRefusal && keptRefusal) {
      // Refused before anything else: uninstalled as a plain uninstall does, the data stays under the name.
      const [removed] = await Promise.allSettled([
        ask(toHost.name, `uninstall ${target}`, (signal) => to.uninstall(target, { signal }), [options.abandon]),
      ]);
      if (removed.status === 'fulfilled') throw keptRefusal;
      const command = options.command ?? ((_side, words) => ['stratum', ...words].join(' '));
      throw new StratumError(keptRefusal.code, keptRefusal.message, {
        details: [...keptRefusal.details, `could not remove what the move installed on ${toHost.name}: ${errorMessage(removed.reason)}`],
        hint: `Once ${toHost.name} answers, remove it, keeping the data: \`${command('to', ['host', 'uninstall', target])}\`. ${keptRefusal.hint ?? ''}`.trim(),
        user: true,
      });
    }
    const reason = errorMessage(error);
    onStep?.({ step: 'resume', name, reason, drained: drained !== undefined });
    const command = options.command ?? ((_side, words) => ['stratum', ...words].join(' '));
    // Bounded as the move's calls are, but only a second interruption (`abandon`) cuts them short.
    const undo = [options.abandon];
    const settle = async (what: 'links' | 'start' | 'remove', op: () => Promise<unknown>, more: { keptData?: 'kept' | 'unknown' } = {}) => {
      const [result] = await Promise.allSettled([op()]);
      onStep?.({ step: 'undo', what, ok: result.status === 'fulfilled', ...more });
      return result;
    };
    const removesData = installed !== undefined && installed.keptData === undefined;
    // The links first: the old host checks them when it starts again. An update cut short is
    // waited for (its own time limit ends it) so that the put-back reaches the server after it,
    // and is applied after it, whether or not it was.
    const putBack = unlink;
    const pending = switching;
    const relinked = putBack
      ? await settle('links', () =>
          bounded('the DNS update did not answer', ms, undo, async () => {
            await pending?.catch(() => {});
            await putBack();
          }),
        )
      : undefined;
    const [restarted, removed] = await Promise.all([
      drained === undefined
        ? undefined
        : settle('start', () => ask(fromHost.name, `start ${name}`, (signal) => from.start(name, { signal }), undo)),
      // When the name was new there, its stores hold only what the move copied (an import
      // replaces a store whole): they go with it, or a later installation of the name there would
      // find this capsule's data. When it held data the move did not make (the install said
      // `keptData`), or may have (an install cut short, which was done all the same or not), the
      // copy goes as a plain uninstall does: a way back never deletes data the move did not create.
      settle(
        'remove',
        () =>
          ask(toHost.name, `uninstall ${target}`, (signal) => to.uninstall(target, { signal, deleteData: removesData }), undo).catch(
            (failure: unknown) => {
              if (installed === undefined && isStratumError(failure) && failure.code === 'CAPSULE_NOT_FOUND') return;
              throw failure;
            },
          ),
        removesData ? {} : { keptData: installed === undefined ? 'unknown' : 'kept' },
      ),
    ]);
    // What could not be put back, each where it is, and what the user does about it.
    const left: string[] = [];
    const remedies: string[] = [];
    if (relinked?.status === 'rejected') {
      left.push(`could not point its domains' links back at ${fromHost.name}: ${errorMessage(relinked.reason)}`);
      remedies.push(`Point each domain's _stratum link back at ${fromHost.name} (\`stratum dns check <domain>\` shows it).`);
    }
    if (restarted?.status === 'rejected') {
      left.push(`could not start it on ${fromHost.name} again: ${errorMessage(restarted.reason)}`);
      remedies.push(`Start it on the old host, where its state is as it was: \`${command('from', ['host', 'serve', name])}\`.`);
    }
    if (removed.status === 'rejected') {
      left.push(`could not remove the copy installed on ${toHost.name}: ${errorMessage(removed.reason)}`);
      remedies.push(
        removesData
          ? `Once ${toHost.name} answers, remove that copy and the state copied into it: \`${command('to', ['host', 'uninstall', target, '--delete-data'])}\`.`
          : `Once ${toHost.name} answers, remove that copy, keeping the data the name held there: \`${command('to', ['host', 'uninstall', target])}\`.`,
      );
    }
    const where =
      restarted?.status === 'rejected'
        ? ', and so did putting it back'
        : relinked?.status === 'rejected'
          ? `; it runs on ${fromHost.name} again, but its domains' links still name ${toHost.name}`
          : drained === undefined
            ? serving
              ? `; it never stopped serving on ${fromHost.name}`
              : `; it is ${current.state === 'installed' ? 'installed, not started,' : current.state === 'failed' ? 'not serving' : current.state} on ${fromHost.name}, as it was`
            : '; it serves from the old host again';
    // What a host's refusal says to do (a link to publish), or a timeout, comes before what putting
    // back left; a connection's own advice would only repeat what those remedies say.
    const cause = error instanceof ControlApiError || (isStratumError(error) && error.code === 'MOVE_TIMEOUT') ? error : undefined;
    const hints = [...(cause?.hint ? [cause.hint] : []), ...remedies];
    throw new StratumError('MOVE_FAILED', `moving ${name} failed${where}`, {
      details: [reason, ...(cause?.details ?? []), ...left],
      ...(hints.length > 0 ? { hint: hints.join(' ') } : {}),
      cause: error,
      user: left.length > 0 || (isStratumError(error) && error.user),
    });
  }
}

/** The error ends the move because it ran out of time or was interrupted: the call it cut short may have been done. */
function cutShort(error: unknown, options: MoveOptions): boolean {
  return (isStratumError(error) && error.code === 'MOVE_TIMEOUT') || options.signal?.aborted === true || options.abandon?.aborted === true;
}

/**
 * Runs `op` with a signal that aborts once `ms` pass (a timeout error saying `what`) or any of
 * `stops` aborts (with its reason), and rejects at that moment even when `op` does not heed its
 * signal. `touch`, given to `op`, starts the `ms` again: for a step bounded by how long it goes
 * without progress rather than by its length.
 */
async function bounded<T>(
  what: string | ((within: string) => string),
  ms: number,
  stops: readonly (AbortSignal | undefined)[],
  op: (signal: AbortSignal, touch: () => void) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const expire = () =>
    controller.abort(
      new StratumError('MOVE_TIMEOUT', typeof what === 'string' ? `${what} within ${formatDuration(ms)}` : what(formatDuration(ms)), {
        hint: 'Check that the host is running and reachable; a slow one may be given longer (`host move --timeout`).',
        user: false,
      }),
    );
  let timer = setTimeout(expire, ms);
  const touch = () => {
    clearTimeout(timer);
    if (!controller.signal.aborted) timer = setTimeout(expire, ms);
  };
  const listeners: (() => void)[] = [];
  for (const stop of stops) {
    if (!stop) continue;
    if (stop.aborted) controller.abort(stop.reason);
    const listener = () => controller.abort(stop.reason);
    stop.addEventListener('abort', listener, { once: true });
    listeners.push(() => stop.removeEventListener('abort', listener));
  }
  const aborted = new Promise<never>((_resolve, reject) => {
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
  });
  try {
    // Stopped already: `op` is not begun, as its listeners for the abort would never hear it.
    controller.signal.throwIfAborted();
    return await Promise.race([op(controller.signal, touch), aborted]);
  } catch (error) {
    // A fetch cut short rejects with its own words; the reason is what the user needs.
    throw controller.signal.aborted ? controller.signal.reason : error;
  } finally {
    clearTimeout(timer);
    for (const remove of listeners) remove();
  }
}

/**
 * The stores an installation's manifest grants, as the host's answer about it says
 * (spec/host-api.md section 4, `stores`). A host that does not say gives none to check.
 */
export function grantedStores(status: CapsuleStatus): StoreRef[] {
  return status.stores ? storesOf(status.stores) : [];
}

/**
 * The stores the old host's name holds data in that its manifest no longer grants
 * (spec/host-api.md section 4, `retainedStores`), which a move leaves there.
 */
export function retainedStores(status: InstallationStatus): StoreRef[] {
  return status.retainedStores ? storesOf(status.retainedStores) : [];
}

/**
 * Asks the new host what its start would find of the installed capsule's links (spec/host-api.md
 * section 5.12), and refuses as that start would. A host that does not answer it (older than the
 * endpoint) is left to its start.
 */
async function checkLinksFirst(
  to: ControlClient,
  toHost: HostIdentity,
  installed: CapsuleStatus,
  ask: <T>(host: string, what: string, op: (signal: AbortSignal) => Promise<T>) => Promise<T>,
): Promise<void> {
  const check = await ask(toHost.name, `links of ${installed.domains.join(', ')}`, (signal) =>
    to.links(installed.domains, installed.digest, { signal }),
  ).catch((error: unknown) => {
    if (error instanceof ControlApiError && error.status === 404 && error.code === 'NOT_FOUND') return undefined;
    throw error;
  });
  if (!check?.checked || check.problems.length === 0) return;
  throw new ControlApiError(
    409,
    'DOMAIN_NOT_LINKED',
    `${installed.name} would not be served on ${toHost.name}: its domains do not link to it`,
    check.problems.map((one) => one.problem),
    check.hint,
  );
}

/**
 * The refusal of a move to a name whose data the new host keeps (an installation of it there was
 * uninstalled without deleting it): the copy would replace that data, which is someone's to
 * decide. It names the stores the data may be in, and how to delete it or to replace it.
 */
function keptDataRefusal(
  name: string,
  target: string,
  fromHost: string,
  toHost: string,
  installed: InstallationStatus & { keptData?: KeptData },
  serving: boolean,
  command: MoveOptions['command'],
): StratumError {
  const run = command ?? ((_side, words) => ['stratum', ...words].join(' '));
  const stores = [...grantedStores(installed), ...retainedStores(installed)].map(storeName);
  return new StratumError(
    'MOVE_KEPT_DATA',
    `${toHost} keeps data under the name ${target}, left by its installation there uninstalled on ${installed.keptData?.uninstalledAt}: moving ${name} there would replace it with the copy from ${fromHost}`,
    {
      details: [
        ...(stores.length > 0 ? [`the data kept there may be in ${stores.join(', ')}`] : []),
        `nothing else changed: ${name} ${serving ? 'serves from' : 'is as it was on'} ${fromHost}, and the data on ${toHost} is as it was`,
      ],
      hint: `If that data is not needed, delete it, then move again: \`${run('to', ['host', 'uninstall', target, '--delete-data'])}\`. To replace it with the copy from ${fromHost}, move with --replace-kept-data; to keep both, give the capsule another name there (--name).`,
    },
  );
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
  options: Pick<MoveOptions, 'spoolDir' | 'onStep' | 'signal' | 'abandon'>,
  ms: number,
): Promise<{ records: number; bytes: number }> {
  const { onStep } = options;
  const dir = await mkdtemp(join(options.spoolDir ?? tmpdir(), 'stratum-move-'));
  let exportedBytes = 0;
  const ticker = setInterval(() => onStep?.({ step: 'copying', store, exportedBytes }), PROGRESS_EVERY_MS);
  const moving = [options.signal, options.abandon];
  const named = storeName(store);
  try {
    const file = join(dir, `${store.capability}-${store.label}.jsonl`);
    // Bounded by the bytes that come, not by the size: a store of gigabytes takes what it takes.
    const silent = (duration: string) =>
      exportedBytes === 0
        ? `the old host sent nothing of ${named} for ${duration}`
        : `the old host sent no more of ${named} for ${duration}, after ${formatBytes(exportedBytes)}`;
    await bounded(silent, ms, moving, async (signal, touch) => {
      const counted = async function* (chunks: AsyncIterable<Uint8Array>) {
        for await (const chunk of chunks) {
          exportedBytes += chunk.byteLength;
          touch();
          yield chunk;
        }
      };
      await pipeline(
        Readable.fromWeb(await from.exportState(name, store.capability, store.label, { signal })),
        counted,
        createWriteStream(file),
        {
          signal,
        },
      );
    });
    clearInterval(ticker);
    const snapshot = await openAsBlob(file);
    onStep?.({ step: 'importing', store, bytes: snapshot.size });
    // The new host says nothing until it has imported the whole snapshot, which may take minutes:
    // it is waited for as long as it answers otherwise (its identity), which a frozen or gone host does not.
    const imported = await bounded(
      `the new host stopped answering while importing ${named}: no answer`,
      ms,
      moving,
      async (signal, touch) => {
        const beat = setInterval(
          () => void to.identity({ signal: AbortSignal.any([signal, AbortSignal.timeout(ms)]) }).then(touch, () => {}),
          Math.min(ms / 4, HEARTBEAT_MS),
        );
        // Not only once the import answers: a host that never does is left behind at the abort.
        signal.addEventListener('abort', () => clearInterval(beat), { once: true });
        try {
          return await to.importState(target, store.capability, store.label, snapshot, { signal });
        } finally {
          clearInterval(beat);
        }
      },
    );
    return { records: imported.records, bytes: snapshot.size };
  } finally {
    clearInterval(ticker);
    await rm(dir, { recursive: true, force: true });
  }
}

/** How often a long export says how far it has come. */
const PROGRESS_EVERY_MS = 3000;
/** How often a long import asks whether the new host still answers. */
const HEARTBEAT_MS = 5000;
