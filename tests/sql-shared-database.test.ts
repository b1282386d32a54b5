import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { silentLogger } from '@stratum/core';
import postgres from 'postgres';
import { postgresSql } from '../packages/host/src/capabilities/sql/backends/postgres.ts';
import { uniqueCapsule } from '../packages/host/src/capabilities/sql/conformance.ts';
import { requireService } from './support/services.ts';

test("postgres: on a database other roles use, the host's REVOKE TEMPORARY ... FROM PUBLIC is a warning, once, saying what it changed and how to give it back", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const suffix = randomBytes(4).toString('hex');
  const host = `stratum_test_host_${suffix}`;
  const app = `stratum_test_app_${suffix}`;
  const database = `stratum_test_shared_${suffix}`;
  const prefix = `stratum_s${suffix}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  // The walkthrough's: an existing database, with another application's role in it, given to Stratum.
  await admin.unsafe(`CREATE ROLE ${host} LOGIN CREATEROLE`);
  await admin.unsafe(`CREATE ROLE ${app} LOGIN`);
  await admin.unsafe(`CREATE DATABASE ${database} OWNER ${host}`);
  const at = (user: string) => {
    const address = new URL(url);
    address.username = user;
    address.password = '';
    address.pathname = `/${database}`;
    return address.href;
  };
  const warnings: { fields: Record<string, unknown>; message: string }[] = [];
  const logger = {
    ...silentLogger,
    warn: (fields: unknown, message?: unknown) =>
      void warnings.push({ fields: fields as Record<string, unknown>, message: String(message) }),
  };
  const backend = postgresSql({ url: at(host), schemaPrefix: prefix, maxConnections: 1, logger });
  const appSql = postgres(at(app), { max: 1, onnotice: () => {} });
  t.after(async () => {
    await Promise.all([backend.close(), appSql.end({ timeout: 5 })]);
    await admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    // Roles are the cluster's: they outlive their database.
    for (const {
      rolname,
    } of await admin`SELECT rolname FROM pg_roles WHERE starts_with(rolname, ${`${prefix}_`}) OR rolname IN (${host}, ${app})`) {
      await admin.unsafe(`DROP ROLE IF EXISTS "${rolname}"`);
    }
    await admin.end({ timeout: 5 });
  });
  const appTemp = async () =>
    appSql.begin(async (tx) => {
      await tx.unsafe('CREATE TEMP TABLE scratch (x int) ON COMMIT DROP');
    });
  await appTemp();

  await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  const revoke = `REVOKE TEMPORARY ON DATABASE "${database}" FROM PUBLIC`;
  assert.equal(warnings.length, 1, warnings.map((warning) => warning.message).join('\n'));
  const [warning] = warnings;
  assert.equal(warning?.fields.statement, revoke);
  assert.match(warning?.message ?? '', /\[sql\.default\] url/);
  assert.ok(warning?.message.includes(`this host ran ${revoke}`), warning?.message);
  assert.match(warning?.message ?? '', /Every other role in that database lost temporary tables too/);
  const giveBack = `GRANT TEMPORARY ON DATABASE "${database}" TO <role>`;
  assert.ok(warning?.message.includes(giveBack), warning?.message);
  // It did change the other application's role: the protection is needed, so it stays.
  await assert.rejects(appTemp, /permission denied (to create temporary tables|for schema pg_temp)/);

  // Said once: the next open finds it closed.
  await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  assert.equal(warnings.length, 1);

  // What the warning says gives the other role its temporary tables back, and the capsules stay without.
  await admin.unsafe(giveBack.replace('<role>', app));
  await appTemp();
  await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  assert.equal(warnings.length, 1);
});
