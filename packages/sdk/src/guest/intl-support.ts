// What intl.ts decides without the host: a call to it costs a capsule 15 to 25 us, against a
// microsecond or two for these answers, so the ones that need no locale data are given here. And
// the shape of its constructors, apart from the host's imports so that Node.js tests run it.

/** Numbers JSON cannot hold, and BigInts, as the host reads them (spec/wit/README.md). */
export function encoded(value: unknown): unknown {
  if (typeof value === 'bigint') return { bigint: value.toString() };
  if (typeof value === 'number' && (!Number.isFinite(value) || Object.is(value, -0))) {
    return { number: Object.is(value, -0) ? '-0' : String(value) };
  }
  return value;
}

/**
 * Whether `text` is already in the form, so that normalizing it changes nothing: ASCII is in every
 * form, and text below U+0300 in NFC (no combining mark comes before U+0300, and every composed
 * letter there composes again).
 */
export function alreadyNormal(text: string, form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD'): boolean {
  return form === 'NFC' ? /^[\0-\u02ff]*$/.test(text) : /^[\0-\x7f]*$/.test(text);
}

/**
 * English collation's first level for an ASCII digit or letter: digits before letters, each in
 * its order, a letter's case aside. -1 for anything else.
 */
function primaryOf(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 122) return code - 87;
  if (code >= 65 && code <= 90) return code - 55;
  return -1;
}

/** Text an English collator orders as its lowercase form's code units, then lowercase first. */
const ALPHANUMERIC_OR_SPACE = /^[A-Za-z0-9 ]*$/;

/**
 * How much of an English collator's answers the SDK gives without the host: `first`, when the
 * strings' first characters are ASCII digits or letters that differ beyond case, which decide the
 * first level whatever follows (English has no contractions, and a combining mark after a letter
 * weighs only at the second level); `whole` adds strings of ASCII letters, digits and spaces only,
 * which the default options order as their lowercase forms (a space before digits, digits before
 * letters, a shorter string first), then at the first difference of case, lowercase first.
 */
export type QuickLevel = 'first' | 'whole';

/**
 * An English collator's answer when {@link QuickLevel} covers it, else undefined: the host
 * compares. Most comparisons of a sort of names or titles end here.
 */
export function quickCompare(a: string, b: string, level: QuickLevel): number | undefined {
  if (a === b) return 0;
  const first = primaryOf(a.charCodeAt(0));
  const second = primaryOf(b.charCodeAt(0));
  if (first >= 0 && second >= 0 && first !== second) return first < second ? -1 : 1;
  if (level !== 'whole' || !ALPHANUMERIC_OR_SPACE.test(a) || !ALPHANUMERIC_OR_SPACE.test(b)) return undefined;
  const lowerA = a.toLowerCase();
  const lowerB = b.toLowerCase();
  if (lowerA !== lowerB) return lowerA < lowerB ? -1 : 1;
  for (let index = 0; index < a.length; index++) {
    if (a[index] !== b[index]) return a[index] === lowerA[index] ? -1 : 1;
  }
  return 0;
}

/** What {@link quickCompare} may answer for a collator with these resolved options. */
export function quickLevel(resolved: Record<string, unknown>): QuickLevel | undefined {
  const locale = String(resolved.locale);
  // A -u- extension (en-u-kn) has a one-letter subtag, which this pattern refuses.
  if (!/^en(-[A-Za-z0-9]{2,8})*$/.test(locale) || resolved.numeric !== false || resolved.collation !== 'default') return undefined;
  const defaults =
    resolved.usage === 'sort' &&
    resolved.sensitivity === 'variant' &&
    resolved.ignorePunctuation === false &&
    resolved.caseFirst === 'false';
  return defaults ? 'whole' : 'first';
}

/** Locales as the caller named them that are plainly English: `localeCompare`'s common case, told without the host. */
export function plainEnglish(locales: readonly string[]): boolean {
  return locales.length === 0 || /^en(-[A-Z]{2})?$/i.test(locales[0] ?? '');
}

/**
 * `made`, a class, callable without `new` as well: ECMA-402 has DateTimeFormat, NumberFormat and
 * Collator construct when called as functions (`Intl.DateTimeFormat().resolvedOptions().timeZone`
 * is how much code asks for the time zone), where an ES class throws a TypeError. A Proxy keeps
 * the rest the class's: `new`, subclasses, `instanceof` and the static methods; the prototype's
 * `constructor` becomes the Proxy, as it is the global.
 */
export function callableWithoutNew<T extends new (...args: never[]) => object>(made: T): T {
  const callable = new Proxy(made, {
    apply: (target, _this, args: never[]) => Reflect.construct(target, args),
  });
  Object.defineProperty(made.prototype, 'constructor', { value: callable, writable: true, configurable: true, enumerable: false });
  return callable;
}
