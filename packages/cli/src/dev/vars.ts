import { usageError } from '../command.ts';

/** One `--var [capsule:]name=value`: a value for a manifest's config variable. */
export interface VarFlag {
  /** Only this capsule gets it; every capsule when absent. */
  capsule?: string;
  name: string;
  value: string;
}

/**
 * Parses `--var api_url=https://...` or, with several capsules, `--var notes:api_url=...`.
 * Values may contain `=` and `:`; the name is what stands before the first `=`.
 */
export function parseVarFlag(text: string): VarFlag {
  const equals = text.indexOf('=');
  const key = equals === -1 ? '' : text.slice(0, equals);
  const match = /^(?:([a-z][a-z0-9-]*):)?([a-z][a-z0-9_]*)$/.exec(key);
  if (!match?.[2]) {
    throw usageError(
      `--var ${JSON.stringify(text)} is not name=value`,
      'Write --var name=value for a config variable of the manifest (names are lowercase, digits and _), or --var capsule:name=value to give it to one capsule.',
    );
  }
  return { ...(match[1] ? { capsule: match[1] } : {}), name: match[2], value: text.slice(equals + 1) };
}

/**
 * The values one capsule gets: the flags without a capsule, then its own (which win). With
 * `declared` (its manifest's variables, when several capsules run), a flag without a capsule
 * goes only to the capsules that declare it: a host refuses a value for a variable the manifest
 * does not declare, and such a flag is meant for the others. Alone, a capsule gets them all, so
 * that a misspelt name is refused with the variables it could have meant.
 */
export function varsFor(capsule: string, flags: readonly VarFlag[], declared?: readonly string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const flag of flags) {
    if (flag.capsule === undefined && (declared === undefined || declared.includes(flag.name))) values[flag.name] = flag.value;
  }
  for (const flag of flags) if (flag.capsule === capsule) values[flag.name] = flag.value;
  return values;
}
