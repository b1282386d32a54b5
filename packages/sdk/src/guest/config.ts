/// <reference path="../wit/guest.generated.d.ts" />
import { get, getAll } from 'wasi:config/store@0.2.0-draft';
import { CapabilityError, call } from './errors.ts';
import { refuseAtTopLevel } from './top-level.ts';

/** Why a config read at the top level is refused: it would run at build time, not on the host. */
const BAKED = "where no config exists (a value read there would be the build machine's, kept in the component for good)";

/**
 * The value of a config variable the manifest declares (`[capabilities.config.<name>]`), or
 * undefined when it has no value. Secrets are read the same way. Read it inside `fetch()`: the
 * modules' top-level code runs while the component is built.
 *
 * @example
 * import { getConfig } from '@stratum/sdk/config';
 * const greeting = getConfig('greeting') ?? 'hello';
 */
export function getConfig(name: string): string | undefined {
  refuseAtTopLevel(`getConfig(${JSON.stringify(name)})`, `let value; … value ??= getConfig(${JSON.stringify(name)})`, BAKED);
  return read(name);
}

function read(name: string): string | undefined {
  return seen(call('config', `get("${name}")`, () => get(name)));
}

/**
 * In `stratum dev`, the values read, which its 500 page leaves out of what was thrown
 * (`uncaughtAnswer` in http.ts): the page goes to a browser, maybe through a tunnel, and the
 * capsule cannot tell a secret from another value; the terminal's log masks secrets itself.
 * Nothing is kept on a host, whose 500 says nothing of the error.
 */
function seen<T extends string | undefined>(value: T): T {
  const kept = (globalThis as Record<symbol, unknown>)[DEV_CONFIG_VALUES];
  if (value !== undefined && kept instanceof Set) kept.add(value);
  return value;
}

/** Where `seen` keeps them: a Set the HTTP adapter makes in dev (http.ts, which must not import this module's wasi:config). */
const DEV_CONFIG_VALUES = Symbol.for('stratum.dev.configValues');

/** Like getConfig, but a missing value is an error that names the variable. */
export function requireConfig(name: string): string {
  refuseAtTopLevel(`requireConfig(${JSON.stringify(name)})`, `let value; … value ??= requireConfig(${JSON.stringify(name)})`, BAKED);
  const value = read(name);
  if (value === undefined) throw new CapabilityError('config', 'missing', `config variable "${name}" has no value`);
  return value;
}

/** Every config variable that has a value. */
export function allConfig(): Record<string, string> {
  refuseAtTopLevel('allConfig()', 'let config; … config ??= allConfig()', BAKED);
  return Object.fromEntries(call('config', 'get-all', () => getAll()).map(([name, value]) => [name, seen(value)]));
}
