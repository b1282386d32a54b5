// A dev build's top-level code runs before dev swaps it in (dev/probe.ts): a version whose
// top-level code throws is shown as a mistake, with where it threw, and the last good version
// keeps serving; the probe never reaches the capsule's fetch().
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { openDevCapsule } from './support/dev-capsule.ts';
import { testCacheHome } from './support/dev-engines.ts';
import { removeDir } from './support/temp.ts';

const MANIFEST =
  'stratum = 1\n[capsule]\nname = "probed"\nversion = "0.1.0"\n[source]\nwasm = "dist/probed.wasm"\n[build]\nentry = "src/index.ts"\n[capabilities]\nkeyvalue = ["default"]\n';

/** Counts its requests in keyvalue, so that a request the probe let through would show in the count. */
const counting = (top: string, answer: string) => `import { openKeyValue } from '@stratum/sdk/keyvalue';
${top}
export default {
  fetch() {
    const count = openKeyValue('default').increment('hits');
    return Response.json({ answer: ${JSON.stringify(answer)}, count });
  },
};
`;

async function project(t: TestContext, source: string, manifest = MANIFEST): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-probe-'));
  t.after(() => removeDir(dir));
  await writeFile(join(dir, 'stratum.toml'), manifest);
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'index.ts'), source);
  return dir;
}

/** The project served by a DevCapsule in this process, on a port of its own; `said()` is what dev printed so far. */
async function openDev(t: TestContext, dir: string) {
  const cacheHome = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = testCacheHome;
  t.after(() => {
    if (cacheHome === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = cacheHome;
  });
  const { capsule, said } = await openDevCapsule(t, dir);
  const server = createServer((req, res) => capsule.handleRequest(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const port = (server.address() as AddressInfo).port;
  const get = (path = '/') =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const outgoing = request({ host: '127.0.0.1', port, path, headers: { host: 'probed.localhost' }, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      outgoing.on('error', reject);
      outgoing.end();
    });
  return { capsule, said, get };
}

const THROWS = "const LIMITS = JSON.parse('{bad json');";
/** Where THROWS's JSON.parse is in `counting(THROWS, ...)`: line 2, at the call (SpiderMonkey names the column of `parse`). */
const THROWS_AT = `src/index.ts:2:${THROWS.indexOf('parse(') + 1}`;

test('a save whose top-level code throws is shown with what it threw and where, and the last good version keeps serving', async (t) => {
  const dir = await project(t, counting('', 'one'));
  const { capsule, said, get } = await openDev(t, dir);
  await capsule.reload('starting');
  assert.ok(capsule.serving, said());
  // The probe transpiled the engine into the cache it shares with the serving runtime, which found it there.
  assert.equal(capsule.runtime.stats().transpiles, 0);

  await writeFile(join(dir, 'src', 'index.ts'), counting(THROWS, 'two'));
  const before = said().length;
  await capsule.reload('src/index.ts changed, rebuilding');
  const shown = said().slice(before);
  assert.doesNotMatch(shown, /reloaded/);
  assert.match(shown, /✗ error: the capsule's top-level code threw: SyntaxError: JSON\.parse/);
  assert.ok(shown.includes(THROWS_AT), shown);
  assert.match(shown, /still serving the last good version \(0\.1\.0, bundle [0-9a-f]{12}\); fix it and save to reload/);
  // The probes ran the top-level code of both versions, and neither reached fetch(): this is the first hit.
  assert.deepEqual(JSON.parse((await get()).body), { answer: 'one', count: 1 });

  await writeFile(join(dir, 'src', 'index.ts'), counting("const LIMITS = JSON.parse('{}');", 'three'));
  await capsule.reload('src/index.ts changed, rebuilding');
  assert.match(said(), /✓ reloaded 0\.1\.0/);
  assert.deepEqual(JSON.parse((await get()).body), { answer: 'three', count: 2 });
});

test('a first build whose top-level code throws serves nothing, and says why in the terminal and to a request', async (t) => {
  const dir = await project(t, counting(THROWS, 'one'));
  const { capsule, said, get } = await openDev(t, dir);
  await capsule.reload('starting');
  assert.equal(capsule.serving, false);
  assert.ok(said().includes(THROWS_AT), said());
  assert.match(said(), /nothing is served yet; fix it and save to retry/);
  const answer = await get();
  assert.equal(answer.status, 503);
  assert.match(answer.body, /has no working version yet: the capsule's top-level code threw: SyntaxError: JSON\.parse/);
});

test('a capsule whose routes do not take / is probed on a path they take: the host answers / 404 without running it', async (t) => {
  // As the notes template's routes (/notes, /notes/*): a probe of / found a 404 and served nothing.
  const dir = await project(t, counting('', 'one'), `${MANIFEST}[http]\nroutes = ["/api/*"]\n`);
  const { capsule, said, get } = await openDev(t, dir);
  await capsule.reload('starting');
  assert.ok(capsule.serving, said());
  assert.deepEqual(JSON.parse((await get('/api/x')).body), { answer: 'one', count: 1 });
  await writeFile(join(dir, 'src', 'index.ts'), counting(THROWS, 'two'));
  await capsule.reload('src/index.ts changed, rebuilding');
  assert.ok(said().includes(THROWS_AT), said());
  assert.deepEqual(JSON.parse((await get('/api/x')).body), { answer: 'one', count: 2 });
});
