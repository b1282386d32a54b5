/// <reference path="../wit/guest.generated.d.ts" />
// The engine is built without ICU: no `Intl`, no `String.prototype.normalize`, a `toLocaleString`
// that ignores its locale and a `localeCompare` that compares code units. So a capsule could not
// format a price or a date for its reader, and code that does (Luxon, i18next's plurals,
// slugifiers, `new Intl.NumberFormat(...)` in a template) threw. Here they are, computed by the
// host's ICU through `stratum:intl`: each object keeps its locales and options, and every
// formatting call is one call to the host, which keeps the formatter it made. As on the host's
// engine, except: an unnamed locale is en-US and an unnamed time zone UTC, on every host. The
// build imports this module for this effect, after globals.ts, into a bundle that mentions
// `Intl`, a `toLocale…String`, `localeCompare` or `.normalize(`; an engine that has `Intl` is
// left alone.
import { call, format, formatter, normalize as hostNormalize, type Method, type Service } from 'stratum:intl/services@0.1.0';
import { witError } from './errors.ts';
import { alreadyNormal, callableWithoutNew, encoded, plainEnglish, type QuickLevel, quickCompare, quickLevel } from './intl-support.ts';

/**
 * True while the capsule's modules load: `stratum build` runs them once, at build time, where no
 * host answers (componentize-js fails the build), and `stratum dev` runs them on the first
 * request. Set false after the last module's top-level code, so a formatter made at the top of a
 * module, as code often makes one, is checked on its first use, and a call there that needs the
 * host fails alike in both, with what to do instead.
 */
let loading = true;
void Promise.resolve().then(() => {
  loading = false;
});

function notWhileLoading(service: Service, method: string): void {
  if (!loading) return;
  throw new Error(
    `Intl's ${method} (${service}) is computed by the host, which a capsule cannot call while its modules load (at build time): call it from fetch(), or in a function that fetch() calls`,
  );
}

/** A host error as ECMA-402 throws it. */
function thrownAs(thrown: unknown): unknown {
  const error = witError(thrown);
  if (error?.tag === 'range-error') return new RangeError(String(error.val));
  if (error?.tag === 'type-error') return new TypeError(String(error.val));
  return thrown;
}

/** A static method, or Intl.Locale's: the whole question in one call, as they are asked once. */
function invoke(service: Service, locales: string[], options: string, method: string, args: unknown[] = []): unknown {
  notWhileLoading(service, method);
  try {
    return JSON.parse(call(service, locales, options, method, JSON.stringify(args.map(encoded))));
  } catch (thrown) {
    throw thrownAs(thrown);
  }
}

/** What a formatter is made of, and its key among the numbers the host gave. */
interface Made {
  service: Exclude<Service, 'locale'>;
  locales: string[];
  options: string;
  key: string;
}

function made(service: Made['service'], locales: string[], options: string): Made {
  return { service, locales, options, key: `${service}\u0000${locales.join('\u0000')}\u0000${options}` };
}

/**
 * The host's numbers for the formatters this instance made, shared by equal ones: a `format`
 * call then sends neither locales nor options, and the host finds the formatter by its number.
 */
const numbers = new Map<string, number>();
const KEPT_NUMBERS = 512;

function numberFor(target: Made): number {
  const known = numbers.get(target.key);
  if (known !== undefined) return known;
  notWhileLoading(target.service, 'new');
  let number: number;
  try {
    number = formatter(target.service, target.locales, target.options);
  } catch (thrown) {
    throw thrownAs(thrown);
  }
  if (numbers.size >= KEPT_NUMBERS) numbers.clear();
  numbers.set(target.key, number);
  return number;
}

function formatWith(target: Made, method: Method, args: unknown[]): unknown {
  notWhileLoading(target.service, method);
  const text = JSON.stringify(args.map(encoded));
  // A host keeps a bounded number of formatters: one it forgot is made again, once.
  for (let attempt = 0; ; attempt++) {
    const number = numberFor(target);
    try {
      return JSON.parse(format(number, method, text));
    } catch (thrown) {
      if (attempt === 0 && witError(thrown)?.tag === 'unknown-formatter') {
        numbers.delete(target.key);
        continue;
      }
      throw thrownAs(thrown);
    }
  }
}

/** ECMA-402's CanonicalizeLocaleList, up to the tags' own checks, which the host makes. */
function localeList(locales: unknown): string[] {
  if (locales === undefined) return [];
  if (typeof locales === 'string') return [locales];
  if (locales instanceof Locale) return [locales.toString()];
  if (locales === null || typeof locales !== 'object') throw new TypeError('locales is not a string, an Intl.Locale or a list of them');
  return Array.from(locales as ArrayLike<unknown>, (locale) => {
    if (typeof locale === 'string') return locale;
    if (locale instanceof Locale) return locale.toString();
    throw new TypeError(`a locale is a string or an Intl.Locale, not ${locale === null ? 'null' : typeof locale}`);
  });
}

function optionsText(options: unknown): string {
  if (options === undefined) return '{}';
  if (options === null || typeof options !== 'object') throw new TypeError('options is not an object');
  return JSON.stringify(options);
}

/** A date as its time value: now for none, as ECMA-402's format does. */
function timeOf(date: unknown): number {
  if (date === undefined) return Date.now();
  return date instanceof Date ? date.getTime() : Number(date);
}

/** What NumberFormat formats: a BigInt and a decimal string exactly, anything else as a number. */
function numberOf(value: unknown): unknown {
  return typeof value === 'bigint' || typeof value === 'string' ? value : Number(value);
}

interface FormatterState extends Made {
  /** Once asked for. */
  resolved?: Record<string, unknown>;
  /** For a collator, once known: what of its answers {@link quickCompare} gives. */
  quick?: QuickLevel | 'none';
}

/** Each formatter's locales and options as the host reads them; not on the object, where code would see them. */
const states = new WeakMap<object, FormatterState>();

function stateOf(object: object, method: string): FormatterState {
  const state = states.get(object);
  if (!state) throw new TypeError(`${method} called on an object that is not one of Intl's formatters`);
  return state;
}

function resolvedOf(state: FormatterState): Record<string, unknown> {
  state.resolved ??= formatWith(state, 'resolved-options', []) as Record<string, unknown>;
  return state.resolved;
}

function formatterCall(object: object, method: Method, args: unknown[]): unknown {
  return formatWith(stateOf(object, method), method, args);
}

/** One of ECMA-402's formatters, checked when made, or on first use when made while the modules load. */
class Formatter {
  constructor(service: Made['service'], locales: unknown, options: unknown) {
    const state = made(service, localeList(locales), optionsText(options));
    states.set(this, state);
    // Where a bad tag or option throws, as it does in `new`.
    if (!loading) numberFor(state);
  }

  resolvedOptions(): Record<string, unknown> {
    return structuredClone(resolvedOf(stateOf(this, 'resolvedOptions')));
  }
}

/** `format` and `compare` are getters of bound functions in ECMA-402, so `list.sort(collator.compare)` works. */
function bound<T extends Formatter>(prototype: T, name: string, method: (this: T, ...args: never[]) => unknown): void {
  const functions = new WeakMap<T, unknown>();
  Object.defineProperty(prototype, name, {
    configurable: true,
    get(this: T) {
      let found = functions.get(this);
      if (!found) {
        found = method.bind(this);
        functions.set(this, found);
      }
      return found;
    },
  });
}

function staticSupportedLocalesOf(service: Service) {
  return (locales?: unknown, options?: unknown) => invoke(service, localeList(locales), optionsText(options), 'supportedLocalesOf');
}

class Collator extends Formatter {
  static supportedLocalesOf = staticSupportedLocalesOf('collator');
  constructor(locales?: unknown, options?: unknown) {
    super('collator', locales, options);
  }
}
bound(Collator.prototype, 'compare', function (this: Collator, a: unknown, b: unknown) {
  const [first, second] = [String(a), String(b)];
  const state = stateOf(this, 'compare');
  // The quick answers need the collator's resolved options: asked for once.
  state.quick ??= quickLevel(resolvedOf(state)) ?? 'none';
  const quick = state.quick === 'none' ? undefined : quickCompare(first, second, state.quick);
  return quick ?? formatWith(state, 'compare', [first, second]);
});

class DateTimeFormat extends Formatter {
  static supportedLocalesOf = staticSupportedLocalesOf('date-time-format');
  constructor(locales?: unknown, options?: unknown) {
    super('date-time-format', locales, options);
  }
  formatToParts(date?: unknown) {
    return formatterCall(this, 'format-to-parts', [timeOf(date)]);
  }
  formatRange(start: unknown, end: unknown) {
    return formatterCall(this, 'format-range', [timeOf(start), timeOf(end)]);
  }
  formatRangeToParts(start: unknown, end: unknown) {
    return formatterCall(this, 'format-range-to-parts', [timeOf(start), timeOf(end)]);
  }
}
bound(DateTimeFormat.prototype, 'format', function (this: DateTimeFormat, date?: unknown) {
  return formatterCall(this, 'format', [timeOf(date)]);
});

class DisplayNames extends Formatter {
  static supportedLocalesOf = staticSupportedLocalesOf('display-names');
  constructor(locales: unknown, options: unknown) {
    super('display-names', locales, options);
  }
  of(code: unknown) {
    return formatterCall(this, 'of', [String(code)]) ?? undefined;
  }
}

class ListFormat extends Formatter {
  static supportedLocalesOf = staticSupportedLocalesOf('list-format');
  constructor(locales?: unknown, options?: unknown) {
    super('list-format', locales, options);
  }
  format(list: Iterable<unknown>) {
    return formatterCall(this, 'format', [Array.from(list)]);
  }
  formatToParts(list: Iterable<unknown>) {
    return formatterCall(this, 'format-to-parts', [Array.from(list)]);
  }
}

class NumberFormat extends Formatter {
  static supportedLocalesOf = staticSupportedLocalesOf('number-format');
  constructor(locales?: unknown, options?: unknown) {
    super('number-format', locales, options);
  }
  formatToParts(value: unknown) {
    return formatterCall(this, 'format-to-parts', [numberOf(value)]);
  }
  formatRange(start: unknown, end: unknown) {
    return formatterCall(this, 'format-range', [numberOf(start), numberOf(end)]);
  }
  formatRangeToParts(start: unknown, end: unknown) {
    return formatterCall(this, 'format-range-to-parts', [numberOf(start), numberOf(end)]);
  }
}
bound(NumberFormat.prototype, 'format', function (this: NumberFormat, value: unknown) {
  return formatterCall(this, 'format', [numberOf(value)]);
});

class PluralRules extends Formatter {
  static supportedLocalesOf = staticSupportedLocalesOf('plural-rules');
  constructor(locales?: unknown, options?: unknown) {
    super('plural-rules', locales, options);
  }
  select(value: unknown) {
    return formatterCall(this, 'select', [Number(value)]);
  }
  selectRange(start: unknown, end: unknown) {
    return formatterCall(this, 'select-range', [Number(start), Number(end)]);
  }
}

class RelativeTimeFormat extends Formatter {
  static supportedLocalesOf = staticSupportedLocalesOf('relative-time-format');
  constructor(locales?: unknown, options?: unknown) {
    super('relative-time-format', locales, options);
  }
  format(value: unknown, unit: unknown) {
    return formatterCall(this, 'format', [Number(value), String(unit)]);
  }
  formatToParts(value: unknown, unit: unknown) {
    return formatterCall(this, 'format-to-parts', [Number(value), String(unit)]);
  }
}

interface SegmentData {
  segment: string;
  index: number;
  isWordLike?: boolean;
}

class Segmenter extends Formatter {
  static supportedLocalesOf = staticSupportedLocalesOf('segmenter');
  constructor(locales?: unknown, options?: unknown) {
    super('segmenter', locales, options);
  }
  segment(text: unknown) {
    const input = String(text);
    const segments = (formatterCall(this, 'segment', [input]) as SegmentData[]).map((segment) => ({ ...segment, input }));
    return {
      containing(index = 0) {
        const at = Number(index);
        return segments.find((segment) => at >= segment.index && at < segment.index + segment.segment.length);
      },
      [Symbol.iterator]: () => segments[Symbol.iterator](),
    };
  }
}

interface LocaleInfo {
  string: string;
  maximal: string;
  minimal: string;
  [property: string]: unknown;
}

class Locale {
  readonly #info: LocaleInfo;
  constructor(tag: unknown, options?: unknown) {
    const text = tag instanceof Locale ? tag.toString() : tag;
    if (typeof text !== 'string') throw new TypeError('Intl.Locale takes a locale tag or an Intl.Locale');
    this.#info = invoke('locale', [text], optionsText(options), 'resolve') as LocaleInfo;
  }
  maximize() {
    return new Locale(this.#info.maximal);
  }
  minimize() {
    return new Locale(this.#info.minimal);
  }
  toString() {
    return this.#info.string;
  }
  static property(name: string) {
    return function (this: Locale) {
      return this.#info[name] ?? undefined;
    };
  }
}
for (const name of [
  'baseName',
  'calendar',
  'caseFirst',
  'collation',
  'hourCycle',
  'language',
  'numberingSystem',
  'numeric',
  'region',
  'script',
]) {
  Object.defineProperty(Locale.prototype, name, { configurable: true, get: Locale.property(name) });
}

const TAGS: [object, string][] = [
  [Collator.prototype, 'Intl.Collator'],
  [DateTimeFormat.prototype, 'Intl.DateTimeFormat'],
  [DisplayNames.prototype, 'Intl.DisplayNames'],
  [ListFormat.prototype, 'Intl.ListFormat'],
  [Locale.prototype, 'Intl.Locale'],
  [NumberFormat.prototype, 'Intl.NumberFormat'],
  [PluralRules.prototype, 'Intl.PluralRules'],
  [RelativeTimeFormat.prototype, 'Intl.RelativeTimeFormat'],
  [Segmenter.prototype, 'Intl.Segmenter'],
];

const NORMALIZATION_FORMS = new Map([
  ['NFC', 'nfc'],
  ['NFD', 'nfd'],
  ['NFKC', 'nfkc'],
  ['NFKD', 'nfkd'],
] as const);
// Lone surrogates would not survive the trip to the host as UTF-8; no normalization changes them
// or composes across them, so the text between them is normalized piece by piece.
const LONE_SURROGATE = /([\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF])/;

function normalize(this: unknown, form: unknown = 'NFC'): string {
  if (this === null || this === undefined) throw new TypeError('String.prototype.normalize called on null or undefined');
  const text = String(this);
  const name = String(form) as 'NFC';
  const hostForm = NORMALIZATION_FORMS.get(name);
  if (!hostForm) throw new RangeError('The normalization form should be one of NFC, NFD, NFKC, NFKD.');
  if (alreadyNormal(text, name)) return text;
  return text
    .split(LONE_SURROGATE)
    .map((piece, index) => (index % 2 === 1 || piece === '' ? piece : hostNormalize(piece, hostForm)))
    .join('');
}

/** As the engine defines its own: not enumerable, and a function named for its property. */
function define(target: object, name: string, value: unknown): void {
  if (typeof value === 'function' && value.name !== name) Object.defineProperty(value, 'name', { value: name, configurable: true });
  Object.defineProperty(target, name, { value, writable: true, configurable: true, enumerable: false });
}

if (typeof globalThis.Intl === 'undefined') {
  for (const [prototype, tag] of TAGS) Object.defineProperty(prototype, Symbol.toStringTag, { value: tag, configurable: true });
  // The other constructors throw without `new` in ECMA-402 too.
  const intl = {
    Collator: callableWithoutNew(Collator),
    DateTimeFormat: callableWithoutNew(DateTimeFormat),
    DisplayNames,
    ListFormat,
    Locale,
    NumberFormat: callableWithoutNew(NumberFormat),
    PluralRules,
    RelativeTimeFormat,
    Segmenter,
    getCanonicalLocales: (locales?: unknown) => invoke('locale', localeList(locales), '{}', 'canonicalLocales'),
    supportedValuesOf: (key: unknown) => invoke('locale', [], '{}', 'supportedValuesOf', [String(key)]),
  };
  for (const [name, value] of Object.entries(intl)) define(intl, name, value);
  Object.defineProperty(intl, Symbol.toStringTag, { value: 'Intl', configurable: true });
  define(globalThis, 'Intl', intl);

  define(String.prototype, 'localeCompare', function (this: unknown, that: unknown, locales?: unknown, options?: unknown) {
    if (this === null || this === undefined) throw new TypeError('String.prototype.localeCompare called on null or undefined');
    const [first, second, list] = [String(this), String(that), localeList(locales)];
    const quick = options === undefined && plainEnglish(list) ? quickCompare(first, second, 'whole') : undefined;
    return quick ?? formatWith(made('collator', list, optionsText(options)), 'compare', [first, second]);
  });
  define(Number.prototype, 'toLocaleString', function (this: unknown, locales?: unknown, options?: unknown) {
    const value = Number.prototype.valueOf.call(this);
    return formatWith(made('number-format', localeList(locales), optionsText(options)), 'format', [value]);
  });
  define(BigInt.prototype, 'toLocaleString', function (this: unknown, locales?: unknown, options?: unknown) {
    const value = BigInt.prototype.valueOf.call(this);
    return formatWith(made('number-format', localeList(locales), optionsText(options)), 'format', [value]);
  });
  for (const [method, hostMethod] of [
    ['toLocaleString', 'to-locale-string'],
    ['toLocaleDateString', 'to-locale-date-string'],
    ['toLocaleTimeString', 'to-locale-time-string'],
  ] as const) {
    define(Date.prototype, method, function (this: Date, locales?: unknown, options?: unknown) {
      const time = Date.prototype.getTime.call(this);
      if (Number.isNaN(time)) return 'Invalid Date';
      return formatWith(made('date-time-format', localeList(locales), optionsText(options)), hostMethod, [time]);
    });
  }
}
if (typeof String.prototype.normalize !== 'function') define(String.prototype, 'normalize', normalize);
