// A host that pulls a capsule's component from a registry for `stratum host install`, through
// the CLI's main() against a real docker-registry: what the registrar is told when the pin is
// not a component in the repository, or when the host cannot reach the registry.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import { parseHostConfig, startHost } from '@stratum/host';
import { pullComponent } from '@stratum/registry';
import { runCli as run } from './support/cli.ts';
import { writeTestHost } from './support/host-dir.ts';
import { registryOrSkip } from './support/registry.ts';
import { freePort } from './support/services.ts';
import { testDir } from './support/temp.ts';
import { buildTiny } from './support/tiny.ts';

/** A host h1.example.net that pulls from registries, and the control options that drive it. */
async function pullingHost(t: TestContext) {
  const { dir, closing } = await testDir(t, 'stratum-host-pull-');
  const operator = await generateEd25519KeyPair();
  await writeKeyFile(join(dir, 'operator.key'), operator.privateJwk);
  const { path, text } = await writeTestHost(dir, { name: 'h1.example.net', registrar: operator.publicJwk.x, operator: true });
  const host = closing(await startHost(parseHostConfig(text, path)));
  const control = ['--url', host.controlUrl.href, '--audience', 'h1.example.net', '--key', join(dir, 'operator.key')];
  return { dir, control };
}

/** A capsule directory whose [source] is pinned to a registry: what the host pulls on install. */
async function pinnedCapsule(dir: string, registry: string, digest: string): Promise<void> {
  await writeFile(
    join(dir, 'stratum.toml'),
    `stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nregistry = "${registry}"\ndigest = "${digest}"\n`,
  );
}

/** A copy of examples/tiny, built, in `dir`/tiny: a project of one's own to push and pin. */
async function tinyProject(dir: string): Promise<string> {
  const capsule = join(dir, 'tiny');
  await mkdir(capsule);
  await copyFile(join(import.meta.dirname, '..', 'examples', 'tiny', 'stratum.toml'), join(capsule, 'stratum.toml'));
  await copyFile(await buildTiny(), join(capsule, 'tiny.wasm'));
  return capsule;
}
test('a host that cannot reach the registry says it was the host that could not', async (t) => {
  const { dir, control } = await pullingHost(t);
  const port = await freePort();
  await pinnedCapsule(dir, `oci://127.0.0.1:${port}/me/tiny:0.1.0`, `sha256:${'a'.repeat(64)}`);
  const result = await run(['host', 'install', dir, '--domain', 'tiny.example', '--no-start', ...control]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(`the host h1\\.example\\.net could not reach the registry at 127\\.0\\.0\\.1:${port}: ECONNREFUSED`),
  );
  assert.match(result.stderr, /hint: The host pulls the component itself/);
  // Given its name, as a host's puller can, the error names the host.
  await assert.rejects(
    pullComponent({
      reference: `oci://127.0.0.1:${port}/me/tiny:0.1.0`,
      digest: `sha256:${'a'.repeat(64)}`,
      host: 'h1.example.net',
      cacheDir: join(dir, 'cache'),
    }),
    { code: 'REGISTRY_UNREACHABLE', message: `the host h1.example.net could not reach the registry at 127.0.0.1:${port}: ECONNREFUSED` },
  );
});

test('an install pinned to a digest the repository does not hold says the pin is the component digest push printed on stdout', async (t) => {
  const registry = await registryOrSkip(t);
  if (!registry) return;
  const { dir, control } = await pullingHost(t);
  const capsule = await tinyProject(dir);
  const reference = `oci://${registry.host}/me/tiny:0.1.0`;
  const pushed = await run(['push', capsule, reference, '--cache-dir', join(dir, 'cache')]);
  assert.equal(pushed.code, 0, pushed.stderr);
  const component = pushed.stdout.trim();
  const manifest = /^pushed \S+@(sha256:[a-f0-9]{64})/m.exec(pushed.stderr)?.[1];
  assert.ok(manifest, pushed.stderr);

  // The digest a new user took: the manifest's, from the "pushed" line.
  await pinnedCapsule(dir, reference, manifest);
  const result = await run(['host', 'install', dir, '--domain', 'tiny.example', '--no-start', ...control]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, new RegExp(`the pinned component ${manifest} is not in 127\\.0\\.0\\.1:[0-9]+/me/tiny`));
  assert.ok(result.stderr.includes(`the tag 0.1.0 holds the component ${component}`), result.stderr);
  assert.match(
    result.stderr,
    /hint: A pin \(\[source\] digest\) is the component's digest, the sha256 of the \.wasm: the one `stratum push` prints on stdout/,
  );
  assert.doesNotMatch(result.stderr, /is the artifact's manifest digest that/);

  // Pinned right, under a tag the repository does not have: the digest is the pin, and the
  // install says so rather than claim it pulled that tag.
  await pinnedCapsule(dir, `oci://${registry.host}/me/tiny:9.9.9`, component);
  const installed = await run(['host', 'install', dir, '--domain', 'tiny.example', '--no-start', ...control]);
  assert.equal(installed.code, 0, installed.stderr);
  const line = `${installed.stdout}${installed.stderr}`;
  assert.ok(
    line.includes(`pulled by the host from oci://${registry.host}/me/tiny@${component} (pinned by digest; tag 9.9.9 ignored)`),
    line,
  );
});

test('push --pin writes stratum.pinned.toml beside stratum.toml, and host install of it installs what was pushed', async (t) => {
  const registry = await registryOrSkip(t);
  if (!registry) return;
  const { dir, control } = await pullingHost(t);
  const capsule = await tinyProject(dir);
  const original = await readFile(join(capsule, 'stratum.toml'), 'utf8');
  const pushed = await run(['push', capsule, `oci://${registry.host}/me/tiny:0.1.0`, '--pin', '--cache-dir', join(dir, 'cache')]);
  assert.equal(pushed.code, 0, pushed.stderr);
  const digest = pushed.stdout.trim();
  assert.equal(await readFile(join(capsule, 'stratum.toml'), 'utf8'), original);

  // As the push said to run it.
  const printed = /`stratum (host install \S+) --domain <name>`/.exec(pushed.stderr)?.[1];
  assert.equal(printed, `host install ${join(capsule, 'stratum.pinned.toml')}`);
  const installed = await run([...printed.split(' '), '--domain', 'tiny.example', '--no-start', ...control]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.ok(
    `${installed.stdout}${installed.stderr}`.includes(`pulled by the host from oci://${registry.host}/me/tiny@${digest}`),
    installed.stdout + installed.stderr,
  );
});
