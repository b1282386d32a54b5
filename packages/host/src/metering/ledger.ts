import { createHash, type Hash } from 'node:crypto';
import { createReadStream, readdirSync } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { errorMessage, formatBytes, formatDuration, type Logger, StratumError, silentLogger } from '@stratum/core';
import type { RequestRecord } from '../runtime-types.ts';

/** What one capsule used over a period. Memory is in MB-seconds, MB being 10^6 bytes. */
export interface Usage {
  requests: number;
  cpuMs: number;
  memoryMbSeconds: number;
  bytesIn: number;
  bytesOut: number;
  /** Requests that a limit ended, by the limit's kind (`cpu`, `timeout`, `memory`, `body`, ...). */
  limitHits: Record<string, number>;
}

/**
 * One line of the ledger. `hash` is the SHA-256 (hex) of the entry without `hash`, serialised
 * by RFC 8785 (JSON Canonicalization Scheme); `prev` is the previous entry's hash, or 64 zeros
 * for the first. Changing, removing or reordering any entry breaks every hash after it.
 */
export interface LedgerEntry {
  seq: number;
  /** When the entry was written; the usage is of the period [from, to). */
  time: string;
  capsule: string;
  /** The registrar (its name in host.toml) whose installation the capsule was; absent for one with none. */
  registrar?: string;
  from: string;
  to: string;
  usage: Usage;
  prev: string;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

export function emptyUsage(): Usage {
  return { requests: 0, cpuMs: 0, memoryMbSeconds: 0, bytesIn: 0, bytesOut: 0, limitHits: {} };
}

/** Adds `more` into `into`; sums are rounded to microunits so they stay short and exact enough. */
export function addUsage(into: Usage, more: Usage): Usage {
  into.requests += more.requests;
  into.cpuMs = round(into.cpuMs + more.cpuMs);
  into.memoryMbSeconds = round(into.memoryMbSeconds + more.memoryMbSeconds);
  into.bytesIn += more.bytesIn;
  into.bytesOut += more.bytesOut;
  for (const [kind, count] of Object.entries(more.limitHits)) into.limitHits[kind] = (into.limitHits[kind] ?? 0) + count;
  return into;
}

const round = (value: number) => Math.round(value * 1e6) / 1e6;

/** What one served request adds to its capsule's usage. */
export function usageOf(record: RequestRecord): Usage {
  return {
    requests: 1,
    cpuMs: round(Math.max(0, record.cpuMs)),
    memoryMbSeconds: round((Math.max(0, record.memoryBytes) / 1e6) * (Math.max(0, record.wallMs) / 1000)),
    bytesIn: Math.max(0, record.bytesIn),
    bytesOut: Math.max(0, record.bytesOut),
    limitHits: limitHitsOf(record),
  };
}

/** The limit that ended the request, if any, and every quota refusal (`quota:<capability>`). */
function limitHitsOf(record: RequestRecord): Record<string, number> {
  const hits: Record<string, number> = record.limit ? { [record.limit]: 1 } : {};
  for (const [capability, count] of Object.entries(record.quotaHits ?? {}))
    hits[`quota:${capability}`] = (hits[`quota:${capability}`] ?? 0) + count;
  return hits;
}

/** RFC 8785 for the values a ledger holds: objects with sorted keys, arrays, strings, finite numbers. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('JCS has no form for a non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, item]) => item !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
}

export function entryHash(entry: Omit<LedgerEntry, 'hash'> & { hash?: string }): string {
  const { hash: _ignored, ...rest } = entry;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

export type LedgerVerification = { ok: true; entries: number; head: string } | { ok: false; entries: number; line: number; reason: string };

/**
 * Checks a whole ledger: each line parses, numbers run 1, 2, 3..., each `prev` is the hash
 * before it and each `hash` is right.
 */
export function verifyLedgerText(text: string): LedgerVerification {
  let prev = GENESIS_HASH;
  let count = 0;
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const [index, line] of lines.entries()) {
    const failure = checkLine(line, count + 1, prev);
    if (typeof failure === 'string') return { ok: false, entries: count, line: index + 1, reason: failure };
    prev = failure.hash;
    count++;
  }
  return { ok: true, entries: count, head: prev };
}

/** Checks a whole ledger file, as `verifyLedgerText` does, reading it in pieces. */
export async function verifyLedgerFile(path: string): Promise<LedgerVerification> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, entries: 0, head: GENESIS_HASH };
    throw error;
  }
  try {
    const scan = await scanLedger(file, START);
    if (!scan.ok) return scan;
    if (scan.partial > 0)
      return { ok: false, entries: scan.state.entries, line: scan.state.entries + 1, reason: 'the last line is cut short' };
    return { ok: true, entries: scan.state.entries, head: scan.state.head };
  } finally {
    await file.close();
  }
}

/** Where a chain stands after some whole lines: the last entry's seq and hash, and the bytes read. */
interface ChainState {
  entries: number;
  head: string;
  bytes: number;
}

const START: ChainState = { entries: 0, head: GENESIS_HASH, bytes: 0 };

/** A ledger is read in pieces of this size, never whole: a JS string holds at most 512 MiB. */
const READ_PIECE = 1 << 20;

type Scan = { ok: true; state: ChainState; partial: number } | { ok: false; entries: number; line: number; reason: string };

/**
 * Verifies the chain from `from` (a whole-line boundary and the chain's state there) to the last
 * whole line, handing each entry and its line's offset to `onEntry` and the bytes of every
 * verified line to `hash`. `partial` counts the bytes after the last newline (a line cut short).
 * Line numbers in failures count from the file's start: one entry per line.
 */
async function scanLedger(
  file: FileHandle,
  from: ChainState,
  hash?: Hash,
  onEntry?: (entry: LedgerEntry, offset: number) => void,
  progress?: ReadProgress,
  signal?: AbortSignal,
): Promise<Scan> {
  const state = { ...from };
  const piece = Buffer.allocUnsafe(READ_PIECE);
  let carry = Buffer.alloc(0);
  let position = from.bytes;
  for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await file.read(piece, 0, READ_PIECE, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    progress?.(position - from.bytes);
    const data = carry.length > 0 ? Buffer.concat([carry, piece.subarray(0, bytesRead)]) : piece.subarray(0, bytesRead);
    let at = 0;
    for (let newline = data.indexOf(10, at); newline !== -1; newline = data.indexOf(10, at)) {
      const checked = checkLine(data.toString('utf8', at, newline), state.entries + 1, state.head);
      if (typeof checked === 'string') return { ok: false, entries: state.entries, line: state.entries + 1, reason: checked };
      onEntry?.(checked, state.bytes);
      state.entries++;
      state.head = checked.hash;
      state.bytes += newline + 1 - at;
      at = newline + 1;
    }
    hash?.update(data.subarray(0, at));
    // Copied: `piece` is read into again.
    carry = Buffer.from(data.subarray(at));
  }
  return { ok: true, state, partial: carry.length };
}

/** Feeds the first `bytes` bytes of `file` to `hash`; false when the file is shorter. */
async function hashPrefix(file: FileHandle, bytes: number, hash: Hash, progress?: ReadProgress, signal?: AbortSignal): Promise<boolean> {
  const piece = Buffer.allocUnsafe(READ_PIECE);
  let position = 0;
  while (position < bytes) {
    signal?.throwIfAborted();
    const { bytesRead } = await file.read(piece, 0, Math.min(READ_PIECE, bytes - position), position);
    if (bytesRead === 0) return false;
    hash.update(piece.subarray(0, bytesRead));
    position += bytesRead;
    progress?.(position);
  }
  return true;
}

/** The last line of the file's first `end` bytes, a whole line's bytes ending at `end`; its last 64 KiB when longer. */
async function readLastLine(file: FileHandle, end: number): Promise<Buffer> {
  const length = Math.min(end, 64 * 1024);
  const read = Buffer.alloc(length);
  const { bytesRead } = await file.read(read, 0, length, end - length);
  const bytes = read.subarray(0, bytesRead);
  // Its last byte is the line's own newline.
  const start = bytes.length >= 2 ? bytes.lastIndexOf(10, bytes.length - 2) : -1;
  return Buffer.from(bytes.subarray(start + 1));
}

/** What an operator does with a ledger that does not verify. */
function recoveryHint(path: string): string {
  // Not "a fresh data directory": that would throw away every capsule and its embedded stores.
  return `The ledger is append-only and hash-chained: keep this copy for the audit, then put the ledger back from a backup, or move this one aside (mv ${path} ${path}.corrupt) and the host begins a new ledger; the installations and the capsules' data stay as they are.`;
}

/** Told how many bytes a long read at start-up has read so far. */
type ReadProgress = (bytesRead: number) => void;

/**
 * Reads at start-up that take a few seconds are announced, and their progress logged every
 * PROGRESS_EVERY_MS: the host prints nothing else until it is up. Verifying a chain runs at
 * about 30 MB/s on a small VM (74 MB in 2.3 s, 576 MB in 20 s), hashing a checkpointed prefix
 * at about 1 GB/s (576 MB in 0.57 s), so a routine restart stays quiet.
 */
const ANNOUNCE_VERIFY_BYTES = 64 * 1024 * 1024;
const ANNOUNCE_HASH_BYTES = 2 * 1024 * 1024 * 1024;
/**
 * A check at start-up that reads this much (about a tenth of a second or more) runs while the
 * host serves (`UsageLedger.open`): a ledger grows by about 3 MB a day per busy capsule, and a
 * host with a hundred of them would otherwise wait some 100 s at every start after a year.
 */
const BACKGROUND_VERIFY_BYTES = 4 * 1024 * 1024;
const BACKGROUND_HASH_BYTES = 256 * 1024 * 1024;
const PROGRESS_EVERY_MS = 10_000;

/** Logs the start of a long read of the ledger, then its progress; undefined for a short one. */
function announceRead(
  logger: Logger,
  ledger: string,
  what: string,
  bytes: number,
  announceBytes: number,
  options: Pick<LedgerOptions, 'announceReadBytes' | 'progressEveryMs'>,
): ReadProgress | undefined {
  if (bytes < (options.announceReadBytes ?? announceBytes)) return undefined;
  const every = options.progressEveryMs ?? PROGRESS_EVERY_MS;
  const started = Date.now();
  let next = started + every;
  logger.info({ ledger, bytes }, `${what}: ${formatBytes(bytes)} to read`);
  return (bytesRead) => {
    const now = Date.now();
    if (now < next || bytesRead >= bytes) return;
    next = now + every;
    const percent = Math.floor((bytesRead / bytes) * 100);
    logger.info({ ledger, bytesRead, bytes, percent }, `${what}: ${percent}% read in ${formatDuration(now - started)}`);
  };
}

/** Every this many entries, the ledger notes where one starts (see `LedgerCheckpoint.index`). */
const INDEX_EVERY = 4096;

/** How often a running host rewrites its checkpoint (and at close). */
const CHECKPOINT_EVERY_MS = 5 * 60_000;

/**
 * What a host knows of its ledger's verified part, kept beside it (`<ledger>.checkpoint`) so
 * that a restart need not verify every entry again: a busy host appends about 3 MB a day per
 * active capsule, and verifying a chain costs some 15 us an entry. It is a cache: a restart
 * checks that the ledger's first `bytes` still hash to `sha256` (any change to them, and it
 * verifies the whole chain instead) and verifies the entries after them.
 */
interface LedgerCheckpoint {
  version: 1;
  bytes: number;
  entries: number;
  head: string;
  /** SHA-256 (hex) of the ledger's first `bytes` bytes. */
  sha256: string;
  totals: Record<string, Usage>;
  lastActive: Record<string, number>;
  /** The latest `to` (ms since the epoch) of any entry. */
  latestTo: number;
  /**
   * Entry 1, and every INDEX_EVERY-th after it: [seq, the byte offset of its line, the latest
   * `to` of the entries before it]. A reader of entries after a seq, or of usage since a time,
   * starts from the last point before them instead of from the first line.
   */
  index: [number, number, number][];
}

function isUsage(value: unknown): value is Usage {
  if (value === null || typeof value !== 'object') return false;
  const usage = value as Record<string, unknown>;
  return (
    ['requests', 'cpuMs', 'memoryMbSeconds', 'bytesIn', 'bytesOut'].every((key) => typeof usage[key] === 'number') &&
    usage.limitHits !== null &&
    typeof usage.limitHits === 'object' &&
    Object.values(usage.limitHits as object).every((count) => typeof count === 'number')
  );
}

/** The checkpoint beside `path`, or undefined when there is none or it is not one (then the whole chain is verified). */
async function readCheckpoint(path: string): Promise<LedgerCheckpoint | undefined> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const checkpoint = value as Partial<LedgerCheckpoint>;
  const whole = (number: unknown): number is number => Number.isSafeInteger(number) && (number as number) >= 0;
  if (
    checkpoint.version !== 1 ||
    !whole(checkpoint.bytes) ||
    !whole(checkpoint.entries) ||
    typeof checkpoint.head !== 'string' ||
    typeof checkpoint.sha256 !== 'string' ||
    typeof checkpoint.latestTo !== 'number' ||
    checkpoint.totals === null ||
    typeof checkpoint.totals !== 'object' ||
    !Object.values(checkpoint.totals).every(isUsage) ||
    checkpoint.lastActive === null ||
    typeof checkpoint.lastActive !== 'object' ||
    !Object.values(checkpoint.lastActive).every((at) => typeof at === 'number') ||
    !Array.isArray(checkpoint.index) ||
    !checkpoint.index.every((point) => Array.isArray(point) && point.length === 3 && point.every((item) => typeof item === 'number'))
  )
    return undefined;
  return checkpoint as LedgerCheckpoint;
}

function checkLine(line: string, seq: number, prev: string): LedgerEntry | string {
  let entry: LedgerEntry;
  try {
    entry = JSON.parse(line) as LedgerEntry;
  } catch {
    return 'the line is not JSON';
  }
  if (entry === null || typeof entry !== 'object') return 'the line is not an entry';
  if (entry.seq !== seq) return `seq is ${String(entry.seq)}, expected ${seq}`;
  if (entry.prev !== prev) return `prev does not match the hash of entry ${seq - 1}`;
  let expected: string;
  try {
    expected = entryHash(entry);
  } catch {
    return 'the entry holds a value JSON cannot carry';
  }
  if (entry.hash !== expected) return 'hash does not match the entry: it was altered';
  return entry;
}

export interface LedgerOptions {
  logger?: Logger;
  /** For tests. */
  now?: () => Date;
  /** For tests: reads at start-up of at least this many bytes are announced (default 64 MiB to verify, 2 GiB to hash). */
  announceReadBytes?: number;
  /** For tests: how often a long read logs its progress (default 10 s). */
  progressEveryMs?: number;
  /** For tests: a check at start-up reading at least this many bytes runs in the background (default 4 MiB to verify, 256 MiB to hash). */
  backgroundReadBytes?: number;
}

/** What a host says of its usage ledger in its status (spec/host-api.md section 5.6). */
export type LedgerState = 'ok' | 'checking' | 'broken';

export interface UsageQuery {
  capsule?: string;
  /** Only entries of this registrar's installations, whatever is installed now. */
  registrar?: string;
  /**
   * Entries whose period ends after this (inclusive of periods that overlap it). No entry spans a
   * UTC month start, so a month's entries are exactly its usage.
   */
  since?: Date;
  /** Entries whose period starts before this. */
  until?: Date;
}

/**
 * The usage ledger: request records are summed in memory per capsule, and each flush appends
 * one hash-chained entry per capsule that was used. The file is only ever appended to.
 *
 * @example
 * const ledger = await UsageLedger.open('/var/lib/stratum/metering/ledger.jsonl');
 * runtime.onRequest((record) => ledger.record(record));
 * setInterval(() => ledger.flush(), 10_000);
 */
export class UsageLedger {
  readonly path: string;
  readonly #handle: FileHandle;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #options: LedgerOptions;
  /** Set once the chain is checked (`#check`). */
  #seq = 0;
  #head = GENESIS_HASH;
  /** The ledger's length in bytes, and the SHA-256 of all of it so far (for the checkpoint). */
  #bytes = 0;
  #hash = createHash('sha256');
  /**
   * The file this host verified and appends to, as it was after its last write: a flush checks
   * that the path still names it and that no one else wrote to it (`#checkFile`).
   */
  #file: { dev: bigint; ino: bigint; ctimeNs: bigint } | undefined;
  /** The bytes of the ledger's last line (its last entry; the last 64 KiB of a longer one), to compare before each append. */
  #tail: Buffer = Buffer.alloc(0);
  #known = new LedgerTotals();
  /** Usage of the period since `#periodStart`, not written yet. */
  #pending: Pending = new Map();
  /** Where the usage in `#pending` began. */
  #periodStart: Date;
  /**
   * The first UTC month start after `#periodStart`, in ms since the epoch: no entry spans one,
   * so that a month's usage is exactly the entries within it (spec/host-api.md section 7).
   */
  #periodEnd: number;
  /** Usage of periods that ended at a month start, not written yet. */
  #ended: { from: Date; to: Date; pending: Pending }[] = [];
  #checkpointedAt = 0;
  /** Every write waits for the one before, and the first for the check at start-up. */
  #writing: Promise<void> = Promise.resolve();
  /** While the check runs in the background: when each capsule was last active, by the checkpoint. */
  #checking: Map<string, number> | undefined;
  /** Ends a background check when the ledger is closed with nothing to write. */
  readonly #abandon = new AbortController();
  /** The check failed: nothing is appended, and reads fail with this. */
  #broken?: StratumError;
  #closed = false;

  private constructor(path: string, handle: FileHandle, options: LedgerOptions) {
    this.path = path;
    this.#handle = handle;
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? (() => new Date());
    this.#periodStart = this.#now();
    this.#periodEnd = nextMonthStart(this.#periodStart.getTime());
  }

  /** Writes the checkpoint (see `LedgerCheckpoint`) for what the ledger holds now; a failure only costs the next start a longer check. */
  async #checkpoint(): Promise<void> {
    this.#checkpointedAt = Date.now();
    const checkpoint: LedgerCheckpoint = {
      version: 1,
      bytes: this.#bytes,
      entries: this.#seq,
      head: this.#head,
      sha256: this.#hash.copy().digest('hex'),
      ...this.#known.snapshot(),
    };
    const path = `${this.path}.checkpoint`;
    try {
      await writeFile(`${path}.tmp`, JSON.stringify(checkpoint), { mode: 0o600 });
      await rename(`${path}.tmp`, path);
    } catch (error) {
      this.#logger.warn({ err: error, checkpoint: path }, 'writing the usage ledger checkpoint failed');
    }
  }

  /**
   * Opens (or creates) a ledger and checks its chain: the whole of it, or, when the checkpoint
   * beside it says which first bytes were verified and they are unchanged, the entries after
   * them. A last line cut short by a crash mid-write was never a complete entry: it is dropped
   * with a warning. Any other break refuses to open, because appending to a broken chain would
   * make it look whole again.
   *
   * A check that reads a lot (BACKGROUND_VERIFY_BYTES, BACKGROUND_HASH_BYTES) runs after `open`
   * returns, so that the host can serve meanwhile: usage is kept in memory, flushes and reads
   * wait for it, and if it fails, nothing is ever appended and every flush and read fails with
   * the reason (`broken`), which is logged once.
   */
  static async open(path: string, options: LedgerOptions = {}): Promise<UsageLedger> {
    const logger = options.logger ?? silentLogger;
    await mkdir(dirname(path), { recursive: true });
    const handle = await open(path, 'a+', 0o600);
    const ledger = new UsageLedger(path, handle, options);
    try {
      const checkpoint = await readCheckpoint(`${path}.checkpoint`);
      const { size } = await handle.stat();
      const trusted = checkpoint && size >= checkpoint.bytes ? checkpoint.bytes : 0;
      const background = options.backgroundReadBytes;
      if (trusted < (background ?? BACKGROUND_HASH_BYTES) && size - trusted < (background ?? BACKGROUND_VERIFY_BYTES)) {
        await ledger.#check(checkpoint, size);
        return ledger;
      }
      logger.info(
        { ledger: path, bytes: size },
        `checking the usage ledger in the background (${formatBytes(size)}); usage is written once it is done`,
      );
      ledger.#checking = new Map(Object.entries(checkpoint?.lastActive ?? {}));
      const started = Date.now();
      ledger.#writing = ledger.#check(checkpoint, size).then(
        () => {
          ledger.#checking = undefined;
          logger.info(
            { ledger: path, entries: ledger.#seq, ms: Date.now() - started },
            `usage ledger checked in ${formatDuration(Date.now() - started)}`,
          );
        },
        (error: unknown) => {
          ledger.#checking = undefined;
          if (ledger.#abandon.signal.aborted) return;
          ledger.#broken =
            error instanceof StratumError
              ? error
              : new StratumError('LEDGER_UNREADABLE', `the usage ledger ${path} could not be read: ${errorMessage(error)}`, {
                  user: false,
                });
          logger.error(
            { err: ledger.#broken, details: ledger.#broken.details },
            `${ledger.#broken.message}: no usage is written until it is repaired`,
          );
        },
      );
      return ledger;
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Checks the chain (see `open`) and takes its state; throws LEDGER_CORRUPT when it does not verify. */
  async #check(checkpoint: LedgerCheckpoint | undefined, size: number): Promise<void> {
    const { path } = this;
    const logger = this.#logger;
    const options = this.#options;
    const handle = this.#handle;
    const known = new LedgerTotals();
    let from = START;
    let hash = createHash('sha256');
    if (checkpoint) {
      const prefix = createHash('sha256');
      // Shorter: what is missing is said once the chain is verified (`#reportMissing`).
      const shorter = size < checkpoint.bytes;
      if (
        !shorter &&
        (await hashPrefix(
          handle,
          checkpoint.bytes,
          prefix,
          announceRead(logger, path, 'checking the usage ledger against its checkpoint', checkpoint.bytes, ANNOUNCE_HASH_BYTES, options),
          this.#abandon.signal,
        )) &&
        prefix.copy().digest('hex') === checkpoint.sha256
      ) {
        from = { entries: checkpoint.entries, head: checkpoint.head, bytes: checkpoint.bytes };
        hash = prefix;
        known.restore(checkpoint);
      } else if (!shorter) {
        logger.warn(
          { ledger: path, checkpointBytes: checkpoint.bytes },
          'the usage ledger changed before its last checkpoint; verifying the whole chain',
        );
      }
    }
    const unverified = size - from.bytes;
    const verifying = from.bytes === 0 ? 'verifying the usage ledger' : 'verifying the usage ledger after its checkpoint';
    const started = Date.now();
    const progress = announceRead(logger, path, verifying, unverified, ANNOUNCE_VERIFY_BYTES, options);
    const scan = await scanLedger(handle, from, hash, (entry, offset) => known.add(entry, offset), progress, this.#abandon.signal);
    if (!scan.ok) {
      throw new StratumError('LEDGER_CORRUPT', `the usage ledger ${path} does not verify`, {
        details: [`line ${scan.line}: ${scan.reason}`],
        hint: recoveryHint(path),
        user: false,
      });
    }
    if (checkpoint && scan.state.entries < checkpoint.entries) this.#reportMissing(checkpoint, scan.state.entries);
    if (progress) {
      const ms = Date.now() - started;
      const entries = scan.state.entries - from.entries;
      logger.info({ ledger: path, entries, ms }, `${verifying}: ${entries} entries verified in ${formatDuration(ms)}`);
    }
    if (scan.partial > 0) {
      // A crash cuts short only a line it was writing; one the checkpoint counted was cut by a removal (`#reportMissing`).
      if (checkpoint && scan.state.bytes < checkpoint.bytes)
        logger.warn(
          { ledger: path, droppedBytes: scan.partial },
          `dropping the ${scan.partial} bytes left of entry ${scan.state.entries + 1}, which was verified before and is cut short`,
        );
      else logger.warn({ ledger: path, droppedBytes: scan.partial }, 'dropping a ledger line cut short by a crash');
      await handle.truncate(scan.state.bytes);
    }
    this.#seq = scan.state.entries;
    this.#head = scan.state.head;
    this.#bytes = scan.state.bytes;
    this.#hash = hash;
    this.#known = known;
    await this.#noteFile(await readLastLine(handle, this.#bytes));
    if (!checkpoint || scan.state.bytes !== checkpoint.bytes) await this.#checkpoint();
  }

  /**
   * Entries a host verified (its checkpoint counts them) cannot be undone by a crash, as every
   * flush syncs the ledger before the checkpoint is written: fewer of them now means they were
   * removed. The host still starts on the shorter chain, which verifies: refusing would refuse
   * the recovery that LEDGER_CORRUPT's hint gives (a backup put back, or the ledger moved
   * aside, with the checkpoint left beside it), and the checkpoint is a cache that whoever
   * removed the entries could delete as well. A registrar's recorded head is what proves a
   * removal (spec/host-api.md 5.9); this line tells the operator first.
   */
  #reportMissing(checkpoint: LedgerCheckpoint, entries: number): void {
    const { path } = this;
    const missing = checkpoint.entries - entries;
    const verified = `${checkpoint.entries} ${checkpoint.entries === 1 ? 'entry' : 'entries'}`;
    const what =
      entries === 0
        ? `the usage ledger ${path} is missing or empty, but this host verified ${verified} in it before (its checkpoint ${path}.checkpoint says so): all ${missing} are gone, with the usage they held, and a new chain begins at entry 1`
        : `the usage ledger ${path} holds ${entries} ${entries === 1 ? 'entry' : 'entries'}, but this host verified ${verified} in it before (its checkpoint ${path}.checkpoint says so): entries ${entries + 1} to ${checkpoint.entries} (${missing}) are gone, with the usage they held; a crash does not remove verified entries, so they were cut from its end or it was put back from an older backup. Its chain verifies, and the host carries it on from entry ${entries + 1}`;
    // A running host keeps its own copy of a ledger replaced or deleted under it (LEDGER_CHANGED).
    let copies: string[] = [];
    try {
      copies = readdirSync(dirname(path))
        .filter((file) => file.startsWith(`${basename(path)}.replaced-`))
        .map((file) => join(dirname(path), file))
        .sort();
    } catch {
      // Only a pointer for the operator; the report stands without it.
    }
    const kept =
      copies.length > 0 ? ` The host before kept what it had written in ${copies.join(', ')}: that may be the ledger to put back.` : '';
    this.#logger.error(
      { ledger: path, entries, checkpointEntries: checkpoint.entries, missing, ...(copies.length > 0 ? { copies } : {}) },
      `${what}.${kept} If this was meant (a backup put back, or the ledger moved aside after a LEDGER_CORRUPT refusal), nothing more is needed; if not, stop the host and put back a ledger that holds them (mv ${path} ${path}.short first, for the audit). A registrar that recorded the ledger's head from host usage sees the removal too.`,
    );
  }

  /** Takes the file as it is now, its last line `tail`, as the one this host wrote (see `#checkFile`). */
  async #noteFile(tail: Buffer): Promise<void> {
    const { dev, ino, ctimeNs } = await this.#handle.stat({ bigint: true });
    this.#file = { dev, ino, ctimeNs };
    this.#tail = tail;
  }

  /**
   * Before an append: the path must still name the file this host verified and wrote, and no one
   * else may have written to it. Otherwise the entries would go to a deleted file (lost at the
   * next start, with no word of it) or carry on a chain that no longer verifies, which section 7
   * of spec/host-api.md forbids. Two stats and a read of the last line per flush; the whole file
   * is hashed only when its ctime moved though its length and last line did not (a chmod, a hard
   * link by a backup tool, or an edit in place of an earlier line).
   */
  async #checkFile(): Promise<void> {
    const file = this.#file;
    if (!file) return;
    const [opened, named] = await Promise.all([
      this.#handle.stat({ bigint: true }),
      stat(this.path, { bigint: true }).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      }),
    ]);
    let problem: string | undefined;
    let replaced = false;
    if (!named || named.dev !== opened.dev || named.ino !== opened.ino) {
      replaced = true;
      problem = named
        ? 'it was replaced by another file (sed -i, an editor that saves a new file, or a mv or restore onto it)'
        : 'it was deleted or moved away';
    } else if (opened.size !== BigInt(this.#bytes)) {
      problem = `it is ${opened.size} bytes long, where the ${this.#seq} entries this host verified and wrote end at byte ${this.#bytes} (it was cut short, copied over, or written to by something else, or a failed write of this host's could not be undone: see the error before)`;
    } else if (!(await this.#tailUnchanged())) {
      problem = `its last line (entry ${this.#seq}) is not the entry this host wrote there (it was edited in place)`;
    } else if (opened.ctimeNs !== file.ctimeNs) {
      const now = createHash('sha256');
      if ((await hashPrefix(this.#handle, this.#bytes, now)) && now.digest('hex') === this.#hash.copy().digest('hex')) {
        this.#file = { ...file, ctimeNs: opened.ctimeNs };
        return;
      }
      problem = `its first ${this.#seq} entries are not the bytes this host verified and wrote (it was edited in place)`;
    }
    if (problem === undefined) return;
    const kept = replaced ? await this.#keepOwnCopy() : undefined;
    this.#broken = new StratumError('LEDGER_CHANGED', `the usage ledger ${this.path} was changed while the host ran: ${problem}`, {
      details: kept ? [`the ledger as this host verified and wrote it, ${this.#seq} entries, is kept in ${kept}`] : [],
      hint: kept
        ? `Keep both files for the audit, then put the ledger to keep at ${this.path} (${kept}, or a backup), or move the other aside (mv ${this.path} ${this.path}.corrupt) and the host begins a new ledger; then restart the host, which checks the ledger again at start.`
        : `${recoveryHint(this.path)} Then restart the host, which checks the ledger again at start.`,
      user: false,
    });
    this.#logger.error(
      { err: this.#broken, details: this.#broken.details, ledger: this.path, ...(kept ? { kept } : {}) },
      `${this.#broken.message}; no usage is written from now on, and what is used is kept in memory until the host stops (its stop logs it)${kept ? `; ${this.#broken.details[0]}` : ''}. ${this.#broken.hint}`,
    );
    // What this host verified and wrote, for the next start to hold the ledger to: the last
    // checkpoint may be minutes older, and a start then counted too few entries gone, or none.
    await this.#checkpoint();
    throw this.#broken;
  }

  async #tailUnchanged(): Promise<boolean> {
    const tail = this.#tail;
    if (tail.length === 0) return true;
    const read = Buffer.alloc(tail.length);
    const { bytesRead } = await this.#handle.read(read, 0, tail.length, this.#bytes - tail.length);
    return bytesRead === tail.length && read.equals(tail);
  }

  /**
   * Copies the file this host holds open, and the path no longer names, beside the ledger: once
   * the host stops, its entries (the last ones nowhere else) would be gone. Undefined when the
   * copy fails (a full disk): the error says so.
   */
  async #keepOwnCopy(): Promise<string | undefined> {
    const copy = `${this.path}.replaced-${this.#now().toISOString().replace(/:/g, '-')}`;
    try {
      const out = await open(copy, 'wx', 0o600);
      try {
        const piece = Buffer.allocUnsafe(READ_PIECE);
        for (let position = 0; position < this.#bytes; ) {
          const { bytesRead } = await this.#handle.read(piece, 0, Math.min(READ_PIECE, this.#bytes - position), position);
          if (bytesRead === 0) break;
          await out.write(piece.subarray(0, bytesRead));
          position += bytesRead;
        }
        await out.sync();
      } finally {
        await out.close();
      }
      return copy;
    } catch (error) {
      this.#logger.error(
        { err: error, ledger: this.path, copy },
        `copying the replaced usage ledger, as this host wrote it, to ${copy} failed: ${errorMessage(error)}; it is lost once the host stops unless it is copied from /proc/${process.pid}/fd before`,
      );
      return undefined;
    }
  }

  /** Why the ledger takes no usage: its chain does not verify (see `open`). */
  get broken(): StratumError | undefined {
    return this.#broken;
  }

  /** `checking` while a check at start-up runs in the background, `broken` once one failed. */
  get state(): LedgerState {
    return this.#broken ? 'broken' : this.#checking ? 'checking' : 'ok';
  }

  get head(): { entries: number; hash: string } {
    return { entries: this.#seq, hash: this.#head };
  }

  /** Adds a served request to its capsule's usage; `registrar`: whose installation it is. */
  record(record: RequestRecord, registrar?: string): void {
    if (this.#closed) return;
    // The request is counted in the month it ended in, whenever the next flush comes.
    const now = this.#now().getTime();
    if (now >= this.#periodEnd) this.#endPeriod(now);
    const key = registrar === undefined ? record.capsule : `${record.capsule}\0${registrar}`;
    const pending = this.#pending.get(key);
    if (pending) addUsage(pending.usage, usageOf(record));
    else this.#pending.set(key, { capsule: record.capsule, registrar, usage: usageOf(record) });
  }

  /** Sets aside the usage held until the month start(s) before `now`: it is written with that start as its `to`. */
  #endPeriod(now: number): void {
    while (now >= this.#periodEnd) {
      const end = new Date(this.#periodEnd);
      if (this.#pending.size > 0) this.#ended.push({ from: this.#periodStart, to: end, pending: this.#pending });
      this.#pending = new Map();
      this.#periodStart = end;
      this.#periodEnd = nextMonthStart(this.#periodEnd);
    }
  }

  /**
   * Appends one entry per capsule used since the last flush, and syncs the file; two for one
   * used on both sides of a month start.
   */
  flush(): Promise<void> {
    const next = this.#writing.then(() => this.#flushNow());
    // A failed write must not wedge every later one; the caller of this flush sees the error.
    this.#writing = next.catch(() => {});
    return next;
  }

  async #flushNow(): Promise<void> {
    if (this.#broken) throw this.#broken;
    // Even with nothing to write: a ledger changed under the host is reported within a flush interval.
    await this.#checkFile();
    // Never before what the ledger holds: a clock that went back (a VM restored, NTP stepping it)
    // would write periods that begin before entries already written end, and usage into a month
    // that has ended, whose signed report (spec/usage-report.md) would then change. Until the
    // clock passes it again, usage is written at the latest time the ledger has.
    const floor = this.#known.latestTo;
    const now = new Date(Math.max(this.#now().getTime(), floor, this.#periodStart.getTime()));
    if (this.#periodStart.getTime() < floor) this.#periodStart = new Date(floor);
    if (now.getTime() >= this.#periodEnd) this.#endPeriod(now.getTime());
    const periods = [...this.#ended, { from: this.#periodStart, to: now, pending: this.#pending }].filter(
      ({ pending }) => pending.size > 0,
    );
    this.#ended = [];
    this.#pending = new Map();
    // Also with nothing to write: an entry's period then starts at the flush before it, not at the
    // last one that wrote, so it is at most a flush interval long however long its capsule idled.
    this.#periodStart = now;
    if (periods.length === 0) return;
    let seq = this.#seq;
    let head = this.#head;
    const lines: string[] = [];
    const written: LedgerEntry[] = [];
    for (const period of periods) {
      // A period set aside at a month start that the clock reached before it went back.
      const from = new Date(Math.max(period.from.getTime(), floor));
      const to = new Date(Math.max(period.to.getTime(), from.getTime()));
      const { pending } = period;
      for (const [, { capsule, registrar, usage }] of [...pending].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        const body: Omit<LedgerEntry, 'hash'> = {
          seq: ++seq,
          time: now.toISOString(),
          capsule,
          ...(registrar !== undefined ? { registrar } : {}),
          from: from.toISOString(),
          to: to.toISOString(),
          usage,
          prev: head,
        };
        const entry: LedgerEntry = { ...body, hash: entryHash(body) };
        head = entry.hash;
        lines.push(`${canonicalJson(entry)}\n`);
        written.push(entry);
      }
    }
    const bytes = Buffer.from(lines.join(''));
    try {
      await this.#handle.write(bytes);
      await this.#handle.sync();
    } catch (error) {
      // What part of the entries reached the file is cut off again and their usage written by a
      // later flush: the next entries would otherwise follow a partial line, and the check before
      // them (`#checkFile`) would take the ledger for one that something else wrote to.
      this.#ended = [...periods, ...this.#ended];
      await this.#handle.truncate(this.#bytes).catch(() => {});
      throw error;
    }
    await this.#noteFile(Buffer.from(lines.at(-1) as string));
    let offset = this.#bytes;
    for (const [index, entry] of written.entries()) {
      this.#known.add(entry, offset);
      offset += Buffer.byteLength(lines[index] as string);
    }
    this.#seq = seq;
    this.#head = head;
    this.#bytes += bytes.length;
    this.#hash.update(bytes);
    this.#logger.debug({ entries: written.length, head }, 'usage ledger flushed');
    if (Date.now() - this.#checkpointedAt >= CHECKPOINT_EVERY_MS) await this.#checkpoint();
  }

  /** The capsules with usage in the ledger that ends after `since`, the most recently used first. */
  activeSince(since: Date): string[] {
    return [...(this.#checking ?? this.#known.lastActive)]
      .filter(([, at]) => at > since.getTime())
      .sort(([, a], [, b]) => b - a)
      .map(([capsule]) => capsule);
  }

  /** Usage in the ledger (not what is still pending) per capsule; every entry since it began without filters. */
  async usage(query: UsageQuery = {}): Promise<Record<string, Usage>> {
    await this.#writing;
    if (this.#broken) throw this.#broken;
    // The totals kept are by capsule alone: a registrar's usage is read from the entries.
    if (!query.since && !query.until && query.registrar === undefined) {
      const all: Record<string, Usage> = {};
      for (const [capsule, usage] of this.#known.totals) {
        if (query.capsule === undefined || query.capsule === capsule) all[capsule] = addUsage(emptyUsage(), usage);
      }
      return all;
    }
    const result: Record<string, Usage> = {};
    const start = query.since ? this.#known.offsetBefore(query.since.getTime()) : 0;
    for await (const entry of this.#read(start)) {
      if (query.capsule !== undefined && entry.capsule !== query.capsule) continue;
      if (query.registrar !== undefined && entry.registrar !== query.registrar) continue;
      const from = Date.parse(entry.from);
      // An entry of one instant (its period began in the millisecond of its flush: a flush just
      // before, or a month start) is in the period that instant is in, as if it lasted a
      // millisecond: by `to` alone, an instant at a month start would be in neither month.
      const to = Math.max(Date.parse(entry.to), from + 1);
      if (query.since && to <= query.since.getTime()) continue;
      if (query.until && from >= query.until.getTime()) continue;
      const sum = result[entry.capsule] ?? emptyUsage();
      result[entry.capsule] = addUsage(sum, entry.usage);
    }
    return result;
  }

  /** Entries with seq > `after`, at most `limit` of them, for audits and monthly reports. */
  async entries(after = 0, limit = 1000): Promise<LedgerEntry[]> {
    await this.#writing;
    if (this.#broken) throw this.#broken;
    const out: LedgerEntry[] = [];
    for await (const entry of this.#read(this.#known.offsetOf(after + 1))) {
      if (entry.seq <= after) continue;
      out.push(entry);
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * The entries from the last indexed one before `since` on, for a monthly report: every entry
   * whose period begins at or after `since` is among them (spec/usage-report.md).
   */
  async *entriesSince(since: Date): AsyncGenerator<LedgerEntry> {
    await this.#writing;
    if (this.#broken) throw this.#broken;
    yield* this.#read(this.#known.offsetBefore(since.getTime()));
  }

  /** The entries from the line at byte `start` on. */
  async *#read(start = 0): AsyncGenerator<LedgerEntry> {
    const lines = createInterface({ input: createReadStream(this.path, { encoding: 'utf8', start }), crlfDelay: Number.POSITIVE_INFINITY });
    try {
      for await (const line of lines) {
        if (!line) continue;
        let entry: LedgerEntry;
        try {
          entry = JSON.parse(line) as LedgerEntry;
        } catch {
          // Only a line still being appended can be partial; it is read whole next time.
          return;
        }
        yield entry;
      }
    } finally {
      lines.close();
    }
  }

  /** What a broken ledger never took is lost with the stop: this line is the only record of it. */
  #logUnwritten(broken: StratumError): void {
    const held = [...this.#ended.map(({ pending }) => pending), this.#pending];
    if (held.every((pending) => pending.size === 0)) return;
    const usage: Record<string, Usage> = {};
    for (const { capsule, registrar, usage: one } of held.flatMap((pending) => [...pending.values()])) {
      const key = registrar === undefined ? capsule : `${capsule} (registrar ${registrar})`;
      usage[key] = addUsage(usage[key] ?? emptyUsage(), one);
    }
    const requests = Object.values(usage).reduce((sum, one) => sum + one.requests, 0);
    const from = (this.#ended[0]?.from ?? this.#periodStart).toISOString();
    const to = this.#now().toISOString();
    this.#logger.error(
      { ledger: this.path, code: broken.code, from, to, usage },
      `the usage of ${requests} requests to ${Object.keys(usage).join(', ')} from ${from} to ${to} was never written to the usage ledger ${this.path}, which is broken (${broken.code}), and is lost with this stop; this line's "usage" holds it`,
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // With usage to write, the check must end first; with none, it need not (a host that fails
    // to start, or stops at once, would otherwise wait for a long read).
    if (this.#checking && this.#pending.size === 0 && this.#ended.length === 0) this.#abandon.abort();
    else if (this.#checking) this.#logger.info({ ledger: this.path }, 'waiting for the usage ledger check to end, to write the last usage');
    await this.flush().catch((error: unknown) => {
      if (error !== this.#broken) this.#logger.error({ err: error }, 'the last usage flush failed');
    });
    if (this.#broken) this.#logUnwritten(this.#broken);
    this.#closed = true;
    await this.#writing;
    if (!this.#broken && !this.#abandon.signal.aborted) await this.#checkpoint();
    await this.#handle.close();
  }
}

/** Usage not written yet, by capsule and by the registrar whose installation it was. */
type Pending = Map<string, { capsule: string; registrar: string | undefined; usage: Usage }>;

/** The first UTC month start after `time` (ms since the epoch). */
function nextMonthStart(time: number): number {
  const date = new Date(time);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
}

/** What a ledger's entries add up to, and where to start reading for a seq or a time. */
class LedgerTotals {
  readonly totals = new Map<string, Usage>();
  /** When each capsule's last entry ends, in ms since the epoch. */
  readonly lastActive = new Map<string, number>();
  #latestTo = 0;
  #index: [number, number, number][] = [];

  add(entry: LedgerEntry, offset: number): void {
    if (entry.seq % INDEX_EVERY === 1) this.#index.push([entry.seq, offset, this.#latestTo]);
    let total = this.totals.get(entry.capsule);
    if (!total) {
      total = emptyUsage();
      this.totals.set(entry.capsule, total);
    }
    addUsage(total, entry.usage);
    const to = Date.parse(entry.to);
    this.lastActive.set(entry.capsule, to);
    if (to > this.#latestTo) this.#latestTo = to;
  }

  /** When the ledger's latest period ends, in ms since the epoch (0 for none). */
  get latestTo(): number {
    return this.#latestTo;
  }

  restore(checkpoint: LedgerCheckpoint): void {
    for (const [capsule, usage] of Object.entries(checkpoint.totals)) this.totals.set(capsule, addUsage(emptyUsage(), usage));
    for (const [capsule, at] of Object.entries(checkpoint.lastActive)) this.lastActive.set(capsule, at);
    this.#latestTo = checkpoint.latestTo;
    this.#index = checkpoint.index.filter(([seq, offset]) => seq <= checkpoint.entries && offset < checkpoint.bytes);
  }

  snapshot(): Pick<LedgerCheckpoint, 'totals' | 'lastActive' | 'latestTo' | 'index'> {
    return {
      totals: Object.fromEntries(this.totals),
      lastActive: Object.fromEntries(this.lastActive),
      latestTo: this.#latestTo,
      index: this.#index,
    };
  }

  /** The offset of an indexed line at or before entry `seq`. */
  offsetOf(seq: number): number {
    let offset = 0;
    for (const [pointSeq, pointOffset] of this.#index) {
      if (pointSeq > seq) break;
      offset = pointOffset;
    }
    return offset;
  }

  /** The offset of an indexed line before which every entry ends at or before `time`. */
  offsetBefore(time: number): number {
    let offset = 0;
    for (const [, pointOffset, latestBefore] of this.#index) {
      // At `time` too: an entry of one instant there is read (see `usage`).
      if (latestBefore >= time) break;
      offset = pointOffset;
    }
    return offset;
  }
}
