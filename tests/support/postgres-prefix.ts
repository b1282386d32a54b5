import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import postgres from 'postgres';

/** Drops every schema and role whose name starts with `<prefix>_`: what a host with that schema_prefix made. */
export async function dropPrefixed(admin: postgres.Sql, prefix: string): Promise<void> {
  for (const { nspname } of await admin`SELECT nspname FROM pg_namespace WHERE starts_with(nspname, ${`${prefix}_`})`) {
    await admin.unsafe(`DROP SCHEMA "${nspname}" CASCADE`);
  }
  for (const { rolname } of await admin`SELECT rolname FROM pg_roles WHERE starts_with(rolname, ${`${prefix}_`})`) {
    await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${rolname}`;
    await admin.unsafe(`DROP OWNED BY "${rolname}" CASCADE`);
    await admin.unsafe(`DROP ROLE "${rolname}"`);
  }
}

/**
 * A schema prefix of the test's own (`stratum_<tag><hex>`), so that its host schema is made
 * afresh; its schemas and roles are removed at the end, on a connection of the hook's own (hooks
 * run in the order they were added, so a connection the test ends in an earlier one is gone).
 */
export function ownPrefix(t: TestContext, url: string, tag = 't'): string {
  const prefix = `stratum_${tag}${randomBytes(4).toString('hex')}`;
  t.after(async () => {
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await dropPrefixed(admin, prefix);
    } finally {
      await admin.end({ timeout: 5 });
    }
  });
  return prefix;
}
