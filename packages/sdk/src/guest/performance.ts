// `performance.timeOrigin` as the High Resolution Time standard has it: the time, in milliseconds
// since the epoch, that `performance.now()` counts from, so that `timeOrigin + now()` is about
// `Date.now()`. StarlingMonkey's was another clock's reading (about 3e6, 50 minutes after 1970).
// It is taken when the first request begins (`settleTimeOrigin`, which the adapter calls), never
// while the modules load: `stratum build` runs them at build time, and a production component
// starts from the state they left (wizer's snapshot), so a time kept then would be the build's.
// Read while they load, it is `Date.now()`: `performance.now()` itself traps there in a production
// build (the engine has no time origin yet), which would end the build. Also `toJSON`, which the
// standard gives Performance. Imported for this effect by globals.ts.

let origin: number | undefined;

/** The time origin, kept from now on: called by the adapter (http.ts) at each request's start. */
export function settleTimeOrigin(): void {
  origin ??= Date.now() - performance.now();
}

/** The reading the standard gives, on the object that holds `timeOrigin` (StarlingMonkey's `performance` itself). */
function defineTimeOrigin(holder: object): void {
  Object.defineProperty(holder, 'timeOrigin', {
    configurable: true,
    enumerable: true,
    get: function timeOrigin(): number {
      return origin ?? Date.now();
    },
  });
}

if (typeof performance === 'object' && performance !== null && typeof performance.now === 'function') {
  const prototype = Object.getPrototypeOf(performance) as object;
  defineTimeOrigin(prototype);
  if (Object.getOwnPropertyDescriptor(performance, 'timeOrigin')?.configurable) defineTimeOrigin(performance);
  if (!('toJSON' in prototype)) {
    Object.defineProperty(prototype, 'toJSON', {
      writable: true,
      configurable: true,
      enumerable: true,
      value: function toJSON(this: { timeOrigin: number }): { timeOrigin: number } {
        return { timeOrigin: this.timeOrigin };
      },
    });
  }
}
