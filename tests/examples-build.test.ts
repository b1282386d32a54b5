// `stratum build` and `stratum init` as a user runs them: through the CLI's main(), checking exit
// statuses and what is printed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateEd25519KeyPair, JS_SOURCE_MAP_SECTION, readCustomSection } from '@stratum/core';
import { parseHostConfig, startHost } from '@stratum/host';
import { loadManifest } from '@stratum/manifest';
import { componentInterfaces, TEMPLATES, templatesDir } from '@stratum/sdk/build';
import { runCli as run } from './support/cli.ts';
import { exampleDir } from './support/examples.ts';
import { writeTestHost } from './support/host-dir.ts';
import { ingressGet } from './support/ingress.ts';
import { removeDir, testDir } from './support/temp.ts';

/** What `tsc -p <dir>` reports for a project, as its editor would show it: `file(line,col): error ...` lines. */
function typeErrors(dir: string): string[] {
  const tsc = join(dirname(fileURLToPath(import.meta.resolve('typescript/package.json'))), 'bin', 'tsc');
  const checked = spawnSync(process.execPath, [tsc, '-p', dir, '--pretty', 'false'], { encoding: 'utf8' });
  return `${checked.stdout}${checked.stderr}`.split('\n').filter(Boolean);
}

async function project(t: { after(fn: () => Promise<void>): void }, manifest: string, source: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-build-test-'));
  t.after(() => removeDir(dir));
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'stratum.toml'), manifest);
  await writeFile(join(dir, 'src', 'index.ts'), source);
  return dir;
}

const MANIFEST = `stratum = 1\n[capsule]\nname = "broken"\nversion = "0.1.0"\n[source]\nwasm = "dist/broken.wasm"\n`;
const HELLO = `export default { fetch: () => new Response('hi') };\n`;

test('build fails with the file, line and key when the manifest is invalid', async (t) => {
  const dir = await project(t, MANIFEST.replace('name = "broken"', 'name = "Broken Name"'), HELLO);
  const { code: status, stderr } = await run(['build', dir]);
  assert.equal(status, 1);
  assert.match(stderr, /stratum\.toml:3:1: capsule\.name "Broken Name" is not valid/);
  assert.match(stderr, /hint: Fix each line above/);
});

test('build fails with the position of a syntax error in the source', async (t) => {
  const dir = await project(t, MANIFEST, `export default {\n  fetch(request) {\n    return new Response('hi';\n  },\n};\n`);
  const { code: status, stderr } = await run(['build', dir]);
  assert.equal(status, 1);
  assert.match(stderr, /cannot bundle src\/index\.ts/);
  assert.match(stderr, /src\/index\.ts:3:\d+: Expected "\)"/);
  // The lines say it all; a hint about the default export would send the author elsewhere.
  assert.doesNotMatch(stderr, /hint:/);
});

test('build names a package the code imports but the project has not installed, and how to install it', async (t) => {
  const source = `import { chunk } from 'lodash-es/chunk.js';
import { z } from '@acme/schema';
export default { fetch: () => new Response(String(chunk([1, 2], 1)) + typeof z) };
`;
  const dir = await project(t, MANIFEST, source);
  const { code: status, stderr } = await run(['build', dir]);
  assert.equal(status, 1);
  assert.match(stderr, /src\/index\.ts:1:\d+: Could not resolve "lodash-es\/chunk\.js"/);
  assert.match(stderr, /hint: "lodash-es" is not installed .*: run `npm install lodash-es` in the project/);
});

test('an error in top-level code, which componentize-js runs while it builds, names the source line, not the bundle', async (t) => {
  // Code that esbuild takes and the engine fails on as it runs.
  const source = `const config = JSON.parse('not json');\nexport default {\n  fetch(request) {\n    return new Response(String(config));\n  },\n};\n`;
  const dir = await project(t, MANIFEST, source);
  const { code: status, stderr } = await run(['build', dir]);
  assert.equal(status, 1);
  assert.match(stderr, /src\/index\.ts:1:\d+ SyntaxError: JSON\.parse/);
  assert.doesNotMatch(stderr, /capsule\.js:\d/);
  assert.match(stderr, /top-level code failed while the component was made/);
});

test("a capability opened or config read by top-level code fails the build at the caller's line, saying why and how to open it instead", async (t) => {
  const manifest = `${MANIFEST}[capabilities]\nkeyvalue = ["ratelimit"]\n[capabilities.config.greeting]\ndefault = "hi"\n`;
  const source = `import { openKeyValue } from '@stratum/sdk/keyvalue';\n\nconst KV = openKeyValue('ratelimit');\nexport default { fetch: () => new Response(String(KV.increment('n'))) };\n`;
  const dir = await project(t, manifest, source);
  const failed = await run(['build', dir]);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /error: the capsule's top-level code failed while the component was built/);
  assert.match(
    failed.stderr,
    /src\/index\.ts:3:12 Error: openKeyValue\("ratelimit"\) was called by the modules' top-level code at src\/index\.ts:3:12, which runs once while the component is built/,
  );
  assert.match(failed.stderr, /call it inside fetch\(\), or lazily, on first use \(let kv; … kv \?\?= openKeyValue\("ratelimit"\)\)/);
  // Not the trap's wasm backtrace, nor the rejected module promise repeating the message.
  assert.doesNotMatch(failed.stderr, /wasm function|unknown imported function|Promise rejected/);

  // A config value read there would be the build machine's.
  await writeFile(
    join(dir, 'src', 'index.ts'),
    `import { getConfig } from '@stratum/sdk/config';\nconst greeting = getConfig('greeting');\nexport default { fetch: () => new Response(greeting) };\n`,
  );
  const config = await run(['build', dir]);
  assert.equal(config.code, 1);
  assert.match(
    config.stderr,
    /src\/index\.ts:2:18 Error: getConfig\("greeting"\) was called by the modules' top-level code at src\/index\.ts:2:18, .*where no config exists \(a value read there would be the build machine's/,
  );

  // A log line there goes to the build's output instead of trapping; the build succeeds.
  await writeFile(
    join(dir, 'src', 'index.ts'),
    `import { log } from '@stratum/sdk/log';\nlog.info('loading', { version: 2 });\nexport default { fetch: () => new Response('hi') };\n`,
  );
  const logged = await run(['build', dir]);
  assert.equal(logged.code, 0, logged.stderr);
});

test("top-level code calling an interface's own function fails the build naming the interface and what to do, not with the trap's backtrace", async (t) => {
  const manifest = `${MANIFEST}[capabilities]\nkeyvalue = ["default"]\n`;
  const source = `import { open } from 'stratum:keyvalue/store@0.1.0';\nconsole.log('opening the store');\nconst store = open('default');\nexport default { fetch: () => new Response(String(store)) };\n`;
  const dir = await project(t, manifest, source);
  const { code: status, stderr } = await run(['build', dir]);
  assert.equal(status, 1);
  assert.match(stderr, /error: the capsule's top-level code called stratum:keyvalue\/store@0\.1\.0 \(open\) while the component was built/);
  assert.match(stderr, /it is reached through openKeyValue\(\) of @stratum\/sdk\/keyvalue/);
  assert.match(stderr, /output before it: opening the store/);
  assert.match(stderr, /hint: Call it inside fetch\(\)/);
  assert.doesNotMatch(stderr, /wasm function|Wizer initialization/);
});

test('a formatter made at the top of a module builds, and is listed as computed by the host; a formatting call there fails the build, saying why', async (t) => {
  const early = `const label = (1234.5).toLocaleString('de-DE');\nexport default { fetch: () => new Response(label) };\n`;
  const dir = await project(t, MANIFEST, early);
  const failed = await run(['build', dir]);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /src\/index\.ts:1:\d+/);
  assert.match(
    failed.stderr,
    /Intl's format \(number-format\) is computed by the host, which a capsule cannot call while its modules load/,
  );
  await writeFile(
    join(dir, 'src', 'index.ts'),
    `const euros = new Intl.NumberFormat('de-DE', { style: 'currency', currency: 'EUR' });\nexport default { fetch: () => new Response(euros.format(1234.5)) };\n`,
  );
  const built = await run(['build', dir]);
  assert.equal(built.code, 0, built.stderr);
  assert.match(built.stdout, /computed {6}stratum:intl \(by the host/);
  assert.doesNotMatch(built.stdout, /basics .*stratum:/);
});

test('build fails when the code imports a capability the manifest does not grant', async (t) => {
  const source = `import { openKeyValue } from '@stratum/sdk/keyvalue';\nexport default { fetch: () => new Response(String(openKeyValue().increment('n'))) };\n`;
  const dir = await project(t, MANIFEST, source);
  const { code: status, stderr } = await run(['build', dir]);
  assert.equal(status, 1);
  assert.match(stderr, /imports keyvalue, which stratum\.toml does not grant/);
  assert.match(stderr, /stratum:keyvalue\/store@0\.1\.0 needs the keyvalue capability/);
  assert.match(stderr, /keyvalue = \["default"\]/);
});

test('build fails when the entry has no default export, or there is no entry', async (t) => {
  const dir = await project(t, MANIFEST, `export const fetch = () => new Response('hi');\n`);
  const noDefault = await run(['build', dir]);
  assert.equal(noDefault.code, 1);
  assert.match(noDefault.stderr, /No matching export .* for import "default"/);
  // What to write instead, for an author used to Service Worker syntax.
  assert.match(
    noDefault.stderr,
    /hint: The entry module default-exports the capsule's handler, as a Workers module does: export default \{ fetch\(request, env, ctx\)/,
  );
  await rm(join(dir, 'src'), { recursive: true });
  const noEntry = await run(['build', dir]);
  assert.equal(noEntry.code, 1);
  assert.match(noEntry.stderr, /no entry module found/);
});

test('build fails on an import of an interface that Stratum does not serve', async (t) => {
  const source = `import { thing } from 'wasi:blobstore/container@0.2.0';\nexport default { fetch: () => new Response(String(thing)) };\n`;
  const dir = await project(t, MANIFEST, source);
  const { code: status, stderr } = await run(['build', dir]);
  assert.equal(status, 1);
  assert.match(stderr, /interface that Stratum does not serve/);
  assert.match(stderr, /wasi:blobstore\/container@0\.2\.0/);
});

test('each template is the matching example, so what init makes is what the example tests cover', async () => {
  for (const template of TEMPLATES) {
    const fromTemplate = await readFile(join(templatesDir, template, 'src', 'index.ts'), 'utf8');
    assert.equal(fromTemplate, await readFile(join(exampleDir(template), 'src', 'index.ts'), 'utf8'), template);
    const manifest = await readFile(join(templatesDir, template, 'stratum.toml'), 'utf8');
    const example = await readFile(join(exampleDir(template), 'stratum.toml'), 'utf8');
    const strip = (text: string) => text.replace(/^#:schema.*\n/, '').replaceAll('{{name}}', template);
    assert.equal(strip(manifest), strip(example), template);
  }
});

for (const template of TEMPLATES) {
  test(`stratum init --template ${template} makes a project that stratum build builds`, async (t) => {
    const parent = await mkdtemp(join(tmpdir(), 'stratum-init-test-'));
    t.after(() => removeDir(parent));
    const dir = join(parent, `My ${template} App`);
    const created = await run(['init', dir, '--template', template]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, new RegExp(`created my-${template}-app`));
    // The next steps can be pasted into a shell as printed, the directory's spaces quoted (the
    // launcher's own path when `stratum` is not on the PATH, as in a test).
    assert.match(
      created.stdout,
      new RegExp(`Next:\\n  \\S*stratum(\\.js)? dev '[^']*My ${template} App' .*\\n  \\S*stratum(\\.js)? build '[^']*My ${template} App' `),
    );
    // Files of secrets for --var-file stay out of the project's commits.
    assert.deepEqual((await readFile(join(dir, '.gitignore'), 'utf8')).split('\n').filter(Boolean), [
      'dist/',
      'node_modules/',
      '.env',
      '*.vars',
    ]);
    const again = await run(['init', dir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already holds a capsule/);
    // Outside this repository, its editor and tsc find @stratum/sdk's types (init links the SDK
    // into node_modules) and the web APIs capsules run on, and the template has no type error.
    assert.deepEqual(typeErrors(dir), []);
    if (template === 'counter') {
      await writeFile(join(dir, 'src', 'wrong.ts'), "import { openKeyValue } from '@stratum/sdk/keyvalue';\nopenKeyValue(42);\n");
      const errors = typeErrors(dir);
      assert.equal(errors.length, 1, errors.join('\n'));
      assert.match(
        errors[0] ?? '',
        /wrong\.ts\(2,14\): error TS2345: Argument of type 'number' is not assignable to parameter of type 'string'/,
      );
      await rm(join(dir, 'src', 'wrong.ts'));
    }

    const built = await run(['build', dir]);
    assert.equal(built.code, 0, built.stderr);
    assert.match(built.stdout, /built .*my-\w+-app\.wasm \(\d+(\.\d)? MiB\) in /);
    assert.match(built.stderr, /making the component/);
    const wasm = await readFile(join(dir, 'dist', `my-${template}-app.wasm`));
    const { exports } = await componentInterfaces(wasm);
    assert.deepEqual(exports, ['wasi:http/incoming-handler@0.2.10']);
    // The bundle's source map rides along, naming the sources as the project does and nothing of
    // the machine that built it.
    const map = JSON.parse(new TextDecoder().decode(readCustomSection(wasm, JS_SOURCE_MAP_SECTION))) as { file: string; sources: string[] };
    assert.equal(map.file, 'capsule.js');
    assert.ok(map.sources.includes('src/index.ts'), map.sources.join(', '));
    assert.ok(map.sources.includes('@stratum/sdk/guest/http.ts'), map.sources.join(', '));
    for (const source of map.sources) assert.doesNotMatch(source, /^(\.\.|\/)/);
  });
}

test('a capsule stratum build made, on a host started from host.toml: errors at its source lines in its log, https: from a trusted proxy', async (t) => {
  const { dir: parent, closing } = await testDir(t, 'stratum-build-test-');
  const dir = join(parent, 'thrower');
  assert.equal((await run(['init', dir])).code, 0);
  const source = join(dir, 'src', 'index.ts');
  const text = (await readFile(source, 'utf8')).replace(
    '    served += 1;',
    "    served += 1;\n    if (new URL(request.url).pathname === '/boom') throw new RangeError('no boom here');\n    if (new URL(request.url).pathname === '/url') return new Response(request.url);\n    if (new URL(request.url).pathname === '/time') return Response.json([Date.now(), performance.timeOrigin + performance.now()]);",
  );
  await writeFile(source, text);
  const built = await run(['build', dir]);
  assert.equal(built.code, 0, built.stderr);

  const config = await writeTestHost(parent, {
    registrar: (await generateEd25519KeyPair()).publicJwk.x,
    ingress: 'trusted_proxies = ["127.0.0.0/8"]',
  });
  const host = closing(await startHost(parseHostConfig(config.text, config.path), { pullComponent: false }));
  const { manifest } = await loadManifest(join(dir, 'stratum.toml'));
  await host.runtime.install({ manifest, component: await readFile(join(dir, 'dist', 'thrower.wasm')), domains: ['thrower.example'] });
  await host.runtime.start('thrower');
  const logged: string[] = [];
  t.after(host.runtime.subscribeLogs('thrower', (entry) => logged.push(entry.message)));

  assert.equal((await ingressGet(host.ingressUrl, 'thrower.example', '/url')).body, 'http://thrower.example/url');
  const forwarded = await ingressGet(host.ingressUrl, 'thrower.example', '/url', { 'x-forwarded-proto': 'https' });
  assert.equal(forwarded.body, 'https://thrower.example/url');

  // performance.timeOrigin is the time now() counts from, though the engine's state was made at build time.
  const [date, sum] = JSON.parse((await ingressGet(host.ingressUrl, 'thrower.example', '/time')).body) as [number, number];
  assert.ok(Math.abs(sum - date) < 50, `timeOrigin + now() is ${sum}, Date.now() ${date}`);

  // A production build tells the client nothing of what was thrown (stratum dev does).
  assert.deepEqual(await ingressGet(host.ingressUrl, 'thrower.example', '/boom'), { status: 500, body: 'Internal Server Error' });
  const line = text.split('\n').findIndex((one) => one.includes("throw new RangeError('no boom here')"));
  const column = (text.split('\n')[line] ?? '').indexOf('new RangeError') + 1;
  // One log line: the error and its frames, as one write to stderr holds them.
  assert.ok(logged.includes(`RangeError: no boom here\nfetch@src/index.ts:${line + 1}:${column}`), logged.join('\n'));
  // The frames end at the capsule's: the SDK's adapter and componentize-js's bindings below it are cut.
  assert.ok(!logged.some((one) => /stratumHandle|@stratum\/sdk|initializer\.js/.test(one)), logged.join('\n'));
});
