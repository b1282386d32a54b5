// The verification challenge end to end over real DNS (the embedded server on loopback): the
// success path, and each way it must fail, one test each.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, StratumError } from '@stratum/core';
import { answerChallenge, type ChallengeResponse, issueChallenge, MemoryChallengeStore, verifyChallenge } from './challenge.ts';
import { startEmbeddedDnsServer } from './embedded-server.ts';
import { acceptHostKey, announceNextKey, type HostKey, hostKeyFromJwk } from './host-key.ts';
import { parseHostRecord } from './records.ts';
import { DiscoveryResolver } from './resolver.ts';
import { publishChallenge, publishHostRecord } from './writer.ts';

const HOST = 'h1.hosts.test';
const REGISTRAR = 'registrar.test';

async function newKey(): Promise<HostKey> {
  return hostKeyFromJwk((await generateEd25519KeyPair()).privateJwk);
}

/** A host with its record published, a registrar with a store, and a clock the test moves. */
async function setup(t: TestContext) {
  const dns = await startEmbeddedDnsServer({ zones: ['hosts.test'] });
  t.after(() => dns.stop());
  const key = await newKey();
  await publishHostRecord(dns, HOST, { publicKey: key.publicKey, api: 'https://h1.hosts.test/stratum/v1', interfaces: [] });
  let clock = 1_800_000_000_000;
  const now = () => clock;
  const store = new MemoryChallengeStore({ now });
  const resolver = new DiscoveryResolver({ servers: [dns.address] });
  const challenge = await issueChallenge(store, { hostName: HOST, registrar: REGISTRAR, now: clock, ttlMs: 60_000 });
  const answer = await answerChallenge(challenge, key);
  return {
    dns,
    key,
    store,
    resolver,
    challenge,
    answer,
    now,
    advance: (ms: number) => {
      clock += ms;
    },
    verify: (response: ChallengeResponse) => verifyChallenge({ store, resolver, response, now }),
  };
}

async function rejects(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StratumError, String(error));
    assert.equal(error.code, code, error.message);
    assert.ok(error.hint, 'every challenge failure says how to fix it');
    return true;
  });
}

test('a host that publishes the record and signs with the published key is verified', async (t) => {
  const { dns, answer, verify, key } = await setup(t);
  await publishChallenge(dns, HOST, answer.txtValue);
  const verified = await verify(answer.response);
  assert.equal(verified.hostName, HOST);
  assert.equal(verified.publicKey, key.publicKey);
  assert.equal(verified.keyThumbprint, key.thumbprint);
  assert.equal(verified.record.api, 'https://h1.hosts.test/stratum/v1');
});

test("other registrars' challenge records beside ours do not get in the way", async (t) => {
  const { dns, answer, verify } = await setup(t);
  await publishChallenge(dns, HOST, 'A'.repeat(43));
  await publishChallenge(dns, HOST, answer.txtValue);
  assert.equal((await verify(answer.response)).hostName, HOST);
});

test('replay: the same response a second time fails, even though it verified once', async (t) => {
  const { dns, answer, verify } = await setup(t);
  await publishChallenge(dns, HOST, answer.txtValue);
  await verify(answer.response);
  await rejects(verify(answer.response), 'CHALLENGE_REPLAYED');
});

test('stale token: answering after the time limit fails', async (t) => {
  const { dns, answer, verify, advance } = await setup(t);
  await publishChallenge(dns, HOST, answer.txtValue);
  advance(60_001);
  await rejects(verify(answer.response), 'CHALLENGE_EXPIRED');
});

test('right record, wrong signature: a signature by another key fails', async (t) => {
  const { dns, answer, challenge, verify } = await setup(t);
  await publishChallenge(dns, HOST, answer.txtValue);
  const forged = await answerChallenge(challenge, await newKey());
  await rejects(verify({ ...answer.response, signature: forged.response.signature }), 'CHALLENGE_BAD_SIGNATURE');
});

test('right record, wrong signature: a signature over another token fails', async (t) => {
  const { dns, answer, key, verify } = await setup(t);
  await publishChallenge(dns, HOST, answer.txtValue);
  const other = await answerChallenge({ token: 'B'.repeat(43), hostName: HOST, registrar: REGISTRAR }, key);
  await rejects(verify({ ...answer.response, signature: other.response.signature }), 'CHALLENGE_BAD_SIGNATURE');
});

test('right record, wrong signature: a signature meant for another registrar fails', async (t) => {
  const { dns, answer, challenge, key, verify } = await setup(t);
  await publishChallenge(dns, HOST, answer.txtValue);
  const elsewhere = await answerChallenge({ ...challenge, registrar: 'other-registrar.test' }, key);
  await rejects(verify({ ...answer.response, signature: elsewhere.response.signature }), 'CHALLENGE_BAD_SIGNATURE');
});

test('right signature, wrong record: a record for another token fails', async (t) => {
  const { dns, answer, key, verify } = await setup(t);
  const other = await answerChallenge({ token: 'C'.repeat(43), hostName: HOST, registrar: REGISTRAR }, key);
  await publishChallenge(dns, HOST, other.txtValue);
  await rejects(verify(answer.response), 'CHALLENGE_RECORD_MISMATCH');
});

test("right signature, wrong record: a record made with another key's thumbprint fails", async (t) => {
  const { dns, answer, challenge, verify } = await setup(t);
  const attacker = await answerChallenge(challenge, await newKey());
  await publishChallenge(dns, HOST, attacker.txtValue);
  await rejects(verify(answer.response), 'CHALLENGE_RECORD_MISMATCH');
});

test('right signature, no record at all fails', async (t) => {
  const { answer, verify } = await setup(t);
  await rejects(verify(answer.response), 'CHALLENGE_RECORD_MISSING');
});

test('an attacker with its own key, record and signature fails when the host record names another key', async (t) => {
  const { dns, challenge, verify } = await setup(t);
  const attacker = await answerChallenge(challenge, await newKey());
  await publishChallenge(dns, HOST, attacker.txtValue);
  await rejects(verify(attacker.response), 'CHALLENGE_KEY_NOT_PUBLISHED');
});

test('a host without a _stratum-host record fails', async (t) => {
  const { dns, answer, verify } = await setup(t);
  await dns.apply([{ op: 'delete', name: `_stratum-host.${HOST}` }]);
  await publishChallenge(dns, HOST, answer.txtValue);
  await rejects(verify(answer.response), 'HOST_RECORD_MISSING');
});

test('a token this registrar never issued fails', async (t) => {
  const { answer, verify } = await setup(t);
  await rejects(verify({ ...answer.response, token: 'D'.repeat(43) }), 'CHALLENGE_UNKNOWN');
});

test('a response for another host name fails', async (t) => {
  const { answer, verify } = await setup(t);
  await rejects(verify({ ...answer.response, hostName: 'h2.hosts.test' }), 'CHALLENGE_HOST_MISMATCH');
});

test('a malformed response fails before anything is consumed', async (t) => {
  const { dns, answer, verify } = await setup(t);
  await rejects(verify({ ...answer.response, signature: 'short' }), 'CHALLENGE_RESPONSE_INVALID');
  await rejects(verify({ ...answer.response, publicKey: 'not-a-key' }), 'CHALLENGE_RESPONSE_INVALID');
  await rejects(verify(null as never), 'CHALLENGE_RESPONSE_INVALID');
  await publishChallenge(dns, HOST, answer.txtValue);
  assert.equal((await verify(answer.response)).hostName, HOST, 'the token is still good after malformed attempts');
});

test('key rotation: a registrar accepts the next key only when the current key announced it', async () => {
  const current = await newKey();
  const next = await newKey();
  const api = 'https://h1.hosts.test/';
  const announced = parseHostRecord(['v=stratum1', `k=${current.publicKey}`, `api=${api}`, ...(await announce(current, next))]);
  const rotated = parseHostRecord(['v=stratum1', `k=${next.publicKey}`, `api=${api}`]);
  assert.equal(await acceptHostKey({ hostName: HOST, trustedKey: current.publicKey, record: announced }), current.publicKey);
  assert.equal(await acceptHostKey({ hostName: HOST, trustedKey: current.publicKey, announced, record: rotated }), next.publicKey);
  // Without the announcement, or with one signed by a key the registrar does not trust, the change is refused.
  await rejects(acceptHostKey({ hostName: HOST, trustedKey: current.publicKey, record: rotated }), 'HOST_KEY_CHANGED');
  const intruder = await newKey();
  const forged = parseHostRecord([
    'v=stratum1',
    `k=${current.publicKey}`,
    `api=${api}`,
    `nk=${next.publicKey}`,
    `nks=${(await announceNextKey(HOST, intruder, next)).signature}`,
  ]);
  await rejects(acceptHostKey({ hostName: HOST, trustedKey: current.publicKey, announced: forged, record: rotated }), 'HOST_KEY_CHANGED');
});

async function announce(current: HostKey, next: HostKey): Promise<string[]> {
  const { publicKey, signature } = await announceNextKey(HOST, current, next);
  return [`nk=${publicKey}`, `nks=${signature}`];
}

test('a challenge lives at most 24 hours', async () => {
  const store = new MemoryChallengeStore();
  for (const ttlMs of [0, -1, 24 * 3600 * 1000 + 1, Number.NaN]) {
    await rejects(issueChallenge(store, { hostName: HOST, registrar: REGISTRAR, ttlMs }), 'CHALLENGE_TTL_INVALID');
  }
  const challenge = await issueChallenge(store, { hostName: HOST, registrar: REGISTRAR, now: 1000 });
  assert.equal(challenge.expiresAt, 1000 + 10 * 60 * 1000, 'ten minutes by default');
  assert.match(challenge.token, /^[A-Za-z0-9_-]{43}$/);
});
