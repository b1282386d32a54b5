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
