import type { ConfigVariable } from '@stratum/manifest';

/**
 * The secret values of an installation, longest first (so that a secret containing another is
 * masked whole). Values under 4 characters are left alone: masking "1" everywhere would ruin
 * every line and hide nothing worth hiding.
 */
export function secretValuesOf(declared: Readonly<Record<string, ConfigVariable>>, values: Readonly<Record<string, string>>): string[] {
  const secrets = new Set<string>();
  for (const [name, variable] of Object.entries(declared)) {
    const value = (Object.hasOwn(values, name) ? values[name] : undefined) ?? variable.default;
    if (variable.secret && value !== undefined && value.length >= 4) secrets.add(value);
  }
  return [...secrets].sort((a, b) => b.length - a.length);
}

/** `text` with each secret replaced by `[secret]`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('[secret]');
  return out;
}
