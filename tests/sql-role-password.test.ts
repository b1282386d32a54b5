import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import postgres from 'postgres';
import { postgresSql, schemaName } from '../packages/host/src/capabilities/sql/backends/postgres.ts';
import { int, uniqueCapsule } from '../packages/host/src/capabilities/sql/conformance.ts';
import type { PostgresStatement } from '../packages/host/src/capabilities/sql/dialect.ts';
import { dropPrefixed } from './support/postgres-prefix.ts';
import { requireService } from './support/services.ts';
import { within } from './support/within.ts';

/** Nothing refused before the server: what a capsule could do past a gap in the dialect's refusals. */
function unrefused(sql: string): PostgresStatement {
  let params = 0;
  const text = sql.replace(/\?/g, () => `$${++params}`);
  const keyword = (/^\s*([A-Za-z]+)/.exec(sql)?.[1] ?? '').toUpperCase();
  return { text, params, keyword, kind: keyword };
}

/** Whether `password` is the one a SCRAM-SHA-256 verifier (pg_authid.rolpassword) was made from (RFC 5802). */
function scramMatches(verifier: string, password: string): boolean {
  const match = /^SCRAM-SHA-256\$([0-9]+):([^$]+)\$([^:]+):(.+)$/.exec(verifier);
  if (!match) return false;
  const [, iterations, salt, storedKey] = match as unknown as [string, string, string, string];
  const salted = pbkdf2Sync(password, Buffer.from(salt, 'base64'), Number(iterations), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return createHash('sha256').update(clientKey).digest('base64') === storedKey;
}

function errorResponse(code: string, message: string): Buffer {
  const body = Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${message}\0\0`);
  const head = Buffer.alloc(5);
  head.write('E');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/**
 * The test server's pg_hba.conf trusts every role, so no login ever fails on a password there.
 * This front asks every role but `adminUser` for its password (cleartext, on loopback) and checks
 * it against the verifier the real server stores for the role, as a scram-sha-256 rule would
 * (failing with the server's own 28P01), then hands the connection to the server. Returns its URL.
 */
async function passwordFront(url: string): Promise<{ url: string; close(): Promise<void> }> {
  const target = new URL(url);
  const adminUser = decodeURIComponent(target.username);
  const look = postgres(url, { max: 1, onnotice: () => {} });
  const sockets = new Set<Socket>();
  async function handle(client: Socket): Promise<void> {
    let buffered = Buffer.alloc(0);
    let wake: (() => void) | undefined;
    let closed = false;
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      wake?.();
    };
    client.on('data', onData);
    client.on('close', () => {
      closed = true;
      wake?.();
    });
    const take = async (n: number): Promise<Buffer> => {
      while (buffered.length < n) {
        if (closed) throw new Error('client gone');
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      const out = buffered.subarray(0, n);
      buffered = buffered.subarray(n);
      return out;
    };
    let first: Buffer;
    for (;;) {
      const head = await take(8);
      first = Buffer.concat([head, await take(head.readInt32BE(0) - 8)]);
      // SSLRequest: no TLS here.
      if (head.readInt32BE(4) === 80877103) client.write('N');
      else break;
    }
    // A CancelRequest goes straight through; a StartupMessage names its user.
    if (first.readInt32BE(4) !== 80877102) {
      const fields = first.subarray(8).toString().split('\0');
      const user = fields[fields.indexOf('user') + 1] ?? '';
      if (user !== adminUser) {
        client.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]));
        const type = (await take(1))[0];
        const password = (await take((await take(4)).readInt32BE(0) - 4)).subarray(0, -1).toString();
        const [row] = await look`SELECT rolpassword FROM pg_authid WHERE rolname = ${user}`;
        if (type !== 0x70 || !row || !scramMatches(String(row.rolpassword), password)) {
          client.end(errorResponse('28P01', `password authentication failed for user "${user}"`));
          return;
        }
      }
    }
    client.off('data', onData);
    const upstream = connect(Number(target.port || 5432), target.hostname);
    sockets.add(upstream);
    upstream.write(first);
    if (buffered.length > 0) upstream.write(buffered);
    client.pipe(upstream).on('error', () => {});
    upstream.pipe(client).on('error', () => {});
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.on('error', () => client.destroy());
  }
  const server = createServer((client) => {
    sockets.add(client);
    client.on('error', () => {});
    handle(client).catch(() => client.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const front = new URL(url);
  front.hostname = '127.0.0.1';
  front.port = String((server.address() as AddressInfo).port);
  return {
    url: front.href,
    async close() {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
      await look.end({ timeout: 5 });
    },
  };
}

/** Logs in to the front as `role` with `password`, runs one statement: true when let in. */
async function logsIn(front: string, role: string, password: string): Promise<boolean> {
  const sql = postgres(front, { max: 1, user: role, pass: password, onnotice: () => {} });
  try {
    await sql`SELECT 1`;
    return true;
  } catch (error) {
    if ((error as { code?: unknown }).code === '28P01') return false;
    throw error;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

test("postgres: a capsule role that sets its own password: its pool's next login sets the host's again, and goes on", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const prefix = `stratum_p${randomBytes(4).toString('hex')}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  const front = await passwordFront(url);
  const backend = postgresSql({ url: front.url, schemaPrefix: prefix, maxConnections: 2, dialect: unrefused });
  // One hook, in this order: the backend's connections go through the front, and the roles go last.
  t.after(async () => {
    await backend.close();
    await front.close();
    await dropPrefixed(admin, prefix);
    await admin.end({ timeout: 5 });
  });
  const scope = { capsule: uniqueCapsule(), label: 'default' };
  const role = schemaName(prefix, scope);
  const db = await backend.open(scope);
  await db.execute('CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT)', []);
  await db.execute("INSERT INTO notes (id, body) VALUES (1, 'kept')", []);
  const verifier = async () => String((await admin`SELECT rolpassword FROM pg_authid WHERE rolname = ${role}`)[0]?.rolpassword);
  const hostVerifier = await verifier();
  // The front does check passwords: else what follows would show nothing.
  assert.equal(await logsIn(front.url, role, 'guessed'), false);

  // Past the dialect's refusals, the capsule sets its own password: it may now log in itself.
  await db.execute("ALTER ROLE CURRENT_USER PASSWORD 'the capsule''s own'", []);
  assert.notEqual(await verifier(), hostVerifier);
  assert.equal(await logsIn(front.url, role, "the capsule's own"), true);
  // Two requests at once: the pool logs in a second connection, which must not be refused.
  const [slow, next] = await within(
    10_000,
    Promise.all([db.query('SELECT pg_sleep(0.5) AS slept', []), db.query('SELECT count(*) AS n FROM notes', [])]),
    "the pool's next login",
  );
  assert.equal(slow.rows.length, 1);
  assert.deepEqual(next.rows, [[int(1)]]);
  assert.equal(await verifier(), hostVerifier);
  assert.equal(await logsIn(front.url, role, "the capsule's own"), false);
  await db.drop();
});
