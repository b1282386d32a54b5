import { StratumError } from '@stratum/core';
import { nearest } from '@stratum/manifest/nearest';
import type { Capability, ConfigureContext } from '../contract.ts';
import { WitError } from '../contract.ts';

/**
 * `wasi:config/store`: the manifest's `[capabilities.config]` variables, with the installation's
 * values over their defaults. Secrets are values like any other to the capsule that declared
 * them; the host never puts a value (secret or not) into an error, and `configure` names only
 * variables, never what they hold.
 */
export interface ConfigSettings {
  values: Record<string, string>;
}

/** Resolves every declared variable, or throws naming the missing and unknown ones (never a value). */
export function resolveConfig(context: Pick<ConfigureContext, 'capsule' | 'manifest' | 'config'>): Record<string, string> {
  const declared = context.manifest.capabilities.config;
  const problems: string[] = [];
  const values: Record<string, string> = {};
  for (const [name, variable] of Object.entries(declared)) {
    // Own members only: a variable may be named `constructor`, which every object inherits.
    const given = Object.hasOwn(context.config, name) ? context.config[name] : undefined;
    if (given !== undefined) values[name] = given;
    else if (variable.default !== undefined) values[name] = variable.default;
    else if (variable.required)
      problems.push(`config variable "${name}" is required and has no value${variable.secret ? ' (a secret)' : ''}`);
  }
  for (const name of Object.keys(context.config)) {
    if (Object.hasOwn(declared, name)) continue;
    const guess = nearest(name, Object.keys(declared));
    problems.push(`config value "${name}" is not a variable the manifest declares${guess ? ` (did you mean "${guess}"?)` : ''}`);
  }
  if (problems.length > 0) {
    throw new StratumError('CONFIG_INVALID', `the configuration of ${context.capsule} does not match its manifest`, {
      details: problems,
      hint: 'Give a value for every required variable of [capabilities.config] in stratum.toml, and only for those.',
    });
  }
  return values;
}

const config: Capability<ConfigSettings> = {
  name: 'config',
  interfaces: ['wasi:config/store'],
  configure(context) {
    if (context.hostConfig !== undefined) {
      throw new StratumError('HOST_CONFIG_INVALID', 'host.toml: config takes no settings', {
        hint: 'Config values are given per installation, not in host.toml.',
      });
    }
    return { settings: { values: resolveConfig(context) } };
  },
  prepare(context) {
    const values = new Map(Object.entries(context.settings.values));
    return {
      imports: {
        'wasi:config/store': {
          get(key: string): string | undefined {
            if (typeof key !== 'string') throw new WitError({ tag: 'upstream', val: 'a key must be a string' });
            return values.get(key);
          },
          getAll(): [string, string][] {
            return [...values.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
          },
        },
      },
    };
  },
};

export default config;
