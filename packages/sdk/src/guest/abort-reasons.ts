// The reason of a signal aborted without one given, as the DOM standard makes it: a DOMException
// named AbortError, or TimeoutError for `AbortSignal.timeout`, with Web IDL's message for that
// name. StarlingMonkey gave the name as the message too, so a log read "AbortError: AbortError"
// and "TimeoutError: TimeoutError", and its `AbortSignal.abort()` threw a TypeError when given no
// reason, which the standard makes optional. Its `AbortSignal.any` gave a signal whose reason was
// garbage (the number 5e-324, whatever the reason of the signal that aborted it), so a fetch
// given `AbortSignal.any([request.signal, AbortSignal.timeout(5000)])` rejected with that; it
// follows its signals here. Imported for this effect by globals.ts.

/** Web IDL's messages for the two names (its table of DOMException names). */
export const ABORTED_MESSAGE = 'The operation was aborted.';
export const TIMED_OUT_MESSAGE = 'The operation timed out.';

const aborted = () => new DOMException(ABORTED_MESSAGE, 'AbortError');

/** Replaces `owner[name]`, a function, keeping how it was defined (writable, enumerable...). */
function replace(owner: object, name: string, make: (original: (...args: unknown[]) => unknown) => (...args: unknown[]) => unknown): void {
  const own = Object.getOwnPropertyDescriptor(owner, name);
  if (typeof own?.value !== 'function') return;
  const replacement = make(own.value as (...args: unknown[]) => unknown);
  Object.defineProperty(replacement, 'name', { value: name, configurable: true });
  Object.defineProperty(owner, name, { ...own, value: replacement });
}

if (typeof AbortController === 'function' && typeof DOMException === 'function') {
  const withStandardReason = (abort: (...args: unknown[]) => unknown) =>
    function (this: unknown, reason?: unknown) {
      return Reflect.apply(abort, this, [reason === undefined ? aborted() : reason]);
    };
  replace(AbortController.prototype, 'abort', withStandardReason);
  replace(AbortSignal, 'abort', withStandardReason);
  // The engine makes the TimeoutError as the timer fires: its message is given then, before any
  // other listener sees the reason (the same object a fetch given the signal rejects with).
  replace(
    AbortSignal,
    'timeout',
    (timeout) =>
      function (this: unknown, ...args: unknown[]) {
        const signal = Reflect.apply(timeout, this, args) as AbortSignal;
        signal.addEventListener(
          'abort',
          () => {
            const reason: unknown = signal.reason;
            if (reason instanceof DOMException && reason.name === 'TimeoutError' && reason.message === 'TimeoutError') {
              Object.defineProperty(reason, 'message', { value: TIMED_OUT_MESSAGE, writable: true, configurable: true });
            }
          },
          { once: true },
        );
        return signal;
      },
  );

  replace(
    AbortSignal,
    'any',
    () =>
      function (this: unknown, signals: unknown) {
        return anySignal(signals);
      },
  );
}

/**
 * The controller behind each signal `any` made: as long as that signal can be reached, its
 * sources can abort it; its sources' listeners hold it weakly, so that a signal no one keeps is
 * not kept by a source that lives on (a controller of the module's).
 */
const controllers = new WeakMap<AbortSignal, AbortController>();

/** `AbortSignal.any`: a signal aborted with the reason of the first of `signals` that is aborted. */
function anySignal(signals: unknown): AbortSignal {
  if (signals === null || typeof signals !== 'object' || !(Symbol.iterator in signals)) {
    throw new TypeError('AbortSignal.any: the argument is not a sequence of AbortSignals');
  }
  const sources = [...(signals as Iterable<unknown>)];
  for (const source of sources) {
    if (!(source instanceof AbortSignal)) throw new TypeError('AbortSignal.any: the argument is not a sequence of AbortSignals');
  }
  const controller = new AbortController();
  const signal = controller.signal;
  const first = (sources as AbortSignal[]).find((source) => source.aborted);
  if (first) {
    controller.abort(first.reason);
    return signal;
  }
  controllers.set(signal, controller);
  const dependent = new WeakRef(signal);
  const listeners: [AbortSignal, () => void][] = [];
  for (const source of sources as AbortSignal[]) {
    const listener = () => {
      for (const [other, added] of listeners) other.removeEventListener('abort', added);
      const target = dependent.deref();
      if (target && !target.aborted) controllers.get(target)?.abort(source.reason);
    };
    listeners.push([source, listener]);
    source.addEventListener('abort', listener);
  }
  return signal;
}
