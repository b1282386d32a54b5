import { readFile } from 'node:fs/promises';
import { StratumError } from '@stratum/core';
import type { Capability, CapabilityModule } from '@stratum/host';

/**
 * `stratum:dev/source`: hands a dev engine (see @stratum/sdk's build/dev-engine.ts) the capsule's
 * bundle. Only `stratum dev`'s runtime links it; a production host has no such capability, so it
 * refuses a dev engine at install (`CAPABILITY_UNKNOWN_IMPORT`).
 *
 * Its host config (`capabilityConfig.dev`) names the file `stratum dev` writes the bundle to
 * before each install. `configure` reads it then, so each installed version carries its own
 * bundle in its settings: a version still draining keeps serving its code while the next starts.
 */
export interface DevSourceConfig {
  bundleFile: string;
}

export interface DevSourceSettings {
  bundle: string;
}

function bundleFileOf(hostConfig: unknown): string | undefined {
  if (typeof hostConfig !== 'object' || hostConfig === null) return undefined;
  const file = (hostConfig as Partial<DevSourceConfig>).bundleFile;
  return typeof file === 'string' ? file : undefined;
}

const devSource: Capability<DevSourceSettings> = {
  name: 'dev',
  interfaces: ['stratum:dev/source'],
  async configure(context) {
    // Loaded here, not at the top: the module is also imported by every capsule worker.
    const { DEV_SOURCE_INTERFACE } = await import('@stratum/sdk/build');
    const other = context.imports.filter((name) => name !== DEV_SOURCE_INTERFACE);
    if (other.length > 0) {
      throw new StratumError('DEV_ENGINE_MISMATCH', `${context.capsule} imports a version of stratum:dev this stratum dev does not serve`, {
        details: other.map((name) => `import ${name}; this one serves ${DEV_SOURCE_INTERFACE}`),
        hint: 'Dev engines are cached by toolchain version; restart stratum dev so that it builds a current one.',
      });
    }
    const file = bundleFileOf(context.hostConfig);
    if (file === undefined) {
      throw new StratumError('HOST_CONFIG_INVALID', 'the dev capability needs the path of the bundle to serve', { user: false });
    }
    try {
      return { settings: { bundle: await readFile(file, 'utf8') } };
    } catch (error) {
      throw new StratumError('DEV_NO_BUNDLE', `no bundle to serve for ${context.capsule}`, {
        details: [`${file}: ${(error as Error).message}`],
        user: false,
        cause: error,
      });
    }
  },
  prepare(context) {
    const { bundle } = context.settings;
    return { imports: { 'stratum:dev/source': { bundle: () => bundle } } };
  },
};

export default devSource;

/** For `createHostRuntime({ capabilities: [...CAPABILITY_MODULES, DEV_SOURCE_CAPABILITY] })`. */
export const DEV_SOURCE_CAPABILITY: CapabilityModule = { name: 'dev', module: import.meta.url };
