import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatReference, isLoopbackRegistry, parseReference } from './reference.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;

test('parses host, port, repository, tag and digest', () => {
  assert.deepEqual(parseReference('oci://127.0.0.1:5000/acme/hello:1.0'), {
    registry: '127.0.0.1:5000',
    repository: 'acme/hello',
    tag: '1.0',
  });
  assert.deepEqual(parseReference(`ghcr.io/acme/hello@${DIGEST}`), { registry: 'ghcr.io', repository: 'acme/hello', digest: DIGEST });
  assert.deepEqual(parseReference(`oci://localhost/a/b/c:v_1@${DIGEST}`), {
    registry: 'localhost',
    repository: 'a/b/c',
    tag: 'v_1',
    digest: DIGEST,
  });
  assert.deepEqual(parseReference('oci://[::1]:8080/x'), { registry: '[::1]:8080', repository: 'x' });
});

test('refuses what the distribution spec does not allow, naming the part', () => {
  const cases: [string, RegExp][] = [
    ['oci://ghcr.io', /registry host and a repository/],
    ['oci:///acme', /registry host and a repository/],
    ['oci://ghcr.io/Acme/hello', /must be lowercase/],
    ['oci://ghcr.io/acme//hello', /must be lowercase/],
    ['oci://ghcr.io/acme/hello:-bad', /the tag "-bad"/],
    ['oci://ghcr.io/acme/hello@sha256:abc', /the digest "sha256:abc"/],
    ['oci://gh_cr.io/acme', /not a host name/],
    ['oci://ghcr.io:99999/acme', /port 99999 is out of range/],
    ['https://ghcr.io/acme', /only the oci:\/\/ scheme/],
    [`oci://ghcr.io/${'a'.repeat(256)}`, /longer than 255/],
  ];
  for (const [text, message] of cases) assert.throws(() => parseReference(text), { code: 'REGISTRY_BAD_REFERENCE', message }, text);
});

test('format is the inverse of parse', () => {
  const component = fc.stringMatching(/^[a-z0-9]{1,8}([._-][a-z0-9]{1,4})?$/);
  fc.assert(
    fc.property(
      fc.constantFrom('ghcr.io', '127.0.0.1:5000', 'localhost', 'registry.example.com:443'),
      fc.array(component, { minLength: 1, maxLength: 4 }),
      fc.option(fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,20}$/), { nil: undefined }),
      fc.option(fc.stringMatching(/^[a-f0-9]{64}$/), { nil: undefined }),
      (registry, parts, tag, hex) => {
        const reference = {
          registry,
          repository: parts.join('/'),
          ...(tag !== undefined ? { tag } : {}),
          ...(hex !== undefined ? { digest: `sha256:${hex}` } : {}),
        };
        assert.deepEqual(parseReference(formatReference(reference)), reference);
      },
    ),
  );
});

test('any text either parses or fails with REGISTRY_BAD_REFERENCE', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.string().map((text) => `oci://${text}`),
        fc.string().map((text) => `oci://h.io/${text}`),
      ),
      (text) => {
        try {
          const parsed = parseReference(text);
          assert.ok(parsed.repository.length > 0);
        } catch (error) {
          assert.equal((error as { code?: string }).code, 'REGISTRY_BAD_REFERENCE');
        }
      },
    ),
  );
});

test('only loopback registries are plain HTTP by default', () => {
  assert.ok(isLoopbackRegistry('127.0.0.1:5000'));
  assert.ok(isLoopbackRegistry('localhost'));
  assert.ok(isLoopbackRegistry('[::1]:5000'));
  assert.ok(!isLoopbackRegistry('127.0.0.1.example.com'));
  assert.ok(!isLoopbackRegistry('ghcr.io'));
});
