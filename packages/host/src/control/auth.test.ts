import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateEd25519KeyPair, StratumError } from '@stratum/core';
import fc from 'fast-check';
import { ControlAuthError, createRequestVerifier, NonceStore, signControlRequest } from './auth.ts';
import { parseInstallBody } from './server.ts';

async function verifier() {
  const registrar = await generateEd25519KeyPair();
  const kid = registrar.publicJwk.kid as string;
  const verify = createRequestVerifier({
    audience: 'h.example',
    registrars: [{ name: 'r', key: { ...registrar.publicJwk, kid } }],
    nonces: new NonceStore(),
  });
  return { registrar, verify };
}

test('a well-signed request verifies and names its registrar', async () => {
  const { registrar, verify } = await verifier();
  const body = new TextEncoder().encode('{"a":1}');
  const authorization = await signControlRequest({
    key: registrar.privateJwk,
    audience: 'h.example',
    method: 'post',
    path: '/capsules',
    body,
  });
  const verified = await verify({ method: 'POST', path: '/capsules', authorization, body });
  assert.equal(verified.registrar.name, 'r');
  assert.equal(verified.claims.htm, 'POST');
});

test("the audience is a name as discovery compares names (any case, the root's dot), and the scheme is case-insensitive", async () => {
  const { registrar, verify } = await verifier();
  for (const audience of ['H.EXAMPLE', 'h.example.']) {
    const authorization = await signControlRequest({ key: registrar.privateJwk, audience, method: 'GET', path: '/status' });
    const verified = await verify({ method: 'GET', path: '/status', authorization, body: new Uint8Array() });
    assert.equal(verified.registrar.name, 'r', audience);
  }
  const token = (await signControlRequest({ key: registrar.privateJwk, audience: 'h.example', method: 'GET', path: '/status' })).split(
    ' ',
  )[1];
  const verified = await verify({ method: 'GET', path: '/status', authorization: `stratum-jws ${token}`, body: new Uint8Array() });
  assert.equal(verified.registrar.name, 'r');
  const other = await signControlRequest({ key: registrar.privateJwk, audience: 'h.example.net', method: 'GET', path: '/status' });
  await assert.rejects(verify({ method: 'GET', path: '/status', authorization: other, body: new Uint8Array() }), {
    code: 'AUTH_WRONG_AUDIENCE',
  });
});

test('the body is compared last (spec/host-api.md section 3.2): a token is used up before, and a replay is told as one whatever its body', async () => {
  const { registrar, verify } = await verifier();
  const body = new TextEncoder().encode('{"a":1}');
  const authorization = await signControlRequest({
    key: registrar.privateJwk,
    audience: 'h.example',
    method: 'POST',
    path: '/capsules',
    body,
  });
  const other = new TextEncoder().encode('{"a":2}');
  await assert.rejects(verify({ method: 'POST', path: '/capsules', authorization, body: other }), { code: 'AUTH_BODY_MISMATCH' });
  await assert.rejects(verify({ method: 'POST', path: '/capsules', authorization, body }), { code: 'AUTH_REPLAY' });
  const short = await signControlRequest({
    key: registrar.privateJwk,
    audience: 'h.example',
    method: 'POST',
    path: '/capsules',
    body,
    nonce: 'short',
  });
  await assert.rejects(verify({ method: 'POST', path: '/capsules', authorization: short, body: other }), { code: 'AUTH_MALFORMED' });
});

test('a key the host does not trust is refused naming the host, and the hint says how its operator trusts it', async () => {
  const { verify } = await verifier();
  const stranger = await generateEd25519KeyPair();
  const kid = stranger.publicJwk.kid as string;
  const authorization = await signControlRequest({ key: stranger.privateJwk, audience: 'h.example', method: 'GET', path: '/status' });
  await assert.rejects(verify({ method: 'GET', path: '/status', authorization, body: new Uint8Array() }), (error) => {
    assert.ok(error instanceof ControlAuthError);
    assert.equal(error.code, 'AUTH_UNKNOWN_KEY');
    assert.equal(error.message, `key ${kid} is not a registrar that host h.example trusts`);
    assert.match(
      error.hint ?? '',
      /^h\.example's operator adds the key's public part to that host's host\.toml as \[registrars\.<name>\] key = "<public key>" and reloads it \(SIGHUP/,
    );
    assert.match(error.hint ?? '', new RegExp(`\`stratum host keygen\` printed with thumbprint ${kid}\\.$`));
    return true;
  });
});

test('a signature spelled another way (the spare bits of its last base64url character set) is refused', async () => {
  const { registrar, verify } = await verifier();
  const valid = await signControlRequest({ key: registrar.privateJwk, audience: 'h.example', method: 'GET', path: '/status' });
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // An Ed25519 signature is 64 bytes: its 86th character carries 2 bits and 4 spare ones.
  const last = alphabet.indexOf(valid.at(-1) as string);
  const respelled = valid.slice(0, -1) + alphabet[last | 1];
  await verify({ method: 'GET', path: '/status', authorization: valid, body: new Uint8Array() });
  await assert.rejects(
    verify({ method: 'GET', path: '/status', authorization: respelled, body: new Uint8Array() }),
    (error) => error instanceof ControlAuthError && /canonical base64url/.test(error.message),
  );
});

test('arbitrary Authorization headers are refused with a ControlAuthError, never anything else', async () => {
  const { registrar, verify } = await verifier();
  const valid = (await signControlRequest({ key: registrar.privateJwk, audience: 'h.example', method: 'GET', path: '/status' })).split(
    ' ',
  )[1] as string;
  const mutated = fc.tuple(fc.nat({ max: valid.length - 1 }), fc.string({ minLength: 1, maxLength: 3 })).map(([at, text]) => {
    const changed = valid.slice(0, at) + text + valid.slice(at + text.length);
    return `Stratum-JWS ${changed}`;
  });
  const tokenish = fc
    .array(fc.base64String({ maxLength: 80 }), { minLength: 1, maxLength: 4 })
    .map((parts) => `Stratum-JWS ${parts.join('.')}`);
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.string({ maxLength: 200 }), tokenish, mutated), async (authorization) => {
      try {
        await verify({ method: 'GET', path: '/status', authorization, body: new Uint8Array() });
        // Only the untouched token verifies (a mutation can be a no-op: same text at the same place).
        assert.equal(authorization, `Stratum-JWS ${valid}`);
      } catch (error) {
        assert.ok(error instanceof ControlAuthError, String(error));
      }
    }),
    { numRuns: 300 },
  );
});

test('nonces persist to a file, and expired ones are dropped when it is read again', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-nonces-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'control', 'nonces');
  const now = 1_000_000;
  const first = new NonceStore(file, now);
  assert.equal(first.use('a', now + 60, now), true);
  assert.equal(first.use('a', now + 60, now), false);
  assert.equal(first.use('old', now + 1, now), true);
  const later = new NonceStore(file, now + 80);
  assert.equal(later.size, 1);
  assert.equal(later.use('a', now + 60, now + 20), false);
  assert.equal(later.use('old', now + 200, now + 80), true);
  assert.match(await readFile(file, 'utf8'), /^a \d+\n/);
});

test('arbitrary install bodies are refused with a StratumError, never anything else', () => {
  const member = fc.oneof(
    fc.string(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.string(), { maxLength: 3 }),
    fc.dictionary(fc.string(), fc.string()),
  );
  const body = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.json(),
    fc
      .record(
        {
          name: member,
          domains: member,
          manifest: member,
          component: fc.oneof(member, fc.record({ base64: member })),
          config: member,
          start: member,
        },
        { requiredKeys: [] },
      )
      .map((value) => JSON.stringify(value)),
  );
  fc.assert(
    fc.property(body, (text) => {
      try {
        const parsed = parseInstallBody(new TextEncoder().encode(text));
        assert.equal(typeof parsed.manifest, 'string');
        assert.ok(Array.isArray(parsed.domains));
      } catch (error) {
        assert.ok(error instanceof StratumError, String(error));
      }
    }),
    { numRuns: 500 },
  );
});
