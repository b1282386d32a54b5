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
  return call('config', `get("${name}")`, () => get(name));
}

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
  return Object.fromEntries(call('config', 'get-all', () => getAll()));
}
