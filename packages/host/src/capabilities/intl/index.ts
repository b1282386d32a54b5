import { StratumError } from '@stratum/core';
import type { Capability } from '../contract.ts';
import { WitError } from '../contract.ts';

/**
 * `stratum:intl/services`: Unicode normalization and ECMA-402's `Intl`, computed by Node.js's ICU
 * for capsules whose engine has none (StarlingMonkey is built without it). Served to every capsule
 * without a grant: a call reads its arguments and nothing else, on the capsule's own thread and
 * time. A capsule formats alike on every host: `en-US` when it names no locale, UTC when it names
 * no time zone, never the host's own.
 */

type Service =
  | 'collator'
  | 'date-time-format'
  | 'display-names'
  | 'list-format'
  | 'locale'
  | 'number-format'
  | 'plural-rules'
  | 'relative-time-format'
  | 'segmenter';
type NormalizationForm = 'nfc' | 'nfd' | 'nfkc' | 'nfkd';
type Options = Record<string, unknown>;

const DEFAULT_LOCALE = 'en-US';
const DEFAULT_TIME_ZONE = 'UTC';
/** Formatters kept per thread: a capsule that makes one per call (`toLocaleString` does) asks for the same few again. */
const KEPT_FORMATTERS = 256;
const MAX_KEPT_KEYS_LENGTH = 1024 * 1024;
/** Text a segmenter takes in one call: its answer is an object per segment. */
const MAX_SEGMENTED_LENGTH = 1024 * 1024;

const FORMS: Readonly<Record<NormalizationForm, string>> = { nfc: 'NFC', nfd: 'NFD', nfkc: 'NFKC', nfkd: 'NFKD' };

const CONSTRUCTORS: Readonly<Record<Exclude<Service, 'locale'>, new (locales: string[], options: Options) => object>> = {
  collator: Intl.Collator,
  'date-time-format': Intl.DateTimeFormat,
  'display-names': Intl.DisplayNames as unknown as new (locales: string[], options: Options) => object,
  'list-format': Intl.ListFormat,
  'number-format': Intl.NumberFormat,
  'plural-rules': Intl.PluralRules,
  'relative-time-format': Intl.RelativeTimeFormat,
  segmenter: Intl.Segmenter,
};

function typeError(message: string): WitError {
  return new WitError({ tag: 'type-error', val: message });
}

/** Arguments as the guest sent them: numbers JSON cannot hold, and BigInts, arrive as objects. */
function revive(_key: string, value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  if (keys.length !== 1) return value;
  const { number, bigint } = value as { number?: unknown; bigint?: unknown };
  if (typeof bigint === 'string' && /^-?[0-9]{1,4096}$/.test(bigint)) return BigInt(bigint);
  if (number === 'NaN') return Number.NaN;
  if (number === 'Infinity') return Number.POSITIVE_INFINITY;
  if (number === '-Infinity') return Number.NEGATIVE_INFINITY;
  if (number === '-0') return -0;
  return value;
}

function replace(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return { bigint: value.toString() };
  if (typeof value === 'number' && (!Number.isFinite(value) || Object.is(value, -0)))
    return { number: Object.is(value, -0) ? '-0' : String(value) };
  return value;
}

function parsed(json: string, what: string): unknown {
  try {
    return JSON.parse(json, revive);
  } catch {
    throw typeError(`${what} are not JSON`);
  }
}

function string(value: unknown, what: string): string {
  if (typeof value !== 'string') throw typeError(`${what} is not a string`);
  return value;
}

/** A time value, as `new Date(value)` takes it: NaN and out-of-range times are ECMA-402's RangeError. */
function time(value: unknown): number {
  if (typeof value !== 'number') throw typeError('a date is passed as its time value, a number');
  return value;
}

/** What NumberFormat and PluralRules take: a number, a BigInt, or a decimal string (exact). */
function numeric(value: unknown): number | bigint | string {
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string') return value;
  throw typeError('a number to format is a number, a BigInt or a decimal string');
}

type Method = (formatter: never, args: unknown[]) => unknown;

/** Each service's methods a guest may call: nothing else of the object is reachable. */
const METHODS: Readonly<Record<Exclude<Service, 'locale'>, Readonly<Record<string, Method>>>> = {
  collator: {
    compare: (collator: Intl.Collator, [a, b]) => collator.compare(string(a, 'a string to compare'), string(b, 'a string to compare')),
  },
  'date-time-format': {
    format: (format: Intl.DateTimeFormat, [date]) => format.format(time(date)),
    formatToParts: (format: Intl.DateTimeFormat, [date]) => format.formatToParts(time(date)),
    formatRange: (format: Intl.DateTimeFormat, [start, end]) => format.formatRange(time(start), time(end)),
    formatRangeToParts: (format: Intl.DateTimeFormat, [start, end]) => format.formatRangeToParts(time(start), time(end)),
  },
  'display-names': {
    of: (names: Intl.DisplayNames, [code]) => names.of(string(code, 'a code')) ?? null,
  },
  'list-format': {
    format: (format: Intl.ListFormat, [list]) => format.format(strings(list)),
    formatToParts: (format: Intl.ListFormat, [list]) => format.formatToParts(strings(list)),
  },
  'number-format': {
    // A decimal string is exact (ECMA-402 2023); the typings have only numbers.
    format: (format: Intl.NumberFormat, [value]) => format.format(numeric(value) as number),
    formatToParts: (format: Intl.NumberFormat, [value]) => format.formatToParts(numeric(value) as number),
    formatRange: (format: Intl.NumberFormat, [start, end]) => format.formatRange(numeric(start) as number, numeric(end) as number),
    formatRangeToParts: (format: Intl.NumberFormat, [start, end]) =>
      format.formatRangeToParts(numeric(start) as number, numeric(end) as number),
  },
  'plural-rules': {
    select: (rules: Intl.PluralRules, [value]) => rules.select(Number(numeric(value))),
    // ES2023's, which the typings of this TypeScript target lack.
    selectRange: (rules: Intl.PluralRules & { selectRange(start: number, end: number): string }, [start, end]) =>
      rules.selectRange(Number(numeric(start)), Number(numeric(end))),
  },
  'relative-time-format': {
    format: (format: Intl.RelativeTimeFormat, [value, unit]) =>
      format.format(Number(numeric(value)), string(unit, 'a unit') as Intl.RelativeTimeFormatUnit),
    formatToParts: (format: Intl.RelativeTimeFormat, [value, unit]) =>
      format.formatToParts(Number(numeric(value)), string(unit, 'a unit') as Intl.RelativeTimeFormatUnit),
  },
  segmenter: {
    segment: (segmenter: Intl.Segmenter, [text]) => {
      const input = string(text, 'the text to segment');
      if (input.length > MAX_SEGMENTED_LENGTH) {
        throw new WitError({ tag: 'range-error', val: `a text to segment is at most ${MAX_SEGMENTED_LENGTH} UTF-16 units in one call` });
      }
      // Without `input`, which the guest has.
      return Array.from(segmenter.segment(input), ({ segment, index, isWordLike }) =>
        isWordLike === undefined ? { segment, index } : { segment, index, isWordLike },
      );
    },
  },
};

/**
 * Date's own methods, by what they require and what they default to (ECMA-402's
 * CreateDateTimeFormat). V8 makes a formatter on every call of theirs, about 50 us; the one made
 * here is kept with the formatter, and formats in about 1 us.
 */
const DATE_METHODS = {
  toLocaleString: { required: 'any', defaults: 'all' },
  toLocaleDateString: { required: 'date', defaults: 'date' },
  toLocaleTimeString: { required: 'time', defaults: 'time' },
} as const;
const DATE_FIELDS = ['weekday', 'year', 'month', 'day'];
const TIME_FIELDS = ['dayPeriod', 'hour', 'minute', 'second', 'fractionalSecondDigits'];

function dateMethodFormat(entry: Kept, method: keyof typeof DATE_METHODS): Intl.DateTimeFormat {
  entry.dateMethods ??= new Map();
  const found = entry.dateMethods.get(method);
  if (found) return found;
  const { required, defaults } = DATE_METHODS[method];
  const options = entry.options;
  let made: Intl.DateTimeFormat;
  if (options.dateStyle !== undefined || options.timeStyle !== undefined) {
    if (required === 'date' && options.timeStyle !== undefined) throw new TypeError(`${method} takes no timeStyle`);
    if (required === 'time' && options.dateStyle !== undefined) throw new TypeError(`${method} takes no dateStyle`);
    made = new Intl.DateTimeFormat(entry.locales, options);
  } else {
    const named = (fields: string[]) => fields.some((field) => options[field] !== undefined);
    const needsDefaults = !(required !== 'time' && named(DATE_FIELDS)) && !(required !== 'date' && named(TIME_FIELDS));
    const added: Options = {};
    if (needsDefaults && defaults !== 'time') Object.assign(added, { year: 'numeric', month: 'numeric', day: 'numeric' });
    if (needsDefaults && defaults !== 'date') Object.assign(added, { hour: 'numeric', minute: 'numeric', second: 'numeric' });
    made = new Intl.DateTimeFormat(entry.locales, { ...options, ...added });
  }
  entry.dateMethods.set(method, made);
  return made;
}

function strings(list: unknown): string[] {
  if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) throw typeError('a list to format is an array of strings');
  return list;
}

function optionsOf(json: string): Options {
  const options = parsed(json, 'the options');
  if (options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw typeError('the options are not an object');
  return options as Options;
}

interface Kept {
  key: string;
  service: Exclude<Service, 'locale'>;
  /** As the formatter was made: en-US for none. */
  locales: string[];
  /** With their defaults (UTC for a date-time-format), as Date's own methods are given them too. */
  options: Options;
  instance: object;
  /** For a date-time-format: what Date's own methods format with, once asked for. */
  dateMethods?: Map<string, Intl.DateTimeFormat>;
}

/**
 * The formatters this thread keeps, by number, and their numbers by what made them: a capsule
 * that makes one per call (`toLocaleString` does) gets the same one again. Numbers are never
 * reused, so a forgotten one is unknown, never another formatter.
 */
const kept = new Map<number, Kept>();
const numbers = new Map<string, number>();
let keptKeyLength = 0;
let nextNumber = 1;

/** How many formatters this thread keeps: for tests, which check the bounds. */
export function formattersKept(): number {
  return kept.size;
}

function formatterNumber(service: Exclude<Service, 'locale'>, locales: string[], options: string): number {
  const key = `${service}\n${JSON.stringify(locales)}\n${options}`;
  const found = numbers.get(key);
  if (found !== undefined) return found;
  const named = locales.length > 0 ? locales : [DEFAULT_LOCALE];
  const withDefault = withDefaults(service, optionsOf(options));
  const instance = new CONSTRUCTORS[service](named, withDefault);
  const number = nextNumber++;
  kept.set(number, { key, service, locales: named, options: withDefault, instance });
  numbers.set(key, number);
  keptKeyLength += key.length;
  // The oldest go first, past a count and past a total length of keys: a capsule could otherwise
  // hold this thread's memory with options that run long.
  while (kept.size > KEPT_FORMATTERS || (keptKeyLength > MAX_KEPT_KEYS_LENGTH && kept.size > 1)) {
    const [oldest, entry] = kept.entries().next().value as [number, Kept];
    kept.delete(oldest);
    numbers.delete(entry.key);
    keptKeyLength -= entry.key.length;
  }
  return number;
}

/** `method` of a kept formatter. */
function run(entry: Kept, method: string, args: unknown[]): unknown {
  if (entry.service === 'date-time-format' && Object.hasOwn(DATE_METHODS, method)) {
    const date = new Date(time(args[0])).getTime();
    if (Number.isNaN(date)) return 'Invalid Date';
    return dateMethodFormat(entry, method as keyof typeof DATE_METHODS).format(date);
  }
  if (method === 'resolvedOptions') return (entry.instance as { resolvedOptions(): unknown }).resolvedOptions();
  const methods = METHODS[entry.service];
  const found = Object.hasOwn(methods, method) ? methods[method] : undefined;
  if (!found) throw typeError(`${entry.service} has no method ${method}`);
  return found(entry.instance as never, args);
}

function withDefaults(service: Service, options: Options): Options {
  return service === 'date-time-format' && options.timeZone === undefined ? { ...options, timeZone: DEFAULT_TIME_ZONE } : options;
}

function localeInfo(tag: string | undefined, options: Options): Record<string, unknown> {
  if (tag === undefined) throw typeError('Intl.Locale takes a locale tag');
  const locale = new Intl.Locale(tag, options);
  return {
    string: locale.toString(),
    baseName: locale.baseName,
    calendar: locale.calendar,
    caseFirst: locale.caseFirst,
    collation: locale.collation,
    hourCycle: locale.hourCycle,
    language: locale.language,
    numberingSystem: locale.numberingSystem,
    numeric: locale.numeric,
    region: locale.region,
    script: locale.script,
    maximal: locale.maximize().toString(),
    minimal: locale.minimize().toString(),
  };
}

function compute(service: Service, locales: string[], options: string, method: string, args: unknown[]): unknown {
  if (method === 'supportedLocalesOf') {
    if (service === 'locale') throw typeError('locale has no supportedLocalesOf');
    return (CONSTRUCTORS[service] as unknown as typeof Intl.Collator).supportedLocalesOf(locales, optionsOf(options));
  }
  if (service === 'locale') {
    if (method === 'canonicalLocales') return Intl.getCanonicalLocales(locales);
    if (method === 'supportedValuesOf') return Intl.supportedValuesOf(string(args[0], 'a key') as 'calendar');
    if (method === 'resolve') return localeInfo(locales[0], optionsOf(options));
    throw typeError(`locale has no method ${method}`);
  }
  const number = formatterNumber(service, locales, options);
  return run(kept.get(number) as Kept, method, args);
}

/** The method names of the interface's `method` enum, as JavaScript spells them. */
function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/** ECMA-402's own errors as the guest's engine would have thrown them; the interface's pass as they are. */
function asWitError(error: unknown): WitError {
  if (error instanceof WitError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new WitError({ tag: error instanceof RangeError ? 'range-error' : 'type-error', val: message });
}

function argumentsOf(args: string): unknown[] {
  const list = parsed(args, 'the arguments');
  if (!Array.isArray(list)) throw typeError('the arguments are not an array');
  return list;
}

export const services = {
  normalize(text: string, form: NormalizationForm): string {
    const name = FORMS[form];
    if (!name) throw typeError(`unknown normalization form ${String(form)}`);
    return text.normalize(name);
  },
  call(service: Service, locales: string[], options: string, method: string, args: string): string {
    try {
      return JSON.stringify(compute(service, locales, options, method, argumentsOf(args)) ?? null, replace);
    } catch (error) {
      throw asWitError(error);
    }
  },
  formatter(service: Service, locales: string[], options: string): number {
    try {
      if (service === 'locale') throw typeError('an Intl.Locale is not a formatter: resolve it with call');
      return formatterNumber(service, locales, options);
    } catch (error) {
      throw asWitError(error);
    }
  },
  format(formatter: number, method: string, args: string): string {
    const entry = kept.get(formatter);
    if (!entry) throw new WitError({ tag: 'unknown-formatter' });
    try {
      return JSON.stringify(run(entry, camel(method), argumentsOf(args)) ?? null, replace);
    } catch (error) {
      throw asWitError(error);
    }
  },
};

const intl: Capability<Record<string, never>> = {
  name: 'intl',
  interfaces: ['stratum:intl/services'],
  configure(context) {
    if (context.hostConfig !== undefined) {
      throw new StratumError('HOST_CONFIG_INVALID', 'host.toml: intl takes no settings', { hint: 'Remove the [intl] table.' });
    }
    return { settings: {} };
  },
  prepare() {
    return { imports: { 'stratum:intl/services': services } };
  },
};

export default intl;
