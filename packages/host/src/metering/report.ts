import { type Ed25519PrivateJwk, publicKeyFromRaw, StratumError, signEd25519, verifyEd25519 } from '@stratum/core';
import { canonicalJson, GENESIS_HASH, type LedgerEntry, type Usage } from './ledger.ts';

/**
 * The monthly usage report (spec/usage-report.md): what a host's ledger holds for one UTC
 * calendar month that has ended, summed per registrar and per capsule, signed with the host's
 * Ed25519 identity key. Building and verifying are pure: the host feeds the ledger's entries
 * in, a portal (or `stratum host report verify`) feeds a report and a key.
 */

export const USAGE_REPORT_TYPE = 'stratum-usage-report';
export const USAGE_REPORT_VERSION = 1;
/** Put before the RFC 8785 serialisation that is signed: the host key signs other statements too (spec/discovery.md). */
export const USAGE_REPORT_SIGNING_PREFIX = 'stratum1-usage-report:';

/** Which of a month's ledger entries a report covers; the four anchors are absent for a month without any. */
export interface ReportLedger {
  entries: number;
  /** The `seq` of the month's first entry and of its last. */
  first?: number;
  last?: number;
  /** The first entry's `prev` and the last entry's `hash`. */
  prev?: string;
  hash?: string;
}

export interface ReportCapsule {
  capsule: string;
  usage: Usage;
}

export interface ReportRegistrar {
  /** The registrar's name in host.toml; null for entries that name none. */
  registrar: string | null;
  usage: Usage;
  capsules: ReportCapsule[];
}

/** A report without its signature: what is signed. */
export interface UsageReportBody {
  type: typeof USAGE_REPORT_TYPE;
  version: typeof USAGE_REPORT_VERSION;
  host: string;
  /** The host's Ed25519 public key, 32 bytes in unpadded base64url: the `k=` of its `_stratum-host` record. */
  key: string;
  /** `YYYY-MM`, a UTC calendar month. */
  month: string;
  ledger: ReportLedger;
  totals: Usage;
  registrars: ReportRegistrar[];
}

export interface UsageReport extends UsageReportBody {
  /** Ed25519 over USAGE_REPORT_SIGNING_PREFIX and the body's RFC 8785 serialisation, 64 bytes in unpadded base64url. */
  signature: string;
}

const MONTH = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** The UTC bounds [start, end) of a `YYYY-MM` month, or undefined when it is not one (years 1970 to 9999). */
export function monthBounds(month: string): { start: Date; end: Date } | undefined {
  const match = MONTH.exec(month);
  if (!match) return undefined;
  const year = Number(match[1]);
  const index = Number(match[2]) - 1;
  if (year < 1970) return undefined;
  return { start: new Date(Date.UTC(year, index, 1)), end: new Date(Date.UTC(year, index + 1, 1)) };
}

/** The `YYYY-MM` of the last month that ended before `now`: the default month of a report. */
export function lastEndedMonth(now: Date): string {
  const previous = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  return `${String(previous.getUTCFullYear()).padStart(4, '0')}-${String(previous.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** Whether the month (a valid `YYYY-MM`) has ended at `now`: its end is at or before it. */
export function monthEnded(month: string, now: Date): boolean {
  const bounds = monthBounds(month);
  return bounds !== undefined && bounds.end.getTime() <= now.getTime();
}

/** Whether a ledger entry belongs to the month [start, end): its period begins in it (spec/usage-report.md section 3). */
export function entryInMonth(entry: Pick<LedgerEntry, 'from'>, start: Date, end: Date): boolean {
  const from = Date.parse(entry.from);
  return from >= start.getTime() && from < end.getTime();
}

/**
 * Figures summed exactly: whole counts as integers, `cpuMs` and `memoryMbSeconds` in millionths
 * (the ledger keeps them to six decimals), so that a verifier's sums are a host's, whatever the
 * order of the additions.
 */
interface ExactUsage {
  requests: bigint;
  cpu: bigint;
  memory: bigint;
  bytesIn: bigint;
  bytesOut: bigint;
  limitHits: Map<string, bigint>;
}

const micros = (value: number): bigint => BigInt(Math.round(value * 1e6));

function exactOf(usage: Usage): ExactUsage {
  return {
    requests: BigInt(usage.requests),
    cpu: micros(usage.cpuMs),
    memory: micros(usage.memoryMbSeconds),
    bytesIn: BigInt(usage.bytesIn),
    bytesOut: BigInt(usage.bytesOut),
    limitHits: new Map(Object.entries(usage.limitHits).map(([kind, count]) => [kind, BigInt(count)])),
  };
}

const zero = (): ExactUsage => ({ requests: 0n, cpu: 0n, memory: 0n, bytesIn: 0n, bytesOut: 0n, limitHits: new Map() });

function addExact(into: ExactUsage, more: ExactUsage): ExactUsage {
  into.requests += more.requests;
  into.cpu += more.cpu;
  into.memory += more.memory;
  into.bytesIn += more.bytesIn;
  into.bytesOut += more.bytesOut;
  for (const [kind, count] of more.limitHits) into.limitHits.set(kind, (into.limitHits.get(kind) ?? 0n) + count);
  return into;
}

function usageOfExact(exact: ExactUsage): Usage {
  return {
    requests: Number(exact.requests),
    cpuMs: Number(exact.cpu) / 1e6,
    memoryMbSeconds: Number(exact.memory) / 1e6,
    bytesIn: Number(exact.bytesIn),
    bytesOut: Number(exact.bytesOut),
    limitHits: Object.fromEntries([...exact.limitHits].sort(([a], [b]) => compare(a, b)).map(([kind, count]) => [kind, Number(count)])),
  };
}

function equalExact(a: ExactUsage, b: ExactUsage): boolean {
  if (a.requests !== b.requests || a.cpu !== b.cpu || a.memory !== b.memory || a.bytesIn !== b.bytesIn || a.bytesOut !== b.bytesOut)
    return false;
  if (a.limitHits.size !== b.limitHits.size) return false;
  for (const [kind, count] of a.limitHits) if (b.limitHits.get(kind) !== count) return false;
  return true;
}

/** Code-unit order, as RFC 8785 sorts member names. */
const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export interface BuildReportOptions {
  host: string;
  /** The host's public key, raw (the `x` of its JWK). */
  key: string;
  month: string;
  /** The ledger's entries, in order; those outside the month are passed over, so the whole ledger may be given. */
  entries: Iterable<LedgerEntry> | AsyncIterable<LedgerEntry>;
}

/**
 * The unsigned report for one month from the ledger's entries (spec/usage-report.md section 4).
 * Throws MONTH_INVALID for a month that is not `YYYY-MM`; whether it has ended is the caller's check.
 */
export async function buildUsageReport(options: BuildReportOptions): Promise<UsageReportBody> {
  const bounds = monthBounds(options.month);
  if (!bounds) throw new StratumError('MONTH_INVALID', `"${options.month.slice(0, 40)}" is not a month: give YYYY-MM, such as 2026-11`);
  const byRegistrar = new Map<string | null, Map<string, ExactUsage>>();
  const ledger: ReportLedger = { entries: 0 };
  for await (const entry of options.entries) {
    if (!entryInMonth(entry, bounds.start, bounds.end)) continue;
    checkEntryUsage(entry);
    if (ledger.entries === 0) {
      ledger.first = entry.seq;
      ledger.prev = entry.prev;
    }
    ledger.entries++;
    ledger.last = entry.seq;
    ledger.hash = entry.hash;
    const registrar = entry.registrar ?? null;
    const capsules = byRegistrar.get(registrar) ?? new Map<string, ExactUsage>();
    byRegistrar.set(registrar, capsules);
    capsules.set(entry.capsule, addExact(capsules.get(entry.capsule) ?? zero(), exactOf(entry.usage)));
  }
  const total = zero();
  const registrars: ReportRegistrar[] = [...byRegistrar]
    // Named registrars in code-unit order, the entries that name none last.
    .sort(([a], [b]) => (a === null ? 1 : b === null ? -1 : compare(a, b)))
    .map(([registrar, capsules]) => {
      const sum = zero();
      const listed = [...capsules]
        .sort(([a], [b]) => compare(a, b))
        .map(([capsule, usage]) => {
          addExact(sum, usage);
          return { capsule, usage: usageOfExact(usage) };
        });
      addExact(total, sum);
      return { registrar, usage: usageOfExact(sum), capsules: listed };
    });
  const { entries, first, last, prev, hash } = ledger;
  const anchors = first !== undefined && last !== undefined && prev !== undefined && hash !== undefined;
  return {
    type: USAGE_REPORT_TYPE,
    version: USAGE_REPORT_VERSION,
    host: options.host,
    key: options.key,
    month: options.month,
    // In the order the spec lists them; with no entries, the count alone.
    ledger: anchors ? { entries, first, last, prev, hash } : { entries },
    totals: usageOfExact(total),
    registrars,
  };
}

/**
 * Refuses an entry whose usage no host writes (spec/host-api.md section 7): a negative figure
 * would be netted against the rest of the month, and a fractional count fail the sums.
 */
function checkEntryUsage(entry: LedgerEntry): void {
  const { usage } = entry;
  const problem = (field: string, value: unknown, what: string) =>
    new StratumError('LEDGER_ENTRY_INVALID', `ledger entry ${entry.seq}: usage.${field} is ${JSON.stringify(value)}, not ${what}`, {
      hint: 'The ledger was written by something other than a host; put back the ledger the host wrote (spec/host-api.md section 7).',
    });
  const counts = ['requests', 'bytesIn', 'bytesOut'] as const;
  for (const field of counts) {
    if (!Number.isSafeInteger(usage?.[field]) || usage[field] < 0) throw problem(field, usage?.[field], 'a whole number from 0');
  }
  for (const field of ['cpuMs', 'memoryMbSeconds'] as const) {
    if (typeof usage[field] !== 'number' || !Number.isFinite(usage[field]) || usage[field] < 0)
      throw problem(field, usage[field], 'a number from 0');
  }
  if (usage.limitHits === null || typeof usage.limitHits !== 'object') throw problem('limitHits', usage.limitHits, 'an object');
  for (const [kind, count] of Object.entries(usage.limitHits)) {
    if (!Number.isSafeInteger(count) || count < 0) throw problem(`limitHits[${JSON.stringify(kind)}]`, count, 'a whole number from 0');
  }
}

/**
 * The first member whose name repeats an earlier one of the same object, as a JSON Pointer, in
 * JSON text that parses. JSON.parse keeps the last of them, another parser the first: a report
 * that says `"requests": 999` and then `"requests": 8` would verify as 8 here and bill 999
 * there. RFC 8785, which the signature is over, takes I-JSON (RFC 7493), which has no such text.
 */
export function repeatedMember(text: string): string | undefined {
  interface Frame {
    object: boolean;
    pointer: string;
    names: Set<string>;
    key: string;
    index: number;
    expectKey: boolean;
  }
  const frames: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const frame = frames.at(-1);
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (frame?.object && frame.expectKey) {
        const name = JSON.parse(text.slice(i, end + 1)) as string;
        if (frame.names.has(name)) return `${frame.pointer}/${pointerToken(name)}`;
        frame.names.add(name);
        frame.key = name;
        frame.expectKey = false;
      }
      i = end;
    } else if (c === '{' || c === '[') {
      const pointer = frame ? `${frame.pointer}/${frame.object ? pointerToken(frame.key) : frame.index}` : '';
      frames.push({ object: c === '{', pointer, names: new Set(), key: '', index: 0, expectKey: c === '{' });
    } else if (c === '}' || c === ']') frames.pop();
    else if (c === ',' && frame) {
      if (frame.object) frame.expectKey = true;
      else frame.index++;
    }
  }
  return undefined;
}

/** A report's JSON text parsed, refused as REPORT_MALFORMED when it is not JSON or names a member twice. */
export function parseUsageReport(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ReportError('REPORT_MALFORMED', 'the report is not JSON', { details: [(error as Error).message] });
  }
  const repeated = repeatedMember(text);
  if (repeated !== undefined) {
    throw new ReportError('REPORT_MALFORMED', `the report is malformed at ${repeated}: a member named twice in one object`, {
      details: [`${repeated}: named twice`],
      hint: 'A report is I-JSON (RFC 7493): each member name once per object.',
    });
  }
  return value;
}

/** The bytes a report's signature is over: the prefix, then the RFC 8785 serialisation of the report without `signature`. */
export function reportSigningInput(report: UsageReportBody | UsageReport): Uint8Array {
  const { signature: _ignored, ...body } = report as UsageReport;
  return new TextEncoder().encode(`${USAGE_REPORT_SIGNING_PREFIX}${canonicalJson(body)}`);
}

/** Signs a report with a signer of the host's identity key (`sign`) or the key itself. */
export async function signUsageReport(
  body: UsageReportBody,
  signer: Ed25519PrivateJwk | ((data: Uint8Array) => Promise<Uint8Array>),
): Promise<UsageReport> {
  const input = reportSigningInput(body);
  const signature = typeof signer === 'function' ? await signer(input) : await signEd25519(signer, input);
  return { ...body, signature: Buffer.from(signature).toString('base64url') };
}

/** Why a report was refused; `code` names the check (spec/usage-report.md section 5). */
export class ReportError extends StratumError {}

export interface VerifyReportOptions {
  /** The host the verifier holds `expectedKey` for: the report must name it. */
  expectedHost?: string;
  /**
   * The key the verifier holds for the host (the `k=` of its `_stratum-host` record, or one it
   * pinned): the report's `key` must be it. Without it only the report's own key is checked,
   * which proves nothing of who made it.
   */
  expectedKey?: string;
  /** The verifier's clock; default now. */
  now?: Date;
}

export interface VerifiedReport {
  report: UsageReport;
  /** Whether `expectedKey` was given and matched: the report is then the host's. */
  keyChecked: boolean;
}

/**
 * Checks a parsed report as spec/usage-report.md section 5 says a portal does, in its order:
 * its form (REPORT_MALFORMED, the detail a JSON Pointer to the member at fault), its key against
 * the one expected (REPORT_WRONG_KEY), its signature (REPORT_BAD_SIGNATURE), that its month has
 * ended (REPORT_MONTH_NOT_ENDED), and that every sum is its parts' (REPORT_TOTALS_MISMATCH).
 */
export async function verifyUsageReport(value: unknown, options: VerifyReportOptions = {}): Promise<VerifiedReport> {
  const report = checkForm(value);
  // The key is the host's only for the host it was held for: one host's key on a report naming
  // another would credit its usage there.
  const host = options.expectedHost?.toLowerCase().replace(/\.$/, '');
  if (host !== undefined && report.host !== host) {
    throw new ReportError('REPORT_WRONG_KEY', `the report names host ${report.host}, not ${host}, the host whose key was given`, {
      details: [`/host: ${report.host}`],
      hint: 'Check a report against the key held for the host it names (spec/usage-report.md section 6).',
    });
  }
  if (options.expectedKey !== undefined && report.key !== options.expectedKey) {
    throw new ReportError('REPORT_WRONG_KEY', `the report is signed for key ${report.key}, not the host's key ${options.expectedKey}`, {
      details: [`/key: ${report.key}`],
      hint: "The key must be the one the host's _stratum-host record publishes (k=), or one recorded for the host before a key rotation.",
    });
  }
  const signature = Buffer.from(report.signature, 'base64url');
  if (!(await verifyEd25519(publicKeyFromRaw(report.key), reportSigningInput(report), signature))) {
    throw new ReportError(
      'REPORT_BAD_SIGNATURE',
      "the signature does not verify with the report's key: the report was changed after it was signed, or signed with another key",
      {
        details: ['/signature'],
      },
    );
  }
  const now = options.now ?? new Date();
  if (!monthEnded(report.month, now)) {
    throw new ReportError('REPORT_MONTH_NOT_ENDED', `the report is for ${report.month}, which has not ended (it is ${now.toISOString()})`, {
      details: ['/month'],
      hint: 'A host reports only a month that has ended.',
    });
  }
  checkSums(report);
  return { report, keyChecked: options.expectedKey !== undefined };
}

function checkSums(report: UsageReport): void {
  const check = (pointer: string, what: string, parts: string, given: Usage, summed: ExactUsage) => {
    const sum = usageOfExact(summed);
    if (equalExact(summed, exactOf(given))) return;
    const fields = ['requests', 'cpuMs', 'memoryMbSeconds', 'bytesIn', 'bytesOut'] as const;
    const field = fields.find((name) => micros(given[name]) !== micros(sum[name]));
    const kinds = [...new Set([...Object.keys(given.limitHits), ...Object.keys(sum.limitHits)])].sort(compare);
    const kind = kinds.find((name) => given.limitHits[name] !== sum.limitHits[name]);
    const [at, stated, added] =
      field !== undefined
        ? [`${pointer}/${field}`, given[field], sum[field]]
        : [`${pointer}/limitHits/${pointerToken(kind ?? '')}`, given.limitHits[kind ?? ''], sum.limitHits[kind ?? '']];
    throw new ReportError(
      'REPORT_TOTALS_MISMATCH',
      `${what} do not add up: ${at} is ${stated ?? 'absent'}, where the sum of ${parts} is ${added ?? 'absent'}`,
      {
        details: [at],
        hint: 'Every sum in a report is the exact sum of the figures under it (spec/usage-report.md section 4.3).',
      },
    );
  };
  const total = zero();
  for (const [r, registrar] of report.registrars.entries()) {
    const sum = zero();
    for (const capsule of registrar.capsules) addExact(sum, exactOf(capsule.usage));
    check(`/registrars/${r}/usage`, `registrar ${registrar.registrar ?? '(none)'}'s figures`, 'its capsules', registrar.usage, sum);
    addExact(total, sum);
  }
  check('/totals', 'the totals', 'the registrars', report.totals, total);
}

const KEY = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const SIGNATURE = /^[A-Za-z0-9_-]{85}[AQgw]$/;
const HEX64 = /^[0-9a-f]{64}$/;
const HOST = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const NAME = /^.{1,253}$/s;

/** Refuses anything that is not a report of this version, naming the member at fault by its JSON Pointer. */
function checkForm(value: unknown): UsageReport {
  const malformed = (pointer: string, problem: string) =>
    new ReportError('REPORT_MALFORMED', `the report is malformed at ${pointer || '/'}: ${problem}`, {
      details: [`${pointer || '/'}: ${problem}`],
      hint: 'A usage report follows spec/usage-report/usage-report-v1.schema.json.',
    });
  const object = (item: unknown, pointer: string, members: readonly string[], optional: readonly string[] = []) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) throw malformed(pointer, 'not an object');
    const record = item as Record<string, unknown>;
    for (const name of Object.keys(record))
      if (!members.includes(name) && !optional.includes(name))
        throw malformed(`${pointer}/${pointerToken(name)}`, 'not a member of a report');
    for (const name of members) if (!(name in record)) throw malformed(`${pointer}/${name}`, 'missing');
    return record;
  };
  const text = (item: unknown, pointer: string, pattern: RegExp, what: string) => {
    if (typeof item !== 'string' || !pattern.test(item)) throw malformed(pointer, `not ${what}`);
    return item;
  };
  const whole = (item: unknown, pointer: string, min = 0) => {
    if (typeof item !== 'number' || !Number.isSafeInteger(item) || item < min) throw malformed(pointer, `not a whole number from ${min}`);
    return item;
  };
  const sixDecimals = (item: unknown, pointer: string) => {
    if (typeof item !== 'number' || !Number.isFinite(item) || item < 0 || Number(micros(item)) / 1e6 !== item)
      throw malformed(pointer, 'not a number from 0 with at most six decimals');
  };
  const usage = (item: unknown, pointer: string) => {
    const record = object(item, pointer, ['requests', 'cpuMs', 'memoryMbSeconds', 'bytesIn', 'bytesOut', 'limitHits']);
    whole(record.requests, `${pointer}/requests`);
    sixDecimals(record.cpuMs, `${pointer}/cpuMs`);
    sixDecimals(record.memoryMbSeconds, `${pointer}/memoryMbSeconds`);
    whole(record.bytesIn, `${pointer}/bytesIn`);
    whole(record.bytesOut, `${pointer}/bytesOut`);
    const hits = record.limitHits;
    if (hits === null || typeof hits !== 'object' || Array.isArray(hits)) throw malformed(`${pointer}/limitHits`, 'not an object');
    for (const [kind, count] of Object.entries(hits)) {
      if (!NAME.test(kind) || kind.length > 64) throw malformed(`${pointer}/limitHits/${pointerToken(kind)}`, 'not a limit kind');
      whole(count, `${pointer}/limitHits/${pointerToken(kind)}`);
    }
  };
  const report = object(value, '', ['type', 'version', 'host', 'key', 'month', 'ledger', 'totals', 'registrars', 'signature']);
  if (report.type !== USAGE_REPORT_TYPE) throw malformed('/type', `not "${USAGE_REPORT_TYPE}"`);
  if (report.version !== USAGE_REPORT_VERSION)
    throw malformed('/version', `not ${USAGE_REPORT_VERSION}: this verifier knows version 1 only`);
  text(report.host, '/host', HOST, 'a lower-case host name');
  const key = text(report.key, '/key', KEY, 'an Ed25519 public key, 32 bytes in canonical unpadded base64url');
  if (Buffer.from(key, 'base64url').toString('base64url') !== key) throw malformed('/key', 'not canonical base64url');
  const month = text(report.month, '/month', MONTH, 'a month, YYYY-MM');
  if (!monthBounds(month)) throw malformed('/month', 'before 1970');
  const ledger = object(report.ledger, '/ledger', ['entries'], ['first', 'last', 'prev', 'hash']);
  const entries = whole(ledger.entries, '/ledger/entries');
  if (entries === 0) {
    for (const name of ['first', 'last', 'prev', 'hash']) if (name in ledger) throw malformed(`/ledger/${name}`, 'present with no entries');
  } else {
    for (const name of ['first', 'last', 'prev', 'hash']) if (!(name in ledger)) throw malformed(`/ledger/${name}`, 'missing');
    const first = whole(ledger.first, '/ledger/first', 1);
    const last = whole(ledger.last, '/ledger/last', 1);
    if (last < first) throw malformed('/ledger/last', 'before first');
    if (entries > last - first + 1) throw malformed('/ledger/entries', 'more than the entries from first to last');
    text(ledger.prev, '/ledger/prev', HEX64, '64 lower-case hex digits');
    text(ledger.hash, '/ledger/hash', HEX64, '64 lower-case hex digits');
    if (first === 1 && ledger.prev !== GENESIS_HASH) throw malformed('/ledger/prev', 'not 64 zeros, before entry 1');
  }
  usage(report.totals, '/totals');
  if (!Array.isArray(report.registrars)) throw malformed('/registrars', 'not an array');
  let previous: string | null | undefined;
  for (const [r, item] of report.registrars.entries()) {
    const pointer = `/registrars/${r}`;
    const registrar = object(item, pointer, ['registrar', 'usage', 'capsules']);
    const name = registrar.registrar;
    if (name !== null && (typeof name !== 'string' || !NAME.test(name))) throw malformed(`${pointer}/registrar`, 'not a name or null');
    // In order and once each: sorted by name, the null registrar last.
    if (r > 0 && (previous === null || (name !== null && compare(previous as string, name) >= 0)))
      throw malformed(`${pointer}/registrar`, 'out of order or repeated: registrars are sorted by name, null last');
    previous = name as string | null;
    usage(registrar.usage, `${pointer}/usage`);
    if (!Array.isArray(registrar.capsules) || registrar.capsules.length === 0)
      throw malformed(`${pointer}/capsules`, 'not a non-empty array');
    let before: string | undefined;
    for (const [c, one] of registrar.capsules.entries()) {
      const at = `${pointer}/capsules/${c}`;
      const capsule = object(one, at, ['capsule', 'usage']);
      const capsuleName = text(capsule.capsule, `${at}/capsule`, NAME, 'a capsule name');
      if (before !== undefined && compare(before, capsuleName) >= 0)
        throw malformed(`${at}/capsule`, 'out of order or repeated: capsules are sorted by name');
      before = capsuleName;
      usage(capsule.usage, `${at}/usage`);
    }
  }
  if (entries === 0 && report.registrars.length > 0) throw malformed('/registrars', 'usage with no ledger entries');
  if (entries > 0 && report.registrars.length === 0) throw malformed('/registrars', 'empty, with ledger entries');
  const signature = text(report.signature, '/signature', SIGNATURE, 'an Ed25519 signature, 64 bytes in canonical unpadded base64url');
  if (Buffer.from(signature, 'base64url').toString('base64url') !== signature) throw malformed('/signature', 'not canonical base64url');
  return value as UsageReport;
}

/** A member name as a JSON Pointer token (RFC 6901). */
const pointerToken = (name: string) => name.replaceAll('~', '~0').replaceAll('/', '~1');

/**
 * What an auditor holding the ledger (GET /usage/ledger, its chain verified) checks of a report
 * it verified: that the ledger's entries make exactly this report. Undefined when they do; else
 * the first member that differs, as a JSON Pointer, and the two values.
 */
export async function compareReportWithLedger(
  report: UsageReportBody,
  entries: Iterable<LedgerEntry> | AsyncIterable<LedgerEntry>,
): Promise<string | undefined> {
  const rebuilt = await buildUsageReport({ host: report.host, key: report.key, month: report.month, entries });
  return firstDifference(rebuilt, { ...report, signature: undefined }, '');
}

function firstDifference(expected: unknown, actual: unknown, pointer: string): string | undefined {
  if (expected !== null && actual !== null && typeof expected === 'object' && typeof actual === 'object') {
    const names = new Set([...Object.keys(expected), ...Object.keys(actual)]);
    for (const name of names) {
      const one = (expected as Record<string, unknown>)[name];
      const other = (actual as Record<string, unknown>)[name];
      const found = firstDifference(one, other, `${pointer}/${pointerToken(name)}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  return canonicalJson(expected ?? null) === canonicalJson(actual ?? null) && (expected === undefined) === (actual === undefined)
    ? undefined
    : `${pointer || '/'}: the ledger gives ${expected === undefined ? 'nothing' : canonicalJson(expected)}, the report ${actual === undefined ? 'nothing' : canonicalJson(actual)}`;
}
