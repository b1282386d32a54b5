// A capsule's statement can make PostgreSQL send far more than the result limits allow; the host
// ends the connection as the answer passes a bound (postgres-answer-limit.ts), where before it
// gathered the whole answer in memory first and only then refused it.
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { postgresSql } from '../packages/host/src/capabilities/sql/backends/postgres.ts';
import { answerLimit } from '../packages/host/src/capabilities/sql/backends/postgres-answer-limit.ts';
import { uniqueCapsule } from '../packages/host/src/capabilities/sql/conformance.ts';
import { SqlError } from '../packages/host/src/capabilities/sql/types.ts';
import { ownPrefix } from './support/postgres-prefix.ts';
import { freePort, requireService } from './support/services.ts';
import { within } from './support/within.ts';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

async function refusal(work: unknown): Promise<SqlError> {
  try {
    await work;
  } catch (error) {
    assert.ok(error instanceof SqlError, String(error));
    console.log('CAUSE', (error as { cause?: unknown }).cause);
    return error;
  }
  assert.fail('the statement was not refused');
}

test("postgres: a capsule's query whose answer passes the bound is ended as it arrives, and the database goes on", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const backend = postgresSql({ url, schemaPrefix: ownPrefix(t, url, 'a') });
  t.after(() => backend.close());
  const db = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  const bound = answerLimit({ maxResultBytes: 16 * 1024 * 1024, maxRows: 10_000 });
  // Twice the bound, from a statement a few bytes long.
  const rows = Math.ceil((2 * bound) / 1_000_000);
  const before = process.memoryUsage().arrayBuffers;
  const error = await refusal(db.query(`SELECT repeat('x', 1000000) AS filler FROM generate_series(1, ${rows})`, []));
  assert.equal(error.kind, 'limit-exceeded');
  assert.match(
    error.message,
    /^the query's result passed \d+ bytes as it arrived from PostgreSQL, over the limit of 16777216 bytes \(and 10000 rows\); add a LIMIT/,
  );
  // The pool connects again for the next statement.
  const next = await db.query('SELECT 41 + 1 AS answer', []);
  assert.deepEqual(next.rows, [[{ tag: 'integer', val: 42n }]]);
  // What arrived past the bound was never kept (postgres.js holds what came before it until that
  // connection serves again).
  collectGarbage();
  const held = process.memoryUsage().arrayBuffers - before;
  assert.ok(held < 1.5 * bound, `${held} bytes of a ${2 * bound}-byte answer are held`);
});

test('postgres: a result within the limits passes the bound, and a snapshot of a table larger than the bound is read whole', async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const limits = { maxResultBytes: 64 * 1024, maxRows: 100 };
  const bound = answerLimit(limits);
  const backend = postgresSql({ url, schemaPrefix: ownPrefix(t, url, 'a'), limits });
  t.after(() => backend.close());
  const db = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  await db.execute('CREATE TABLE pages (id INTEGER PRIMARY KEY, body TEXT)', []);
  const pages = Math.ceil((2 * bound) / 10_000);
  await db.execute(`INSERT INTO pages (id, body) SELECT n, repeat('p', 10000) FROM generate_series(1, ${pages}) AS n`, []);
  // Up to the limits: 6 rows of 10,000 bytes in 64 KiB.
  const within = await db.query('SELECT body FROM pages ORDER BY id LIMIT 6', []);
  assert.equal(within.rows.length, 6);
  // The meter's refusal for what the bound lets through.
  const metered = await refusal(db.query('SELECT body FROM pages ORDER BY id LIMIT 50', []));
  assert.match(metered.message, /^the query returns more than 65536 bytes/);
  // The whole table, past the bound: ended as it arrives.
  const ended = await refusal(db.query('SELECT body FROM pages', []));
  assert.match(ended.message, /passed \d+ bytes as it arrived from PostgreSQL/);
  // A snapshot reads every row, on connections of its own.
  let dumped = 0;
  let bytes = 0;
  for await (const table of db.tables()) {
    for await (const row of table.rows) {
      dumped++;
      const body = row[1];
      if (body?.tag === 'text') bytes += body.val.length;
    }
  }
  assert.equal(dumped, pages);
  assert.ok(bytes > bound, `${bytes} bytes dumped, the bound is ${bound}`);
});

/** A TCP front for PostgreSQL on `port` that a test takes down (refusing connections) and up again. */
function front(port: number, target: URL) {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  return {
    up: () =>
      new Promise<void>((resolve) => {
        server = createServer((client) => {
          const upstream = connect(Number(target.port || 5432), target.hostname);
          for (const socket of [client, upstream]) {
            sockets.add(socket);
            socket.on('error', () => {});
            socket.on('close', () => sockets.delete(socket));
          }
          client.pipe(upstream).pipe(client);
        });
        server.listen(port, '127.0.0.1', resolve);
      }),
    down: () => {
      server?.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

test("postgres: a capsule's counted connections connect again after the server refused them: no statement waits on one that never came", async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const port = await freePort();
  const target = new URL(url);
  const proxy = front(port, target);
  await proxy.up();
  t.after(() => proxy.down());
  const through = new URL(url);
  through.host = `127.0.0.1:${port}`;
  const backend = postgresSql({ url: through.href, schemaPrefix: ownPrefix(t, url, 'a'), maxConnections: 2 });
  t.after(() => backend.close());
  const db = await backend.open({ capsule: uniqueCapsule(), label: 'default' });
  assert.equal((await db.query('SELECT 1 AS one', [])).rows.length, 1);
  proxy.down();
  // More statements than the pool has connections, each refused as it comes: every one fails,
  // none waits (one did until the request's timeout, when the counted socket was made only once
  // connected, and postgres.js, refused it, never connected again).
  for (let call = 0; call < 5; call++) {
    await within(10_000, assert.rejects(Promise.resolve(db.query('SELECT 1 AS one', [])), SqlError), `statement ${call} while refused`);
  }
  await proxy.up();
  const again = await within(10_000, Promise.resolve(db.query('SELECT 2 AS two', [])), 'a statement once the server is back');
  assert.equal(again.rows.length, 1);
});
