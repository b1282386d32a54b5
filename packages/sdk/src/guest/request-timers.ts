// A request's timers end with it, as in Workers. StarlingMonkey's timers outlive the request that
// set them: the engine runs its event loop only while a request is under way, so a timeout or an
// interval left by a request that had returned ran inside a later one that awaited something,
// its CPU time and log lines counted to that request. The adapter (http.ts) clears, once a
// response has been sent and its waitUntil work has settled, the timers set meanwhile and not
// cleared. Timers of the modules' top-level code are no request's, nor are those that such a
// timer's callback sets (only a dev engine has them: it runs that code in the first request, where
// a production build, which runs it at build time, refuses a timer). Apart from timers.ts, which
// applies it to the engine's globals, so that Node.js tests run it.

type Callback = (...args: unknown[]) => unknown;
type SetTimer = (callback: unknown, delay?: unknown, ...args: unknown[]) => unknown;
type ClearTimer = (id?: unknown) => void;

/** The globals this changes: `globalThis`, or a stand-in in tests. */
export interface TimerScope {
  setTimeout: SetTimer;
  setInterval: SetTimer;
  clearTimeout: ClearTimer;
  clearInterval: ClearTimer;
}

export interface RequestTimers {
  /** A request starts: timers set from now on are requests'. */
  begin(): void;
  /** A request is over: once none is under way, the requests' timers still pending are cleared. */
  end(): void;
  /** The engine's own setTimeout, for the SDK's tasks that belong to no request. */
  readonly untrackedSetTimeout: SetTimer;
}

/** Replaces `scope`'s timer functions with ones that note the timers each request sets. */
export function trackTimers(scope: TimerScope): RequestTimers {
  const engine = {
    setTimeout: scope.setTimeout,
    setInterval: scope.setInterval,
    clearTimeout: scope.clearTimeout,
    clearInterval: scope.clearInterval,
  };
  // More than one only where requests run side by side on one instance: their timers are cleared
  // when the last ends, since which of them set a timer cannot be told across an await.
  let underWay = 0;
  /** True while the callback of a timer that is no request's runs: what it sets is no request's either. */
  let inUntracked = false;
  /** The requests' timers that have neither run nor been cleared: true for an interval. */
  const pending = new Map<unknown, boolean>();

  const setter = (repeat: boolean): SetTimer => {
    const set = repeat ? engine.setInterval : engine.setTimeout;
    return function (this: unknown, callback, delay, ...args) {
      // The engine's TypeError for a callback that is no function.
      if (typeof callback !== 'function') return Reflect.apply(set, scope, [callback, delay, ...args]);
      const owned = underWay > 0 && !inUntracked;
      let id: unknown;
      const run = function (this: unknown) {
        if (owned && !repeat) pending.delete(id);
        const outer = inUntracked;
        inUntracked = !owned;
        try {
          return Reflect.apply(callback as Callback, this, args);
        } finally {
          inUntracked = outer;
        }
      };
      id = Reflect.apply(set, scope, [run, delay]);
      if (owned) pending.set(id, repeat);
      return id;
    };
  };
  const clearer =
    (clear: ClearTimer): ClearTimer =>
    (id) => {
      pending.delete(id);
      Reflect.apply(clear, scope, [id]);
    };

  const replacements: TimerScope = {
    setTimeout: setter(false),
    setInterval: setter(true),
    clearTimeout: clearer(engine.clearTimeout),
    clearInterval: clearer(engine.clearInterval),
  };
  for (const [name, value] of Object.entries(replacements)) {
    Object.defineProperty(value, 'name', { value: name, configurable: true });
    const own = Object.getOwnPropertyDescriptor(scope, name);
    Object.defineProperty(scope, name, { value, writable: true, configurable: true, enumerable: own?.enumerable ?? true });
  }

  return {
    begin() {
      underWay++;
    },
    end() {
      if (underWay > 0) underWay--;
      if (underWay > 0 || pending.size === 0) return;
      for (const [id, repeat] of pending) Reflect.apply(repeat ? engine.clearInterval : engine.clearTimeout, scope, [id]);
      pending.clear();
    },
    untrackedSetTimeout: (callback, delay, ...args) => Reflect.apply(engine.setTimeout, scope, [callback, delay, ...args]),
  };
}
