import type { Capability } from './contract.ts';

export * from './contract.ts';

/** Where a capability's module lives: imported by the main thread and by capsule workers. */
export interface CapabilityModule {
  name: string;
  /** A `file:` URL (workers import it by URL, so it must not depend on the importer's path). */
  module: string;
}

/**
 * The registry: every capability the host can link, one line each. A capability not listed
 * here cannot be granted; an import no listed capability serves is refused at install.
 */
export const CAPABILITY_MODULES: readonly CapabilityModule[] = [
  { name: 'wasi', module: new URL('./wasi/index.ts', import.meta.url).href },
  { name: 'http', module: new URL('./http/index.ts', import.meta.url).href },
  { name: 'keyvalue', module: new URL('./keyvalue/index.ts', import.meta.url).href },
  { name: 'sql', module: new URL('./sql/index.ts', import.meta.url).href },
  { name: 'bucket', module: new URL('./bucket/index.ts', import.meta.url).href },
  { name: 'config', module: new URL('./config/index.ts', import.meta.url).href },
  { name: 'logging', module: new URL('./logging/index.ts', import.meta.url).href },
  { name: 'outbound', module: new URL('./outbound/index.ts', import.meta.url).href },
  { name: 'crypto', module: new URL('./crypto/index.ts', import.meta.url).href },
  { name: 'intl', module: new URL('./intl/index.ts', import.meta.url).href },
];

export interface LoadedCapability {
  entry: CapabilityModule;
  capability: Capability;
}

/** Imports the capability modules (on the main thread, for `configure`). */
export async function loadCapabilities(modules: readonly CapabilityModule[]): Promise<LoadedCapability[]> {
  const loaded: LoadedCapability[] = [];
  for (const entry of modules) {
    const module = (await import(entry.module)) as { default?: Capability };
    const capability = module.default;
    if (!capability || typeof capability.configure !== 'function' || typeof capability.prepare !== 'function') {
      throw new Error(`${entry.module} does not default-export a capability`);
    }
    if (capability.name !== entry.name)
      throw new Error(`${entry.module} exports capability "${capability.name}", registered as "${entry.name}"`);
    loaded.push({ entry, capability });
  }
  return loaded;
}
