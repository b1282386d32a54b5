import assert from 'node:assert/strict';
import { test } from 'node:test';
import { callableWithoutNew } from './intl-support.ts';

test('a constructor made callable without new constructs when called, and stays the class for new, instanceof, subclasses and statics', () => {
  class Format {
    static supportedLocalesOf = (locales: string[]) => locales.filter((locale) => locale.startsWith('de'));
    readonly locale: string;
    constructor(locale = 'en-US') {
      this.locale = locale;
    }
    format(value: number) {
      return `${this.locale}:${value}`;
    }
  }
  const Callable = callableWithoutNew(Format);
  const called = (Callable as unknown as (locale?: string) => Format)('de-DE');
  assert.ok(called instanceof Callable && called instanceof Format);
  assert.equal(called.format(1), 'de-DE:1');
  assert.equal((Callable as unknown as () => Format)().locale, 'en-US');
  assert.equal(new Callable('fr').format(2), 'fr:2');
  assert.equal(called.constructor, Callable);
  assert.equal(Callable.prototype.constructor, Callable);
  assert.deepEqual(Callable.supportedLocalesOf(['de-DE', 'fr']), ['de-DE']);
  assert.equal(Callable.name, 'Format');
  assert.equal(typeof Callable, 'function');
  class Sub extends Callable {
    override format(value: number) {
      return `sub ${super.format(value)}`;
    }
  }
  const sub = new Sub('it');
  assert.ok(sub instanceof Sub && sub instanceof Callable);
  assert.equal(sub.format(3), 'sub it:3');
  // As Node.js's own Intl.DateTimeFormat, which ECMA-402 lets be called so.
  assert.equal(Object.getPrototypeOf((Intl.DateTimeFormat as unknown as () => object)()), Intl.DateTimeFormat.prototype);
});
