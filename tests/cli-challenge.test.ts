// The verification challenge (spec/discovery.md section 6) from the command line, against Knot
// DNS: `stratum registrar challenge` issues it, `stratum host challenge-answer` publishes the TXT
// record by RFC 2136 update and prints the signed response, `stratum registrar verify` checks it.
// A registrar used to trust a host's key by copying it by hand.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import { DiscoveryResolver, publishChallenge, publishHostRecord, Rfc2136Writer, type TsigKey } from '@stratum/discovery';
import { runCli as run } from './support/cli.ts';
import { startKnot } from './support/knot.ts';
import { removeDir } from './support/temp.ts';

const ZONE = 'hosting.test';
const REGISTRAR = 'registrar.test';
const API = 'https://h1.hosting.test/stratum/v1';
const TSIG: TsigKey = { name: 'stratum-update', secret: randomBytes(32).toString('base64') };

test('registrar challenge, host challenge-answer --dns and registrar verify against Knot: the flow, and each check that fails it', async (t) => {
  const server = await startKnot(t, TSIG, ZONE);
  if (!server) return;
  const dir = await mkdtemp(join(tmpdir(), 'stratum-challenge-'));
  t.after(() => removeDir(dir));
  const tsigFile = join(dir, 'update.key');
  await writeFile(tsigFile, `hmac-sha256:${TSIG.name}:${TSIG.secret}\n`);
  const state = join(dir, 'state', 'challenges.json');
  const writer = new Rfc2136Writer({ server, zone: ZONE, key: TSIG });
  const resolver = new DiscoveryResolver({ servers: [server] });
  const dns = ['--dns', server, '--zone', ZONE, '--tsig-key', tsigFile];

  const keygen = async (name: string) => {
    const made = await run(['host', 'keygen', '--out', join(dir, name), '--json']);
    assert.equal(made.code, 0, made.stderr);
    return (JSON.parse(made.stdout) as { publicKey: string }).publicKey;
  };
  const hostKey = await keygen('host-key.json');
  const otherKey = await keygen('other-key.json');
  await publishHostRecord(writer, `h1.${ZONE}`, {
    publicKey: hostKey,
    api: API,
    interfaces: [{ name: 'wasi:http', version: '0.2.0' }],
  });

  const challenge = async (host = `h1.${ZONE}`, extra: string[] = []) => {
    const issued = await run(['registrar', 'challenge', host, '--registrar', REGISTRAR, '--state', state, '--json', ...extra]);
    assert.equal(issued.code, 0, issued.stderr);
    return JSON.parse(issued.stdout) as { token: string; hostName: string; registrar: string; expiresAt: number; answer: string };
  };
  const answer = async (token: string, options: { registrar?: string; key?: string; host?: string; publish?: boolean } = {}) => {
    const answered = await run([
      'host',
      'challenge-answer',
      // As the registrar's command prints it: a token may begin with '-'.
      `--token=${token}`,
      '--registrar',
      options.registrar ?? REGISTRAR,
      '--host-name',
      options.host ?? `h1.${ZONE}`,
      '--key',
      join(dir, options.key ?? 'host-key.json'),
      ...(options.publish === false ? [] : dns),
    ]);
    assert.equal(answered.code, 0, answered.stderr);
    const file = join(dir, `response-${token.slice(0, 8)}.json`);
    await writeFile(file, answered.stdout);
    return { file, ...answered };
  };
  const verify = (file: string) => run(['registrar', 'verify', file, '--dns', server, '--state', state]);
  const refused = async (file: string, code: string) => {
    const result = await verify(file);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stderr, new RegExp(`^error: ${code}: `), result.stderr);
    assert.match(result.stderr, /\nhint: \S/, result.stderr);
    return result.stderr;
  };

  await t.test('--help of each command', async () => {
    for (const words of [
      ['registrar', 'challenge'],
      ['registrar', 'verify'],
      ['host', 'challenge-answer'],
    ]) {
      const help = await run([...words, '--help']);
      assert.equal(help.code, 0, help.stderr);
      assert.ok(help.stdout.includes(`Usage: stratum ${words.join(' ')} `), help.stdout);
      assert.match(help.stdout, /spec\/discovery\.md\s+section 6/);
    }
  });

  await t.test('the whole flow: issued, answered by RFC 2136 beside another registrar’s record, verified, then removed', async () => {
    const text = await run(['registrar', 'challenge', `H1.${ZONE}.`, '--registrar', REGISTRAR, '--state', state]);
    assert.equal(text.code, 0, text.stderr);
    const token = /^token {6}(\S{43})$/m.exec(text.stdout)?.[1];
    assert.ok(token, text.stdout);
    assert.match(text.stdout, new RegExp(`^host name  h1\\.${ZONE.replace('.', '\\.')}$`, 'm'));
    assert.match(text.stdout, /^registrar {2}registrar\.test$/m);
    assert.match(text.stdout, /^expires {4}\d{4}-\d\d-\d\dT.*Z \(in 10 min\)$/m);
    assert.ok(
      text.stdout.includes(`stratum host challenge-answer --token=${token} --registrar ${REGISTRAR} --host-name h1.${ZONE}`),
      text.stdout,
    );
    assert.equal((await stat(state)).mode & 0o777, 0o600);

    // Another registrar challenges the host at the same time: its record stays.
    await publishChallenge(writer, `h1.${ZONE}`, 'A'.repeat(43));
    const answered = await answer(token);
    assert.match(answered.stderr, /^published _stratum-challenge\.h1\.hosting\.test\. 60 IN TXT "[\w-]{43}" on /);
    assert.doesNotMatch(answered.stderr, /note:/);
    const response = JSON.parse(answered.stdout) as Record<string, string>;
    assert.deepEqual(Object.keys(response).sort(), ['hostName', 'publicKey', 'signature', 'token']);
    assert.equal(response.publicKey, hostKey);
    assert.equal((await resolver.challengeValues(`h1.${ZONE}`)).length, 2);

    // With the registrar's own key: the next steps name its file to sign with, and its public key for host.toml.
    const registrarKey = await generateEd25519KeyPair();
    const registrarKeyFile = join(dir, 'registrar-key.json');
    await writeKeyFile(registrarKeyFile, registrarKey.privateJwk);
    const verified = await run(['registrar', 'verify', answered.file, '--dns', server, '--state', state, '--key', registrarKeyFile]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.ok(verified.stdout.includes(`--audience h1.${ZONE} --key ${registrarKeyFile}\n`), verified.stdout);
    assert.ok(verified.stdout.includes(`  key = "${registrarKey.publicJwk.x}"\n`), verified.stdout);
    assert.ok(verified.stdout.includes(`verified h1.${ZONE}`), verified.stdout);
    assert.ok(verified.stdout.includes(`  key          ${hostKey}\n`), verified.stdout);
    assert.ok(verified.stdout.includes(`  control API  ${API}\n`), verified.stdout);
    assert.ok(verified.stdout.includes('  serves       wasi:http@0.2.0\n'), verified.stdout);
    assert.ok(verified.stdout.includes(`stratum host status --url ${API} --audience h1.${ZONE} --key`), verified.stdout);
    assert.ok(verified.stdout.includes(`  [registrars.registrar]\n`), verified.stdout);
    assert.ok(verified.stdout.includes(`  domain = "${REGISTRAR}"\n`), verified.stdout);

    // Replayed: the token verified once, and never again.
    const replayed = await refused(answered.file, 'CHALLENGE_REPLAYED');
    assert.match(replayed, /Each token verifies once/);

    const removed = await run([
      'host',
      'challenge-answer',
      // As the registrar's command prints it: a token may begin with '-'.
      `--token=${token}`,
      '--registrar',
      REGISTRAR,
      '--host-name',
      `h1.${ZONE}`,
      '--key',
      join(dir, 'host-key.json'),
      ...dns,
      '--remove',
    ]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, '');
    assert.deepEqual(await resolver.challengeValues(`h1.${ZONE}`), [['A'.repeat(43)]]);
  });

  await t.test('a response signed for another registrar fails CHALLENGE_BAD_SIGNATURE', async () => {
    const { token } = await challenge();
    const answered = await answer(token, { registrar: 'other-registrar.test' });
    const stderr = await refused(answered.file, 'CHALLENGE_BAD_SIGNATURE');
    assert.match(stderr, /--registrar exactly this registrar's name/);
  });

  await t.test('an answer whose record was never published fails CHALLENGE_RECORD_MISSING', async () => {
    const { token } = await challenge(`h2.${ZONE}`);
    // Not a terminal: it prints the record to publish and the response, without waiting.
    const answered = await answer(token, { host: `h2.${ZONE}`, publish: false });
    assert.match(
      answered.stderr,
      /^Publish in h2\.hosting\.test's zone, beside any other records at that name:\n_stratum-challenge\.h2\.hosting\.test\. 60 IN TXT "[\w-]{43}"\n/,
    );
    await refused(answered.file, 'CHALLENGE_RECORD_MISSING');
    // One token in 64 begins with '-': written as the registrar's command writes it, it is taken.
    const dashed = await answer(`-${token.slice(1)}`, { host: `h2.${ZONE}`, publish: false });
    assert.equal((JSON.parse(dashed.stdout) as { token: string }).token, `-${token.slice(1)}`);
  });

  await t.test('a host that publishes no _stratum-host record fails HOST_RECORD_MISSING', async () => {
    const { token } = await challenge(`h3.${ZONE}`);
    const answered = await answer(token, { host: `h3.${ZONE}` });
    // The answer says so before the operator sends it, which would use up the token.
    assert.match(
      answered.stderr,
      /note: 127\.0\.0\.1:\d+ has no _stratum-host record for h3\.hosting\.test; the registrar's verify fails on it/,
    );
    await refused(answered.file, 'HOST_RECORD_MISSING');
  });

  await t.test('an answer by a key the _stratum-host record does not publish fails CHALLENGE_KEY_NOT_PUBLISHED', async () => {
    const { token } = await challenge();
    const answered = await answer(token, { key: 'other-key.json' });
    assert.ok(answered.stderr.includes(`publishes another key (k=${hostKey}), not this one`), answered.stderr);
    const stderr = await refused(answered.file, 'CHALLENGE_KEY_NOT_PUBLISHED');
    assert.ok(stderr.includes(`answered with ${otherKey}`), stderr);
    assert.ok(stderr.includes(`_stratum-host has k=${hostKey}`), stderr);
  });

  await t.test('an expired challenge fails CHALLENGE_EXPIRED, and a token issued elsewhere CHALLENGE_UNKNOWN', async () => {
    const { token } = await challenge(`h1.${ZONE}`, ['--ttl', '1s']);
    const answered = await answer(token);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await refused(answered.file, 'CHALLENGE_EXPIRED');

    const elsewhere = await run(['registrar', 'verify', answered.file, '--dns', server, '--state', join(dir, 'other-state.json')]);
    assert.equal(elsewhere.code, 1);
    assert.match(elsewhere.stderr, /^error: CHALLENGE_UNKNOWN: /);
  });

  await t.test('a response that is not JSON fails CHALLENGE_RESPONSE_INVALID; the state file keeps used tokens', async () => {
    const garbled = join(dir, 'garbled.json');
    await writeFile(garbled, 'token=abc');
    await refused(garbled, 'CHALLENGE_RESPONSE_INVALID');
    const kept = JSON.parse(await readFile(state, 'utf8')) as { challenges: Record<string, { usedAt?: number }> };
    assert.ok(Object.values(kept.challenges).every((entry) => typeof entry.usedAt === 'number'));
  });
});
