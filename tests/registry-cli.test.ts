import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { parse } from '@bytecodealliance/jco';
import { parseManifest } from '@stratum/manifest';
import { digestOf } from '@stratum/registry';
import { main } from '../packages/cli/src/main.ts';
import { pinSource, pulledSource } from '../packages/cli/src/pin-source.ts';
import { registryOrSkip } from './support/registry.ts';
import { removeDir } from './support/temp.ts';

const DIGEST = `sha256:${'d'.repeat(64)}`;
const REF = 'oci://127.0.0.1:5000/acme/hello:1.0.0';

function capture() {
  let text = '';
  const stream = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        text += chunk.toString();
        callback();
      },
    }),
    { isTTY: false },
  );
  return { stream, text: () => text };
}

async function stratum(...argv: string[]) {
  const stdout = capture();
  const stderr = capture();
  const status = await main(argv, { stdout: stdout.stream, stderr: stderr.stream });
  return { status, stdout: stdout.text(), stderr: stderr.text() };
}

async function tempDir(t: TestContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => removeDir(dir));
  return dir;
}

test('pinSource makes a copy with registry and digest in place of wasm, says so at the top, and keeps every other line', () => {
  const text = `#:schema ../../spec/capsule/capsule-v1.schema.json
# The smallest capsule.
stratum = 1

[capsule]
name = "hello"   # the name hosts show
version = "0.1.0"

[source]
  # built by stratum build
  wasm = "dist/hello.wasm"
  digest = "sha256:${'0'.repeat(64)}"

[build]
entry = "src/index.ts"

[resources]
cpu = "micro" # smallest
`;
  const pinned = pinSource(text, 'stratum.toml', REF, DIGEST);
  const { manifest } = parseManifest(pinned);
  assert.deepEqual(manifest.source, { kind: 'registry', registry: REF, digest: DIGEST });
  assert.equal(manifest.build, undefined);
  assert.equal(manifest.resources.cpu, 'micro');
  assert.equal(
    pinned,
    `#:schema ../../spec/capsule/capsule-v1.schema.json
# Written by \`stratum push --pin\`: stratum.toml pinned to the component pushed, for
# \`stratum host install stratum.pinned.toml --domain <name>\`. Edit stratum.toml, not this copy.
# The smallest capsule.
stratum = 1

[capsule]
name = "hello"   # the name hosts show
version = "0.1.0"

[source]
  # built by stratum build
  # wasm = "dist/hello.wasm" (in stratum.toml)
  registry = "${REF}"
  digest = "${DIGEST}"

# Off in this pinned copy: stratum.toml builds.
# [build]
# entry = "src/index.ts"

[resources]
cpu = "micro" # smallest
`,
  );
  // Pinning the copy again replaces the pin in place.
  const other = `sha256:${'e'.repeat(64)}`;
  const again = pinSource(pinned, 'stratum.toml', 'oci://127.0.0.1:5000/acme/hello:2.0.0', other);
  assert.equal(again, pinned.replace(REF, 'oci://127.0.0.1:5000/acme/hello:2.0.0').replace(DIGEST, other));
});

test('pulledSource points [source] at the pulled file and its digest, from a registry pin, dotted keys or an inline table', () => {
  const pinned = `stratum = 1\ncapsule = { name = "g", version = "1.0.0" }\n\n[source]\n# how it came\nregistry = "${REF}"\ndigest = "sha256:${'0'.repeat(64)}"\n`;
  assert.equal(
    pulledSource(pinned, 'stratum.toml', 'g.wasm', DIGEST),
    `stratum = 1\ncapsule = { name = "g", version = "1.0.0" }\n\n[source]\n# how it came\nwasm = "g.wasm"\ndigest = "${DIGEST}"\n`,
  );
  const dotted = `stratum = 1\ncapsule = { name = "g", version = "1.0.0" }\n  source.wasm = "build/g.wasm"\nresources.cpu = "medium"\n`;
  assert.equal(
    pulledSource(dotted, 'stratum.toml', 'out/g.wasm', DIGEST),
    `stratum = 1\ncapsule = { name = "g", version = "1.0.0" }\n  source.wasm = "out/g.wasm"\n  source.digest = "${DIGEST}"\nresources.cpu = "medium"\n`,
  );
  const inline = `stratum = 1\ncapsule = { name = "g", version = "1.0.0" }\nsource = { registry = "${REF}", digest = "${DIGEST}" }\n`;
  assert.equal(
    pulledSource(inline, 'stratum.toml', 'g.wasm', DIGEST),
    `stratum = 1\ncapsule = { name = "g", version = "1.0.0" }\nsource = { wasm = "g.wasm", digest = "${DIGEST}" }\n`,
  );
});

test('pinSource handles dotted keys and inline tables', () => {
  const dotted = `stratum = 1\ncapsule = { name = "g", version = "1.0.0" }\nsource.wasm = "build/g.wasm" # the build\nresources.cpu = "medium"\n`;
  const pinned = pinSource(dotted, 'stratum.toml', REF, DIGEST);
  assert.equal(
    pinned,
    `${HEADER}stratum = 1\ncapsule = { name = "g", version = "1.0.0" }\n# source.wasm = "build/g.wasm" (in stratum.toml)\nsource.registry = "${REF}"\nsource.digest = "${DIGEST}" # the build\nresources.cpu = "medium"\n`,
  );
  const inline = `stratum = 1\ncapsule = { name = "g", version = "1.0.0" }\nsource = { wasm = "g.wasm" }\n`;
  assert.equal(
    pinSource(inline, 'stratum.toml', REF, DIGEST),
    `${HEADER}stratum = 1\ncapsule = { name = "g", version = "1.0.0" }\nsource = { registry = "${REF}", digest = "${DIGEST}" }\n`,
  );
});

/** The first lines of a copy of stratum.toml that `stratum push --pin` writes. */
const HEADER =
  '# Written by `stratum push --pin`: stratum.toml pinned to the component pushed, for\n# `stratum host install stratum.pinned.toml --domain <name>`. Edit stratum.toml, not this copy.\n';

async function makeCapsule(t: TestContext, withBuild: boolean): Promise<{ dir: string; wasm: Uint8Array; toml: string }> {
  const dir = await tempDir(t, 'stratum-capsule-');
  const wasm = await parse(`(component
    (core module $m (func (export "f") (result i32) i32.const 5))
    (core instance $i (instantiate $m))
    (func $f (result u32) (canon lift (core func $i "f")))
    (export "five" (func $f)))`);
  await mkdir(join(dir, 'dist'));
  await writeFile(join(dir, 'dist', 'five.wasm'), wasm);
  const toml = `# five: answers 5
stratum = 1

[capsule]
name = "five"
version = "1.0.0"
description = "Answers five."

[source]
wasm = "dist/five.wasm"
${withBuild ? '\n[build]\nentry = "src/index.ts"\n' : ''}`;
  await writeFile(join(dir, 'stratum.toml'), toml);
  return { dir, wasm, toml };
}

test('stratum push --pin and stratum pull against a real registry', async (t) => {
  const registry = await registryOrSkip(t);
  if (!registry) return;
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const { dir, wasm, toml } = await makeCapsule(t, true);
  const reference = `oci://${registry.host}/acme/five:1.0.0`;

  const pushed = await stratum('push', dir, reference, '--pin', '--cache-dir', cacheDir);
  assert.equal(pushed.status, 0, pushed.stderr);
  const digest = pushed.stdout.trim();
  assert.match(digest, /^sha256:[a-f0-9]{64}$/);
  assert.match(pushed.stderr, /pushed oci:\/\/127\.0\.0\.1:[0-9]+\/acme\/five:1\.0\.0@sha256:/);
  // Two digests: each is named, and the one on stdout is the one [source] digest pins.
  const manifestDigest = /^pushed \S+@(sha256:[a-f0-9]{64})/m.exec(pushed.stderr)?.[1];
  assert.ok(pushed.stderr.includes(`\n  manifest digest   ${manifestDigest}  the artifact's, as OCI tools name it`), pushed.stderr);
  assert.ok(
    pushed.stderr.includes(`\n  component digest  ${digest}  the .wasm's sha256, printed on stdout: what [source] digest pins`),
    pushed.stderr,
  );
  // The pin goes to a copy beside stratum.toml, which stays as it was: dev and build go on from it.
  assert.equal(await readFile(join(dir, 'stratum.toml'), 'utf8'), toml);
  const pinnedFile = join(dir, 'stratum.pinned.toml');
  assert.ok(
    pushed.stderr.includes(
      `pinned ${pinnedFile}: [source] registry = "${reference}", digest = "${digest}"\n  \`stratum host install ${pinnedFile} --domain <name>\` installs what was pushed; stratum.toml is left as it was, to build from\n`,
    ),
    pushed.stderr,
  );
  const pinned = await readFile(pinnedFile, 'utf8');
  assert.deepEqual(parseManifest(pinned).manifest.source, { kind: 'registry', registry: reference, digest });
  assert.equal(parseManifest(pinned).manifest.build, undefined);
  assert.ok(pinned.startsWith(`${HEADER}# five: answers 5\n`));

  // The pinned copy has no local component to push; the directory pushes the next version.
  const fromCopy = await stratum('push', pinnedFile, reference);
  assert.equal(fromCopy.status, 1);
  assert.match(fromCopy.stderr, /no local component to push/);
  const next = await stratum('push', dir, `oci://${registry.host}/acme/five:1.0.1`, '--pin', '--cache-dir', cacheDir);
  assert.equal(next.status, 0, next.stderr);
  assert.equal(parseManifest(await readFile(pinnedFile, 'utf8')).manifest.source.kind, 'registry');
  assert.ok((await readFile(pinnedFile, 'utf8')).includes(`oci://${registry.host}/acme/five:1.0.1`));

  const out = join(dir, 'pulled.wasm');
  const tomlOut = join(dir, 'pulled.toml');
  const pulled = await stratum(
    'pull',
    `${reference}@${digest}`,
    '--out',
    out,
    '--manifest',
    tomlOut,
    '--cache-dir',
    await tempDir(t, 'stratum-cache-'),
  );
  assert.equal(pulled.status, 0, pulled.stderr);
  assert.equal(pulled.stdout.trim(), digest);
  assert.deepEqual(new Uint8Array(await readFile(out)), wasm);
  // The artifact carries stratum.toml as it was pushed; written beside the pulled file, it names
  // that file and its digest, and offers no build of a source that did not come with it.
  assert.equal(
    await readFile(tomlOut, 'utf8'),
    toml
      .replace('wasm = "dist/five.wasm"\n', `wasm = "pulled.wasm"\ndigest = "${digest}"\n`)
      .replace(
        '[build]\nentry = "src/index.ts"\n',
        '# Off: `stratum pull` wrote this manifest beside the pulled component, without its source.\n# [build]\n# entry = "src/index.ts"\n',
      ),
  );
  assert.deepEqual(parseManifest(await readFile(tomlOut, 'utf8')).manifest.source, { kind: 'wasm', wasm: 'pulled.wasm', digest });

  // The tag written beside a digest is not checked (spec/registry.md section 4): it may name
  // nothing at all, and the pull says the digest decided instead of claiming the tag.
  const untagged = await stratum(
    'pull',
    `oci://${registry.host}/acme/five:9.9.9@${digest}`,
    '--out',
    join(dir, 'untagged.wasm'),
    '--cache-dir',
    await tempDir(t, 'stratum-cache-'),
  );
  assert.equal(untagged.status, 0, untagged.stderr);
  assert.ok(
    untagged.stderr.includes(`pulled oci://${registry.host}/acme/five@${digest} (pinned by digest; tag 9.9.9 ignored) -> `),
    untagged.stderr,
  );
  const cached = await stratum(
    'pull',
    `oci://${registry.host}/acme/five:9.9.9@${digest}`,
    '--out',
    join(dir, 'again.wasm'),
    '--cache-dir',
    cacheDir,
  );
  assert.ok(
    cached.stderr.includes(`pulled oci://${registry.host}/acme/five@${digest} (pinned by digest; tag 9.9.9 ignored) -> `),
    cached.stderr,
  );
  assert.match(
    pulled.stderr,
    /pulled oci:\/\/\S+\/acme\/five:1\.0\.0 -> /,
    'a tag that names the pinned bytes is the reference they came by',
  );

  const wrong = await stratum(
    'pull',
    `oci://${registry.host}/acme/five@sha256:${'0'.repeat(64)}`,
    '--out',
    join(dir, 'nothing.wasm'),
    '--cache-dir',
    cacheDir,
  );
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /acme\/five holds no artifact manifest and no component with the digest sha256:0{64}/);
  assert.match(
    wrong.stderr,
    /hint: A digest after "@" is the artifact's manifest digest \(`stratum push` prints it in its "pushed \.\.\.@sha256:" line\) or its component digest \(what push prints on stdout and \[source\] digest pins\)/,
  );
  assert.doesNotMatch(wrong.stderr, /a pinned digest is the artifact's manifest digest/);
  await assert.rejects(readFile(join(dir, 'nothing.wasm')), { code: 'ENOENT' });
});

test('stratum push explains a missing component, a digest that does not match, and a bad reference', async (t) => {
  const { dir } = await makeCapsule(t, true);
  await rm(join(dir, 'dist', 'five.wasm'));
  const missing = await stratum('push', dir, 'oci://127.0.0.1:1/acme/five:1');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /cannot read the component/);
  assert.match(missing.stderr, /stratum build/);

  const second = await makeCapsule(t, false);
  const text = await readFile(join(second.dir, 'stratum.toml'), 'utf8');
  await writeFile(
    join(second.dir, 'stratum.toml'),
    text.replace('wasm = "dist/five.wasm"', `wasm = "dist/five.wasm"\ndigest = "sha256:${'1'.repeat(64)}"`),
  );
  const mismatch = await stratum('push', second.dir, 'oci://127.0.0.1:1/acme/five:1');
  assert.equal(mismatch.status, 1);
  assert.match(mismatch.stderr, /does not match the digest/);
  assert.ok(mismatch.stderr.includes(digestOf(second.wasm)));

  const bad = await stratum('push', second.dir, 'oci://127.0.0.1:1/Acme/five:1');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /repository "Acme\/five" must be lowercase/);
  const usage = await stratum('pull');
  assert.equal(usage.status, 2);
});

test('stratum push builds a component whose sources changed since it was built, before it pushes anything', async (t) => {
  const { dir } = await makeCapsule(t, true);
  // Built an hour ago; the source edited since, into one that does not bundle.
  const anHourAgo = new Date(Date.now() - 3_600_000);
  await utimes(join(dir, 'dist', 'five.wasm'), anHourAgo, anHourAgo);
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'index.ts'), 'export default {\n');
  // A registry that is not there: the push must stop at the build, before it connects.
  const pushed = await stratum('push', dir, 'oci://127.0.0.1:1/acme/five:1');
  assert.equal(pushed.status, 1);
  assert.match(pushed.stderr, /^src\/index\.ts changed since dist\/five\.wasm was built: building it first\n… /);
  assert.match(pushed.stderr, /error: cannot bundle src\/index\.ts/);
  assert.doesNotMatch(pushed.stderr, /pushing/);
  // Not built at all, it is built too.
  await rm(join(dir, 'dist', 'five.wasm'));
  const unbuilt = await stratum('push', dir, 'oci://127.0.0.1:1/acme/five:1');
  assert.equal(unbuilt.status, 1);
  assert.match(unbuilt.stderr, /^dist\/five\.wasm is not built yet: building it first\n… /);
  assert.match(unbuilt.stderr, /error: cannot bundle src\/index\.ts/);
});

test('pinning any valid manifest with a local source changes only its [source] and [build] lines', async () => {
  const { readdir } = await import('node:fs/promises');
  const root = new URL('../', import.meta.url);
  const files = [
    ...(await readdir(new URL('spec/capsule/examples/valid/', root))).map((name) => new URL(`spec/capsule/examples/valid/${name}`, root)),
    ...(await readdir(new URL('examples/', root))).map((name) => new URL(`examples/${name}/stratum.toml`, root)),
  ];
  let pinnedCount = 0;
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined || parseManifest(text).manifest.source.kind !== 'wasm') continue;
    const pinned = pinSource(text, file.pathname, REF, DIGEST);
    assert.deepEqual(parseManifest(pinned).manifest.source, { kind: 'registry', registry: REF, digest: DIGEST }, file.pathname);
    // Every original line is still there, as it was or commented out, in the same order; only a
    // digest line of the old local source may go.
    const output = pinned.split('\n');
    let at = 0;
    for (const line of text.split('\n')) {
      const found = output.findIndex(
        (candidate, index) =>
          index >= at &&
          (candidate === line || candidate.startsWith(`# ${line.trim()}`) || candidate.trim().startsWith(`# ${line.trim()}`)),
      );
      if (found === -1) {
        assert.match(line, /digest\s*=|wasm\s*=/, `${file.pathname}: the line ${JSON.stringify(line)} was lost`);
        continue;
      }
      at = found + 1;
    }
    pinnedCount++;
  }
  assert.ok(pinnedCount >= 3, `pinned ${pinnedCount} manifests`);
});
