import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WitError } from '../packages/host/src/capabilities/contract.ts';
import { formattersKept, services } from '../packages/host/src/capabilities/intl/index.ts';
import { alreadyNormal, encoded, plainEnglish, quickCompare, quickLevel } from '../packages/sdk/src/guest/intl-support.ts';

type Service = Parameters<typeof services.call>[0];

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

test('formatters are kept per thread, and bounded: the 300th different one still formats, the first again too', () => {
  // Options that run long (an unknown key ICU ignores) are served, not kept: they would hold the thread's memory.
  const before = formattersKept();
  assert.ok(before < 250, `${before} kept so far`);
  const long = [...Array(3)].map((_, index) => call('number-format', ['en'], { padding: 'x'.repeat(5000 + index) }, 'format', [1]));
  assert.deepEqual(long, ['1', '1', '1']);
  assert.equal(formattersKept(), before);
  call('number-format', ['en'], { padding: 'short' }, 'format', [1]);
  assert.equal(formattersKept(), before + 1);
  for (let digits = 0; digits < 300; digits++) {
    const options = { minimumIntegerDigits: (digits % 21) + 1, minimumFractionDigits: digits % 20 };
    assert.equal(call('number-format', ['en'], options, 'format', [1]), new Intl.NumberFormat('en', options).format(1));
  }
  assert.equal(call('number-format', ['en'], { minimumIntegerDigits: 1, minimumFractionDigits: 0 }, 'format', [7]), '7');
  assert.equal(formattersKept(), 256);
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
    try {
      services.call(
        pick(serviceNames),
        locales,
        next(25) === 0 ? pick(['', '[]', '1', 'null']) : JSON.stringify(options),
        pick(methods),
        jsonish,
      );
      answered++;
    } catch (error) {
      assert.ok(error instanceof WitError, `round ${round}: ${String(error)}`);
      const { tag } = error.payload as { tag: string };
      assert.ok(tag === 'range-error' || tag === 'type-error', `round ${round}: ${tag}`);
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
