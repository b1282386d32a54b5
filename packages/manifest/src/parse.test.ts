import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nearest } from './nearest.ts';
import { ManifestError, parseManifest } from './parse.ts';
import { originAllowed, originMatch, parseOrigin, routeExample, routeMatches } from './rules.ts';

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

const withOutbound = (...origins: string[]) => `${base}[capabilities]\noutbound = ${JSON.stringify(origins)}\n`;

test('outbound origins may allow any host, per scheme: "https://*" on its port, "https://*:*" on any', () => {
  const { manifest } = parseManifest(withOutbound('https://*', 'http://*:*', 'https://*.Example.com:*'));
  assert.deepEqual(manifest.capabilities.outbound, ['https://*', 'http://*:*', 'https://*.example.com:*']);
  const anyHttps = ['https://*'];
  assert.equal(originAllowed(anyHttps, new URL('https://links.example.org/page')), true);
  assert.equal(originAllowed(anyHttps, new URL('https://93.184.216.34/')), true);
  assert.equal(originAllowed(anyHttps, new URL('https://example.org:8443/')), false);
  assert.equal(originAllowed(anyHttps, new URL('http://example.org/')), false);
  const anyPort = ['https://*:*'];
  assert.equal(originAllowed(anyPort, new URL('https://example.org/')), true);
  assert.equal(originAllowed(anyPort, new URL('https://example.org:8443/')), true);
  assert.equal(originAllowed(anyPort, new URL('http://example.org:8080/')), false);
  assert.equal(originAllowed(['http://*'], new URL('http://example.org/')), true);
  assert.equal(originAllowed(['http://*'], new URL('https://example.org/')), false);
  assert.equal(originAllowed(['https://*.example.com:*'], new URL('https://a.example.com:9000/')), true);
  assert.equal(originAllowed(['https://*.example.com:*'], new URL('https://example.com:9000/')), false);
  assert.equal(originAllowed(['https://api.example.com:*'], new URL('https://api.example.com:9000/')), true);
});

test('a wildcard port does not cover the ports browsers never fetch from; an origin that names one does', () => {
  assert.equal(originMatch(['http://*:*'], new URL('http://mail.example.com:25/')), 'bad-port');
  assert.equal(originMatch(['https://*:*'], new URL('https://example.com:22/')), 'bad-port');
  assert.equal(originMatch(['https://*.example.com:*'], new URL('https://a.example.com:6667/')), 'bad-port');
  assert.equal(originMatch(['https://*:*'], new URL('http://example.com:25/')), 'not-listed');
  assert.equal(originMatch(['http://*:*', 'http://mail.example.com:25'], new URL('http://mail.example.com:25/')), 'allowed');
  assert.equal(originMatch(['http://*:*'], new URL('http://example.com:8080/')), 'allowed');
});

test('refused origins say what is wrong and what to write', () => {
  const message = (origin: string) => problems(withOutbound(origin))[0]?.message ?? '';
  assert.match(
    message('*'),
    /"\*" is not an origin: to allow any host, write "https:\/\/\*" \(port 443\) or "https:\/\/\*:\*" \(any port\)/,
  );
  assert.match(message('*://*:*'), /has a wildcard scheme: write "https:\/\/\*:\*" and "http:\/\/\*:\*" as two origins/);
  // A wildcard over one label stays valid: the first release of stratum = 1 took it, and manifests
  // installed then must still load (`http://*.localhost` is common in dev).
  assert.deepEqual(parseManifest(withOutbound('https://*.com', 'http://*.localhost:3000')).manifest.capabilities.outbound, [
    'https://*.com',
    'http://*.localhost:3000',
  ]);
  assert.match(message('https://api.example.com/v1'), /has a path: .*write "https:\/\/api\.example\.com"$/);
  assert.match(message('https://a.*.example.com'), /has a \* inside its host name/);
  assert.match(message('api.example.com'), /has no scheme: write "https:\/\/api\.example\.com"/);
  assert.match(message('https://api.example.com:70000'), /has the port "70000": a port is a number from 1 to 65535, or \* for any/);
  assert.match(message('https://api.example.com:0'), /has the port "0"/);
  assert.equal(problems(withOutbound('https://api.example.com:0'))[0]?.path, 'capabilities.outbound[0]');
});

test('an origin with a trailing slash is accepted and normalised without it', () => {
  const { manifest } = parseManifest(withOutbound('https://Example.com/', 'https://example.com', 'http://localhost:3000/'));
  assert.deepEqual(manifest.capabilities.outbound, ['https://example.com', 'http://localhost:3000']);
  assert.equal(originAllowed(['https://example.com/'], new URL('https://example.com/x')), true);
});

test("the schema's origin pattern and parseOrigin agree: every refusal has parseOrigin's own message", () => {
  const origins = [
    'https://api.example.com',
    'http://localhost:8080',
    'https://*.example.com',
    'https://*.co.uk',
    'https://*',
    'https://*:*',
    'http://*:8080',
    'https://api.example.com:*',
    'https://example.com/',
    'https://API.Example.com',
    '*',
    '*://*:*',
    'https://*.com',
    'https://*.*.example.com',
    'https://**',
    'https://*example.com',
    'https://example.com/v1',
    'https://example.com//',
    'https://example.com?a=1',
    'https://example.com#top',
    'HTTPS://example.com',
    'ftp://example.com',
    'example.com',
    'https://',
    'https://:443',
    'https://user@example.com',
    'https://[::1]:8080',
    'https://exa_mple.com',
    'https://example..com',
    'https://example.com.',
    'https://example.com:',
    'https://example.com:0',
    'https://example.com:65536',
    'https://example.com:**',
    'https://*:',
  ];
  for (const origin of origins) {
    const parsed = parseOrigin(origin);
    let refusal: string | undefined;
    try {
      parseManifest(withOutbound(origin));
    } catch (error) {
      assert.ok(error instanceof ManifestError);
      refusal = error.problems.map((problem) => problem.message).join('\n');
    }
    if (typeof parsed === 'string') assert.equal(refusal, `capabilities.outbound[0] ${JSON.stringify(origin)} ${parsed}`, origin);
    else assert.equal(refusal, undefined, origin);
  }
});

test('keys nested past 32 levels by dots or table headers are refused at their line, not read by recursion until the stack overflows', () => {
  const deep = Array.from({ length: 60_000 }, () => 'a').join('.');
  const fine = Array.from({ length: 32 }, () => 'a').join('.');
  for (const [text, line, column] of [
    [`${base}${deep} = 1\n`, base.split('\n').length, 1],
    [`${base}[x]\n${fine} = 1\n`, base.split('\n').length + 1, 1],
    [`${base}[${deep}]\n`, base.split('\n').length, 2],
    [`${base}y = { ${fine}.b = 1 }\n`, base.split('\n').length, 7],
  ] as const) {
    const error = (() => {
      try {
        parseManifest(text);
      } catch (caught) {
        return caught;
      }
      assert.fail('a manifest with keys nested this deep was taken');
    })();
    assert.ok(error instanceof ManifestError, String(error));
    assert.deepEqual(
      error.problems.map((problem) => [problem.line, problem.column, problem.message]),
      [[line, column, 'keys are nested more than 32 levels deep']],
    );
  }
  // 32 levels (31 dotted under [source]) are read, and found wrong as any unknown key is.
  assert.throws(
    () => parseManifest(`${base}${fine.slice(2)} = 1\n`),
    (error: unknown) => error instanceof ManifestError && !/nested/.test(error.message),
  );
});
