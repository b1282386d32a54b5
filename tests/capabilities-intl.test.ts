import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WitError } from '../packages/host/src/capabilities/contract.ts';
import { formattersKept, services } from '../packages/host/src/capabilities/intl/index.ts';
import { alreadyNormal, encoded, plainEnglish, quickCompare, quickLevel } from '../packages/sdk/src/guest/intl-support.ts';

type Service = Parameters<typeof services.call>[0];

/** The cases of the interface's `method` enum, as the bindings hand them to the host. */
const METHOD_CASES = [
  'resolved-options',
  'format',
  'format-to-parts',
  'format-range',
  'format-range-to-parts',
  'compare',
  'of',
  'select',
  'select-range',
  'segment',
  'to-locale-string',
  'to-locale-date-string',
  'to-locale-time-string',
];

/** A call as the SDK makes it: arguments encoded, the answer parsed. */
function call(service: Service, locales: string[], options: object, method: string, args: unknown[] = []): unknown {
  return JSON.parse(services.call(service, locales, JSON.stringify(options), method, JSON.stringify(args.map(encoded))));
}

function failure(work: () => unknown): { tag: string; val: string } {
  try {
    work();
  } catch (error) {
    assert.ok(error instanceof WitError, `a WitError, not ${String(error)}`);
    return error.payload as { tag: string; val: string };
  }
  assert.fail('the call did not fail');
}

test('each service formats as Node.js does, given the same locales and options', () => {
  const price: Intl.NumberFormatOptions = { style: 'currency', currency: 'EUR' };
  assert.equal(call('number-format', ['de-DE'], price, 'format', [1234567.891]), new Intl.NumberFormat('de-DE', price).format(1234567.891));
  assert.equal(call('number-format', ['en-IN'], {}, 'format', [12345678901234567890n]), '1,23,45,67,89,01,23,45,67,890');
  // A decimal string is formatted exactly, past a double's precision.
  assert.equal(
    call('number-format', ['en'], { maximumFractionDigits: 20 }, 'format', ['0.12345678901234567891']),
    '0.12345678901234567891',
  );
  assert.equal(call('number-format', ['en'], {}, 'format', [Number.NaN]), 'NaN');
  assert.equal(call('number-format', ['en'], {}, 'format', [-0]), '-0');
  assert.deepEqual(call('number-format', ['en'], {}, 'formatToParts', [-1.5]), new Intl.NumberFormat('en').formatToParts(-1.5));
  const dateOptions = { dateStyle: 'full', timeStyle: 'long', timeZone: 'Asia/Tokyo' };
  assert.equal(
    call('date-time-format', ['en-GB'], dateOptions, 'format', [0]),
    new Intl.DateTimeFormat('en-GB', dateOptions as Intl.DateTimeFormatOptions).format(0),
  );
  assert.deepEqual(call('collator', ['de'], {}, 'compare', ['ä', 'z']), -1);
  assert.deepEqual(call('collator', ['sv'], {}, 'compare', ['ä', 'z']), 1, 'Swedish puts ä after z');
  assert.deepEqual(
    [0, 1, 2, 5].map((n) => call('plural-rules', ['ar'], {}, 'select', [n])),
    ['zero', 'one', 'two', 'few'],
  );
  assert.equal(call('relative-time-format', ['fr'], { numeric: 'auto' }, 'format', [-1, 'day']), 'hier');
  assert.equal(call('list-format', ['en'], { type: 'disjunction' }, 'format', [['a', 'b', 'c']]), 'a, b, or c');
  assert.equal(call('display-names', ['en'], { type: 'region' }, 'of', ['JP']), 'Japan');
  assert.deepEqual(call('segmenter', ['en'], { granularity: 'word' }, 'segment', ['Hi, you']), [
    { segment: 'Hi', index: 0, isWordLike: true },
    { segment: ',', index: 2, isWordLike: false },
    { segment: ' ', index: 3, isWordLike: false },
    { segment: 'you', index: 4, isWordLike: true },
  ]);
  assert.deepEqual(call('segmenter', ['en'], {}, 'segment', ['e\u0301!']), [
    { segment: 'e\u0301', index: 0 },
    { segment: '!', index: 2 },
  ]);
  const locale = call('locale', ['zh'], { region: 'TW' }, 'resolve') as Record<string, unknown>;
  assert.equal(locale.string, 'zh-TW');
  assert.equal(locale.maximal, 'zh-Hant-TW');
  assert.deepEqual(call('locale', ['EN-us', 'de-de'], {}, 'canonicalLocales'), ['en-US', 'de-DE']);
  assert.deepEqual(call('locale', [], {}, 'supportedValuesOf', ['currency']), Intl.supportedValuesOf('currency'));
  assert.equal(failure(() => call('locale', [], {}, 'supportedValuesOf', ['colour'])).tag, 'range-error');
  assert.deepEqual(call('number-format', ['en-US', 'xx-XX'], {}, 'supportedLocalesOf'), ['en-US']);
  assert.equal(call('date-time-format', ['en-US'], {}, 'toLocaleDateString', [0]), '1/1/1970');
  assert.equal(call('date-time-format', ['en-US'], {}, 'toLocaleTimeString', [0]), '12:00:00 AM');
});

test('a capsule formats alike on every host: en-US when it names no locale, UTC when it names no time zone', (t) => {
  const zone = process.env.TZ;
  // Node.js reads TZ again when it is set: a host in Tokyo.
  process.env.TZ = 'Asia/Tokyo';
  t.after(() => {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  });
  assert.equal(new Date(0).getHours(), 9, 'the host runs in Tokyo');
  const resolved = call('date-time-format', [], {}, 'resolvedOptions') as Record<string, unknown>;
  assert.equal(resolved.timeZone, 'UTC');
  assert.equal(resolved.locale, 'en-US');
  assert.equal(call('date-time-format', [], { timeStyle: 'short' }, 'format', [0]), '12:00 AM');
  assert.equal(call('date-time-format', [], {}, 'toLocaleString', [0]), '1/1/1970, 12:00:00 AM');
  assert.equal(call('date-time-format', [], { timeZone: 'Asia/Tokyo', timeStyle: 'short' }, 'format', [0]), '9:00 AM');
  assert.equal(call('number-format', [], {}, 'format', [1234.5]), '1,234.5');
});

test("ECMA-402's errors come back as range-error and type-error; nothing of a formatter but its methods is reachable", () => {
  assert.equal(failure(() => call('number-format', ['not a locale!'], {}, 'format', [1])).tag, 'range-error');
  assert.match(failure(() => call('number-format', ['en'], { style: 'currency' }, 'format', [1])).val, /currency/i);
  assert.equal(failure(() => call('date-time-format', ['en'], {}, 'format', [Number.NaN])).tag, 'range-error');
  assert.equal(failure(() => call('display-names', ['en'], {}, 'of', ['JP'])).tag, 'type-error', 'DisplayNames needs a type');
  for (const method of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
    const { tag, val } = failure(() => call('number-format', ['en'], {}, method, []));
    assert.equal(tag, 'type-error', method);
    assert.match(val, /has no method/, method);
  }
  assert.equal(failure(() => services.call('number-format', ['en'], '{', 'format', '[1]')).val, 'the options are not JSON');
  assert.equal(failure(() => services.call('number-format', ['en'], '[]', 'format', '[1]')).val, 'the options are not an object');
  assert.equal(failure(() => services.call('number-format', ['en'], '{}', 'format', '{"0":1}')).val, 'the arguments are not an array');
  assert.match(failure(() => call('number-format', ['en'], {}, 'format', [{ a: 1 }])).val, /number, a BigInt or a decimal string/);
  assert.match(failure(() => call('collator', ['en'], {}, 'compare', [1, 2])).val, /not a string/);
  assert.match(failure(() => call('locale', [], {}, 'resolve')).val, /takes a locale tag/);
  assert.equal(failure(() => call('segmenter', ['en'], {}, 'segment', ['a'.repeat(1024 * 1024 + 1)])).tag, 'range-error');
});

test('a formatter is made once and formatted by its number; the same arguments give the same number', () => {
  const euros = services.formatter('number-format', ['de-DE'], JSON.stringify({ style: 'currency', currency: 'EUR' }));
  assert.equal(services.formatter('number-format', ['de-DE'], JSON.stringify({ style: 'currency', currency: 'EUR' })), euros);
  assert.notEqual(services.formatter('number-format', ['de-DE'], '{}'), euros);
  assert.equal(
    JSON.parse(services.format(euros, 'format', '[1234.5]')),
    new Intl.NumberFormat('de-DE', { style: 'currency', currency: 'EUR' }).format(1234.5),
  );
  assert.equal((JSON.parse(services.format(euros, 'resolved-options', '[]')) as { currency: string }).currency, 'EUR');
  const dates = services.formatter('date-time-format', [], '{}');
  assert.equal(JSON.parse(services.format(dates, 'to-locale-date-string', '[0]')), '1/1/1970');
  assert.equal(
    JSON.parse(services.format(dates, 'format-range', '[0, 86400000]')),
    new Intl.DateTimeFormat('en-US', { timeZone: 'UTC' }).formatRange(0, 86_400_000),
  );
  const german = services.formatter('collator', ['de'], '{}');
  assert.equal(JSON.parse(services.format(german, 'compare', '["ä", "z"]')), -1);
  // Made as the constructor makes it: its errors come at once.
  assert.equal(failure(() => services.formatter('number-format', ['en'], '{"style":"currency"}')).tag, 'type-error');
  assert.equal(failure(() => services.formatter('locale', ['en'], '{}')).tag, 'type-error');
  assert.match(failure(() => services.format(german, 'format', '[1]')).val, /collator has no method format/);
  assert.deepEqual(
    failure(() => services.format(999_999, 'format', '[1]')),
    { tag: 'unknown-formatter' },
  );
});

test("Date's own methods choose their defaults as ECMA-402 says, with a formatter kept for each", () => {
  const cases: Intl.DateTimeFormatOptions[] = [
    {},
    { year: '2-digit' },
    { hour: 'numeric' },
    { weekday: 'long' },
    { dayPeriod: 'short' },
    { fractionalSecondDigits: 2 },
    { dateStyle: 'medium' },
    { timeStyle: 'short' },
    { dateStyle: 'full', timeStyle: 'long' },
    { month: 'long', hour12: false },
    { timeZone: 'Asia/Kolkata', minute: '2-digit' },
  ];
  const time = Date.UTC(2024, 1, 29, 13, 5, 9, 876);
  for (const locale of ['en-US', 'de-DE', 'ja']) {
    for (const options of cases) {
      const number = services.formatter('date-time-format', [locale], JSON.stringify(options));
      for (const [method, hostMethod] of [
        ['toLocaleString', 'to-locale-string'],
        ['toLocaleDateString', 'to-locale-date-string'],
        ['toLocaleTimeString', 'to-locale-time-string'],
      ] as const) {
        let expected: string;
        try {
          expected = new Date(time)[method](locale, { timeZone: 'UTC', ...options });
        } catch {
          assert.equal(
            failure(() => services.format(number, hostMethod, `[${time}]`)).tag,
            'type-error',
            `${locale} ${JSON.stringify(options)} ${method}`,
          );
          continue;
        }
        assert.equal(
          JSON.parse(services.format(number, hostMethod, `[${time}]`)),
          expected,
          `${locale} ${JSON.stringify(options)} ${method}`,
        );
      }
    }
  }
  const number = services.formatter('date-time-format', [], '{}');
  assert.equal(JSON.parse(services.format(number, 'to-locale-string', JSON.stringify([{ number: 'NaN' }]))), 'Invalid Date');
  assert.equal(
    JSON.parse(services.format(number, 'to-locale-string', '[8.64e15]')),
    new Date(8.64e15).toLocaleString('en-US', { timeZone: 'UTC' }),
  );
  assert.equal(JSON.parse(services.format(number, 'to-locale-string', '[8.7e15]')), 'Invalid Date');
});

test('formatters are kept per thread, and bounded: the oldest are forgotten past 256, or past 1 MiB of options', () => {
  const first = services.formatter('number-format', ['en'], JSON.stringify({ minimumFractionDigits: 1 }));
  assert.equal(JSON.parse(services.format(first, 'format', '[7]')), '7.0');
  for (let digits = 0; digits < 300; digits++) {
    const options = { minimumIntegerDigits: (digits % 21) + 1, minimumFractionDigits: digits % 20, maximumFractionDigits: 20 };
    assert.equal(call('number-format', ['en'], options, 'format', [1]), new Intl.NumberFormat('en', options).format(1));
  }
  assert.equal(formattersKept(), 256);
  assert.deepEqual(
    failure(() => services.format(first, 'format', '[7]')),
    { tag: 'unknown-formatter' },
    'the first is forgotten',
  );
  // Made again, it has a new number: a forgotten number never names another formatter.
  const again = services.formatter('number-format', ['en'], JSON.stringify({ minimumFractionDigits: 1 }));
  assert.notEqual(again, first);
  assert.equal(JSON.parse(services.format(again, 'format', '[7]')), '7.0');
  // Options that run long (an unknown key ICU ignores) count by their length: a capsule cannot hold the thread's memory with them.
  const long = Array.from({ length: 40 }, (_, index) =>
    services.formatter('number-format', ['en'], JSON.stringify({ padding: 'x'.repeat(64 * 1024 + index) })),
  );
  assert.ok(formattersKept() < 40, `${formattersKept()} kept`);
  assert.equal(JSON.parse(services.format(long.at(-1) as number, 'format', '[1]')), '1');
  assert.deepEqual(
    failure(() => services.format(long[0] as number, 'format', '[1]')),
    { tag: 'unknown-formatter' },
  );
});

test('normalize gives every form as String.prototype.normalize does', () => {
  const text = 'ﬁ Å e\u0301 한';
  for (const form of ['nfc', 'nfd', 'nfkc', 'nfkd'] as const)
    assert.equal(services.normalize(text, form), text.normalize(form.toUpperCase()));
});

test('fuzzed calls fail as range-error or type-error, never otherwise, and never change a later answer', () => {
  const methods = [
    'format',
    'formatToParts',
    'formatRange',
    'compare',
    'select',
    'of',
    'segment',
    'resolve',
    'resolvedOptions',
    'supportedLocalesOf',
    'canonicalLocales',
    'supportedValuesOf',
    'toLocaleString',
    'x',
  ];
  const serviceNames: Service[] = [
    'collator',
    'date-time-format',
    'display-names',
    'list-format',
    'locale',
    'number-format',
    'plural-rules',
    'relative-time-format',
    'segmenter',
  ];
  const values = [
    '',
    'en',
    'a',
    '1',
    '-',
    '\u0000',
    '\ud800',
    1,
    -1,
    1e308,
    0.5,
    true,
    null,
    [],
    {},
    ['a'],
    { bigint: '99' },
    { number: 'NaN' },
    { bigint: 'x' },
  ];
  const optionValues = [undefined, 'long', 'currency', 'USD', 'x', 0, 21, -1, true, 'UTC', 'Mars/Base', null];
  const optionKeys = [
    'style',
    'currency',
    'timeZone',
    'minimumFractionDigits',
    'type',
    'granularity',
    'numeric',
    'dateStyle',
    'unit',
    'calendar',
  ];
  let seed = 42;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const pick = <T>(list: readonly T[]): T => list[next(list.length)] as T;
  let answered = 0;
  for (let round = 0; round < 3000; round++) {
    const options: Record<string, unknown> = {};
    for (let count = next(3); count > 0; count--) options[pick(optionKeys)] = pick(optionValues);
    const locales = Array.from({ length: next(3) }, () => String(pick(['en', 'de-DE', 'xx', '', 'en-u-nu-arab', '!!', 'zh-Hant-TW'])));
    const args = Array.from({ length: next(3) }, () => pick(values));
    const jsonish = next(20) === 0 ? pick(['{', 'null', '"x"', '[1,', '{"number":"Infinity"}']) : JSON.stringify(args);
    const optionsText = next(25) === 0 ? pick(['', '[]', '1', 'null']) : JSON.stringify(options);
    try {
      // The general call, or a formatter made and then formatted by its number (or by one made earlier).
      if (round % 2 === 0) services.call(pick(serviceNames), locales, optionsText, pick(methods), jsonish);
      else {
        const number = next(4) === 0 ? next(100_000) : services.formatter(pick(serviceNames), locales, optionsText);
        services.format(number, pick(METHOD_CASES), jsonish);
      }
      answered++;
    } catch (error) {
      assert.ok(error instanceof WitError, `round ${round}: ${String(error)}`);
      const { tag } = error.payload as { tag: string };
      assert.ok(tag === 'range-error' || tag === 'type-error' || tag === 'unknown-formatter', `round ${round}: ${tag}`);
    }
  }
  assert.ok(answered > 100, `some fuzzed calls were answered (${answered})`);
  assert.equal(call('number-format', ['de-DE'], {}, 'format', [1234.5]), '1.234,5');
});

test("the SDK's own answers: ASCII and NFC text below U+0300 normalized already, plain English comparisons, numbers JSON cannot hold", () => {
  for (let code = 0; code < 0x300; code++) {
    for (let next = 0; next < 0x300; next += 7) {
      const text = String.fromCharCode(code, next);
      if (alreadyNormal(text, 'NFC')) assert.equal(text.normalize('NFC'), text, `U+${code.toString(16)} U+${next.toString(16)}`);
    }
  }
  assert.equal(alreadyNormal('café', 'NFC'), true);
  assert.equal(alreadyNormal('café', 'NFD'), false);
  assert.equal(alreadyNormal('e\u0301', 'NFC'), false);
  assert.equal(alreadyNormal('plain', 'NFKD'), true);

  const english = new Intl.Collator('en');
  const samples = [
    '',
    'a',
    'A',
    'b',
    'B',
    'z',
    'Z',
    '0',
    '9',
    '10',
    '_x',
    ' a',
    'é',
    'Émile',
    'apple',
    'Apple',
    'banana',
    'æble',
    'Zoë',
    'zebra',
    '1st',
    'a-b',
    'a b',
    'ab',
    'Ab',
    'aB',
  ];
  const answered = { first: 0, whole: 0 };
  for (const level of ['first', 'whole'] as const) {
    for (const a of samples) {
      for (const b of samples) {
        const answer = quickCompare(a, b, level);
        if (answer === undefined) continue;
        answered[level]++;
        assert.equal(answer, Math.sign(english.compare(a, b)), `${level}: ${JSON.stringify(a)} against ${JSON.stringify(b)}`);
      }
    }
  }
  assert.ok(answered.first > samples.length * 10, `most pairs answered by their first letters (${answered.first})`);
  assert.ok(answered.whole > answered.first, `more with whole strings (${answered.whole})`);
  assert.equal(quickCompare('apple', 'Apple', 'first'), undefined, 'a difference of case alone goes to the host');
  assert.equal(quickCompare('a-b', 'a b', 'whole'), undefined, 'punctuation goes to the host');
  // Every pair of strings of up to three of these characters: case, digits, spaces, prefixes.
  const alphabet = 'aAbBzZ09 ';
  const strings = [''];
  for (let length = 1; length <= 3; length++) {
    for (const shorter of strings.filter((text) => text.length === length - 1))
      for (const character of alphabet) strings.push(shorter + character);
  }
  for (const a of strings) {
    for (const b of strings) {
      if (quickCompare(a, b, 'whole') !== Math.sign(english.compare(a, b)))
        assert.fail(`${JSON.stringify(a)} against ${JSON.stringify(b)}`);
    }
  }
  const levelOf = (locale: string, options: Intl.CollatorOptions = {}) =>
    quickLevel(new Intl.Collator(locale, options).resolvedOptions() as unknown as Record<string, unknown>);
  assert.equal(levelOf('en'), 'whole');
  assert.equal(levelOf('en-GB'), 'whole');
  assert.equal(levelOf('en', { sensitivity: 'base' }), 'first', 'case is no difference at all');
  assert.equal(levelOf('en', { caseFirst: 'upper' }), 'first');
  assert.equal(levelOf('en', { ignorePunctuation: true }), 'first', 'spaces are ignored');
  assert.equal(levelOf('en', { numeric: true }), undefined, '10 after 9');
  assert.equal(levelOf('da'), undefined, 'aa is å, after z');
  assert.equal(levelOf('en-u-kn'), undefined);

  assert.equal(plainEnglish([]), true);
  assert.equal(plainEnglish(['en-GB']), true);
  assert.equal(plainEnglish(['da']), false);
  assert.equal(plainEnglish(['en-u-kn-true']), false);

  assert.deepEqual([1n, Number.NaN, Number.POSITIVE_INFINITY, -0, 0, 1.5].map(encoded), [
    { bigint: '1' },
    { number: 'NaN' },
    { number: 'Infinity' },
    { number: '-0' },
    0,
    1.5,
  ]);
});
