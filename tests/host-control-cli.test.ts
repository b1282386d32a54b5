// `stratum host status`, `host install`, `host serve|drain|stop` and `host uninstall`, and `stratum host start`'s refusals,
// through the CLI's main().
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { generateEd25519KeyPair, readKeyFile, writeKeyFile } from '@stratum/core';
import { DiscoveryResolver, startEmbeddedDnsServer } from '@stratum/discovery';
import {
  type CapsuleLogEntry,
  canonicalJson,
  createControlClient,
  entryHash,
  GENESIS_HASH,
  parseHostConfig,
  startHost,
} from '@stratum/host';
import { runCli as run } from './support/cli.ts';
import { buildExample, builtExampleCopy, exampleDir } from './support/examples.ts';
import { writeTestHost } from './support/host-dir.ts';
import { ingressGet } from './support/ingress.ts';
import { freePort } from './support/services.ts';
import { removeDir, testDir } from './support/temp.ts';
import { buildHostile, buildTiny } from './support/tiny.ts';

const launcher = fileURLToPath(new URL('../packages/cli/bin/stratum.js', import.meta.url));

async function hostWithOperatorKey(t: TestContext, beforeStart?: (dir: string) => Promise<void>, tables?: string) {
  const { dir, closing } = await testDir(t, 'stratum-cli-host-');
  const operator = await generateEd25519KeyPair();
  await writeKeyFile(join(dir, 'operator.key'), operator.privateJwk);
  const { path, text } = await writeTestHost(dir, {
    name: 'h1.example.net',
    registrar: operator.publicJwk.x,
    registrarName: 'operator',
    operator: true,
    ...(tables ? { tables } : {}),
  });
  await beforeStart?.(dir);
  const host = closing(await startHost(parseHostConfig(text, path), { pullComponent: false }));
  return { dir, host };
}

test("host status asks the live host with a signed request; the runtime counters are the operator's only", async (t) => {
  const other = await generateEd25519KeyPair();
  const { dir, host } = await hostWithOperatorKey(
    t,
    async (dir) => writeKeyFile(join(dir, 'other.key'), other.privateJwk),
    `[registrars.other]\nkey = "${other.publicJwk.x}"\n[instances]\nmax = 7\n`,
  );
  const result = await run([
    'host',
    'status',
    '--url',
    host.controlUrl.href,
    '--audience',
    'h1.example.net',
    '--key',
    join(dir, 'operator.key'),
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^h1\.example\.net {2}stratum-host /);
  assert.match(result.stdout, /no capsules installed/);
  // The host-wide instance limit, host.toml's [instances] max.
  assert.match(result.stdout, /^instances: 0 of 7$/m);

  const json = await run(['host', 'status', '--url', host.controlUrl.href, '--key', join(dir, 'operator.key'), '--json']);
  assert.equal(json.code, 0, json.stderr);
  const status = JSON.parse(json.stdout) as { host: { name: string }; capsules: unknown[]; runtime?: { transpiles: number } };
  assert.equal(status.host.name, 'h1.example.net');
  assert.deepEqual(status.capsules, []);
  assert.equal(status.runtime?.transpiles, 0);

  // Another registrar: its capsules, and nothing that counts everyone's.
  const asOther = await run(['host', 'status', '--url', host.controlUrl.href, '--key', join(dir, 'other.key'), '--json']);
  assert.equal(asOther.code, 0, asOther.stderr);
  assert.equal((JSON.parse(asOther.stdout) as { runtime?: unknown }).runtime, undefined);
  const plain = await run(['host', 'status', '--url', host.controlUrl.href, '--key', join(dir, 'other.key')]);
  assert.doesNotMatch(plain.stdout, /^instances:/m);
});

test('a host whose large usage ledger does not verify still starts, and host status says so', async (t) => {
  const { dir, host } = await hostWithOperatorKey(t, async (dir) => {
    // Over 4 MiB, so the host checks it while it serves; one entry in the middle altered.
    let prev = GENESIS_HASH;
    const lines: string[] = [];
    for (let seq = 1; seq <= 16_000; seq++) {
      const at = new Date(Date.UTC(2026, 10, 1) + seq * 10_000).toISOString();
      const usage = { requests: 1, cpuMs: 1, memoryMbSeconds: 0, bytesIn: 0, bytesOut: 0, limitHits: {} };
      const body = { seq, time: at, capsule: 'hello', from: at, to: at, usage, prev };
      prev = entryHash(body);
      lines.push(canonicalJson({ ...body, hash: prev }));
    }
    lines[8000] = (lines[8000] as string).replace('"requests":1}', '"requests":0}');
    await mkdir(join(dir, 'data', 'metering'), { recursive: true });
    await writeFile(join(dir, 'data', 'metering', 'ledger.jsonl'), `${lines.join('\n')}\n`);
  });
  const status = () => run(['host', 'status', '--url', host.controlUrl.href, '--key', join(dir, 'operator.key'), '--json']);
  let ledger = 'checking';
  // The check reads about 5 MB; a deadline only so that a hang fails the test instead of holding it.
  for (const deadline = Date.now() + 60_000; ledger === 'checking' && Date.now() < deadline; ) {
    ledger = (JSON.parse((await status()).stdout) as { metering: { ledger: string } }).metering.ledger;
    if (ledger === 'checking') await setTimeout(50);
  }
  assert.equal(ledger, 'broken');
  const text = await run(['host', 'status', '--url', host.controlUrl.href, '--key', join(dir, 'operator.key')]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(
    text.stdout,
    /\nusage ledger: broken: its hash chain does not verify, or it was changed while the host ran; no usage is written until it is repaired/,
  );
});

test('host status with a key the host does not trust fails with the reason, and the public key the operator adds', async (t) => {
  const { dir, host } = await hostWithOperatorKey(t);
  const stranger = await generateEd25519KeyPair();
  await writeKeyFile(join(dir, 'stranger.key'), stranger.privateJwk);
  const result = await run([
    'host',
    'status',
    '--url',
    host.controlUrl.href,
    '--audience',
    'h1.example.net',
    '--key',
    join(dir, 'stranger.key'),
  ]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /not a registrar that host h1\.example\.net trusts/);
  // The host names the key by its thumbprint; the CLI has the key file, and says what to add.
  assert.ok(result.stderr.includes(`\n  ${join(dir, 'stranger.key')}'s public key is ${stranger.publicJwk.x}\n`), result.stderr);
  assert.ok(
    result.stderr.endsWith(
      `hint: The host's operator trusts it by adding to its host.toml\n  [registrars.<name>]\n  key = "${stranger.publicJwk.x}"\n` +
        `  domain = "<the registrar's domain, which its links name>"\nand restarting the host; or sign with a key the host trusts (--key).\n`,
    ),
    result.stderr,
  );
});

test("--url naming another machine needs --audience: a host's name is not taken from its unsigned /identity there", async (t) => {
  const { dir, host } = await hostWithOperatorKey(t);
  const key = join(dir, 'operator.key');
  const remote = await run(['host', 'status', '--url', 'https://h1.example.net/stratum/v1', '--key', key]);
  assert.equal(remote.code, 2);
  assert.equal(
    remote.stderr,
    "error: --audience is required with --url https://h1.example.net/stratum/v1: the host's name, which its requests are signed for; a registrar does not take it from the host's unsigned /identity unless the host is on this machine (spec/host-api.md section 5.7)\n" +
      'hint: Give --audience <host name>: its [host] name in host.toml, as its _stratum-host record publishes it (`stratum dns check <a domain it serves>` shows the host a link names), or --config <host.toml>.\n',
  );
  // A move says which of its two hosts.
  const wasm = await buildTiny();
  await copyFile(wasm, join(dir, basename(wasm)));
  await writeFile(join(dir, 'stratum.toml'), tinyManifest(wasm));
  const sides = ['--from-url', host.controlUrl.href, '--to-url', 'https://h2.example.net/v1', '--key', key];
  const move = await run(['host', 'move', 'tiny', dir, ...sides]);
  assert.equal(move.code, 2, move.stderr);
  assert.match(move.stderr, /^error: --to-audience is required with --to-url https:\/\/h2\.example\.net\/v1: /);
  // A host on this machine may say its own name, as the operator's tools and the README rely on.
  for (const url of [host.controlUrl.href, host.controlUrl.href.replace('127.0.0.1', 'localhost')]) {
    const local = await run(['host', 'status', '--url', url, '--key', key]);
    assert.equal(local.code, 0, local.stderr);
    assert.match(local.stdout, /^h1\.example\.net {2}stratum-host /);
  }
});

/** The status of a GET through the host's ingress, for the capsule serving `host`. */
async function ingressStatus(url: URL, host: string): Promise<number> {
  return (await ingressGet(url, host)).status;
}

test('host install sends a built capsule and starts it; host drain, stop and serve take it out of service and back; host uninstall takes it away', async (t) => {
  const { dir, host } = await hostWithOperatorKey(t);
  // A capsule directory as `stratum build` leaves it: the manifest, and the component it names.
  const capsule = join(dir, 'hello');
  await mkdir(join(capsule, 'dist'), { recursive: true });
  await copyFile(join(exampleDir('hello'), 'stratum.toml'), join(capsule, 'stratum.toml'));
  const control = ['--url', host.controlUrl.href, '--audience', 'h1.example.net', '--key', join(dir, 'operator.key')];

  const unbuilt = await run(['host', 'install', capsule, '--domain', 'hello.example', ...control]);
  assert.equal(unbuilt.code, 1);
  assert.match(unbuilt.stderr, /cannot read the component .*dist\/hello\.wasm/);
  assert.match(unbuilt.stderr, /Build it first: `stratum build \S+\/hello`/);

  await copyFile(await buildExample('hello'), join(capsule, 'dist', 'hello.wasm'));
  // hello declares no config variable (and does not import wasi:config): a value is a mistake.
  const typo = await run(['host', 'install', capsule, '--domain', 'hello.example', '--var', 'greeting=hi', ...control]);
  assert.equal(typo.code, 1);
  assert.match(
    typo.stderr,
    /the configuration of hello does not match its manifest\n {2}config value "greeting" is not a variable the manifest declares/,
  );
  // The same value from a --var-file reaches the host the same way; a bad line is named without its value.
  const varFile = join(dir, 'hello.vars');
  await writeFile(varFile, '# for hello\nexport greeting="hi there"\n');
  const fromFile = await run(['host', 'install', capsule, '--domain', 'hello.example', '--var-file', varFile, ...control]);
  assert.equal(fromFile.code, 1);
  assert.match(fromFile.stderr, /config value "greeting" is not a variable the manifest declares/);
  await writeFile(varFile, 'greeting=hi\nAPI_KEY=sk-live-1234\n');
  const badLine = await run(['host', 'install', capsule, '--domain', 'hello.example', '--var-file', varFile, ...control]);
  assert.equal(badLine.code, 2);
  assert.match(badLine.stderr, /hello\.vars:2: "API_KEY" is not a config variable's name/);
  assert.doesNotMatch(badLine.stderr, /sk-live/);
  assert.equal(await ingressStatus(host.ingressUrl, 'hello.example'), 404);
  const installed = await run(['host', 'install', capsule, '--domain', 'hello.example', ...control]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(installed.stdout, /^installed hello 0\.1\.0 \(sha256:[0-9a-f]{64}\): running, serving hello\.example\n/);
  assert.equal(await ingressStatus(host.ingressUrl, 'hello.example'), 200);

  const idle = await run(['host', 'install', capsule, '-d', 'idle.example', '--name', 'idle', '--no-start', '--json', ...control]);
  assert.equal(idle.code, 0, idle.stderr);
  const status = JSON.parse(idle.stdout) as { name: string; state: string; domains: string[] };
  assert.deepEqual([status.name, status.state, status.domains], ['idle', 'installed', ['idle.example']]);
  // Its log names the installation, then the app it runs: not hello's line, which it is not.
  const idleLog = await run(['host', 'logs', 'idle', ...control]);
  assert.equal(idleLog.code, 0, idleLog.stderr);
  assert.match(idleLog.stdout, /^\S+Z info {2}host: installed idle: hello@0\.1\.0 \(sha256:[0-9a-f]{64}\)\n$/);
  assert.equal(await ingressStatus(host.ingressUrl, 'idle.example'), 503);
  // A domain as people write it: mixed case, a trailing dot, not ASCII. Sent as hosts compare it.
  const idn = await run(['host', 'install', capsule, '-d', 'Bücher.Example.', '--name', 'idn', '--no-start', '--json', ...control]);
  assert.equal(idn.code, 0, idn.stderr);
  assert.deepEqual((JSON.parse(idn.stdout) as { domains: string[] }).domains, ['xn--bcher-kva.example']);
  assert.equal((await run(['host', 'uninstall', 'idn', ...control])).code, 0);
  const notDomain = await run(['host', 'install', capsule, '-d', 'not a domain', ...control]);
  assert.equal(notDomain.code, 2);
  assert.match(notDomain.stderr, /--domain "not a domain" is not a domain name/);

  // As its --help says: host serve starts it.
  const started = await run(['host', 'serve', 'idle', ...control]);
  assert.equal(started.code, 0, started.stderr);
  assert.equal(started.stdout, 'serving idle: running, idle.example\n');
  assert.equal(await ingressStatus(host.ingressUrl, 'idle.example'), 200);

  // Out of service and back: drain, then stop, each followed by the serve it suggests, run as printed.
  for (const verb of ['drain', 'stop']) {
    const out = await run(['host', verb, 'idle', ...control]);
    assert.equal(out.code, 0, out.stderr);
    const [done, again] = out.stdout.split('\n');
    assert.equal(done, `${verb === 'drain' ? 'drained' : 'stopped'} idle: stopped, idle.example`);
    assert.equal(await ingressStatus(host.ingressUrl, 'idle.example'), 503);
    const suggested = /^out of service until `stratum (host serve [^`]*)`/.exec(again ?? '')?.[1];
    assert.ok(suggested, out.stdout);
    const served = await run(suggested.split(' '));
    assert.equal(served.code, 0, served.stderr);
    assert.equal(await ingressStatus(host.ingressUrl, 'idle.example'), 200);
  }
  const missing = await run(['host', 'stop', 'nothing', ...control]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no capsule named "nothing"/);
  // Refused at once: no word of draining before the error.
  const missingDrain = await run(['host', 'drain', 'nothing', ...control]);
  assert.equal(missingDrain.code, 1);
  assert.doesNotMatch(missingDrain.stderr, /draining/);
  assert.match(missingDrain.stderr, /no capsule named "nothing"/);
  const unnamed = await run(['host', 'drain', ...control]);
  assert.equal(unnamed.code, 2);
  assert.match(unnamed.stderr, /say which capsule: stratum host drain <capsule>/);

  const listed = await run(['host', 'status', ...control]);
  assert.match(listed.stdout, /\nhello +running +0\.1\.0 +hello\.example /);

  // The ingress served hello once: the host writes it to its ledger before it answers.
  const usage = await run(['host', 'usage', '--json', ...control]);
  assert.equal(usage.code, 0, usage.stderr);
  const used = JSON.parse(usage.stdout) as { capsules: Record<string, { requests: number }>; ledger: { entries: number; hash: string } };
  assert.equal(used.capsules.hello?.requests, 1);
  assert.match(used.ledger.hash, /^[0-9a-f]{64}$/);
  const thisMonth = new Date().toISOString().slice(0, 7);
  const table = await run(['host', 'usage', '--month', thisMonth, '--capsule', 'hello', ...control]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /\nhello +1 +\d+\.\d+ s +\d+\.\d+ GB-s /);
  assert.match(table.stdout, new RegExp(`ledger: ${used.ledger.entries} entries, last ${used.ledger.hash}\\n$`));
  const lastYear = await run(['host', 'usage', '--month', `${Number(thisMonth.slice(0, 4)) - 1}-01`, ...control]);
  assert.match(lastYear.stdout, /no usage in that period/);

  // Without --follow, the recent lines and no more: the command ends at the stream's `live` event.
  const logs = await run(['host', 'logs', 'hello', ...control]);
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /^\S+Z info {2}host: installed hello@0\.1\.0 \(sha256:[0-9a-f]{64}\)\n\S+Z info {2}host: started\n$/);
  const lastLine = await run(['host', 'logs', 'hello', '--lines', '1', '--json', ...control]);
  assert.equal(lastLine.code, 0, lastLine.stderr);
  assert.deepEqual(
    lastLine.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { message: string }).message),
    ['started'],
  );

  const removed = await run(['host', 'uninstall', 'hello', ...control]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal(removed.stdout, 'uninstalled hello\n');
  assert.equal(await ingressStatus(host.ingressUrl, 'hello.example'), 404);

  const unknown = await run(['host', 'uninstall', 'hello', ...control]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no capsule named "hello"/);
});

/** The body of a GET through the host's ingress, for the capsule serving `host`. */
async function ingressBody(url: URL, host: string): Promise<string> {
  return (await ingressGet(url, host)).body;
}

test('host move takes a capsule and its keyvalue state to another host, which counts on', async (t) => {
  // Two hosts, each trusting a key of its own: --from-key and --to-key.
  const old = await hostWithOperatorKey(t);
  const next = await hostWithOperatorKey(t);
  const capsule = await builtExampleCopy('counter', old.dir);
  const oldKey = ['--key', join(old.dir, 'operator.key')];
  const installed = await run(['host', 'install', capsule, '-d', 'counter.example', '--url', old.host.controlUrl.href, ...oldKey]);
  assert.equal(installed.code, 0, installed.stderr);
  const url = new URL('/a', old.host.ingressUrl);
  for (const count of [1, 2]) assert.equal((JSON.parse(await ingressBody(url, 'counter.example')) as { count: number }).count, count);

  const sides = [
    ...['--from-url', old.host.controlUrl.href, '--from-key', join(old.dir, 'operator.key')],
    ...['--to-url', next.host.controlUrl.href, '--to-key', join(next.dir, 'operator.key')],
  ];
  const moved = await run(['host', 'move', 'counter', capsule, ...sides]);
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(moved.stdout, /^moved counter to the new host: running, serving counter\.example; no host served it for \d+ ms\n/);
  assert.match(
    moved.stderr,
    /draining counter on the old host\ncopying keyvalue\/default from the old host\nimporting keyvalue\/default into the new host: \d+ B\ncopied keyvalue\/default: 1 record, \d+ B\nstarting counter/,
  );
  // The new host counts on from the old one's state; the old one keeps it drained.
  const nextUrl = new URL('/a', next.host.ingressUrl);
  assert.equal((JSON.parse(await ingressBody(nextUrl, 'counter.example')) as { count: number }).count, 3);
  assert.equal(await ingressStatus(old.host.ingressUrl, 'counter.example'), 503);
  const oldStatus = await run(['host', 'status', '--json', '--url', old.host.controlUrl.href, ...oldKey]);
  assert.equal((JSON.parse(oldStatus.stdout) as { capsules: { state: string }[] }).capsules[0]?.state, 'stopped');
  // The uninstall it suggests for the old host runs as printed.
  const suggested = /\n {2}stratum host uninstall (.*)\n$/.exec(moved.stdout)?.[1];
  assert.equal(suggested, `counter --delete-data --url ${old.host.controlUrl.href} --key ${join(old.dir, 'operator.key')}`);
  const uninstalled = await run(['host', 'uninstall', ...(suggested ?? '').split(' ')]);
  assert.equal(uninstalled.code, 0, uninstalled.stderr);

  const unknown = await run(['host', 'move', 'nothing', capsule, ...sides]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no capsule named "nothing"/);
});

test('host export writes a store to a snapshot file, and host import puts it back into a stopped capsule', async (t) => {
  const host = await hostWithOperatorKey(t);
  const capsule = await builtExampleCopy('counter', host.dir);
  const control = ['--url', host.host.controlUrl.href, '--key', join(host.dir, 'operator.key')];
  assert.equal((await run(['host', 'install', capsule, '-d', 'counter.example', ...control])).code, 0);
  const url = new URL('/a', host.host.ingressUrl);
  for (const count of [1, 2]) assert.equal((JSON.parse(await ingressBody(url, 'counter.example')) as { count: number }).count, count);

  const file = join(host.dir, 'backup.jsonl');
  // A store the manifest does not grant is said alone, not after a note that the capsule is serving.
  const ungranted = await run(['host', 'export', 'counter', 'sql/default', '--out', join(host.dir, 'no.jsonl'), ...control]);
  assert.equal(ungranted.code, 1);
  assert.match(ungranted.stderr, /^error: counter's manifest grants no sql label "default"/);
  const exported = await run(['host', 'export', 'counter', 'keyvalue/default', '--out', file, ...control]);
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stdout, /^exported counter's keyvalue\/default: 1 record, \d+ B to .*backup\.jsonl\n/);
  // A customer's data, whatever the umask: the operator's alone.
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.match(exported.stderr, /counter is serving; the snapshot may mix writes/);
  assert.match(await readFile(file, 'utf8'), /^\{"stratum-snapshot":1,"capability":"keyvalue","label":"default",/);
  // To standard output, for a pipe: the snapshot alone there, what is said of it on stderr.
  const piped = await run(['host', 'export', 'counter', 'keyvalue/default', '--out', '-', ...control]);
  assert.equal(piped.code, 0, piped.stderr);
  assert.match(piped.stderr, /exported counter's keyvalue\/default: 1 record, \d+ B\n/);
  const recordsOf = (text: string) => text.split('\n').filter((line) => line.startsWith('{"key"'));
  assert.deepEqual(recordsOf(piped.stdout), recordsOf(await readFile(file, 'utf8')));
  assert.match(piped.stdout, /\{"end":\{"records":1,"sha256":"[0-9a-f]{64}"\}\}\n$/);

  // Counted on after the backup, then put back to it.
  assert.equal((JSON.parse(await ingressBody(url, 'counter.example')) as { count: number }).count, 3);
  const running = await run(['host', 'import', 'counter', 'keyvalue/default', file, ...control]);
  assert.equal(running.code, 1);
  assert.match(running.stderr, /counter is running; its state cannot be replaced under it/);
  assert.match(
    running.stderr,
    /hint: Take it out of service first: `stratum host drain counter [^`]*`, import, then `stratum host serve counter/,
  );
  assert.equal((await run(['host', 'drain', 'counter', ...control])).code, 0);
  const imported = await run(['host', 'import', 'counter', 'keyvalue/default', file, ...control]);
  assert.equal(imported.code, 0, imported.stderr);
  assert.equal(imported.stdout, "imported 1 record into counter's keyvalue/default\n");
  // As JSON, for a registrar's scripts, as the other host commands give it.
  assert.equal((await run(['host', 'drain', 'counter', ...control])).code, 0);
  const importedJson = await run(['host', 'import', 'counter', 'keyvalue/default', file, '--json', ...control]);
  assert.equal(importedJson.code, 0, importedJson.stderr);
  assert.deepEqual(JSON.parse(importedJson.stdout), {
    capsule: 'counter',
    capability: 'keyvalue',
    label: 'default',
    records: 1,
    skipped: 0,
  });
  const exportedJson = await run([
    'host',
    'export',
    'counter',
    'keyvalue/default',
    '--out',
    join(host.dir, 'again.jsonl'),
    '--json',
    ...control,
  ]);
  assert.equal(exportedJson.code, 0, exportedJson.stderr);
  const written = JSON.parse(exportedJson.stdout) as { records: number; bytes: number; file: string };
  assert.deepEqual(
    { ...written, bytes: 0 },
    { capsule: 'counter', capability: 'keyvalue', label: 'default', records: 1, bytes: 0, file: join(host.dir, 'again.jsonl') },
  );
  assert.equal(written.bytes, (await stat(join(host.dir, 'again.jsonl'))).size);
  assert.equal((await run(['host', 'export', 'counter', 'keyvalue/default', '--out', '-', '--json', ...control])).code, 2);
  assert.equal((await run(['host', 'serve', 'counter', ...control])).code, 0);
  assert.equal((JSON.parse(await ingressBody(url, 'counter.example')) as { count: number }).count, 3);

  const notAStore = await run(['host', 'export', 'counter', 'keyvalue', ...control]);
  assert.equal(notAStore.code, 2);
  assert.match(notAStore.stderr, /"keyvalue" is not a store: give <capability>\/<label>/);
  const damaged = join(host.dir, 'damaged.jsonl');
  await writeFile(damaged, (await readFile(file, 'utf8')).replace('"records":1', '"records":2'));
  assert.equal((await run(['host', 'drain', 'counter', ...control])).code, 0);
  const refused = await run(['host', 'import', 'counter', 'keyvalue/default', damaged, ...control]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /key-value snapshot line 3: the trailer counts 2 records, the snapshot has 1/);
});

test("host install --dns publishes the domain's link before the start, host move --dns points it at the new host; a refused update changes nothing", async (t) => {
  const secret = randomBytes(32).toString('base64');
  const dns = await startEmbeddedDnsServer({ zones: ['shop.net'], updateKeys: [{ name: 'stratum-update', secret }] });
  t.after(() => dns.stop());
  const dir = await mkdtemp(join(tmpdir(), 'stratum-cli-move-dns-'));
  const registrar = await generateEd25519KeyPair();
  await writeKeyFile(join(dir, 'registrar.key'), registrar.privateJwk);
  // Two hosts that check domain links (the default) through the zone's server.
  const hosts = [];
  for (const name of ['h1.hosting.net', 'h2.hosting.net']) {
    await mkdir(join(dir, name));
    const tables = `[discovery]\nresolver = "${dns.address}"\n`;
    const { path, text } = await writeTestHost(join(dir, name), {
      name,
      registrar: registrar.publicJwk.x,
      registrarDomain: 'registrar.net',
      tables,
    });
    const host = await startHost(parseHostConfig(text, path), { pullComponent: false });
    t.after(() => host.close());
    hosts.push(host);
  }
  // After the hosts have closed: their capsule threads write V8's code cache as they end.
  t.after(() => removeDir(dir));
  const [old, next] = hosts as [Awaited<ReturnType<typeof startHost>>, Awaited<ReturnType<typeof startHost>>];
  const capsule = await builtExampleCopy('counter', dir);
  const digest = `sha256:${createHash('sha256')
    .update(await readFile(join(capsule, 'dist', 'counter.wasm')))
    .digest('hex')}`;
  const domain = 'counter.shop.net';
  const key = ['--key', join(dir, 'registrar.key')];
  const resolver = new DiscoveryResolver({ servers: [dns.address] });
  const linkTo = (host: string) => ({ version: 'stratum1', host, capsule: digest, registrar: 'registrar.net' });
  const zone = ['--dns', dns.address, '--zone', 'shop.net'];
  // Knot's keymgr writes the key so.
  await writeFile(join(dir, 'update.key'), `key:\n  - id: stratum-update\n    algorithm: hmac-sha256\n    secret: ${secret}\n`);
  const signed = [...zone, '--tsig-key', join(dir, 'update.key')];
  // The install publishes the link, then starts it. With --url no host.toml names the registrar,
  // and there is no link to take it from: the host says which registrar its check expects.
  const install = ['host', 'install', capsule, '-d', domain, '--url', old.controlUrl.href, ...key, ...signed];
  const installed = await run(install);
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(installed.stderr, /pointing counter\.shop\.net at h1\.hosting\.net on [\d.:]+\n/);
  assert.deepEqual(await resolver.domainLink(domain), linkTo('h1.hosting.net'));
  assert.equal(await resolver.cname(domain), 'h1.hosting.net');
  const count = async (host: typeof old) =>
    (JSON.parse(await ingressBody(new URL('/a', host.ingressUrl), domain)) as { count: number }).count;
  assert.equal(await count(old), 1);

  const move = ['host', 'move', 'counter', capsule, '--from-url', old.controlUrl.href, '--to-url', next.controlUrl.href, ...key];
  // A key the server does not know: found by an update that changes nothing, before the install and the drain.
  await writeFile(join(dir, 'wrong.key'), `hmac-sha256:stratum-update:${randomBytes(32).toString('base64')}\n`);
  const refused = await run([...move, ...zone, '--tsig-key', join(dir, 'wrong.key')]);
  assert.equal(refused.code, 1);
  assert.equal(
    refused.stderr,
    `error: ${dns.address} refused the update to shop.net: the TSIG signature is wrong\n  response code NOTAUTH, TSIG BADSIG\n` +
      '  nothing was changed: counter serves from the old host as before\nhint: Check the secret of key stratum-update.\n',
  );
  assert.equal((await resolver.domainLink(domain))?.host, 'h1.hosting.net');
  assert.equal(await count(old), 2);

  // Links naming a registrar the new host does not check them against: its start would refuse
  // them, which it says before the drain (GET /links names the registrar it expects), not after
  // the drain, the copy and the DNS switch.
  const misnamed = await run([...move, ...signed, '--registrar', 'elsewhere.net']);
  assert.equal(misnamed.code, 1);
  assert.equal(
    misnamed.stderr,
    'error: h2.hosting.net checks the links of the key that signs there against registrar registrar.net, not elsewhere.net (--registrar): its start would refuse links naming elsewhere.net\n' +
      '  nothing was changed: counter serves from the old host as before\n' +
      "hint: Leave out --registrar (the links then name registrar.net), or sign with the key of elsewhere.net's registrar that h2.hosting.net trusts (--to-key).\n",
  );
  assert.deepEqual(await resolver.domainLink(domain), linkTo('h1.hosting.net'));
  assert.equal(await resolver.cname(domain), 'h1.hosting.net');
  assert.equal(await count(old), 3);
  // Without --dns, the same, found before the drain (the new host is asked what its start would
  // find), and the option that would have published it.
  const unlinked = await run(move);
  assert.equal(unlinked.code, 1);
  assert.match(unlinked.stderr, /\nasking the new host whether counter\.shop\.net links to it, as its start will check\n/);
  assert.doesNotMatch(unlinked.stderr, /draining|copying/);
  assert.match(
    unlinked.stderr,
    /\nerror: moving counter failed; it never stopped serving on h1\.hosting\.net\n {2}counter would not be served on h2\.hosting\.net: its domains do not link to it\n {2}_stratum\.counter\.shop\.net names host h1\.hosting\.net, not this host \(h2\.hosting\.net\)\n/,
  );
  assert.match(
    unlinked.stderr,
    /\nhint: Publish in each domain's zone, .*:\n_stratum\.counter\.shop\.net\. \d+ IN TXT "v=stratum1" "host=h2\.hosting\.net" /,
  );
  assert.match(
    unlinked.stderr,
    /\nOr run the move with --dns <ip:port> --zone <zone> --tsig-key <file>: it points the links at the new host/,
  );
  assert.equal(await count(old), 4);

  const moved = await run([...move, ...signed]);
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(
    moved.stdout,
    /^moved counter to the new host: running, serving counter\.shop\.net; .*\nIts domains' links name the new host now/,
  );
  assert.deepEqual(await resolver.domainLink(domain), linkTo('h2.hosting.net'));
  assert.equal(await resolver.cname(domain), 'h2.hosting.net');
  assert.equal(await count(next), 5);
  assert.equal(await ingressStatus(old.ingressUrl, domain), 503);

  const orphan = await run([...move, '--zone', 'shop.net']);
  assert.equal(orphan.code, 2);
  assert.match(orphan.stderr, /--zone goes with --dns/);
});

test('host install without a domain or with a capsule-scoped --var, host logs with bad --lines, host usage with a bad period: usage errors', async () => {
  const noDomain = await run(['host', 'install', '--url', 'http://127.0.0.1:1/v1', '--key', 'k.json']);
  assert.equal(noDomain.code, 2);
  assert.match(noDomain.stderr, /--domain is required/);
  const scoped = await run([
    'host',
    'install',
    '-d',
    'a.example',
    '--var',
    'notes:title=x',
    '--url',
    'http://127.0.0.1:1/v1',
    '--key',
    'k.json',
  ]);
  assert.equal(scoped.code, 2);
  assert.match(scoped.stderr, /write --var title=\.\.\./);
  const dnsNoStart = await run([
    ...['host', 'install', '-d', 'a.example', '--no-start', '--dns', '127.0.0.1:53', '--zone', 'example'],
    ...['--url', 'http://127.0.0.1:1/v1', '--key', 'k.json'],
  ]);
  assert.equal(dnsNoStart.code, 2);
  assert.match(dnsNoStart.stderr, /--dns points the domains at a capsule it starts: leave out --no-start, or --dns/);
  const zoneAlone = await run([
    'host',
    'install',
    '-d',
    'a.example',
    '--zone',
    'example',
    '--url',
    'http://127.0.0.1:1/v1',
    '--key',
    'k.json',
  ]);
  assert.equal(zoneAlone.code, 2);
  assert.match(zoneAlone.stderr, /--zone goes with --dns/);
  const lines = await run(['host', 'logs', 'hello', '--lines', 'all', '--url', 'http://127.0.0.1:1/v1', '--key', 'k.json']);
  assert.equal(lines.code, 2);
  assert.match(lines.stderr, /--lines all: give a whole number from 0 to 10000/);
  const month = await run(['host', 'usage', '--month', '2026-13', '--url', 'http://127.0.0.1:1/v1', '--key', 'k.json']);
  assert.equal(month.code, 2);
  assert.match(month.stderr, /--month 2026-13: give a month as YYYY-MM/);
  const since = await run(['host', 'usage', '--since', 'yesterday', '--url', 'http://127.0.0.1:1/v1', '--key', 'k.json']);
  assert.equal(since.code, 2);
  assert.match(since.stderr, /--since yesterday: give a date or an RFC 3339 date-time/);
});

test('a host that is not there is named, with the reason, not reported as a bug', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-cli-nohost-'));
  t.after(() => removeDir(dir));
  await writeKeyFile(join(dir, 'operator.key'), (await generateEd25519KeyPair()).privateJwk);
  // A port that was free a moment ago: nothing listens there.
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const result = await run([
    'host',
    'status',
    '--url',
    `http://127.0.0.1:${port}/v1`,
    '--audience',
    'h1',
    '--key',
    join(dir, 'operator.key'),
  ]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`cannot reach the control API at http://127\\.0\\.0\\.1:${port}/v1\\n  connect ECONNREFUSED`));
  assert.doesNotMatch(result.stderr, /bug in Stratum/);
});

test('host status without --key is a usage error', async () => {
  const result = await run(['host', 'status', '--url', 'http://127.0.0.1:1/v1']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--key is required/);
});

test('host start refuses an invalid host.toml with file:line:col errors', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-cli-host-'));
  t.after(() => removeDir(dir));
  const config = join(dir, 'host.toml');
  await writeFile(
    config,
    'stratum = 1\n[host]\nname = "h"\nkey = "k"\ndata = "d"\nport = 80\n[registrars.r]\nkey = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"\n',
  );
  const result = await run(['host', 'start', '--config', config, '--log-format', 'pretty']);
  assert.equal(result.code, 1);
  assert.equal(result.stderr, `${config}:6:1: unknown key "port" in [host] (known: name, key, data)\n`);
  assert.equal((await run(['host', 'start', '--config', config, '--log-format', 'xml'])).code, 2);
});

test("host start checks each capability's tables before it starts anything", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-cli-host-'));
  t.after(() => removeDir(dir));
  const config = join(dir, 'host.toml');
  await writeFile(
    config,
    `stratum = 1
[host]
name = "h"
key = "missing.key"
data = "d"
[registrars.r]
key = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
[sql.default]
type = "postgress"
url = "postgres://127.0.0.1/x"
[keyvalue.cache]
type = "redis"
`,
  );
  const result = await run(['host', 'start', '--config', config, '--log-format', 'pretty']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /has capability settings this host cannot use/);
  // At the line of what each names: the key when it is written, else its table.
  assert.match(result.stderr, /host\.toml:9:1: \[sql\.default\].*postgress.*did you mean "postgres"/);
  assert.match(result.stderr, /host\.toml:11:1: \[keyvalue\.cache\] url must be a redis:\/\/ URL/);
});

test('with tls_cert and tls_key the control API speaks HTTPS, and host status reaches it', async (t) => {
  const openssl = spawnSync('openssl', ['version']);
  if (openssl.status !== 0) {
    t.skip('openssl is not installed; it makes the test certificate');
    return;
  }
  const { dir, closing } = await testDir(t, 'stratum-cli-tls-');
  const made = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ed25519',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ].concat(['-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.pem')]),
  );
  assert.equal(made.status, 0, made.stderr.toString());
  const operator = await generateEd25519KeyPair();
  await writeKeyFile(join(dir, 'operator.key'), operator.privateJwk);
  const { path, text } = await writeTestHost(dir, {
    name: 'h1.example.net',
    registrar: operator.publicJwk.x,
    registrarName: 'operator',
    control: 'tls_cert = "tls.pem"\ntls_key = "tls.key"',
  });
  const host = closing(await startHost(parseHostConfig(text, path), { pullComponent: false }));
  assert.equal(host.controlUrl.protocol, 'https:');
  const cli = fileURLToPath(new URL('../packages/cli/bin/stratum.js', import.meta.url));
  const child = spawn(
    process.execPath,
    [cli, 'host', 'status', '--url', host.controlUrl.href, '--audience', 'h1.example.net', '--key', join(dir, 'operator.key')],
    {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'tls.pem') },
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^h1\.example\.net {2}stratum-host /);
});

test('host start says which address it cannot listen on', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-cli-host-'));
  t.after(() => removeDir(dir));
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => busy.close(() => resolve())));
  const port = (busy.address() as AddressInfo).port;
  await writeKeyFile(join(dir, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const config = join(dir, 'host.toml');
  await writeFile(
    config,
    `stratum = 1
[host]
name = "h"
key = "host.key"
data = "data"
[ingress]
listen = "127.0.0.1:${port}"
[registrars.r]
key = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
`,
  );
  const result = await run(['host', 'start', '--config', config, '--log-format', 'pretty']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`the ingress cannot listen on 127\\.0\\.0\\.1:${port}`));
  assert.match(result.stderr, /another process listens there/);
});

test('host logs --follow goes on across a restart of the host: it says the stream ended, connects again, and prints the new lines once', async (t) => {
  const { dir, closing } = await testDir(t, 'stratum-cli-follow-');
  const operator = await generateEd25519KeyPair();
  const keyFile = join(dir, 'operator.key');
  await writeKeyFile(keyFile, operator.privateJwk);
  const { path, text } = await writeTestHost(dir, { name: 'h1.example.net', registrar: operator.publicJwk.x, registrarName: 'operator' });
  // The same control address for both runs, as a restarted host has.
  const fixed = text.replace(/\[control\]\nlisten = "127\.0\.0\.1:0"/, `[control]\nlisten = "127.0.0.1:${await freePort()}"`);
  await writeFile(path, fixed);
  const first = await startHost(parseHostConfig(fixed, path), { pullComponent: false });
  const control = ['--url', first.controlUrl.href, '--audience', 'h1.example.net', '--key', keyFile];
  const client = createControlClient({ url: first.controlUrl.href, key: await readKeyFile(keyFile), audience: 'h1.example.net' });
  const tiny = await buildTiny();
  await client.install({ name: 'tiny', manifest: tinyManifest(tiny), component: await readFile(tiny), domains: ['tiny.test'] });

  const { follower, exited, stdout, stderr, messages, until } = followLogs(t, 'tiny', control);
  await until('backlog', () => messages().includes('started'));

  await first.close();
  await until('notice of the ended stream', () => stderr().includes('the log stream ended'));
  const second = closing(await startHost(parseHostConfig(fixed, path), { pullComponent: false }));
  await until('reconnection', () => stderr().includes('connected again'));
  await second.runtime.stop('tiny');
  await until('the new host’s line', () => messages().includes('stopped'));

  const lines = stdout().trim().split('\n');
  assert.equal(new Set(lines).size, lines.length, `a line printed twice:\n${stdout()}`);
  follower.kill('SIGINT');
  assert.equal(await exited, 0, stderr());
  assert.doesNotMatch(stderr(), /bug in Stratum/);
});

test("host logs --follow goes on across a reinstall with the new build's lines, and says so when the capsule is uninstalled", async (t) => {
  const { dir } = await testDir(t, 'stratum-cli-follow-');
  const operator = await generateEd25519KeyPair();
  const keyFile = join(dir, 'operator.key');
  await writeKeyFile(keyFile, operator.privateJwk);
  const { path, text } = await writeTestHost(dir, { name: 'h1.example.net', registrar: operator.publicJwk.x, registrarName: 'operator' });
  const host = await startHost(parseHostConfig(text, path), { pullComponent: false });
  t.after(() => host.close());
  const control = ['--url', host.controlUrl.href, '--audience', 'h1.example.net', '--key', keyFile];
  const client = createControlClient({ url: host.controlUrl.href, key: await readKeyFile(keyFile), audience: 'h1.example.net' });
  const install = async (wasm: string) =>
    client.install({
      name: 'app',
      manifest: tinyManifest(wasm).replace('"tiny"', '"app"'),
      component: await readFile(wasm),
      domains: ['app.test'],
    });
  await install(await buildTiny());

  const { exited, stderr, messages, until } = followLogs(t, 'app', control);
  await until('backlog', () => messages().includes('started'));

  // A new build replaces the running one; a request of its hits a limit.
  const trap = await buildHostile('trap');
  const { digest } = await install(trap);
  await until('the new build’s install', () => messages().some((message) => message.includes(digest)));
  assert.equal(await ingressStatus(host.ingressUrl, 'app.test'), 500);
  await until('the new build’s limit hit', () => messages().some((message) => message.startsWith('limit hit (trap)')));

  await client.uninstall('app');
  assert.equal(await exited, 0, stderr());
  assert.equal(messages().at(-1), 'uninstalled');
  assert.match(stderr(), /the log stream ended: app is not installed on the host any more/);
  assert.deepEqual(
    messages().filter((message) => message === 'started'),
    ['started', 'started'],
    'the backlog came once',
  );
});

test('host logs prints every line the host sends, the same line written again in the same millisecond too', async (t) => {
  const { dir, host } = await hostWithOperatorKey(t);
  const keyFile = join(dir, 'operator.key');
  const control = ['--url', host.controlUrl.href, '--key', keyFile];
  const client = createControlClient({ url: host.controlUrl.href, key: await readKeyFile(keyFile), audience: 'h1.example.net' });
  // Each request of chatty writes 1024 lines alike, as console.log('again') in a loop, or a stack's repeated frames.
  const chatty = await buildHostile('chatty');
  await client.install({
    name: 'chatty',
    manifest: tinyManifest(chatty).replace('"tiny"', '"chatty"'),
    component: await readFile(chatty),
    domains: ['chatty.test'],
  });
  assert.equal(await ingressStatus(host.ingressUrl, 'chatty.test'), 200);
  const sent: CapsuleLogEntry[] = [];
  const ids: (string | undefined)[] = [];
  const backlog = new AbortController();
  await client.logs(
    'chatty',
    (entry, id) => {
      sent.push(entry);
      ids.push(id);
    },
    { backlog: 1000, signal: backlog.signal, onLive: () => backlog.abort() },
  );
  const twice = sent.findIndex((entry, index) => index > 0 && JSON.stringify(entry) === JSON.stringify(sent[index - 1]));
  assert.ok(twice > 0, 'the host sent the same line twice in one millisecond');

  // Each line has its own id, `<epoch>-<n>`: one epoch, n increasing.
  const parsed = ids.map((id) => /^(\d+)-(\d+)$/.exec(id ?? '') ?? assert.fail(`line id ${id}`));
  assert.equal(new Set(parsed.map((match) => match[1])).size, 1);
  assert.ok(parsed.every((match, index) => index === 0 || Number(match[2]) > Number(parsed[index - 1]?.[2])));
  // A stream opened again after the first of the two lines alike sends the lines after it, the second first.
  const after = async (lastEventId: string) => {
    const again: [CapsuleLogEntry, string | undefined][] = [];
    const stream = new AbortController();
    await client.logs('chatty', (entry, id) => again.push([entry, id]), {
      backlog: 1000,
      lastEventId,
      signal: stream.signal,
      onLive: () => stream.abort(),
    });
    return again;
  };
  const pairs = sent.map((entry, index): [CapsuleLogEntry, string | undefined] => [entry, ids[index]]);
  assert.deepEqual(await after(ids[twice - 1] ?? ''), pairs.slice(twice));
  // After the last line, none; after a line of a host process before this one, all it keeps.
  assert.deepEqual(await after(ids.at(-1) ?? ''), []);
  assert.deepEqual(await after(`${Number(parsed[0]?.[1]) - 1}-${parsed.at(-1)?.[2]}`), pairs);

  const json = await run(['host', 'logs', 'chatty', '--lines', '1000', '--json', ...control]);
  assert.equal(json.code, 0, json.stderr);
  const printed = json.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as CapsuleLogEntry & { id?: string });
  assert.equal(printed.length, sent.length, 'a line the host sent was left out');
  // Each with its id, for a follower started again to resume after.
  assert.deepEqual(
    printed,
    pairs.map(([entry, id]) => ({ ...entry, id })),
  );
  const resumed = await run(['host', 'logs', 'chatty', '--json', '--after', ids[twice - 1] ?? '', ...control]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(
    resumed.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as unknown),
    pairs.slice(twice).map(([entry, id]) => ({ ...entry, id })),
  );
  const badAfter = await run(['host', 'logs', 'chatty', '--after', 'yesterday', ...control]);
  assert.equal(badAfter.code, 2);
  assert.match(badAfter.stderr, /--after yesterday: give a line's id as --json prints it/);
  const text = await run(['host', 'logs', 'chatty', '--lines', '1000', ...control]);
  assert.equal(text.code, 0, text.stderr);
  // A terminal line for each line of each message.
  assert.equal(
    text.stdout.trim().split('\n').length,
    sent.map((entry) => entry.message.split('\n').length).reduce((sum, lines) => sum + lines, 0),
  );
});

/** `stratum host logs <name> --follow --json` in a process of its own: what it printed, and a way to wait for a line. */
function followLogs(t: TestContext, name: string, control: string[]) {
  const follower = spawn(process.execPath, [launcher, 'host', 'logs', name, '--follow', '--json', ...control], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => follower.once('exit', resolve));
  t.after(() => follower.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  follower.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  follower.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const messages = () =>
    stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as { message: string }).message);
  const until = async (what: string, check: () => boolean) => {
    for (const deadline = Date.now() + 60_000; !check(); await setTimeout(50)) {
      if (Date.now() > deadline) assert.fail(`no ${what}; stdout: ${stdout}; stderr: ${stderr}`);
    }
  };
  return { follower, exited, stdout: () => stdout, stderr: () => stderr, messages, until };
}

function tinyManifest(wasmPath: string): string {
  return `stratum = 1\n[capsule]\nname = "tiny"\nversion = "0.1.0"\n[source]\nwasm = "${wasmPath.split('/').at(-1)}"\n`;
}

test("host uninstall --delete-data deletes what the capsule stored, so that the name holds nothing of its registrar's", async (t) => {
  const [alice, bob] = [await generateEd25519KeyPair(), await generateEd25519KeyPair()];
  const host = await hostWithOperatorKey(
    t,
    async (dir) => {
      await writeKeyFile(join(dir, 'alice.key'), alice.privateJwk);
      await writeKeyFile(join(dir, 'bob.key'), bob.privateJwk);
    },
    `[registrars.alice]\nkey = "${alice.publicJwk.x}"\n[registrars.bob]\nkey = "${bob.publicJwk.x}"\n`,
  );
  const capsule = await builtExampleCopy('counter', host.dir);
  const as = (who: string) => ['--url', host.host.controlUrl.href, '--key', join(host.dir, `${who}.key`)];
  const url = new URL('/a', host.host.ingressUrl);
  const count = async () => (JSON.parse(await ingressBody(url, 'counter.example')) as { count: number }).count;

  assert.equal((await run(['host', 'install', capsule, '-d', 'counter.example', ...as('alice')])).code, 0);
  assert.deepEqual([await count(), await count()], [1, 2]);
  // Uninstalled, the data stays alice's: installed again by her, it counts on; bob may not take the name.
  // The uninstall says so, naming the store and how to delete it.
  const plain = await run(['host', 'uninstall', 'counter', ...as('alice')]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(
    plain.stdout,
    `uninstalled counter; its data stays on the host under the name (keyvalue/default), for an install of counter by the same registrar to find again. To delete it for good: stratum host uninstall counter --delete-data ${as('alice').join(' ')}\n`,
  );
  assert.match((await run(['host', 'install', capsule, '-d', 'counter.example', ...as('bob')])).stderr, /whose data the name still holds/);
  // She is told that it finds the kept data, and how to start empty instead.
  const again = await run(['host', 'install', capsule, '-d', 'counter.example', ...as('alice')]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(
    again.stderr,
    /note: counter finds the data kept under its name since it was uninstalled on \d{4}-\d\d-\d\dT[^;]+; to start empty instead: stratum host uninstall counter --delete-data/,
  );
  assert.equal(await count(), 3);

  const deleted = await run(['host', 'uninstall', 'counter', '--delete-data', '--json', ...as('alice')]);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.deepEqual(JSON.parse(deleted.stdout), { uninstalled: 'counter', dataDeleted: true, deleted: ['keyvalue/default'] });
  // Nothing of alice's is left under the name: bob installs it, and it counts from the start.
  const taken = await run(['host', 'install', capsule, '-d', 'counter.example', ...as('bob')]);
  assert.equal(taken.code, 0, taken.stderr);
  assert.doesNotMatch(taken.stderr, /data kept/);
  assert.equal(await count(), 1);
  // What a plain uninstall kept is deleted without installing the name again.
  const keeping = await run(['host', 'uninstall', 'counter', '--json', ...as('bob')]);
  assert.equal(keeping.code, 0, keeping.stderr);
  assert.deepEqual(JSON.parse(keeping.stdout), { uninstalled: 'counter', dataDeleted: false, kept: ['keyvalue/default'] });
  const kept = await run(['host', 'uninstall', 'counter', '--delete-data', ...as('bob')]);
  assert.equal(kept.code, 0, kept.stderr);
  assert.equal(kept.stdout, 'deleted the data counter kept since it was uninstalled (keyvalue/default)\n');
  const fresh = await run(['host', 'install', capsule, '-d', 'counter.example', ...as('alice')]);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.equal(await count(), 1);
});
