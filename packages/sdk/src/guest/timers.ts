// Each request's timers end with it (request-timers.ts). Imported by globals.ts, before the
// capsule's modules, so that a library that keeps `setTimeout` as it loads keeps this one.
import { type TimerScope, trackTimers } from './request-timers.ts';

export const requestTimers = trackTimers(globalThis as unknown as TimerScope);
