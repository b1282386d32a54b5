// A JS capsule whose heap cannot grow answers 500 itself (its engine catches the error): the host
// counts it as the memory limit's doing, for the operator's log, status and usage, as it counts a
// trap at the limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RequestRecord } from '@stratum/host';
import { serveJsProject } from './support/js-project.ts';

test('a JS capsule that runs out of heap at its memory limit is counted as a memory limit hit, with why in its status, and not backed off for it', async (t) => {
  const source =
    "export default { fetch(request) { const path = new URL(request.url).pathname; if (path === '/eat') { const kept = []; for (;;) kept.push(new Uint8Array(1 << 20).fill(1)); } if (path === '/fail') return new Response('no', { status: 503 }); return new Response('ok'); } };\n";
  const { runtime, get } = await serveJsProject(t, { name: 'eater', source, manifest: '[resources]\nmemory = "64mib"\n' });
  const records: RequestRecord[] = [];
  runtime.onRequest((record) => records.push(record));

  // Its own 503 is its business: no limit.
  assert.equal((await get('/fail')).status, 503);
  assert.equal((await get('/eat')).status, 500);
  for (let tries = 0; tries < 500 && records.length < 2; tries++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(
    records.map((record) => [record.status, record.limit]),
    [
      [503, undefined],
      [500, 'memory'],
    ],
  );
  const status = runtime.status().find((capsule) => capsule.name === 'eater');
  assert.equal(status?.limitHits.memory, 1);
  assert.match(
    status?.lastError ?? '',
    /^GET \/eat answered 500 with its memory at the limit \(.* of 64 MiB\): out of memory, most likely$/,
  );
  // Served on, not backed off.
  for (let index = 0; index < 4; index++) assert.equal((await get('/')).status, 200);
});

test('a JS capsule whose engine aborts on an allocation it cannot make is a memory limit hit though its memory is short of the limit', async (t) => {
  // Objects in one array: the array's storage is reallocated whole as it grows, and one such
  // reallocation fails well below the limit; SpiderMonkey writes "out of memory" and aborts.
  const source =
    "export default { fetch(request) { if (new URL(request.url).pathname === '/objects') { const a = []; for (;;) a.push({ i: a.length, s: 'y' + a.length, o: [a.length] }); } return new Response('ok'); } };\n";
  const { runtime, get } = await serveJsProject(t, {
    name: 'objects',
    source,
    manifest: '[resources]\nmemory = "256mib"\ncpu = "large"\n',
  });
  const records: RequestRecord[] = [];
  runtime.onRequest((record) => records.push(record));
  assert.equal((await get('/objects')).status, 500);
  for (let tries = 0; tries < 500 && records.length < 1; tries++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(records[0]?.limit, 'memory');
  assert.equal(runtime.status().find((capsule) => capsule.name === 'objects')?.limitHits.memory, 1);
  assert.equal((await get('/')).status, 200);
});
