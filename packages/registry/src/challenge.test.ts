import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseChallenges } from './challenge.ts';

const plain = (header: string) => parseChallenges(header).map((challenge) => ({ ...challenge, params: { ...challenge.params } }));

test('reads the bearer challenge of the distribution registry', () => {
  assert.deepEqual(plain('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:acme/hello:pull,push"'), [
    {
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:acme/hello:pull,push' },
    },
  ]);
});

test('reads several challenges, tokens and escaped quotes', () => {
  const challenges = parseChallenges('Basic realm="a \\"b\\" c", Bearer realm=https://t.example/x , error=insufficient_scope');
  assert.deepEqual(
    challenges.map((challenge) => ({ ...challenge, params: { ...challenge.params } })),
    [
      { scheme: 'basic', params: { realm: 'a "b" c' } },
      { scheme: 'bearer', params: { realm: 'https://t.example/x', error: 'insufficient_scope' } },
    ],
  );
});

test('a parameter named __proto__ stays a plain entry', () => {
  const [challenge] = parseChallenges('Bearer __proto__="x", realm="r"');
  assert.equal(challenge?.params.realm, 'r');
  assert.equal(Object.getPrototypeOf(challenge?.params), null);
});

test('never throws on any header, and round-trips quoted parameters', () => {
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (header) => void parseChallenges(header)));
  const name = fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/);
  fc.assert(
    fc.property(fc.constantFrom('Bearer', 'Basic'), fc.dictionary(name, fc.string({ maxLength: 30 }), { maxKeys: 4 }), (scheme, params) => {
      const header = `${scheme} ${Object.entries(params)
        .map(([key, value]) => `${key}="${value.replace(/[\\"]/g, (char) => `\\${char}`)}"`)
        .join(', ')}`;
      const [challenge] = parseChallenges(header);
      assert.equal(challenge?.scheme, scheme.toLowerCase());
      assert.deepEqual({ ...challenge?.params }, { ...params });
    }),
  );
});
