// The baseline for the capability benchmarks: the same operations on the same backend, straight
// from Node.js, with no capsule in between. Prints one JSON line: {"opsPerSecond": ...}.
// Usage: node bench/servers/direct.ts --backend sqlite|redis|intl --op get|set|query|format|compare|compare-en --n N [--redis <url>]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { NAMES } from '../capsules/ops/src/names.ts';

const { values } = parseArgs({
  options: {
    backend: { type: 'string' },
    op: { type: 'string' },
    n: { type: 'string', default: '2000' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379/0' },
  },
});
const n = Number(values.n);
const value = 'v'.repeat(64);

async function sqlite(op: string): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-bench-direct-'));
  try {
    const db = new DatabaseSync(join(dir, 'db.sqlite'));
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec('CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID');
    db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
    const set = db.prepare('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    const get = db.prepare('SELECT value FROM kv WHERE key = ?');
    const insert = db.prepare('INSERT INTO items (id, name) VALUES (?, ?)');
    const query = db.prepare('SELECT name FROM items WHERE id = ?');
    const bytes = Buffer.from(value);
    for (let i = 0; i < 1000; i++) {
      set.run(`key:${i}`, bytes);
      insert.run(i, `item ${i}`);
    }
    const started = performance.now();
    let found = 0;
    for (let i = 0; i < n; i++) {
      if (op === 'set') set.run(`key:${i % 1000}`, bytes);
      else if (op === 'get') found += get.get(`key:${i % 1000}`) ? 1 : 0;
      else found += query.all(i % 1000).length;
    }
    const elapsed = performance.now() - started;
    db.close();
    if (op !== 'set' && found !== n) throw new Error(`found ${found} of ${n}`);
    return (n / elapsed) * 1000;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function redis(op: string): Promise<number> {
  const client = new Redis(values.redis ?? '', { lazyConnect: true });
  await client.connect();
  try {
    const prefix = `stratum-bench:${process.pid}:`;
    for (let i = 0; i < 1000; i++) await client.set(`${prefix}key:${i}`, value);
    const started = performance.now();
    let found = 0;
    for (let i = 0; i < n; i++) {
      if (op === 'set') await client.set(`${prefix}key:${i % 1000}`, value);
      else found += (await client.getBuffer(`${prefix}key:${i % 1000}`)) ? 1 : 0;
    }
    const elapsed = performance.now() - started;
    const keys = Array.from({ length: 1000 }, (_, i) => `${prefix}key:${i}`);
    await client.del(...keys);
    if (op !== 'set' && found !== n) throw new Error(`found ${found} of ${n}`);
    return (n / elapsed) * 1000;
  } finally {
    client.disconnect();
  }
}

/** What bench/capsules/ops does with Intl, with Node.js's own (the host's ICU, called directly). */
function intl(op: string): number {
  const euros = new Intl.NumberFormat('de-DE', { style: 'currency', currency: 'EUR' });
  const collator = new Intl.Collator(op === 'compare' ? 'de' : 'en');
  let sink = 0;
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    if (op === 'format') sink += euros.format(i * 1.25).length;
    else sink += collator.compare(NAMES[i % NAMES.length] ?? '', NAMES[(i * 7 + 3) % NAMES.length] ?? '') < 0 ? 1 : 0;
  }
  const elapsed = performance.now() - started;
  if (sink < 0) throw new Error('unreachable');
  return (n / elapsed) * 1000;
}

const backend = values.backend ?? 'sqlite';
const op = values.op ?? 'get';
const opsPerSecond = backend === 'redis' ? await redis(op) : backend === 'intl' ? intl(op) : await sqlite(op);
console.log(JSON.stringify({ opsPerSecond }));
