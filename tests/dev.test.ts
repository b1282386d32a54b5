// `stratum dev` end to end, as a child process: serve, reload on a change without a failed
// request, survive a broken manifest, recover, shut down on SIGINT, and keep state for the next run.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateEd25519KeyPair } from '@stratum/core';
import { CAPABILITY_MODULES, type Capability } from '@stratum/host';
import { buildDevCapsule, devEngineCacheDir } from '@stratum/sdk/build';
import { buildInputsHash } from '../packages/cli/src/dev/capsule.ts';
import { testCacheHome, testEngineCacheDir } from './support/dev-engines.ts';
import { buildExample, exampleDir } from './support/examples.ts';
import { testHostToml } from './support/host-dir.ts';
import { freePort, requireService } from './support/services.ts';
import { removeDir } from './support/temp.ts';
import { buildWat } from './support/tiny.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const launcher = join(root, 'packages', 'cli', 'bin', 'stratum.js');
/** A JS capsule's build takes a minute or more on a busy machine; these bound waits, they measure nothing. */
const BUILD_WAIT_MS = 6 * 60_000;

type DevEvent = { type: string; [field: string]: unknown };

interface DevProcess {
  child: ChildProcess;
  port: number;
  events: DevEvent[];
  stderr(): string;
  /** The first event after this call (or since the start, with `since: 0`) that matches. */
  waitFor(what: string, predicate: (event: DevEvent) => boolean, options?: { timeoutMs?: number; since?: number }): Promise<DevEvent>;
  /** SIGINT, then the exit code. */
  interrupt(): Promise<number | null>;
}

/** `cacheHome`: the XDG_CACHE_HOME dev engines are kept under; default: the one every test shares. */
async function startDev(t: TestContext, dirs: string | string[], port: number, options: { cacheHome?: string } = {}): Promise<DevProcess> {
  const child = spawn(process.execPath, [launcher, 'dev', ...[dirs].flat(), '--port', String(port), '--json'], {
    cwd: root,
    env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: options.cacheHome ?? testCacheHome },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: DevEvent[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) events.push(JSON.parse(line) as DevEvent);
    for (const wake of waiters) wake();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return {
    child,
    port,
    events,
    stderr: () => stderr,
    waitFor(what, predicate, options = {}) {
      const seen = options.since ?? events.length;
      const timeoutMs = options.timeoutMs ?? BUILD_WAIT_MS;
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.slice(seen).find(predicate);
          if (found) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${what} from stratum dev; events: ${JSON.stringify(events.slice(seen))}; stderr: ${stderr}`));
        }, timeoutMs);
        waiters.add(check);
        child.once('exit', () => setTimeout(check, 0));
        check();
      });
    },
    async interrupt() {
      child.kill('SIGINT');
      return exited;
    },
  };
}

/** Waits for the `ready` event, and fails with the reason when a capsule did not start. */
async function serving(dev: DevProcess): Promise<DevEvent> {
  const ready = await dev.waitFor('ready', (event) => event.type === 'ready', { since: 0 });
  const errors = dev.events.filter((event) => event.type === 'error');
  assert.deepEqual(errors, [], 'every capsule started');
  return ready;
}

function get(
  port: number,
  host: string,
  path = '/',
  method = 'GET',
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path, method, headers: { ...headers, host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** Requests one after another until stopped; every answer that is not 200 is kept. */
function steadyLoad(t: TestContext, port: number, host: string, path: string) {
  let running = true;
  // A test that fails before its stop() would otherwise leave the loop running against a
  // stopped server, collecting connection errors until the test runner gives up on the file.
  t.after(() => {
    running = false;
  });
  let served = 0;
  const failures: string[] = [];
  const done = (async () => {
    while (running) {
      try {
        const reply = await get(port, host, path);
        if (reply.status === 200) served++;
        else failures.push(`${reply.status} ${reply.body.trim()}`);
      } catch (error) {
        failures.push(String(error));
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return { served, failures };
    },
  };
}

async function waitForBody(port: number, host: string, path: string, pattern: RegExp): Promise<string> {
  for (let tries = 0; tries < 200; tries++) {
    const reply = await get(port, host, path);
    if (reply.status === 200 && pattern.test(reply.body)) return reply.body;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${host}${path} never answered ${pattern}`);
}

/** Processes (other than the test's own) whose command line names `dir`: a leftover would be an orphan. */
async function processesNaming(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(dir)) found.push(`${pid}: ${cmdline.replaceAll('\0', ' ')}`);
  }
  return found;
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

async function writeAtomically(path: string, data: string | Uint8Array): Promise<void> {
  await writeFile(`${path}.tmp`, data);
  await rename(`${path}.tmp`, path);
}

/** The tiny capsule (a prebuilt component, no sources) with another 16-byte greeting. */
async function tinyVariant(t: TestContext, greeting: string): Promise<Buffer> {
  const wat = (await readFile(join(root, 'examples', 'tiny', 'tiny.wat'), 'utf8')).replace('"hello from tiny "', JSON.stringify(greeting));
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-wat-'));
  t.after(() => removeDir(dir));
  await writeFile(join(dir, 'tiny.wat'), wat);
  return readFile(await buildWat(join(dir, 'tiny.wat')));
}

const TINY_MANIFEST =
  'stratum = 1\n\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n\n[source]\nwasm = "tiny.wasm"\n\n[resources]\ncpu = "nano"\n';

async function tinyProject(t: TestContext, name: string, component: Uint8Array): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `stratum-dev-${name}-`));
  t.after(() => removeDir(dir));
  await writeFile(join(dir, 'stratum.toml'), TINY_MANIFEST.replace('"tiny"', JSON.stringify(name)));
  await writeFile(join(dir, 'tiny.wasm'), component);
  return dir;
}

test('stratum dev serves a prebuilt capsule, swaps it on change without a failed request, survives a broken manifest, and stops on SIGINT', async (t) => {
  const [one, two] = await Promise.all([tinyVariant(t, 'version one     '), tinyVariant(t, 'version two     ')]);
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-tiny-'));
  t.after(() => removeDir(dir));
  await writeFile(join(dir, 'stratum.toml'), TINY_MANIFEST);
  await writeFile(join(dir, 'tiny.wasm'), one);

  const dev = await startDev(t, dir, await freePort());
  const ready = await serving(dev);
  const [served] = ready.capsules as { name: string; urls: string[] }[];
  assert.deepEqual(served?.urls, [`http://tiny.localhost:${dev.port}/`, `http://127.0.0.1:${dev.port}/`, `http://localhost:${dev.port}/`]);
  assert.equal((await get(dev.port, 'tiny.localhost')).body, 'version one     1\n');
  assert.equal((await get(dev.port, `127.0.0.1:${dev.port}`)).status, 200);
  assert.equal((await get(dev.port, 'other.localhost')).status, 404);
  const logged = await dev.waitFor('request log line', (event) => event.type === 'request' && event.capsule === 'tiny', {
    since: 0,
    timeoutMs: 10_000,
  });
  assert.deepEqual([logged.method, logged.path, logged.status], ['GET', '/', 200]);

  const load = steadyLoad(t, dev.port, 'tiny.localhost', '/');
  const reloaded = dev.waitFor('reload', (event) => event.type === 'reloaded');
  await writeAtomically(join(dir, 'tiny.wasm'), two);
  await reloaded;
  await waitForBody(dev.port, 'tiny.localhost', '/', /^version two/);

  const failed = dev.waitFor('manifest error', (event) => event.type === 'error');
  await writeFile(join(dir, 'stratum.toml'), `${TINY_MANIFEST}\n[capsule\n`);
  const error = await failed;
  assert.equal(error.code, 'MANIFEST_INVALID');
  assert.match(String(error.serving), /^0\.1\.0, sha256:/);
  assert.match((await get(dev.port, 'tiny.localhost')).body, /^version two/);

  const recovered = dev.waitFor('recovery', (event) => event.type === 'reloaded');
  await writeFile(join(dir, 'stratum.toml'), TINY_MANIFEST.replace('0.1.0', '0.2.0'));
  assert.equal((await recovered).version, '0.2.0');
  const { served: count, failures } = await load.stop();
  assert.deepEqual(failures, [], 'no request failed while the capsule was swapped');
  assert.ok(count > 0);

  const stopped = dev.waitFor('stopped', (event) => event.type === 'stopped');
  assert.equal(await dev.interrupt(), 0);
  await stopped;
  assert.deepEqual(await processesNaming(dir), []);
  assert.ok(await exists(join(dir, '.stratum', 'cache')), 'the state directory is kept');
  // Two versions were served; the transpile cache keeps only the last.
  assert.equal((await readdir(join(dir, '.stratum', 'cache', 'transpiled'))).length, 1);
});

test('several capsules share one port, each on its own *.localhost name', async (t) => {
  const [alpha, beta] = await Promise.all([tinyVariant(t, 'this is alpha   '), tinyVariant(t, 'this is beta    ')]);
  const dirs = await Promise.all([tinyProject(t, 'alpha', alpha), tinyProject(t, 'beta', beta)]);
  const dev = await startDev(t, dirs, await freePort());
  const ready = await serving(dev);
  assert.deepEqual(
    (ready.capsules as { urls: string[] }[]).map((capsule) => capsule.urls),
    [[`http://alpha.localhost:${dev.port}/`], [`http://beta.localhost:${dev.port}/`]],
  );
  assert.deepEqual(await get(dev.port, 'alpha.localhost'), { status: 200, body: 'this is alpha   1\n' });
  assert.deepEqual(await get(dev.port, `beta.localhost:${dev.port}`), { status: 200, body: 'this is beta    1\n' });
  // With two capsules, plain 127.0.0.1 is ambiguous: it lists where each one is.
  const unknown = await get(dev.port, '127.0.0.1');
  assert.equal(unknown.status, 404);
  assert.match(unknown.body, /alpha\.localhost.*\n.*beta\.localhost/);
  assert.equal(await dev.interrupt(), 0);
  for (const dir of dirs) assert.deepEqual(await processesNaming(dir), []);
});

test('a path no [http] route serves is answered and logged as such, and the printed URLs lead to a route', async (t) => {
  const dir = await tinyProject(t, 'routed', await tinyVariant(t, 'under api       '));
  await writeFile(join(dir, 'stratum.toml'), `${TINY_MANIFEST.replace('"tiny"', '"routed"')}\n[http]\nroutes = ["/api/*"]\n`);
  const dev = await startDev(t, dir, await freePort());
  const ready = await serving(dev);
  const [served] = ready.capsules as { urls: string[] }[];
  assert.equal(served?.urls[0], `http://routed.localhost:${dev.port}/api`);
  assert.equal((await get(dev.port, 'routed.localhost', '/api/x')).status, 200);
  const missed = await get(dev.port, 'routed.localhost', '/other/page?q=1');
  assert.equal(missed.status, 404);
  assert.match(missed.body, /routed serves no route that matches \/other\/page: \[http\] routes in stratum\.toml are \/api\/\*\./);
  assert.match(missed.body, /such as "\/other\/page" or "\/other\/\*"/);
  const logged = await dev.waitFor('unrouted line', (event) => event.type === 'unrouted', { since: 0, timeoutMs: 10_000 });
  assert.deepEqual(
    [logged.capsule, logged.method, logged.path, logged.status, logged.routes],
    ['routed', 'GET', '/other/page', 404, ['/api/*']],
  );
  // The capsule never saw it: only the /api request is in its request log.
  await dev.waitFor('request line', (event) => event.type === 'request' && event.path === '/api/x', { since: 0, timeoutMs: 10_000 });
  assert.deepEqual(
    dev.events.filter((event) => event.type === 'request').map((event) => event.path),
    ['/api/x'],
  );
  assert.equal(await dev.interrupt(), 0);
});

test('a port in use is refused with a clear message', async (t) => {
  const dir = await tinyProject(t, 'tiny', await tinyVariant(t, 'hello from tiny '));
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const port = (blocker.address() as { port: number }).port;
  const dev = await startDev(t, dir, port);
  const code = await new Promise<number | null>((resolve) => dev.child.once('exit', resolve));
  assert.equal(code, 1);
  assert.match(dev.stderr(), new RegExp(`error: port ${port} is already in use on 127\\.0\\.0\\.1`));
  assert.match(dev.stderr(), /hint: .*--port/);
});

/**
 * A copy of examples/counter whose dev engine is in the shared cache (built here the first time),
 * so that the test spends its time on what it tests, not on a first build. With `fullBuild`, its
 * production build is in dev's build cache instead (as after a first `--full-build` run).
 */
async function counterCopy(t: TestContext, options: { fullBuild?: boolean } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-dev-counter-'));
  t.after(() => removeDir(dir));
  await cp(exampleDir('counter'), dir, { recursive: true, filter: (source) => !/\/(dist|\.stratum)$/.test(source) });
  if (options.fullBuild) {
    await mkdir(join(dir, '.stratum', 'build'), { recursive: true });
    await cp(await buildExample('counter'), join(dir, '.stratum', 'build', `${await buildInputsHash(dir)}.wasm`));
  } else {
    await buildDevCapsule(dir, { engineCacheDir: testEngineCacheDir });
  }
  return dir;
}

/** Rewrites a source file in place with `edit`; returns the text it had. */
async function editFile(path: string, edit: (text: string) => string): Promise<string> {
  const text = await readFile(path, 'utf8');
  await writeFile(path, edit(text));
  return text;
}

/** What the runtime must serve for the counter example; empty once it does. */
async function counterBlockers(): Promise<string[]> {
  const needed = ['stratum:keyvalue/store', 'wasi:http/outgoing-handler'];
  const served: string[] = [];
  for (const entry of CAPABILITY_MODULES) {
    const capability = ((await import(entry.module)) as { default: Capability }).default;
    served.push(...capability.interfaces);
  }
  return needed.filter((name) => !served.includes(name));
}

test('stratum dev on examples/counter: edit, break, fix, Ctrl-C, and the count goes on after a restart', async (t) => {
  assert.deepEqual(await counterBlockers(), [], 'the host serves every interface the counter example imports');
  const dir = await counterCopy(t);
  const port = await freePort();

  const dev = await startDev(t, dir, port);
  await serving(dev);
  assert.deepEqual(JSON.parse((await get(port, 'counter.localhost', '/hits')).body), { path: '/hits', count: 1 });

  const load = steadyLoad(t, port, 'counter.localhost', '/load');
  const source = join(dir, 'src', 'index.ts');
  const reloaded = dev.waitFor('reload', (event) => event.type === 'reloaded');
  await editFile(source, (text) =>
    text.replace(
      'return Response.json({ path, count })',
      'console.log("counted", path);\n    return Response.json({ path, count, edited: true })',
    ),
  );
  // The fast path: only the bundle was rebuilt, on the dev engine already built for counter's imports.
  assert.equal((await reloaded).build, 'bundle');
  const edited = JSON.parse(await waitForBody(port, 'counter.localhost', '/hits', /edited/)) as { count: number };
  assert.equal(edited.count, 2, 'the new version sees the old one’s state');
  // The capsule's own output comes between the request lines.
  const logged = await dev.waitFor('capsule log line', (event) => event.type === 'log' && event.message === 'counted /hits', {
    since: 0,
    timeoutMs: 10_000,
  });
  assert.equal(logged.source, 'stdout');

  const manifest = join(dir, 'stratum.toml');
  const good = await readFile(manifest, 'utf8');
  const failed = dev.waitFor('manifest error', (event) => event.type === 'error');
  await writeFile(manifest, good.replace('[capabilities]', '[capabilitiez]'));
  assert.equal((await failed).code, 'MANIFEST_INVALID');
  assert.match((await get(port, 'counter.localhost', '/hits')).body, /"edited":true/);

  const recovered = dev.waitFor('recovery', (event) => event.type === 'reloaded' || event.type === 'notice');
  await writeFile(manifest, good);
  await recovered;
  const { failures } = await load.stop();
  assert.deepEqual(failures, [], 'no request failed while the capsule was swapped');
  const before = JSON.parse((await get(port, 'counter.localhost', '/hits')).body) as { count: number };

  assert.equal(await dev.interrupt(), 0);
  assert.deepEqual(await processesNaming(dir), []);

  const again = await startDev(t, dir, port);
  await serving(again);
  assert.equal((JSON.parse((await get(port, 'counter.localhost', '/hits')).body) as { count: number }).count, before.count + 1);
  assert.equal(await again.interrupt(), 0);
});

/** `text` as a literal inside a RegExp. */
const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('a syntax error is shown with its file:line while the last good version serves; the fix reloads on the fast path', async (t) => {
  const dir = await counterCopy(t);
  const port = await freePort();
  const dev = await startDev(t, dir, port);
  await serving(dev);
  assert.equal((await get(port, 'counter.localhost', '/hits')).status, 200);

  const source = join(dir, 'src', 'index.ts');
  const failed = dev.waitFor('build error', (event) => event.type === 'error');
  const good = await editFile(source, (text) => text.replace('const kv = openKeyValue', 'const kv = = openKeyValue'));
  const error = await failed;
  const line = good.split('\n').findIndex((text) => text.includes('const kv = openKeyValue')) + 1;
  assert.equal(error.code, 'BUILD_BUNDLE_FAILED');
  assert.match(String((error.details as string[])[0]), new RegExp(`^${literally(source)}:${line}:\\d+: Unexpected "="`));
  assert.match(String(error.serving), /^0\.1\.0, bundle [0-9a-f]{12}$/);
  assert.deepEqual(JSON.parse((await get(port, 'counter.localhost', '/hits')).body), { path: '/hits', count: 2 });

  const recovered = dev.waitFor('recovery', (event) => event.type === 'reloaded');
  const fixed = good.replace(
    'return Response.json({ path, count })',
    "if (path === '/boom') throw new TypeError('no boom here');\n    return Response.json({ path, count, fixed: true })",
  );
  await writeFile(source, fixed);
  assert.equal((await recovered).build, 'bundle');
  assert.deepEqual(JSON.parse(await waitForBody(port, 'counter.localhost', '/hits', /fixed/)), { path: '/hits', count: 3, fixed: true });

  // An uncaught error is logged with its message, and its frames name the source's line and
  // column, not the bundle's.
  const since = dev.events.length;
  const boom = await get(port, 'counter.localhost', '/boom');
  assert.equal(boom.status, 500);
  // In dev, the browser is told what was thrown, as wrangler and Spin do.
  assert.match(boom.body, /^Internal Server Error: TypeError: no boom here\n/);
  // One log line, not a line each: the message, then its frames.
  const logged = await dev.waitFor(
    'the error',
    (event) => event.type === 'log' && String(event.message).startsWith('TypeError: no boom here'),
    {
      since,
    },
  );
  const throwLine = fixed.split('\n').findIndex((text) => text.includes("throw new TypeError('no boom here')"));
  const throwColumn = (fixed.split('\n')[throwLine] ?? '').indexOf('new TypeError') + 1;
  assert.equal(String(logged.message).split('\n')[1], `fetch@src/index.ts:${throwLine + 1}:${throwColumn}`, String(logged.message));
  assert.equal(await dev.interrupt(), 0);
});

test('importing another interface builds a dev engine for the new set, once; an ungranted one is refused', async (t) => {
  const dir = await counterCopy(t);
  // A cache of its own, holding counter's engine only: the engine for counter's imports plus
  // logging is then built here, whatever earlier runs left in the shared cache.
  const cacheHome = await mkdtemp(join(tmpdir(), 'stratum-dev-cache-'));
  t.after(() => removeDir(cacheHome));
  const engines = devEngineCacheDir({ XDG_CACHE_HOME: cacheHome });
  await mkdir(engines, { recursive: true });
  const { engine } = await buildDevCapsule(dir, { engineCacheDir: testEngineCacheDir });
  await cp(engine.path, join(engines, basename(engine.path)));

  const port = await freePort();
  const dev = await startDev(t, dir, port, { cacheHome });
  await serving(dev);
  assert.equal((await dev.waitFor('start', (event) => event.type === 'started', { since: 0 })).build, 'bundle');

  const load = steadyLoad(t, port, 'counter.localhost', '/load');
  const source = join(dir, 'src', 'index.ts');
  const building = dev.waitFor(
    'engine notice',
    (event) => event.type === 'notice' && /^building the dev engine for keyvalue, logging\b/.test(String(event.message)),
  );
  const reloaded = dev.waitFor('reload', (event) => event.type === 'reloaded');
  await editFile(
    source,
    (text) =>
      `import { log } from '@stratum/sdk/log';\n${text.replace('return Response.json({ path, count })', 'log.info("counted " + path);\n    return Response.json({ path, count, logged: true })')}`,
  );
  await building;
  assert.equal((await reloaded).build, 'engine');
  await waitForBody(port, 'counter.localhost', '/hits', /"logged":true/);
  assert.equal((await readdir(engines)).filter((name) => name.endsWith('.wasm')).length, 2);

  const refused = dev.waitFor('grant error', (event) => event.type === 'error');
  await editFile(
    source,
    (text) => `import { openDatabase } from '@stratum/sdk/sql';\n${text.replace('const kv = ', 'openDatabase();\n    const kv = ')}`,
  );
  const error = await refused;
  assert.equal(error.code, 'BUILD_UNGRANTED_IMPORT');
  assert.deepEqual(error.details, ['stratum:sql/database@0.1.0 needs the sql capability']);
  assert.match((await get(port, 'counter.localhost', '/hits')).body, /"logged":true/);
  const { failures } = await load.stop();
  assert.deepEqual(failures, [], 'no request failed while the capsule was swapped');
  assert.equal(await dev.interrupt(), 0);
});

test('--full-build serves the production component, as stratum build makes it', async (t) => {
  const dir = await counterCopy(t, { fullBuild: true });
  const port = await freePort();
  const dev = await startDev(t, [dir, '--full-build'], port);
  await serving(dev);
  assert.equal((await dev.waitFor('start', (event) => event.type === 'started', { since: 0 })).build, 'cached');
  assert.deepEqual(JSON.parse((await get(port, 'counter.localhost', '/hits')).body), { path: '/hits', count: 1 });
  assert.equal(await dev.interrupt(), 0);
});

test("in a built component, what the capabilities return is the capsule's own Uint8Array and Array: a keyvalue value, a SQL blob (bound again), a bucket chunk, derived bits, lists; an Intl formatter made at build time formats", async (t) => {
  const dir = await counterCopy(t, { fullBuild: false });
  const manifest = join(dir, 'stratum.toml');
  await editFile(manifest, (text) =>
    text.replace('keyvalue = ["default"]', 'keyvalue = ["default"]\nsql = ["default"]\nbucket = ["default"]'),
  );
  await editFile(
    join(dir, 'src', 'index.ts'),
    (text) =>
      `import { openBucket } from '@stratum/sdk/bucket';\nimport { openDatabase } from '@stratum/sdk/sql';\nconst euros = new Intl.NumberFormat('de-DE', { style: 'currency', currency: 'EUR' });\n${text.replace(
        '  fetch(request) {',
        `  async fetch(request) {
    if (new URL(request.url).pathname === '/bytes') {
      const kv = openKeyValue('default');
      kv.set('bytes', new Uint8Array([1, 2, 3]));
      const value = kv.get('bytes');
      const db = openDatabase();
      db.execute('CREATE TABLE IF NOT EXISTS blobs (b BLOB)');
      db.execute('INSERT INTO blobs VALUES (?)', [new Uint8Array([9])]);
      const blob = db.query('SELECT b FROM blobs LIMIT 1')[0]?.b;
      db.execute('INSERT INTO blobs VALUES (?)', [blob as Uint8Array]);
      const images = openBucket();
      await images.put('x', new Uint8Array([7, 7]));
      const { value: chunk } = await (images.get('x')?.body as ReadableStream<Uint8Array>).getReader().read();
      const password = await crypto.subtle.importKey('raw', new Uint8Array([1]), 'PBKDF2', false, ['deriveBits']);
      const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: new Uint8Array(8), iterations: 10 }, password, 128);
      return Response.json({
        keyvalue: value instanceof Uint8Array,
        sql: blob instanceof Uint8Array,
        rows: db.query('SELECT count(*) AS n FROM blobs')[0]?.n,
        bucket: chunk instanceof Uint8Array,
        crypto: bits instanceof ArrayBuffer && new Uint8Array(bits).length === 16,
        lists: [kv.listKeys().keys, db.queryRaw('SELECT 1 AS one').columns, images.list().objects].every((list) => list instanceof Array),
        intl: euros.format(1234.5),
      });
    }`,
      )}`,
  );
  const port = await freePort();
  const dev = await startDev(t, [dir, '--full-build'], port);
  await serving(dev);
  const reply = await get(port, 'counter.localhost', '/bytes');
  assert.equal(reply.status, 200, reply.body);
  assert.deepEqual(JSON.parse(reply.body), {
    keyvalue: true,
    sql: true,
    rows: 2,
    bucket: true,
    crypto: true,
    lists: true,
    intl: '1.234,50\u00a0€',
  });
  assert.equal(await dev.interrupt(), 0);
});

test('stratum dev --backend keyvalue=redis://… keeps the counts in Redis', async (t) => {
  const redis = await requireService(t, 'redis');
  if (!redis) return;
  assert.deepEqual(await counterBlockers(), [], 'the host serves every interface the counter example imports');
  const dir = await counterCopy(t);
  const port = await freePort();
  const path = `/dev-test-${process.pid}-${Date.now()}`;
  const args = [dir, '--backend', `keyvalue=${redis}`];
  const dev = await startDev(t, args, port);
  const ready = await serving(dev);
  assert.deepEqual((ready.capsules as { capabilities: unknown[] }[])[0]?.capabilities, [
    { grant: 'keyvalue:default', backend: `redis ${redis}` },
  ]);
  assert.equal((JSON.parse((await get(port, 'counter.localhost', path)).body) as { count: number }).count, 1);
  assert.equal(await dev.interrupt(), 0);

  // Without the embedded store's files, the count can only have come from Redis.
  await rm(join(dir, '.stratum', 'capsules'), { recursive: true, force: true });
  const again = await startDev(t, args, port);
  await serving(again);
  assert.equal((JSON.parse((await get(port, 'counter.localhost', path)).body) as { count: number }).count, 2);
  assert.equal((await get(port, 'counter.localhost', path, 'DELETE')).status, 204);
  assert.equal(await again.interrupt(), 0);
});

test('--config takes a host.toml, or just the tables dev reads: its store tables bind the capsule’s labels; a bad one is refused', async (t) => {
  const dir = await tinyProject(t, 'tiny', await tinyVariant(t, 'hello from tiny '));
  await writeFile(join(dir, 'stratum.toml'), `${TINY_MANIFEST}\n[capabilities]\nkeyvalue = ["default", "cache"]\n`);
  const hostToml = join(dir, 'host.toml');
  // No [host] or [registrars]: a running host needs them, dev does not.
  await writeFile(
    hostToml,
    ['[limits]\nmemory = "64mib"', '[keyvalue.cache]\ntype = "redis"\nurl = "redis://127.0.0.1:6379/0"', ''].join('\n\n'),
  );
  const port = await freePort();
  const dev = await startDev(t, [dir, '--config', hostToml], port);
  const ready = await serving(dev);
  assert.deepEqual((ready.capsules as { capabilities: unknown[] }[])[0]?.capabilities, [
    { grant: 'keyvalue:default', backend: 'SQLite (embedded)' },
    { grant: 'keyvalue:cache', backend: 'redis redis://127.0.0.1:6379/0' },
  ]);
  assert.equal(await dev.interrupt(), 0);

  await writeFile(hostToml, 'stratum = 1\n[limits]\nmemroy = "64mib"\n');
  const bad = await startDev(t, [dir, '--config', hostToml], port);
  assert.equal(await new Promise((resolve) => bad.child.once('exit', resolve)), 1);
  assert.match(bad.stderr(), /host\.toml/);
  assert.match(bad.stderr(), /memroy/);
});

test("--config gives dev the host.toml's trusted proxies: behind one, the capsule sees the https scheme", async (t) => {
  const dir = await counterCopy(t);
  await editFile(join(dir, 'src', 'index.ts'), (text) =>
    text.replace('return Response.json({ path, count })', 'return Response.json({ url: request.url })'),
  );
  const hostToml = join(dir, 'host.toml');
  const registrar = (await generateEd25519KeyPair()).publicJwk.x;
  await writeFile(hostToml, testHostToml({ registrar, ingress: 'trusted_proxies = ["127.0.0.0/8", "::1/128"]' }));
  const port = await freePort();
  const dev = await startDev(t, [dir, '--config', hostToml], port);
  await serving(dev);
  const seen = async (headers: Record<string, string>) =>
    (JSON.parse((await get(port, 'counter.localhost', '/hits', 'GET', headers)).body) as { url: string }).url;
  assert.equal(await seen({ 'x-forwarded-proto': 'https' }), 'https://counter.localhost/hits');
  assert.equal(await seen({}), 'http://counter.localhost/hits');
  assert.equal(await dev.interrupt(), 0);
});

test('renaming the capsule while dev runs says that it serves under the old name until a restart', async (t) => {
  const dir = await counterCopy(t);
  const port = await freePort();
  const dev = await startDev(t, dir, port);
  await serving(dev);
  const since = dev.events.length;
  await editFile(join(dir, 'stratum.toml'), (text) => text.replace('name = "counter"', 'name = "tally"'));
  const notice = await dev.waitFor('rename notice', (event) => event.type === 'notice' && /name is now/.test(String(event.message)), {
    since,
  });
  assert.match(
    String(notice.message),
    /^\[capsule\] name is now "tally": this run serves it as counter still \(counter\.localhost.*\); restart stratum dev to serve it as tally$/,
  );
  assert.equal((await get(port, 'counter.localhost', '/hits')).status, 200);
  assert.equal(await dev.interrupt(), 0);
});

test("a secret config value is masked in every line of the capsule's log, console.log's and a thrown error's too", async (t) => {
  const dir = await counterCopy(t);
  await editFile(join(dir, 'stratum.toml'), (text) => `${text}\n[capabilities.config.token]\nrequired = true\nsecret = true\n`);
  await editFile(
    join(dir, 'src', 'index.ts'),
    (text) =>
      `import { getConfig } from '@stratum/sdk/config';\n${text.replace(
        'return Response.json({ path, count })',
        "console.log('token is', getConfig('token'));\n    if (path === '/boom') throw new Error('failed with ' + getConfig('token'));\n    return Response.json({ path, count })",
      )}`,
  );
  const varFile = join(dir, '.env');
  await writeFile(varFile, 'token=sk-live-9f8e7d6c\n');
  const port = await freePort();
  const dev = await startDev(t, [dir, '--var-file', varFile], port);
  await serving(dev);
  const since = dev.events.length;
  assert.equal((await get(port, 'counter.localhost', '/hits')).status, 200);
  assert.equal((await get(port, 'counter.localhost', '/boom')).status, 500);
  await dev.waitFor('the thrown error', (event) => event.type === 'log' && /failed with/.test(String(event.message)), { since });
  const logged = dev.events.filter((event) => event.type === 'log').map((event) => String(event.message));
  assert.ok(logged.includes('token is [secret]'), logged.join('\n'));
  assert.ok(
    logged.some((line) => line.includes('Error: failed with [secret]')),
    logged.join('\n'),
  );
  assert.doesNotMatch(JSON.stringify(dev.events), /sk-live-9f8e7d6c/);
  assert.equal(await dev.interrupt(), 0);
});

test('a required config variable with no value is named with how dev gives one: the project’s .env, which a save then serves', async (t) => {
  const dir = await counterCopy(t);
  await editFile(join(dir, 'stratum.toml'), (text) => `${text}\n[capabilities.config.api_token]\nrequired = true\nsecret = true\n`);
  const dev = await startDev(t, dir, await freePort());
  const failed = JSON.stringify(await dev.waitFor('error', (event) => event.type === 'error'));
  assert.match(failed, /config variable \\"api_token\\" is required and has no value \(a secret\)/);
  assert.ok(failed.includes(`Put name=value lines in ${join(dir, '.env')}`), failed);
  assert.match(failed, /or give --var name=value/);
  const started = dev.waitFor('start', (event) => event.type === 'started');
  await writeFile(join(dir, '.env'), 'api_token=sk-live-42\n');
  await started;
  assert.equal((await get(dev.port, 'counter.localhost', '/hits')).status, 200);
  assert.doesNotMatch(JSON.stringify(dev.events), /sk-live-42/);
  assert.equal(await dev.interrupt(), 0);
});

test('--var-file values reach the capsule; an edit to the file is served without a restart, and a bad line keeps the last good values', async (t) => {
  const dir = await counterCopy(t);
  await editFile(join(dir, 'stratum.toml'), (text) => `${text}\n[capabilities.config.greeting]\nrequired = true\nsecret = true\n`);
  await editFile(
    join(dir, 'src', 'index.ts'),
    (text) =>
      `import { getConfig } from '@stratum/sdk/config';\n${text.replace('return Response.json({ path, count })', "return Response.json({ greeting: getConfig('greeting') })")}`,
  );
  const varFile = join(dir, '.env');
  await writeFile(varFile, 'greeting=one\n');
  const port = await freePort();
  const dev = await startDev(t, [dir, '--var-file', varFile], port);
  await serving(dev);
  assert.equal((await get(port, 'counter.localhost', '/hits')).body, '{"greeting":"one"}');

  const swaps = dev.events.filter((event) => event.type === 'reloaded').length;
  await writeFile(varFile, '# edited\ngreeting = "two words"\n');
  await waitForBody(port, 'counter.localhost', '/hits', /"two words"/);
  assert.equal(dev.events.filter((event) => event.type === 'reloaded').length, swaps + 1);

  const since = dev.events.length;
  await writeFile(varFile, 'greeting=three\nGreeting=sk-live-123\n');
  const failed = await dev.waitFor('error', (event) => event.type === 'error', { since });
  assert.match(JSON.stringify(failed), /\.env:2: \\"Greeting\\" is not a config variable's name/);
  assert.doesNotMatch(JSON.stringify(dev.events), /sk-live|three/);
  assert.equal((await get(port, 'counter.localhost', '/hits')).body, '{"greeting":"two words"}');
  assert.equal(await dev.interrupt(), 0);
});

test('dev does not back a failing capsule off: after failures in a row, the next request still reaches it', async (t) => {
  const dir = await counterCopy(t);
  await editFile(join(dir, 'src', 'index.ts'), (text) =>
    text.replace("if (path === '/_counts') {", "if (path === '/spin') for (;;) {}\n    if (path === '/_counts') {"),
  );
  const port = await freePort();
  const dev = await startDev(t, dir, port);
  await serving(dev);
  // A host backs a capsule off after three failures in a row; four here.
  for (let attempt = 0; attempt < 4; attempt++) assert.equal((await get(port, 'counter.localhost', '/spin')).status, 504);
  const after = await get(port, 'counter.localhost', '/hits');
  assert.equal(after.status, 200, after.body);
  assert.equal(await dev.interrupt(), 0);
});

test("dev lets a capsule reach this machine's loopback through an origin its manifest grants, as a developer's local API needs", async (t) => {
  const api = createServer((_req, res) => res.end('from the local API'));
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => api.close(() => resolve())));
  const origin = `http://127.0.0.1:${(api.address() as { port: number }).port}`;
  const dir = await counterCopy(t);
  await editFile(join(dir, 'stratum.toml'), (text) =>
    text.replace('keyvalue = ["default"]', `keyvalue = ["default"]\noutbound = ["${origin}"]`),
  );
  await editFile(join(dir, 'src', 'index.ts'), (text) =>
    text.replace('fetch(request) {', 'async fetch(request) {').replace(
      'return Response.json({ path, count })',
      `const upstream = await fetch('${origin}/data');
    const copy = upstream.clone();
    return Response.json({ copy: await copy.text(), original: await upstream.text(), url: copy.url })`,
    ),
  );
  const port = await freePort();
  const dev = await startDev(t, dir, port);
  await serving(dev);
  const reply = await get(port, 'counter.localhost', '/hits');
  assert.equal(reply.status, 200, reply.body);
  assert.deepEqual(JSON.parse(reply.body), { copy: 'from the local API', original: 'from the local API', url: `${origin}/data` });
  assert.equal(await dev.interrupt(), 0);
});
