import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { type Logger, StratumError, silentLogger } from '@stratum/core';
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

export async function verifyLedgerFile(path: string): Promise<LedgerVerification> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, entries: 0, head: GENESIS_HASH };
    throw error;
  }
  return verifyLedgerText(text);
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
}

export interface UsageQuery {
  capsule?: string;
  /** Entries whose period ends after this (inclusive of periods that overlap it). */
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
  #seq: number;
  #head: string;
  #pending = new Map<string, Usage>();
  #periodStart: Date;
  readonly #totals = new Map<string, Usage>();
  /** When each capsule's last entry ends, in ms since the epoch. */
  readonly #lastActive: Map<string, number>;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(
    path: string,
    handle: FileHandle,
    seq: number,
    head: string,
    totals: Map<string, Usage>,
    lastActive: Map<string, number>,
    options: LedgerOptions,
  ) {
    this.path = path;
    this.#lastActive = lastActive;
    this.#handle = handle;
    this.#seq = seq;
    this.#head = head;
    this.#totals = totals;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? (() => new Date());
    this.#periodStart = this.#now();
  }

  /**
   * Opens (or creates) a ledger and checks its whole chain. A last line cut short by a crash
   * mid-write was never a complete entry: it is dropped with a warning. Any other break refuses
   * to open, because appending to a broken chain would make it look whole again.
   */
  static async open(path: string, options: LedgerOptions = {}): Promise<UsageLedger> {
    const logger = options.logger ?? silentLogger;
    await mkdir(dirname(path), { recursive: true });
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (text.length > 0 && !text.endsWith('\n')) {
      const keep = text.lastIndexOf('\n') + 1;
      logger.warn({ ledger: path, droppedBytes: Buffer.byteLength(text.slice(keep)) }, 'dropping a ledger line cut short by a crash');
      await truncate(path, Buffer.byteLength(text.slice(0, keep)));
      text = text.slice(0, keep);
    }
    const result = verifyLedgerText(text);
    if (!result.ok) {
      throw new StratumError('LEDGER_CORRUPT', `the usage ledger ${path} does not verify`, {
        details: [`line ${result.line}: ${result.reason}`],
        hint: 'The ledger is append-only and hash-chained; keep this copy for the audit and start the host with a fresh data directory or restore the ledger from a backup.',
        user: false,
      });
    }
    const totals = new Map<string, Usage>();
    const lastActive = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (!line) continue;
      const entry = JSON.parse(line) as LedgerEntry;
      addUsage(totalFor(totals, entry.capsule), entry.usage);
      lastActive.set(entry.capsule, Date.parse(entry.to));
    }
    const handle = await open(path, 'a', 0o600);
    return new UsageLedger(path, handle, result.entries, result.head, totals, lastActive, options);
  }

  get head(): { entries: number; hash: string } {
    return { entries: this.#seq, hash: this.#head };
  }

  record(record: RequestRecord): void {
    if (this.#closed) return;
    const pending = this.#pending.get(record.capsule) ?? emptyUsage();
    this.#pending.set(record.capsule, addUsage(pending, usageOf(record)));
  }

  /** Appends one entry per capsule used since the last flush, and syncs the file. */
  flush(): Promise<void> {
    const next = this.#writing.then(() => this.#flushNow());
    // A failed write must not wedge every later one; the caller of this flush sees the error.
    this.#writing = next.catch(() => {});
    return next;
  }

  async #flushNow(): Promise<void> {
    if (this.#pending.size === 0) return;
    const pending = this.#pending;
    this.#pending = new Map();
    const from = this.#periodStart.toISOString();
    const now = this.#now();
    this.#periodStart = now;
    let seq = this.#seq;
    let head = this.#head;
    const lines: string[] = [];
    const written: LedgerEntry[] = [];
    for (const [capsule, usage] of [...pending].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const body: Omit<LedgerEntry, 'hash'> = {
        seq: ++seq,
        time: now.toISOString(),
        capsule,
        from,
        to: now.toISOString(),
        usage,
        prev: head,
      };
      const entry: LedgerEntry = { ...body, hash: entryHash(body) };
      head = entry.hash;
      lines.push(`${canonicalJson(entry)}\n`);
      written.push(entry);
    }
    await this.#handle.write(lines.join(''));
    await this.#handle.sync();
    this.#seq = seq;
    this.#head = head;
    for (const entry of written) {
      addUsage(totalFor(this.#totals, entry.capsule), entry.usage);
      this.#lastActive.set(entry.capsule, Date.parse(entry.to));
    }
    this.#logger.debug({ entries: written.length, head }, 'usage ledger flushed');
  }

  /** The capsules with usage in the ledger that ends after `since`, the most recently used first. */
  activeSince(since: Date): string[] {
    return [...this.#lastActive]
      .filter(([, at]) => at > since.getTime())
      .sort(([, a], [, b]) => b - a)
      .map(([capsule]) => capsule);
  }

  /** Usage in the ledger (not what is still pending) per capsule; every entry since it began without filters. */
  async usage(query: UsageQuery = {}): Promise<Record<string, Usage>> {
    await this.#writing;
    if (!query.since && !query.until) {
      const all: Record<string, Usage> = {};
      for (const [capsule, usage] of this.#totals) {
        if (query.capsule === undefined || query.capsule === capsule) all[capsule] = addUsage(emptyUsage(), usage);
      }
      return all;
    }
    const result: Record<string, Usage> = {};
    for await (const entry of this.#read()) {
      if (query.capsule !== undefined && entry.capsule !== query.capsule) continue;
      if (query.since && new Date(entry.to) <= query.since) continue;
      if (query.until && new Date(entry.from) >= query.until) continue;
      const sum = result[entry.capsule] ?? emptyUsage();
      result[entry.capsule] = addUsage(sum, entry.usage);
    }
    return result;
  }

  /** Entries with seq > `after`, at most `limit` of them, for audits and monthly reports. */
  async entries(after = 0, limit = 1000): Promise<LedgerEntry[]> {
    await this.#writing;
    const out: LedgerEntry[] = [];
    for await (const entry of this.#read()) {
      if (entry.seq <= after) continue;
      out.push(entry);
      if (out.length >= limit) break;
    }
    return out;
  }

  async *#read(): AsyncGenerator<LedgerEntry> {
    const lines = createInterface({ input: createReadStream(this.path, 'utf8'), crlfDelay: Number.POSITIVE_INFINITY });
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

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush().catch((error: unknown) => this.#logger.error({ err: error }, 'the last usage flush failed'));
    this.#closed = true;
    await this.#handle.close();
  }
}

function totalFor(totals: Map<string, Usage>, capsule: string): Usage {
  let usage = totals.get(capsule);
  if (!usage) {
    usage = emptyUsage();
    totals.set(capsule, usage);
  }
  return usage;
}
