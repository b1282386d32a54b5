// A capsule learns its client's address from X-Forwarded-For, which the host appends as every
// proxy does: the connection's own address, after what a trusted proxy said, and alone when the
// client's claims were dropped.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { serveJsProject } from './support/js-project.ts';

async function serve(t: TestContext, trustedProxies?: string[]) {
  const source = "export default { fetch: (request) => new Response(request.headers.get('x-forwarded-for') ?? 'none') };\n";
  return serveJsProject(t, { name: 'who', source }, trustedProxies ? { trustedProxies } : {});
}

test("a capsule sees its client's address in X-Forwarded-For: the connection's own, a claim dropped, an IPv4 client of a dual-stack listener as IPv4", async (t) => {
  const who = await serve(t);
  const seen = async (options: Parameters<typeof who.get>[1] = {}) => (await who.get('/', options)).body;
  assert.equal(await seen(), '127.0.0.1');
  assert.equal(await seen({ headers: { 'x-forwarded-for': '203.0.113.7' } }), '127.0.0.1');
  assert.equal(await seen({ headers: { 'x-real-ip': '203.0.113.7' } }), '127.0.0.1');
  // A dual-stack listener, reached over IPv4 (its peer is ::ffff:127.0.0.1) and over IPv6.
  const dualStack = await who.listen('::');
  assert.equal(await seen({ port: dualStack }), '127.0.0.1');
  assert.equal(await seen({ port: dualStack, host: '::1' }), '::1');
});

test("behind a trusted proxy the host appends the proxy's address after what the proxy said, as each proxy does", async (t) => {
  const who = await serve(t, ['127.0.0.0/8']);
  assert.equal((await who.get('/', { headers: { 'x-forwarded-for': '203.0.113.7' } })).body, '203.0.113.7, 127.0.0.1');
  assert.equal((await who.get('/')).body, '127.0.0.1');
});

test('an answer names the request id the host gave it, whatever the capsule says', async (t) => {
  const source = "export default { fetch: () => new Response('x', { headers: { 'Stratum-Request-Id': 'FAKE', 'x-kept': 'yes' } }) };\n";
  const records: { requestId: string }[] = [];
  const fake = await serveJsProject(t, { name: 'fake', source });
  fake.runtime.onRequest((record) => records.push(record));
  const answer = await fake.get('/');
  assert.equal(answer.headers['x-kept'], 'yes');
  for (let tries = 0; tries < 500 && records.length === 0; tries++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(answer.headers['stratum-request-id'], records[0]?.requestId);
});
