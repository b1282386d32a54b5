import type { Capsule } from '@stratum/sdk';
import { openKeyValue } from '@stratum/sdk/keyvalue';
import { openDatabase } from '@stratum/sdk/sql';
import { NAMES } from './names.ts';

const value = 'v'.repeat(64);
let tableReady = false;
const euros = new Intl.NumberFormat('de-DE', { style: 'currency', currency: 'EUR' });
const german = new Intl.Collator('de');
const english = new Intl.Collator('en');

// GET /kv/set?n=N   N sets of distinct keys
// GET /kv/get?n=N   N gets of keys /kv/set wrote
// GET /sql/query?n=N  N point queries on an indexed table of 1,000 rows
// GET /intl/format?n=N  N prices formatted by one Intl.NumberFormat (a call to the host each)
// GET /intl/compare?n=N  N German comparisons (a call each) and /intl/compare-en N English ones
//   of names (answered in the capsule: the SDK's English shortcut)
export default {
  fetch(request) {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get('n') ?? '0');
    if (url.pathname === '/kv/set') {
      const kv = openKeyValue('default');
      for (let i = 0; i < n; i++) kv.set(`key:${i % 1000}`, value);
      return Response.json({ ops: n });
    }
    if (url.pathname === '/kv/get') {
      const kv = openKeyValue('default');
      let found = 0;
      for (let i = 0; i < n; i++) if (kv.get(`key:${i % 1000}`)) found++;
      return Response.json({ ops: n, found });
    }
    if (url.pathname === '/sql/query') {
      const db = openDatabase('default');
      if (!tableReady) {
        db.execute('CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
        const [count] = db.query('SELECT count(*) AS c FROM items');
        if (Number(count?.c ?? 0) === 0) {
          db.transaction(
            Array.from({ length: 1000 }, (_, id) => ({ sql: 'INSERT INTO items (id, name) VALUES (?, ?)', params: [id, `item ${id}`] })),
          );
        }
        tableReady = true;
      }
      let found = 0;
      for (let i = 0; i < n; i++) found += db.query('SELECT name FROM items WHERE id = ?', [i % 1000]).length;
      return Response.json({ ops: n, found });
    }
    if (url.pathname === '/intl/format') {
      let length = 0;
      for (let i = 0; i < n; i++) length += euros.format(i * 1.25).length;
      return Response.json({ ops: n, length });
    }
    if (url.pathname === '/intl/compare' || url.pathname === '/intl/compare-en') {
      const collator = url.pathname === '/intl/compare' ? german : english;
      let before = 0;
      for (let i = 0; i < n; i++)
        before += collator.compare(NAMES[i % NAMES.length] ?? '', NAMES[(i * 7 + 3) % NAMES.length] ?? '') < 0 ? 1 : 0;
      return Response.json({ ops: n, before });
    }
    return new Response('not found', { status: 404 });
  },
} satisfies Capsule;
