// `stratum host install` over an installation keeps its config values (spec/host-api.md section
// 5.1, `keepConfig`), against a real host whose capsule answers with the values it reads.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import { startEmbeddedDnsServer } from '@stratum/discovery';
import { parseHostConfig, startHost } from '@stratum/host';
import { nestedPackage } from '../examples/tiny/build.ts';
import { runCli as run } from './support/cli.ts';
import { writeTestHost } from './support/host-dir.ts';
import { ingressGet } from './support/ingress.ts';
import { testDir } from './support/temp.ts';
import { buildWat } from './support/tiny.ts';

/**
 * A capsule that answers every request with the config values it reads (wasi:config/store's
 * get-all), a `name=value` line each, as the host sorts them: what it runs with, secrets included.
 */
const CONFIG_ECHO = `(module
  (import "cm32p2|wasi:config/store@0.2.0-draft" "get-all" (func $get_all (param i32)))
  (import "cm32p2|wasi:http/types@0.2" "[constructor]fields" (func $fields_new (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[constructor]outgoing-response" (func $response_new (param i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-response.body" (func $response_body (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-body.write" (func $body_write (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[static]outgoing-body.finish" (func $body_finish (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[static]response-outparam.set"
    (func $outparam_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "incoming-request_drop" (func $request_drop (param i32)))
  (import "cm32p2|wasi:io/streams@0.2" "[method]output-stream.blocking-write-and-flush"
    (func $write (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:io/streams@0.2" "output-stream_drop" (func $stream_drop (param i32)))

  (memory (export "cm32p2_memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (global $stream (mut i32) (i32.const 0))
  ;; 0..63: return areas; 64: get-all's result (tag at 64, list at 68 and 72); 1024: text.
  (data (i32.const 1024) "=\\nconfig error\\n")

  (func (export "cm32p2_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                            (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $at) (local.get $size)))
    (local.get $at))

  (func (export "cm32p2_initialize"))

  (func $emit (param $ptr i32) (param $len i32)
    (call $write (global.get $stream) (local.get $ptr) (local.get $len) (i32.const 16)))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle") (param $request i32) (param $outparam i32)
    (local $response i32) (local $body i32) (local $pair i32) (local $end i32)
    (call $request_drop (local.get $request))
    (local.set $response (call $response_new (call $fields_new)))
    (call $response_body (local.get $response) (i32.const 0))
    (local.set $body (i32.load (i32.const 4)))
    (call $body_write (local.get $body) (i32.const 0))
    (global.set $stream (i32.load (i32.const 4)))
    (call $outparam_set (local.get $outparam) (i32.const 0) (local.get $response)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $get_all (i32.const 64))
    (if (i32.load8_u (i32.const 64))
      (then (call $emit (i32.const 1026) (i32.const 13)))
      (else
        ;; Each tuple<string, string> is four i32s: the name's pointer and length, the value's.
        (local.set $pair (i32.load (i32.const 68)))
        (local.set $end (i32.add (local.get $pair) (i32.mul (i32.load (i32.const 72)) (i32.const 16))))
        (block $done
          (loop $pairs
            (br_if $done (i32.ge_u (local.get $pair) (local.get $end)))
            (call $emit (i32.load (local.get $pair)) (i32.load offset=4 (local.get $pair)))
            (call $emit (i32.const 1024) (i32.const 1))
            (call $emit (i32.load offset=8 (local.get $pair)) (i32.load offset=12 (local.get $pair)))
            (call $emit (i32.const 1025) (i32.const 1))
            (local.set $pair (i32.add (local.get $pair) (i32.const 16)))
            (br $pairs)))))
    (call $stream_drop (global.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 32))))
`;

const CONFIG_ECHO_WORLD = `package stratum:tiny;
world tiny {
  import wasi:config/store@0.2.0-draft;
  export wasi:http/incoming-handler@0.2.10;
}
${nestedPackage('wasi-config/package.wit')}`;

/** The pastebin of the report: 0.1.0 declares theme, 0.2.0 no longer does; api_key is a required secret. */
function manifest(version: string): string {
  return [
    'stratum = 1',
    '[capsule]',
    'name = "pastebin"',
    `version = "${version}"`,
    '[source]',
    'wasm = "pastebin.wasm"',
    '[capabilities.config.site_name]',
    'default = "Pastebin"',
    '[capabilities.config.api_key]',
    'secret = true',
    'required = true',
    ...(version === '0.1.0' ? ['[capabilities.config.theme]'] : []),
    '[http]',
    'routes = ["/*"]',
    '',
  ].join('\n');
}

/** Two directories of the capsule, 0.1.0 and 0.2.0, as a user upgrading has them. */
async function pastebins(dir: string): Promise<{ v1: string; v2: string }> {
  const component = await buildWat(join(dir, 'config-echo.wat'), CONFIG_ECHO_WORLD);
  const dirs = { v1: join(dir, 'pastebin-0.1.0'), v2: join(dir, 'pastebin-0.2.0') };
  for (const [version, at] of [
    ['0.1.0', dirs.v1],
    ['0.2.0', dirs.v2],
  ] as const) {
    await mkdir(at);
    await writeFile(join(at, 'stratum.toml'), manifest(version));
    await copyFile(component, join(at, 'pastebin.wasm'));
  }
  return dirs;
}

/** A test's directory with the two pastebins and a registrar key. */
async function setup(t: TestContext) {
  const { dir, closing } = await testDir(t, 'stratum-keep-config-');
  await writeFile(join(dir, 'config-echo.wat'), CONFIG_ECHO);
  const operator = await generateEd25519KeyPair();
  const key = join(dir, 'operator.key');
  await writeKeyFile(key, operator.privateJwk);
  /** A host that trusts the key as its operator's. */
  const startTestHost = async () => {
    const { path, text } = await writeTestHost(dir, { name: 'h1.example.net', registrar: operator.publicJwk.x, operator: true });
    return closing(await startHost(parseHostConfig(text, path), { pullComponent: false }));
  };
  return { dir, key, registrar: operator.publicJwk.x, closing, startTestHost, ...(await pastebins(dir)) };
}

test('host install over an installation keeps the config values it is not given, names them, and drops those the new manifest no longer declares; --reset-config keeps none', async (t) => {
  const { dir, key, startTestHost, v1, v2 } = await setup(t);
  const host = await startTestHost();
  const onHost = ['-d', 'paste.example', '--url', host.controlUrl.href, '--key', key];
  const served = async () => {
    const answer = await ingressGet(host.ingressUrl, 'paste.example');
    assert.equal(answer.status, 200, answer.body);
    return answer.body;
  };
  // The secret comes from a file, the rest from the command line.
  const prod = join(dir, 'prod.env');
  await writeFile(prod, 'api_key=k-prod\n');
  const first = await run(['host', 'install', v1, '--var-file', prod, '--var', 'site_name=Prod Paste', '--var', 'theme=dark', ...onHost]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(await served(), 'api_key=k-prod\nsite_name=Prod Paste\ntheme=dark\n');

  // The report's upgrade: only the --var-file. site_name keeps its value; 0.2.0 has no theme.
  const upgrade = await run(['host', 'install', v2, '--var-file', prod, ...onHost]);
  assert.equal(upgrade.code, 0, upgrade.stderr);
  assert.match(upgrade.stderr, /^replacing pastebin 0\.1\.0 \(running, serving paste\.example\) with 0\.2\.0, .* on h1\.example\.net\n/);
  assert.match(
    upgrade.stderr,
    /\nkept the config values pastebin had for site_name, which this install does not give \(--reset-config drops them\)\n/,
  );
  assert.match(upgrade.stderr, /\nnote: 0\.2\.0 no longer declares theme, which pastebin had a value for: that value is dropped\n/);
  assert.match(upgrade.stdout, /^installed pastebin 0\.2\.0 /);
  assert.equal(await served(), 'api_key=k-prod\nsite_name=Prod Paste\n');

  // A deploy without the secret at hand: it keeps it too, and says it is one, never what it is.
  const bare = await run(['host', 'install', v2, ...onHost, '--json']);
  assert.equal(bare.code, 0, bare.stderr);
  assert.match(bare.stderr, /\nkept the config values pastebin had for api_key \(secret\), site_name, which this install does not give/);
  assert.doesNotMatch(`${bare.stdout}${bare.stderr}`, /k-prod/);
  const answer = JSON.parse(bare.stdout) as { keptConfig?: string[]; droppedConfig?: string[]; config?: string[] };
  assert.deepEqual([answer.keptConfig, answer.droppedConfig, answer.config], [['api_key', 'site_name'], [], ['api_key', 'site_name']]);
  assert.equal(await served(), 'api_key=k-prod\nsite_name=Prod Paste\n');
  // A value given replaces the one kept.
  const renamed = await run(['host', 'install', v2, '--var', 'site_name=Paste', ...onHost]);
  assert.equal(renamed.code, 0, renamed.stderr);
  assert.match(renamed.stderr, /\nkept the config values pastebin had for api_key \(secret\), which this install/);
  assert.equal(await served(), 'api_key=k-prod\nsite_name=Paste\n');

  // --reset-config keeps nothing: without the secret the host refuses it, and nothing changes.
  const refused = await run(['host', 'install', v2, '--reset-config', ...onHost]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /\n {2}config variable "api_key" is required and has no value \(a secret\)\n/);
  assert.equal(await served(), 'api_key=k-prod\nsite_name=Paste\n');
  const reset = await run(['host', 'install', v2, '--reset-config', '--var-file', prod, ...onHost]);
  assert.equal(reset.code, 0, reset.stderr);
  assert.match(reset.stderr, /\nnote: --reset-config: the values pastebin had for site_name are dropped; the manifest's defaults apply\n/);
  assert.doesNotMatch(reset.stderr, /^kept/m);
  assert.equal(await served(), 'api_key=k-prod\nsite_name=Pastebin\n');

  // A first install has nothing to keep, and says nothing of it.
  const other = await run(['host', 'install', v2, '--name', 'other', '--var-file', prod, ...onHost.with(1, 'other.example')]);
  assert.equal(other.code, 0, other.stderr);
  assert.match(other.stderr, /^installing other \(0\.2\.0, [^)]*\) on h1\.example\.net\n$/);
});

test('host install refuses to install over an installation on a host that cannot keep its config values, rather than drop them', async (t) => {
  const { dir, key, v2 } = await setup(t);
  const help = await run(['host', 'install', '--help']);
  assert.match(help.stdout, /\nInstalling over an installation keeps its config values: /);
  assert.match(help.stdout, /\n +--reset-config +over an installation of the name, keep none of its config values/);
  // A host older than keepConfig: it refuses the member, as it refuses every member it does not know.
  const posted: unknown[] = [];
  const older = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      response.setHeader('content-type', 'application/json');
      const status = { name: 'pastebin', domains: ['paste.example'], state: 'running', digest: 'sha256:00' };
      const capsule = { ...status, version: '0.1.0', instances: 0, inFlight: 0, limitHits: {}, config: ['api_key', 'site_name'] };
      if (request.method === 'GET' && request.url === '/v1/capsules/pastebin') {
        response.end(JSON.stringify({ capsule }));
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { keepConfig?: boolean };
      posted.push(body);
      if (body.keepConfig === undefined) {
        response.statusCode = 201;
        response.end(JSON.stringify({ capsule: { ...capsule, version: '0.2.0', config: ['api_key'] } }));
        return;
      }
      const details = ['/keepConfig: unknown member (known: name, domains, manifest, component, config, start)'];
      response.statusCode = 400;
      response.end(JSON.stringify({ error: { code: 'INVALID_REQUEST', message: 'the install body is not valid', details } }));
    });
  });
  await new Promise<void>((resolve) => older.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => older.close(() => resolve())));
  const url = `http://127.0.0.1:${(older.address() as AddressInfo).port}/v1`;
  await writeFile(join(dir, 'prod.env'), 'api_key=k-prod\n');
  const result = await run(['host', 'install', v2, '-d', 'paste.example', '--url', url, '--audience', 'h0.example.net', '--key', key]);
  assert.equal(result.code, 1);
  assert.equal(posted.length, 1);
  assert.equal((posted[0] as { keepConfig?: boolean }).keepConfig, true);
  assert.match(
    result.stderr,
    /\nerror: h0\.example\.net cannot keep pastebin's config values across an install: its stratum-host is older than that\n {2}pastebin has values for api_key \(secret\), site_name, which an install that does not give them puts back to the manifest's defaults\n {2}nothing was changed\nhint: Give every value again \(--var name=value, --var-file <file>\) and pass --reset-config; or have h0\.example\.net's operator upgrade stratum-host\.\n$/,
  );
  // Told to, the command sends no keepConfig, and such a host takes the install.
  const reset = await run([
    'host',
    'install',
    v2,
    '-d',
    'paste.example',
    '--reset-config',
    '--var-file',
    join(dir, 'prod.env'),
    '--url',
    url,
    '--audience',
    'h0.example.net',
    '--key',
    key,
  ]);
  assert.equal(reset.code, 0, reset.stderr);
  assert.equal(posted.length, 2);
  assert.equal((posted[1] as { keepConfig?: boolean }).keepConfig, undefined);
  assert.match(reset.stderr, /\nnote: --reset-config: the values pastebin had for site_name are dropped; the manifest's defaults apply\n/);
});

test('host install --dns over an installation keeps its config values too, and --json says which; over a name uninstalled it says whose data it finds', async (t) => {
  const { dir, key, registrar, closing, v1, v2 } = await setup(t);
  const secret = randomBytes(32).toString('base64');
  const dns = await startEmbeddedDnsServer({ zones: ['shop.org'], updateKeys: [{ name: 'stratum-update', secret }] });
  t.after(() => dns.stop());
  await writeFile(join(dir, 'update.key'), `hmac-sha256:stratum-update:${secret}\n`);
  // A host that checks links, which --dns publishes between the install and the start.
  const { path, text } = await writeTestHost(dir, {
    name: 'h1.hosting.net',
    registrar,
    operator: true,
    registrarDomain: 'registrar.shop.org',
    tables: `[discovery]\nresolver = "${dns.address}"\n`,
  });
  const host = closing(await startHost(parseHostConfig(text, path), { pullComponent: false }));
  const onHost = ['-d', 'www.shop.org', '--url', host.controlUrl.href, '--key', key];
  const zone = ['--dns', dns.address, '--zone', 'shop.org', '--tsig-key', join(dir, 'update.key')];
  const first = await run(['host', 'install', v1, '--var', 'api_key=k1', '--var', 'site_name=Shop', ...onHost, ...zone]);
  assert.equal(first.code, 0, first.stderr);

  const upgrade = await run(['host', 'install', v2, ...onHost, ...zone, '--json']);
  assert.equal(upgrade.code, 0, upgrade.stderr);
  assert.match(upgrade.stderr, /\nkept the config values pastebin had for api_key \(secret\), site_name, which this install does not give/);
  const answer = JSON.parse(upgrade.stdout) as { version: string; state: string; keptConfig?: string[]; droppedConfig?: string[] };
  assert.deepEqual(
    [answer.version, answer.state, answer.keptConfig, answer.droppedConfig],
    ['0.2.0', 'running', ['api_key', 'site_name'], []],
  );
  assert.equal((await ingressGet(host.ingressUrl, 'www.shop.org')).body, 'api_key=k1\nsite_name=Shop\n');
  // Over a stopped installation the command starts it itself, and its status is the start's answer.
  assert.equal((await run(['host', 'stop', 'pastebin', '--url', host.controlUrl.href, '--key', key])).code, 0);
  const restarted = await run(['host', 'install', v2, '--var', 'site_name=Shop 2', ...onHost, ...zone, '--json']);
  assert.equal(restarted.code, 0, restarted.stderr);
  const again = JSON.parse(restarted.stdout) as { state: string; keptConfig?: string[]; droppedConfig?: string[] };
  assert.deepEqual([again.state, again.keptConfig, again.droppedConfig], ['running', ['api_key'], []]);
  assert.equal((await ingressGet(host.ingressUrl, 'www.shop.org')).body, 'api_key=k1\nsite_name=Shop 2\n');

  // Uninstalled, the name keeps nothing of its config but its data: installed again with --dns
  // (started by the command, as above), the command says whose data it finds.
  assert.equal((await run(['host', 'uninstall', 'pastebin', '--url', host.controlUrl.href, '--key', key])).code, 0);
  const reinstalled = await run(['host', 'install', v2, '--var', 'api_key=k3', ...onHost, ...zone, '--json']);
  assert.equal(reinstalled.code, 0, reinstalled.stderr);
  assert.match(reinstalled.stderr, /\nnote: pastebin finds the data kept under its name since it was uninstalled on \d{4}-/);
  assert.doesNotMatch(reinstalled.stderr, /kept the config values/);
  const fresh = JSON.parse(reinstalled.stdout) as { keptData?: { uninstalledAt: string }; keptConfig?: string[] };
  assert.deepEqual([typeof fresh.keptData?.uninstalledAt, fresh.keptConfig], ['string', undefined]);
  assert.equal((await ingressGet(host.ingressUrl, 'www.shop.org')).body, 'api_key=k3\nsite_name=Pastebin\n');
});
