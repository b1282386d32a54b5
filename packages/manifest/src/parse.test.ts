import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nearest } from './nearest.ts';
import { ManifestError, parseManifest } from './parse.ts';
import { originAllowed, routeExample, routeMatches } from './rules.ts';

const base = 'stratum = 1\n[capsule]\nname = "demo"\nversion = "0.1.0"\n[source]\nwasm = "dist/demo.wasm"\n';

function problems(text: string) {
  try {
    parseManifest(text, 'm.toml');
  } catch (error) {
    assert.ok(error instanceof ManifestError, `expected a ManifestError, got ${String(error)}`);
    return error.problems;
  }
  assert.fail('expected the manifest to be invalid');
}

test('defaults come from the cpu class', () => {
  const { manifest } = parseManifest(`${base}[resources]\ncpu = "small"\n`);
  assert.deepEqual(manifest.resources, {
    cpu: 'small',
    cpuMsPerRequest: 200,
    memoryBytes: 256 * 1024 * 1024,
    timeoutMs: 30_000,
    concurrency: 32,
    // What the author asked for, as against the class's defaults.
    requested: ['cpu'],
  });
  assert.deepEqual(parseManifest(base).manifest.resources.requested, []);
});

test('sizes and durations are normalised, origins lowercased', () => {
  const { manifest } = parseManifest(
    `${base}[resources]\nmemory = "64mb"\ntimeout = "1.5s"\n[capabilities]\noutbound = ["https://API.Example.com"]\n`,
  );
  assert.equal(manifest.resources.memoryBytes, 64_000_000);
  assert.equal(manifest.resources.timeoutMs, 1500);
  assert.deepEqual(manifest.resources.requested, ['memory', 'timeout']);
  assert.deepEqual(manifest.capabilities.outbound, ['https://api.example.com']);
});

test('problems inside inline tables and dotted keys point at the right line and column', () => {
  const [inline] = problems('stratum = 1\ncapsule = { name = "demo", version = "x" }\nsource.wasm = "a.wasm"\n');
  assert.deepEqual([inline?.line, inline?.column, inline?.path], [2, 28, 'capsule.version']);
  const [dotted] = problems('stratum = 1\nsource.wasm = "d.wasm"\nresources.cpu = "mega"\n[capsule]\nname = "demo"\nversion = "0.1.0"\n');
  assert.deepEqual([dotted?.line, dotted?.column, dotted?.path], [3, 1, 'resources.cpu']);
  // An unknown table named only as the first part of a header.
  const unknown = problems(`${base}[capabilitie.config.token]\nsecret = true\n`).find((one) => one.path === 'capabilitie');
  assert.deepEqual([unknown?.line, unknown?.column], [7, 1]);
});

test('every problem is reported, sorted by position', () => {
  const found = problems('stratum = 1\n[capsule]\nname = "Bad"\nversion = "1"\n[source]\n[resources]\ncpu = 5\n');
  assert.deepEqual(
    found.map((problem) => problem.line),
    [...found.map((problem) => problem.line)].sort((a, b) => a - b),
  );
  assert.ok(found.length >= 4, JSON.stringify(found));
});

test('huge and non-UTF-8 input is refused before parsing', () => {
  assert.match(problems(`${base}#${'x'.repeat(300_000)}`)[0]?.message ?? '', /most a manifest may be/);
  assert.match(problems(`${base}# \uFFFD\n`)[0]?.message ?? '', /not valid UTF-8/);
});

test('did-you-mean finds typos, including swapped letters, and nothing for far words', () => {
  assert.equal(nearest('nmae', ['name', 'version']), 'name');
  assert.equal(nearest('capabilites', ['capabilities', 'capsule']), 'capabilities');
  assert.equal(nearest('zzz', ['name', 'version']), undefined);
});

test('routes: exact paths, prefixes and everything', () => {
  assert.equal(routeMatches(['/*'], '/anything'), true);
  assert.equal(routeMatches(['/api/*'], '/api'), true);
  assert.equal(routeMatches(['/api/*'], '/api/notes/1'), true);
  assert.equal(routeMatches(['/api/*'], '/apis'), false);
  assert.equal(routeMatches(['/health'], '/health'), true);
  assert.equal(routeMatches(['/health'], '/health/x'), false);
});

test('a route example is a path the first route serves', () => {
  const cases: [string[], string][] = [
    [['/*'], '/'],
    [['/notes', '/notes/*'], '/notes'],
    [['/api/v1/*', '/health'], '/api/v1'],
    [['/health'], '/health'],
  ];
  for (const [routes, example] of cases) {
    assert.equal(routeExample(routes), example);
    assert.equal(routeMatches(routes, example), true, `${routes.join(',')} serves ${example}`);
  }
});

test('outbound origins: scheme, port and wildcard rules', () => {
  const allowed = ['https://api.example.com', 'https://*.cdn.example.net', 'http://127.0.0.1:8080'];
  assert.equal(originAllowed(allowed, new URL('https://api.example.com/v1/x')), true);
  assert.equal(originAllowed(allowed, new URL('https://API.EXAMPLE.COM:443/')), true);
  assert.equal(originAllowed(allowed, new URL('http://api.example.com/')), false);
  assert.equal(originAllowed(allowed, new URL('https://api.example.com:8443/')), false);
  assert.equal(originAllowed(allowed, new URL('https://evil-api.example.com/')), false);
  assert.equal(originAllowed(allowed, new URL('https://a.b.cdn.example.net/')), true);
  assert.equal(originAllowed(allowed, new URL('https://cdn.example.net/')), false);
  assert.equal(originAllowed(allowed, new URL('https://cdn.example.net.evil.com/')), false);
  assert.equal(originAllowed(allowed, new URL('http://127.0.0.1:8080/')), true);
  assert.equal(originAllowed(allowed, new URL('http://127.0.0.1:8081/')), false);
});
