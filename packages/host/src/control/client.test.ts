import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, isStratumError } from '@stratum/core';
import { createControlClient } from './client.ts';

async function listening(t: TestContext, server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('a redirect from the control API is refused, and the signed request never reaches where it points', async (t) => {
  const reached: string[] = [];
  const elsewhere = await listening(
    t,
    createServer((request, response) => {
      reached.push(`${request.method} ${request.url}`);
      response.end('{}');
    }),
  );
  const forwarding = await listening(
    t,
    createServer((request, response) => {
      request.resume();
      response.writeHead(307, { location: `${elsewhere}${request.url}` }).end();
    }),
  );
  const { privateJwk } = await generateEd25519KeyPair();
  const client = createControlClient({ url: `${forwarding}/v1`, key: privateJwk, audience: 'h1.example.net' });
  for (const call of [
    () => client.status(),
    () => client.install({ domains: ['a.example'], manifest: 'stratum = 1', config: { token: 's3cret' } }),
  ]) {
    await assert.rejects(call(), (error: unknown) => {
      assert.ok(isStratumError(error));
      assert.equal(error.code, 'CONTROL_REDIRECTED');
      assert.match(error.message, new RegExp(`answered 307, a redirect to ${elsewhere}/v1/`));
      return true;
    });
  }
  assert.deepEqual(reached, []);
});

test('an https URL for a control API that speaks plain HTTP says so, with its http URL, not OpenSSL words', async (t) => {
  const plain = await listening(
    t,
    createServer((_request, response) => response.end('{}')),
  );
  const https = plain.replace(/^http:/, 'https:');
  const { privateJwk } = await generateEd25519KeyPair();
  const client = createControlClient({ url: `${https}/v1`, key: privateJwk, audience: 'h1.example.net' });
  await assert.rejects(client.status(), (error: unknown) => {
    assert.ok(isStratumError(error));
    assert.equal(error.code, 'CONTROL_NOT_TLS');
    assert.equal(error.message, `the control API at ${https}/v1 speaks plain HTTP, not HTTPS`);
    assert.match(error.hint ?? '', new RegExp(`^Give its http:// URL \\(${plain}/v1\\) if it is on this machine`));
    assert.doesNotMatch(`${error.message} ${error.details.join(' ')}`, /wrong version number/);
    return true;
  });
});

test("a host whose unsigned /identity names another host than the audience is refused, so that a move does not name the host by it; the host's own name is taken in any case", async (t) => {
  let name = 'h2.example.net';
  const url = await listening(
    t,
    createServer((_request, response) => {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ name, key: { kty: 'OKP', crv: 'Ed25519', x: 'AAAA' }, version: '0.1.0', startedAt: '' }));
    }),
  );
  const { privateJwk } = await generateEd25519KeyPair();
  const client = createControlClient({ url: `${url}/v1`, key: privateJwk, audience: 'H1.example.net' });
  await assert.rejects(client.identity(), (error: unknown) => {
    assert.ok(isStratumError(error));
    assert.equal(error.code, 'HOST_IDENTITY_MISMATCH');
    assert.match(error.message, /says it is host h2\.example\.net, not H1\.example\.net, which requests to it are signed for$/);
    return true;
  });
  name = 'h1.example.net';
  assert.equal((await client.identity()).name, 'h1.example.net');
  // Without an audience the client has nothing to hold the answer to.
  name = 'anything.example';
  assert.equal((await createControlClient({ url: `${url}/v1`, key: privateJwk }).identity()).name, 'anything.example');
});

test('install sends keepConfig only when asked to keep, which a host older than the member refuses; the answer says what was kept', async (t) => {
  const bodies: Record<string, unknown>[] = [];
  const url = await listening(
    t,
    createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>;
        bodies.push(body);
        const capsule = { name: 'a', domains: ['a.example'], state: 'running', version: '1', digest: 'sha256:00' };
        const kept = body.keepConfig ? { keptConfig: ['api_key'], droppedConfig: ['theme'] } : {};
        response.writeHead(201, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ capsule: { ...capsule, instances: 0, inFlight: 0, limitHits: {} }, ...kept }));
      });
    }),
  );
  const { privateJwk } = await generateEd25519KeyPair();
  const client = createControlClient({ url: `${url}/v1`, key: privateJwk, audience: 'h1.example.net' });
  const install = { domains: ['a.example'], manifest: 'stratum = 1' };
  const plain = await client.install({ ...install, keepConfig: false });
  const keeping = await client.install({ ...install, keepConfig: true });
  assert.deepEqual(
    bodies.map((body) => body.keepConfig),
    [undefined, true],
  );
  assert.equal('keepConfig' in (bodies[0] ?? {}), false);
  assert.deepEqual([plain.keptConfig, plain.droppedConfig], [undefined, undefined]);
  assert.deepEqual([keeping.keptConfig, keeping.droppedConfig, keeping.name], [['api_key'], ['theme'], 'a']);
});
