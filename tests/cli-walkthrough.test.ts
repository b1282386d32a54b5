// The rough edges a new user's walkthrough of the CLI found, each as the user met it: through the
// CLI's main(), checking the exit code and what is said.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, cp, mkdir, mkdtemp, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import { DiscoveryResolver, startEmbeddedDnsServer } from '@stratum/discovery';
import { loadHostConfig, parseHostConfig, startHost } from '@stratum/host';
import { runCli as run } from './support/cli.ts';
import { builtExampleCopy, exampleDir } from './support/examples.ts';
import { testHostToml, writeTestHost } from './support/host-dir.ts';
import { ingressGet } from './support/ingress.ts';
import { freePort } from './support/services.ts';
import { removeDir, testDir } from './support/temp.ts';
import { buildTiny } from './support/tiny.ts';

/** A running host trusting operator.key, and the tiny capsule built in `<dir>/tiny`. */
async function hostWithTiny(t: TestContext, tables?: string, registrarDomain?: string) {
  const { dir, closing } = await testDir(t, 'stratum-cli-walkthrough-');
  const operator = await generateEd25519KeyPair();
  await writeKeyFile(join(dir, 'operator.key'), operator.privateJwk);
  const { path, text } = await writeTestHost(dir, {
    name: 'h1.example.net',
    registrar: operator.publicJwk.x,
    registrarName: 'operator',
    ...(tables ? { tables } : {}),
    ...(registrarDomain ? { registrarDomain } : {}),
  });
  const host = closing(await startHost(parseHostConfig(text, path), { pullComponent: false }));
  await mkdir(join(dir, 'tiny'));
  await writeFile(
    join(dir, 'tiny', 'stratum.toml'),
    'stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n',
  );
  await copyFile(await buildTiny(), join(dir, 'tiny', 'tiny.wasm'));
  return { dir, host, control: ['--url', host.controlUrl.href, '--key', join(dir, 'operator.key')] };
}

test('build checks -o before it builds: a directory, or a path under a file, fails at once naming it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-cli-build-out-'));
  t.after(() => removeDir(dir));
  // No stratum.toml: a build that got as far as reading the project would fail on that instead.
  await writeFile(join(dir, 'README.md'), 'a file\n');
  const underFile = await run(['build', dir, '-o', join(dir, 'README.md', 'x.wasm')]);
  assert.equal(underFile.code, 2, underFile.stderr);
  assert.match(underFile.stderr, /^error: cannot write -o .*README\.md\/x\.wasm: .*README\.md is a file, not a directory\nhint: /);

  await mkdir(join(dir, 'out'));
  const directory = await run(['build', dir, '-o', join(dir, 'out')]);
  assert.equal(directory.code, 2, directory.stderr);
  assert.match(directory.stderr, /^error: -o .*\/out is a directory\nhint: Name the file in it/);

  // A path that can be made is made before the build, which then fails on the project alone.
  const fresh = await run(['build', dir, '-o', join(dir, 'a', 'b', 'x.wasm')]);
  assert.equal(fresh.code, 1);
  assert.match(fresh.stderr, /stratum\.toml/);
  assert.ok((await stat(join(dir, 'a', 'b'))).isDirectory());
});

test('build of a stratum.toml that an earlier push --pin pinned in place names the line to put back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-cli-build-pinned-'));
  t.after(() => removeDir(dir));
  // As `stratum push --pin` left a manifest before it wrote its pin to stratum.pinned.toml.
  await writeFile(
    join(dir, 'stratum.toml'),
    `stratum = 1
[capsule]
name = "links"
version = "0.1.1"
[source]
# wasm = "dist/links.wasm" (before \`stratum push --pin\`)
registry = "oci://127.0.0.1:9390/me/links:0.1.1"
digest = "sha256:${'0'.repeat(64)}"

# Off since \`stratum push --pin\` made the source a registry; restore [source] wasm to build here.
# [build]
# entry = "src/index.ts"
`,
  );
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'index.ts'), "export default { fetch: () => new Response('hi') };\n");
  const built = await run(['build', dir]);
  assert.equal(built.code, 1);
  assert.match(built.stderr, /\nerror: \S+\/stratum\.toml's \[source\] names a registry, so there is no local path to build to\n/);
  assert.match(
    built.stderr,
    /\nhint: An earlier `stratum push --pin` pinned \S+ itself \(it now writes the pin to stratum\.pinned\.toml and leaves stratum\.toml alone\): put back `wasm = "dist\/links\.wasm"` in place of \[source\] registry and digest, and uncomment \[build\]\./,
  );
});

test('host install --dns that fails after the install says the capsule is installed, not started, and how to go on or remove it', async (t) => {
  // The zone's primary takes the update; the host asks another server, which never sees it, so
  // the start is refused for the link after the install.
  const secret = randomBytes(32).toString('base64');
  const dns = await startEmbeddedDnsServer({ zones: ['shop.net'], updateKeys: [{ name: 'stratum-update', secret }] });
  t.after(() => dns.stop());
  const elsewhere = await startEmbeddedDnsServer({ zones: ['shop.net'] });
  t.after(() => elsewhere.stop());
  const { dir, control } = await hostWithTiny(t, `[discovery]\nresolver = "${elsewhere.address}"\n`, 'registrar.example');
  await writeFile(join(dir, 'update.key'), `hmac-sha256:stratum-update:${secret}\n`);
  const zone = ['--dns', dns.address, '--zone', 'shop.net', '--tsig-key', join(dir, 'update.key')];
  const install = ['host', 'install', join(dir, 'tiny'), '-d', 'tiny.shop.net', ...zone, ...control];
  // No link to take the registrar from and none given: the host says which its check expects.
  const failed = await run(install);
  assert.equal(failed.code, 1);
  assert.match(
    failed.stderr,
    /\n {2}tiny is installed on h1\.example\.net but not started; its domains' DNS records were put back as they were\nhint: [\s\S]* Then run this install again once that is fixed, or publish its links and run `stratum host serve tiny --url \S+ --key \S+`, or remove it with `stratum host uninstall tiny --url \S+ --key \S+`\.\n$/,
  );
  assert.equal(await new DiscoveryResolver({ servers: [dns.address] }).domainLink('tiny.shop.net'), undefined);
  const status = await run(['host', 'status', ...control]);
  assert.match(status.stdout, /\ntiny +installed /);
  // The removal it suggests, run as printed.
  const uninstall = /`stratum (host uninstall [^`]*)`/.exec(failed.stderr)?.[1];
  assert.ok(uninstall);
  const removed = await run(uninstall.split(' '));
  assert.equal(removed.code, 0, removed.stderr);
});

/** Runs the CLI in `dir`, as a user who changed into it would. */
async function runIn(dir: string, argv: string[]) {
  const before = process.cwd();
  process.chdir(dir);
  try {
    return await run(argv);
  } finally {
    process.chdir(before);
  }
}

test('control commands given no host use ./host.toml and the operator key beside it; with none there the error names both ways', async (t) => {
  const { dir, closing } = await testDir(t, 'stratum-cli-default-config-');
  const made = await run([
    'host',
    'init',
    dir,
    '--name',
    'h1.example.net',
    '--ingress',
    '127.0.0.1:0',
    '--control',
    `127.0.0.1:${await freePort()}`,
  ]);
  assert.equal(made.code, 0, made.stderr);
  closing(await startHost(await loadHostConfig(join(dir, 'host.toml')), { pullComponent: false }));
  const status = await runIn(dir, ['host', 'status']);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^h1\.example\.net {2}stratum-host /);

  await mkdir(join(dir, 'elsewhere'));
  const nowhere = await runIn(join(dir, 'elsewhere'), ['host', 'status']);
  assert.equal(nowhere.code, 2);
  assert.match(
    nowhere.stderr,
    /^error: say which host: --config <host\.toml> \(the operator-key\.json beside it signs\), or --url <control API base URL> and --key <registrar key file>\nhint: There is no host\.toml here/,
  );
});

test('next steps printed by the control commands carry the options given, so they run as pasted', async (t) => {
  const { dir, host, control } = await hostWithTiny(t);
  const capsule = await builtExampleCopy('counter', dir);
  assert.equal((await run(['host', 'install', capsule, '-d', 'counter.example', ...control])).code, 0);
  await ingressGet(new URL('/a', host.ingressUrl), 'counter.example');
  const drained = await run(['host', 'drain', 'counter', ...control]);
  assert.match(drained.stdout, /`stratum host serve counter --url \S+ --key \S+`/);

  const exported = await run(['host', 'export', 'counter', 'keyvalue/default', '--out', join(dir, 'backup.jsonl'), ...control]);
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stdout, /^exported counter's keyvalue\/default: 1 record, /);
  const restore = /restore it with `stratum ([^`]*)`/.exec(exported.stdout)?.[1];
  assert.equal(restore, `host import counter keyvalue/default ${join(dir, 'backup.jsonl')} ${control.join(' ')}`);
  const imported = await run(restore.split(' '));
  assert.equal(imported.code, 0, imported.stderr);

  const unnamed = await run(['host', 'logs', ...control]);
  assert.match(unnamed.stderr, /hint: Run `stratum host status --url \S+ --key \S+` to list them/);
});

test('host install builds a component whose sources changed since it was built, showing the build, and the host serves the new code', async (t) => {
  const { dir, host, control } = await hostWithTiny(t);
  const capsule = await builtExampleCopy('hello', dir);
  // Built an hour ago; its greeting edited since.
  const anHourAgo = new Date(Date.now() - 3_600_000);
  await utimes(join(capsule, 'dist', 'hello.wasm'), anHourAgo, anHourAgo);
  await cp(join(exampleDir('hello'), 'src'), join(capsule, 'src'), { recursive: true });
  const source = await readFile(join(capsule, 'src', 'index.ts'), 'utf8');
  await writeFile(join(capsule, 'src', 'index.ts'), source.replace('message: `hello, ', 'message: `hi, '));
  const validated = await run(['validate', capsule]);
  assert.equal(validated.code, 0, validated.stderr);
  assert.match(validated.stdout, /\n {2}component {5}dist\/hello\.wasm, [^\n]*; built before src\/index\.ts changed: stratum build \S+\n$/);

  const installed = await run(['host', 'install', capsule, '-d', 'hello.example', ...control]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(installed.stderr, /^src\/index\.ts changed since dist\/hello\.wasm was built: building it first\n… /);
  assert.match(installed.stderr, /\nbuilt \S*hello\.wasm \(/);
  assert.match((await ingressGet(host.ingressUrl, 'hello.example', '/?name=you')).body, /"message":"hi, you"/);
  // Built now: the next install sends it as it is.
  const again = await run(['host', 'install', capsule, '-d', 'hello.example', ...control]);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /building/);
});

test('host install --no-start says the capsule is not served until it is started, and how to start it', async (t) => {
  const { dir, control } = await hostWithTiny(t);
  const idle = await run(['host', 'install', join(dir, 'tiny'), '-d', 'tiny.example', '--no-start', ...control]);
  assert.equal(idle.code, 0, idle.stderr);
  assert.match(
    idle.stdout,
    /^installed tiny 0\.1\.0 \(sha256:[0-9a-f]{64}\): installed, not started: will serve tiny\.example once started \(stratum host serve tiny --url \S+ --key \S+\)\n$/,
  );
});

test('validate notes an outbound origin on this machine or a private address, which a host refuses unless it allows the range', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-cli-validate-local-'));
  t.after(() => removeDir(dir));
  await writeFile(
    join(dir, 'stratum.toml'),
    'stratum = 1\n[capsule]\nname = "links"\nversion = "0.1.0"\n[source]\nwasm = "links.wasm"\n[capabilities]\noutbound = ["http://localhost:3000", "http://10.1.2.3", "https://api.example.com"]\n',
  );
  const validated = await run(['validate', dir]);
  assert.equal(validated.code, 0, validated.stderr);
  const notes = validated.stdout.split('\n').filter((line) => /^ {2}note /.test(line));
  assert.deepEqual(notes, [
    '  note          outbound http://localhost:3000 is this machine: `stratum dev` reaches it, but a host refuses it unless its [outbound] allow_addresses lists the range',
    '  note          outbound http://10.1.2.3 is a private or special address: a host refuses it unless its [outbound] allow_addresses lists the range',
  ]);
});

test('dev on a project whose prebuilt component is not built says so and how to build it, as host install does', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-cli-dev-unbuilt-'));
  t.after(() => removeDir(dir));
  await writeFile(join(dir, 'stratum.toml'), 'stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "tiny.wasm"\n');
  const noScript = await run(['dev', dir, '--no-watch', '--port', '0']);
  assert.equal(noScript.code, 1);
  assert.match(
    noScript.stdout,
    /✗ error: cannot read the component .*\/tiny\.wasm\n {4}no such file\n {4}hint: Build it first, or check \[source\] wasm in .*stratum\.toml\.\n {4}nothing is served; fix it and run stratum dev again\n/,
  );
  // As examples/tiny makes its component.
  await writeFile(join(dir, 'build.ts'), '');
  const withScript = await run(['dev', dir, '--no-watch', '--port', '0']);
  assert.equal(withScript.code, 1);
  assert.match(withScript.stdout, /hint: Build it first with the project's build script: `node \S+\/build\.ts`\./);
});

test('help agrees with the parser: a usage line shows every option or says [options], and optional ones in brackets', async () => {
  for (const command of ['dev', 'host start', 'host move', 'host keygen']) {
    const help = await run([...command.split(' '), '--help']);
    const usage = /^Usage: (.*)$/m.exec(help.stdout)?.[1] ?? '';
    const options = [...(help.stdout.split('\nOptions:\n')[1]?.matchAll(/^ {2}(?:-\w, | {4})--([\w-]+)/gm) ?? [])].map((match) => match[1]);
    assert.ok(options.length > 0, help.stdout);
    if (usage.endsWith('[options]')) continue;
    for (const option of options)
      if (option !== 'help') assert.ok(usage.includes(`--${option}`), `${command}: usage leaves out --${option}: ${usage}`);
  }
  assert.match((await run(['host', 'start', '--help'])).stdout, /^Usage: stratum host start \[--config <host\.toml>\]/m);
  // The key files the examples name are those host init writes.
  assert.doesNotMatch((await run(['host', 'status', '--help'])).stdout, /operator\.key/);
  assert.doesNotMatch((await run(['host', 'init', '--help'])).stdout, /every key commented/);
  assert.match((await run(['host', 'keygen', '--help'])).stdout, /registrar's key/);
});

test('an unknown command gets the nearest one as a suggestion', async () => {
  const typo = await run(['hots', 'start']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /^error: unknown command `hots`\nhint: did you mean `stratum host start`\?/);
  assert.match((await run(['biuld'])).stderr, /did you mean `stratum build`\?/);
  assert.match((await run(['host', 'strat'])).stderr, /did you mean `stratum host start`\?/);
  assert.doesNotMatch((await run(['xyzzy'])).stderr, /did you mean/);
});

test('host start without its key file suggests the keygen command that writes it where host.toml looks', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-cli-no-key-'));
  t.after(() => removeDir(dir));
  await mkdir(join(dir, 'hbad'));
  await writeFile(join(dir, 'hbad', 'host.toml'), testHostToml({ registrar: (await generateEd25519KeyPair()).publicJwk.x }));
  const result = await runIn(dir, ['host', 'start', '--config', 'hbad/host.toml', '--log-format', 'pretty']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /error: cannot read the key file .*hbad\/host\.key\n/);
  assert.match(result.stderr, /hint: Create it with `stratum host keygen --out hbad\/host\.key`/);
  // With JSON logs, the same as the log's last line, at level fatal.
  const json = await runIn(dir, ['host', 'start', '--config', 'hbad/host.toml', '--log-format', 'json']);
  assert.equal(json.code, 1);
  const fatal = JSON.parse(json.stderr.trim().split('\n').at(-1) ?? '') as { level: number; msg: string; hint: string };
  assert.equal(fatal.level, 60);
  assert.match(fatal.msg, /^cannot read the key file .*hbad\/host\.key$/);
  assert.match(fatal.hint, /^Create it with `stratum host keygen --out hbad\/host\.key`/);
});
