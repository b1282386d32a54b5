// The SDK's guest code inside StarlingMonkey, on the fixture capsule tests/fixtures/sdk-guest: a
// dev engine (as `stratum dev` runs it, so that only esbuild runs on a change of the SDK) on a
// host runtime, one instance, its log collected.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { declaredProbes, ENGINE_LIBS, engineTypesFile, libraryFiles, typescriptLibDir } from '@stratum/sdk/build';
import { serveDevProject } from './support/js-project.ts';
import { removeDir } from './support/temp.ts';

const fixture = fileURLToPath(new URL('./fixtures/sdk-guest/', import.meta.url));

interface Answer {
  status: number;
  body: string;
  /** False when the connection closed before the body's end: the response was cut off. */
  complete: boolean;
}

interface Outgoing {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

interface Served {
  get(path: string, init?: Outgoing): Promise<Answer>;
  /** The capsule's log, as it comes. */
  logs: string[];
  port: number;
}

/** Serves the fixture (or another project) on a runtime with one instance. */
async function serveFixture(t: TestContext, project = fixture): Promise<Served> {
  const { runtime, port } = await serveDevProject(t, project, 'sdk-guest', { instancesPerCapsule: 1, asyncInstancesPerCapsule: 1 });
  const logs: string[] = [];
  runtime.subscribeLogs('sdk-guest', (entry) => logs.push(entry.message));
  const get = (path: string, init: Outgoing = {}) =>
    new Promise<Answer>((resolve, reject) => {
      const headers = { ...init.headers, host: 'sdk-guest.test' };
      const outgoing = request({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        // A body the host cut off ends the connection, not the response: 'close' without 'end'.
        res.on('error', () => {});
        res.on('close', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), complete: res.complete }));
      });
      outgoing.on('error', reject);
      outgoing.end(init.body);
    });
  return { get, logs, port };
}

/** Waits up to 5 s for `done`, then fails with the log. */
async function until(done: () => boolean, logs: string[]): Promise<void> {
  for (let tries = 0; tries < 250 && !done(); tries++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(done(), logs.join('\n'));
}

test("a response body whose stream fails is cut off after the parts it gave, the error is in the capsule's log, and the instance lives on", async (t) => {
  const { get, logs } = await serveFixture(t);
  assert.equal((await get('/served')).body, '1');
  for (const [path, thrown] of [
    ['/stream/errored', 'Error: stream broke'],
    ['/stream/async-throw', 'Error: async pull broke'],
    ['/stream/not-bytes', "TypeError: the response body's stream gave a string, not bytes (a Uint8Array)"],
  ] as const) {
    const answer = await get(path);
    assert.equal(answer.status, 200, path);
    assert.equal(answer.body, 'part 1\npart 2\npart 3\n', path);
    assert.ok(
      logs.some((line) => line.includes(thrown) && /cut off/.test(line)),
      `${path}: no log line with "${thrown}" in:\n${logs.join('\n')}`,
    );
  }
  // The same instance, its module state kept: no abort, no trap, no new instance.
  assert.equal((await get('/served')).body, '5');
  assert.deepEqual(
    logs.filter((line) => /trap|unreachable|abort/i.test(line)),
    [],
  );
});

test('a handler that waits on a promise nothing can settle gets a 500, and the log says why, not only "unreachable"', async (t) => {
  // A project of its own: the fixture's top-level timer would keep the engine's event loop busy.
  const project = await mkdtemp(join(tmpdir(), 'stratum-never-'));
  t.after(() => removeDir(project));
  await mkdir(join(project, 'src'));
  await writeFile(
    join(project, 'stratum.toml'),
    'stratum = 1\n[capsule]\nname = "never"\nversion = "0.1.0"\n[source]\nwasm = "dist/never.wasm"\n[build]\nentry = "src/index.js"\n',
  );
  await writeFile(
    join(project, 'src', 'index.js'),
    "let served = 0;\nexport default { fetch: (request) => (served++, new URL(request.url).pathname === '/never' ? new Promise(() => {}) : new Response(String(served))) };\n",
  );
  const { get, logs } = await serveFixture(t, project);
  assert.equal((await get('/never')).status, 500);
  await until(() => logs.some((line) => line.startsWith('limit hit (trap)')), logs);
  const hit = logs.find((line) => line.startsWith('limit hit (trap)')) ?? '';
  assert.match(hit, /waited on a promise that nothing was left to settle/, logs.join('\n'));
  // A new instance serves the next request.
  assert.equal((await get('/served')).status, 200);
});

test('a response body whose stream fails reaches the client as cut off, not as a whole response', async (t) => {
  const { get } = await serveFixture(t);
  const answer = await get('/stream/errored');
  assert.equal(answer.body, 'part 1\npart 2\npart 3\n');
  assert.equal(answer.complete, false, 'the response ended as if whole');
});

test('request.signal is aborted when the client leaves a streamed response, as in Workers, and the stream is cancelled', async (t) => {
  const { port, logs } = await serveFixture(t);
  await new Promise<void>((resolve, reject) => {
    const outgoing = request(
      { host: '127.0.0.1', port, path: '/events?count=500', headers: { host: 'sdk-guest.test' }, agent: false },
      (res) => {
        res.once('data', () => {
          outgoing.destroy();
          resolve();
        });
      },
    );
    outgoing.on('error', () => {});
    outgoing.on('close', () => reject(new Error('closed before any event')));
    outgoing.end();
  });
  await until(() => logs.includes('events cancelled'), logs);
  assert.ok(logs.includes('request.signal aborted: AbortError'), logs.join('\n'));
  assert.ok(logs.indexOf('request.signal aborted: AbortError') < logs.indexOf('events cancelled'), logs.join('\n'));
});

test("a request's timers end with it, as in Workers: none fires in a later request; top-level timers, event streams and waitUntil work go on", async (t) => {
  const { get, logs } = await serveFixture(t);
  // The first request loads the modules, whose top-level code sets an interval.
  assert.equal((await get('/ticks')).body, '0');
  assert.equal((await get('/leave-timers')).body, 'left');
  // A later request that awaits runs the engine's event loop for 400 ms.
  assert.equal((await get('/wait')).body, 'waited');
  assert.deepEqual(
    logs.filter((line) => line.startsWith('late ')),
    [],
  );
  assert.notEqual((await get('/ticks')).body, '0', "the top-level code's interval was cleared with a request");
  // An event stream that an interval feeds runs until it ends.
  const events = await get('/events?count=5');
  assert.deepEqual(events, { status: 200, body: 'data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\ndata: 5\n\n', complete: true });
  assert.equal((await get('/background')).body, 'later');
  await until(() => logs.includes('background done'), logs);
});

test('Intl.DateTimeFormat, NumberFormat and Collator construct when called without new, as ECMA-402 has them; the other constructors throw', async (t) => {
  const { get } = await serveFixture(t);
  const answer = await get('/intl');
  assert.equal(answer.status, 200, answer.body);
  assert.deepEqual(JSON.parse(answer.body), {
    // A capsule formats in UTC when no time zone is named (README), whatever the host's.
    timeZone: 'UTC',
    date: new Intl.DateTimeFormat('en-GB', { dateStyle: 'long' }).format(Date.UTC(2024, 1, 29)),
    number: new Intl.NumberFormat('de-DE').format(1234567.891),
    compare: ['a', 'b', 'C'],
    instances: [true, true, true, true],
    constructors: [true, true],
    subclass: new Intl.NumberFormat('de-DE', { style: 'currency', currency: 'EUR' }).format(5),
    supported: Intl.DateTimeFormat.supportedLocalesOf(['de-DE', 'en-ZZ']),
    withoutNew: ['TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError'],
  });
});

test("blob() of a request or a response has its Content-Type for a type, as the Fetch standard extracts it, where StarlingMonkey's had none", async (t) => {
  const { get } = await serveFixture(t);
  const contentType = 'Application/JSON; Charset="UTF-8"';
  const answer = await get('/blob', { method: 'POST', headers: { 'content-type': contentType }, body: '{"a":1}' });
  assert.equal(answer.status, 200, answer.body);
  const typed = new Response('x', { headers: { 'content-type': 'Text/Plain; Charset=ISO-8859-1' } });
  const copy = typed.clone();
  // As Node.js gives them.
  assert.deepEqual(JSON.parse(answer.body), {
    request: (await new Request('http://x.test/', { method: 'POST', headers: { 'content-type': contentType }, body: '{}' }).blob()).type,
    requestText: '{"a":1}',
    response: (await typed.blob()).type,
    cloned: (await copy.blob()).type,
    string: (await new Response('x').blob()).type,
    bytes: '',
  });
  assert.equal(JSON.parse(answer.body).request, 'application/json;charset=utf-8');
});

test('a request body the client stopped sending fails its read with an error that says so, not "[object Object]"', async (t) => {
  const { port, logs } = await serveFixture(t);
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write('POST /upload HTTP/1.1\r\nHost: sdk-guest.test\r\nContent-Length: 100000\r\n\r\n');
  socket.write('x'.repeat(1000));
  await until(() => logs.includes('upload begun'), logs);
  socket.destroy();
  // The error is one line of the log: its message, its frames and its cause.
  const cause = '\ncaused by: WIT error last-operation-failed: the request body was not received whole';
  await until(() => logs.some((line) => line.endsWith(cause)), logs);
  assert.match(
    logs.find((line) => line.endsWith(cause)) ?? '',
    /^TypeError: the request body was not received whole: the client closed the connection before its end.*\n\S+@src\/index\.ts/,
  );
  assert.deepEqual(
    logs.filter((one) => one.includes('object Object')),
    [],
  );
});

test('every global and member the editor types declare (@stratum/sdk/engine and the ECMAScript libraries it names) is in a capsule', async (t) => {
  const files = await libraryFiles(ENGINE_LIBS, await typescriptLibDir());
  const probes = declaredProbes([...files.values(), await readFile(engineTypesFile, 'utf8')]);
  // The editor types name these, as the capsule's code reads them.
  const names = new Set(probes.flatMap((probe) => probe.members.map((member) => `${probe.owner}.${member}`)));
  for (const name of [
    'globalThis.fetch',
    'globalThis.structuredClone',
    'ObjectConstructor.groupBy',
    'Set.union',
    'IteratorObject.map',
    'Response (static).json',
  ]) {
    assert.ok(names.has(name), name);
  }
  const { get } = await serveFixture(t);
  const answer = await get('/declared', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(probes) });
  assert.equal(answer.status, 200, answer.body);
  const { missing } = JSON.parse(answer.body) as { missing: string[]; unmapped: string[] };
  assert.deepEqual(missing, [
    // Declared as every iterator has it, and each has its own: Iterator.prototype is abstract.
    'IteratorObject: next',
    'Iterator: next',
    // Each AggregateError's own, given to its constructor, which needs them.
    'AggregateError: errors',
  ]);
});

test('a signal aborted without a reason has the standard DOMException, with its message; AbortSignal.any follows its signals', async (t) => {
  const { get } = await serveFixture(t);
  const answer = await get('/abort');
  assert.equal(answer.status, 200, answer.body);
  assert.deepEqual(JSON.parse(answer.body), {
    controller: 'AbortError: The operation was aborted.',
    // StarlingMonkey's threw a TypeError without a reason.
    abort: 'AbortError: The operation was aborted.',
    timeout: 'TimeoutError: The operation timed out.',
    heard: 'TimeoutError: The operation timed out.',
    fetched: 'AbortError: The operation was aborted.',
    // StarlingMonkey's any() gave the number 5e-324 for a reason.
    any: [true, true, true],
    anyTimeout: 'TimeoutError: The operation timed out.',
    given: 'mine',
  });
});

test('performance.timeOrigin is the time performance.now() counts from: their sum is Date.now()', async (t) => {
  const { get } = await serveFixture(t);
  for (let request = 0; request < 2; request++) {
    const answer = await get('/time');
    const { before, sum, after, origin, json } = JSON.parse(answer.body) as {
      before: number;
      sum: number;
      after: number;
      origin: number;
      json: { timeOrigin: number };
    };
    assert.ok(sum >= before - 1 && sum <= after + 1, answer.body);
    assert.equal(json.timeOrigin, origin);
  }
});
