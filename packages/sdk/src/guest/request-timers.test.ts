import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type TimerScope, trackTimers } from './request-timers.ts';

/** Timers that run only when a test fires them, as the engine's run only while a request awaits. */
function fakeEngine() {
  let next = 1;
  const pending = new Map<number, { run: () => void; repeat: boolean }>();
  const cleared: number[] = [];
  const set =
    (repeat: boolean) =>
    (callback: unknown, _delay?: unknown, ...args: unknown[]) => {
      if (typeof callback !== 'function') throw new TypeError('setTimeout: first argument must be a function');
      const id = next++;
      pending.set(id, { run: () => callback.apply(scope, args), repeat });
      return id;
    };
  const clear = (id?: unknown) => {
    cleared.push(id as number);
    pending.delete(id as number);
  };
  const scope: TimerScope = { setTimeout: set(false), setInterval: set(true), clearTimeout: clear, clearInterval: clear };
  /** Runs the timer `id` as the engine would once it is due. */
  const fire = (id: unknown) => {
    const timer = pending.get(id as number);
    assert.ok(timer, `timer ${id} is not pending`);
    if (!timer.repeat) pending.delete(id as number);
    timer.run();
  };
  return { scope, pending, cleared, fire };
}

test("a request's timers that have neither run nor been cleared are cleared when it ends; the top-level code's are not", () => {
  const { scope, pending, cleared, fire } = fakeEngine();
  const timers = trackTimers(scope);
  const atInit = [scope.setTimeout(() => {}, 10), scope.setInterval(() => {}, 10)];
  timers.begin();
  const late = scope.setTimeout(() => {}, 3000);
  const ticking = scope.setInterval(() => {}, 100);
  const ran = scope.setTimeout(() => {}, 1);
  const clearedByCapsule = scope.setTimeout(() => {}, 1);
  fire(ran);
  fire(ticking);
  scope.clearTimeout(clearedByCapsule);
  timers.end();
  assert.deepEqual(new Set(pending.keys()), new Set(atInit));
  // The ones that ran or that the capsule cleared are not cleared again.
  assert.deepEqual(cleared.sort(), [clearedByCapsule, late, ticking].sort());
  // The next request starts with none of its own; the top-level timers live on.
  timers.begin();
  timers.end();
  assert.deepEqual(new Set(pending.keys()), new Set(atInit));
});

test("what a top-level timer's callback sets during a request is no request's; what a request's timer sets is the request's", () => {
  const { scope, pending, fire } = fakeEngine();
  const timers = trackTimers(scope);
  let fromInit: unknown;
  let fromRequest: unknown;
  const atInit = scope.setInterval(() => {
    fromInit = scope.setTimeout(() => {}, 10);
  }, 10);
  timers.begin();
  fire(atInit);
  fire(
    scope.setTimeout(() => {
      fromRequest = scope.setTimeout(() => {}, 10);
    }, 10),
  );
  // And after a top-level timer's callback, the request's own again.
  fire(atInit);
  const after = scope.setTimeout(() => {}, 10);
  timers.end();
  assert.ok(pending.has(fromInit as number) && pending.has(atInit as number));
  assert.ok(!pending.has(fromRequest as number) && !pending.has(after as number));
});

test('requests under way side by side keep their timers until the last ends', () => {
  const { scope, pending } = fakeEngine();
  const timers = trackTimers(scope);
  timers.begin();
  const first = scope.setTimeout(() => {}, 10);
  timers.begin();
  const second = scope.setTimeout(() => {}, 10);
  timers.end();
  assert.ok(pending.has(first as number) && pending.has(second as number));
  timers.end();
  assert.equal(pending.size, 0);
});

test("callbacks get their arguments and the engine's this; a callback that is no function gets the engine's TypeError; the functions keep their names", () => {
  const { scope, fire } = fakeEngine();
  const timers = trackTimers(scope);
  timers.begin();
  const seen: unknown[] = [];
  fire(
    scope.setTimeout(
      function (this: unknown, ...args: unknown[]) {
        seen.push(this, ...args);
      },
      0,
      'a',
      2,
    ),
  );
  assert.deepEqual(seen, [scope, 'a', 2]);
  assert.throws(() => scope.setTimeout('code', 0), TypeError);
  assert.deepEqual(
    [scope.setTimeout.name, scope.setInterval.name, scope.clearTimeout.name, scope.clearInterval.name],
    ['setTimeout', 'setInterval', 'clearTimeout', 'clearInterval'],
  );
  // The SDK's own tasks (MessageChannel's messages) are no request's.
  const task = timers.untrackedSetTimeout(() => {}, 0);
  timers.end();
  fire(task);
});
