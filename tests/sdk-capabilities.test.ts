// The SDK's capability modules inside StarlingMonkey, on the fixture capsule
// tests/fixtures/sdk-capabilities: a dev engine (as `stratum dev` runs it) on a host runtime, one
// instance, its log collected.
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { serveDevProject } from './support/js-project.ts';
import { removeDir } from './support/temp.ts';

const fixture = fileURLToPath(new URL('./fixtures/sdk-capabilities/', import.meta.url));

interface LogLine {
  level: string;
  source: string;
  message: string;
}

/** Serves a project on a runtime with one instance; `get` answers a path's status and body. */
async function serve(t: TestContext, project = fixture) {
  // With the bundle's source map, as `stratum dev` installs it: frames read at the sources' lines.
  const { runtime, port } = await serveDevProject(t, project, 'caps', {
    instancesPerCapsule: 1,
    asyncInstancesPerCapsule: 1,
    sourceMap: true,
  });
  const logs: LogLine[] = [];
  runtime.subscribeLogs('caps', (entry) => logs.push({ level: entry.level, source: entry.source, message: entry.message }));
  const get = (path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const outgoing = request({ host: '127.0.0.1', port, path, headers: { host: 'caps.test' }, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      outgoing.on('error', reject);
      outgoing.end();
    });
  return { get, logs };
}

const shown = (logs: readonly LogLine[]) => logs.map((line) => `${line.level} ${line.source}: ${line.message}`).join('\n');

test('log.info takes fields after the message, written as JSON, and a category before them; the request still answers', async (t) => {
  const { get, logs } = await serve(t);
  assert.deepEqual(await get('/log/fields'), { status: 200, body: '1' });
  const lines = logs.filter((line) => line.source.startsWith('wasi:logging'));
  assert.deepEqual(
    lines.map(({ level, source, message }) => ({ level, source, message })),
    [
      { level: 'info', source: 'wasi:logging', message: 'paste created {"id":1,"title":"hello"}' },
      { level: 'warn', source: 'wasi:logging pastes', message: 'slow write {"ms":12}' },
      { level: 'info', source: 'wasi:logging pastes', message: 'category alone' },
    ],
    shown(logs),
  );
});

test('SQL params, and key-value and bucket arguments, of the wrong shape are TypeErrors naming the call and what is wrong', async (t) => {
  const { get } = await serve(t);
  assert.equal(
    (await get('/sql/named')).body,
    'TypeError: db.query(sql, params): params is an object (named parameters are not supported: use ? placeholders and pass their values in order); params must be an array of string, number, bigint, boolean, null or Uint8Array values, one for each ? placeholder in order',
  );
  assert.match((await get('/sql/element')).body, /^TypeError: db\.execute\(sql, params\): params\[1\] is an object /);
  assert.equal(
    (await get('/kv/value')).body,
    'TypeError: kv.set("k", value): value must be a string or a Uint8Array, not an object (setJson stores any JSON value)',
  );
  assert.equal((await get('/kv/key')).body, 'TypeError: kv.get(key): key must be a string, not a number');
  assert.equal(
    (await get('/bucket/body')).body,
    'TypeError: bucket.put("a.txt", body): body must be a string, a Uint8Array, an ArrayBuffer, a Blob or a ReadableStream, not an object',
  );
  assert.equal((await get('/bucket/name')).body, 'TypeError: bucket.head(name): name must be a string, not a number');
});

test("an argument the bindings refuse is an uncaught TypeError naming the WIT function and the argument, with the capsule's frames", async (t) => {
  const { get, logs } = await serve(t);
  assert.equal((await get('/bindings/uncaught')).status, 500);
  const line = logs.find((entry) => entry.message.includes('expected a string'));
  assert.ok(line, shown(logs));
  assert.match(line.message, /^TypeError: wasi:logging\/logging@0\.1\.0-draft log, argument 3: expected a string, received an object\n/);
  assert.match(line.message, /\nfetch@src\/index\.ts:\d+:\d+/, 'the frames of the capsule, at its sources');
  assert.doesNotMatch(line.message, /initializer\.js/);
});

test("a store opened by top-level code is refused in stratum dev as in stratum build: the call, the caller's line, why and the fix", async (t) => {
  const project = await mkdtemp(join(tmpdir(), 'stratum-sdk-top-level-'));
  t.after(() => removeDir(project));
  await cp(fixture, project, { recursive: true });
  const entry = join(project, 'src', 'index.ts');
  const source = await readFile(entry, 'utf8');
  await writeFile(entry, source.replace('let kv: ReturnType<typeof openKeyValue> | undefined;', "let kv = openKeyValue('default');"));
  const { get, logs } = await serve(t, project);
  const answer = await get('/log/fields');
  assert.equal(answer.status, 500);
  assert.match(answer.body, /top-level code threw: Error: openKeyValue\("default"\) was called by the modules' top-level code at /);
  const line = shown(logs);
  assert.match(
    line,
    /Error: openKeyValue\("default"\) was called by the modules' top-level code at src\/index\.ts:10:10, which runs once while the component is built \(in stratum dev, before an instance's first request\)/,
  );
  assert.match(line, /call it inside fetch\(\), or lazily, on first use \(let kv; … kv \?\?= openKeyValue\("default"\)\)/);
});

test("an outbound fetch() from top-level code throws, at the caller's line, even where nothing awaits it (as Workers refuses one)", async (t) => {
  const project = await mkdtemp(join(tmpdir(), 'stratum-sdk-top-level-fetch-'));
  t.after(() => removeDir(project));
  await cp(fixture, project, { recursive: true });
  const entry = join(project, 'src', 'index.ts');
  const source = await readFile(entry, 'utf8');
  // Its rejection handled, or not awaited at all: returned as a rejection, the capsule served
  // as if the request had been made.
  await writeFile(
    entry,
    `${source}
const settings = fetch('http://127.0.0.1:9/').then((response) => response.json(), () => ({}));
void settings;
`,
  );
  const { get, logs } = await serve(t, project);
  const answer = await get('/kv/key');
  assert.equal(answer.status, 500);
  assert.match(
    answer.body,
    /top-level code threw: Error: fetch\("http:\/\/127\.0\.0\.1:9\/"\) was called by the modules' top-level code at /,
  );
  assert.match(
    shown(logs),
    /Error: fetch\("http:\/\/127\.0\.0\.1:9\/"\) was called by the modules' top-level code at src\/index\.ts:\d+:\d+, .*where no request can go out: call it inside fetch\(\)/,
  );
});
