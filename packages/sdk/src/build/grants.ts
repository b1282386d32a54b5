import type { Manifest } from '@stratum/manifest';

/** What a manifest must grant for a component to import an interface. */
export type Grant = 'keyvalue' | 'sql' | 'bucket' | 'config' | 'none';

export interface ImportCheck {
  /** The interface, with its version: `stratum:keyvalue/store@0.1.0`. */
  name: string;
  grant: Grant;
  /** True when the manifest grants it (always true for `none`). */
  granted: boolean;
}

/** `wasi:http/types@0.2.10` -> `wasi:http/types`. */
export function unversioned(name: string): string {
  const at = name.indexOf('@');
  return at === -1 ? name : name.slice(0, at);
}

/**
 * Which grant an imported interface needs, or undefined when Stratum does not serve it at all.
 * The WASI basics that a toolchain adds by itself (clocks, random, stdio, and the filesystem and
 * sockets interfaces StarlingMonkey links, which a host serves with no preopens and no network)
 * need none; wasi:logging needs none either, since every capsule may log, nor stratum:crypto and stratum:intl.
 */
export function grantFor(name: string): Grant | undefined {
  const [pkg] = unversioned(name).split('/');
  switch (pkg) {
    case 'stratum:keyvalue':
    case 'wasi:keyvalue':
      return 'keyvalue';
    case 'stratum:sql':
      return 'sql';
    case 'stratum:bucket':
      return 'bucket';
    case 'wasi:config':
      return 'config';
    // The outbound grant is a list of origins, checked by the host on every outgoing request
    // (none listed: every request is refused), not at link time: StarlingMonkey imports
    // outgoing-handler in every JS component, for the global fetch().
    // Pure computation on the call's own arguments, which a capsule's engine could do itself
    // if it had the code; nothing outside the call is reached.
    case 'stratum:crypto':
    case 'stratum:intl':
    case 'wasi:http':
    case 'wasi:logging':
    case 'wasi:io':
    case 'wasi:clocks':
    case 'wasi:random':
    case 'wasi:cli':
    case 'wasi:filesystem':
    case 'wasi:sockets':
      return 'none';
    default:
      return undefined;
  }
}

function granted(manifest: Manifest, grant: Grant): boolean {
  const { capabilities } = manifest;
  switch (grant) {
    case 'keyvalue':
      return capabilities.keyvalue.length > 0;
    case 'sql':
      return capabilities.sql.length > 0;
    case 'bucket':
      return capabilities.bucket.length > 0;
    case 'config':
      return Object.keys(capabilities.config).length > 0;
    case 'none':
      return true;
  }
}

/** The manifest line that grants it, for error hints. */
export const GRANT_HINTS: Readonly<Record<Exclude<Grant, 'none'>, string>> = {
  keyvalue: '[capabilities] keyvalue = ["default"]',
  sql: '[capabilities] sql = ["default"]',
  bucket: '[capabilities] bucket = ["default"]',
  config: '[capabilities.config.<name>] (one table per variable the capsule reads)',
};

/** Checks each imported interface against the manifest; unknown interfaces come back with grant undefined. */
export function checkImports(manifest: Manifest, imports: readonly string[]): { checks: ImportCheck[]; unknown: string[] } {
  const checks: ImportCheck[] = [];
  const unknown: string[] = [];
  for (const name of imports) {
    const grant = grantFor(name);
    if (grant === undefined) unknown.push(name);
    else checks.push({ name, grant, granted: granted(manifest, grant) });
  }
  return { checks, unknown };
}
