// StarlingMonkey's console prints an Error as its source, `(new Error("boom", "engine.js line 19
// > eval", 3459))`: no stack, and a file of the engine's rather than the capsule's. Frameworks log
// what they catch with console.error(error) (Hono's default error handler does), so a capsule's
// log said nothing of where it failed. Errors among console's arguments are printed as Node.js
// prints them instead: name and message, the frames (which the host maps to the sources), and
// the causes. Imported for this effect by globals.ts.
import { errorWithFrames } from './errors.ts';

const methods = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;

for (const method of methods) {
  const print = console[method] as ((...data: unknown[]) => void) | undefined;
  if (typeof print !== 'function') continue;
  console[method] = function printed(...data: unknown[]): void {
    for (let index = 0; index < data.length; index++) {
      const item = data[index];
      if (item instanceof Error) data[index] = errorWithFrames(item);
    }
    print.apply(console, data);
  };
}
