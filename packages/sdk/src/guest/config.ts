/// <reference path="../wit/guest.generated.d.ts" />
import { get, getAll } from 'wasi:config/store@0.2.0-draft';
import { CapabilityError, call } from './errors.ts';

/**
 * The value of a config variable the manifest declares (`[capabilities.config.<name>]`), or
 * undefined when it has no value. Secrets are read the same way.
 *
 * @example
 * import { getConfig } from '@stratum/sdk/config';
 * const greeting = getConfig('greeting') ?? 'hello';
 */
export function getConfig(name: string): string | undefined {
  return call('config', `get("${name}")`, () => get(name));
}

/** Like getConfig, but a missing value is an error that names the variable. */
export function requireConfig(name: string): string {
  const value = getConfig(name);
  if (value === undefined) throw new CapabilityError('config', 'missing', `config variable "${name}" has no value`);
  return value;
}

/** Every config variable that has a value. */
export function allConfig(): Record<string, string> {
  return Object.fromEntries(call('config', 'get-all', () => getAll()));
}
