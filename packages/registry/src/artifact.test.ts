import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { buildArtifact, readArtifactManifest, STRATUM_MANIFEST_ANNOTATION, wasmKind } from './artifact.ts';
import { digestOf } from './digest.ts';

const wasm = { digest: `sha256:${'b'.repeat(64)}`, size: 1234 };

test('a built artifact reads back, and the same inputs give the same digest', () => {
  const options = {
    wasm,
    os: 'wasip2' as const,
    stratumToml: 'stratum = 1\n',
    created: new Date(0),
    annotations: { 'org.opencontainers.image.version': '1.0' },
  };
  const built = buildArtifact(options);
  assert.equal(built.manifestDigest, digestOf(built.manifest));
  assert.equal(buildArtifact(options).manifestDigest, built.manifestDigest);
  assert.notEqual(buildArtifact({ ...options, created: new Date(1000) }).manifestDigest, built.manifestDigest);
  const read = readArtifactManifest(built.manifest, 'x');
  assert.deepEqual(read.wasm, { mediaType: 'application/wasm', ...wasm });
  assert.equal(read.config.digest, built.configDigest);
  assert.equal(read.stratumToml, 'stratum = 1\n');
  assert.equal(read.annotations[STRATUM_MANIFEST_ANNOTATION], 'stratum = 1\n');
  assert.deepEqual(JSON.parse(Buffer.from(built.config).toString()), {
    created: '1970-01-01T00:00:00.000Z',
    architecture: 'wasm',
    os: 'wasip2',
    layerDigests: [wasm.digest],
  });
});

test('tells a component from a core module from anything else', () => {
  assert.equal(wasmKind(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0)), 'wasip1');
  assert.equal(wasmKind(Uint8Array.of(0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0)), 'wasip2');
  assert.equal(wasmKind(Buffer.from('PK\x03\x04 not wasm')), undefined);
  assert.equal(wasmKind(Uint8Array.of(0, 0x61)), undefined);
});

test('refuses manifests that are not one Wasm artifact, with the reason', () => {
  const base = JSON.parse(Buffer.from(buildArtifact({ wasm, os: 'wasip2', created: new Date(0) }).manifest).toString()) as Record<
    string,
    unknown
  >;
  const cases: [unknown, RegExp][] = [
    [{ ...base, layers: [] }, /0 application\/wasm layers/],
    [{ ...base, layers: [...(base.layers as unknown[]), ...(base.layers as unknown[])] }, /2 application\/wasm layers/],
    [{ ...base, layers: [{ mediaType: 'application/wasm', digest: 'md5:x', size: 1 }] }, /not a sha256 digest/],
    [{ ...base, layers: [{ mediaType: 'application/wasm', digest: wasm.digest, size: -1 }] }, /no valid size/],
    [{ ...base, schemaVersion: 1 }, /schemaVersion/],
    [[], /not a JSON object/],
  ];
  for (const [value, message] of cases) {
    assert.throws(
      () => readArtifactManifest(Buffer.from(JSON.stringify(value)), 'oci://x/y'),
      (error: { code?: string; message?: string }) => {
        assert.ok(error.code === 'REGISTRY_NOT_A_CAPSULE' || error.code === 'REGISTRY_BAD_DIGEST', error.message);
        assert.match(error.message ?? '', message);
        return true;
      },
    );
  }
  assert.throws(() => readArtifactManifest(Uint8Array.of(0xff, 0xfe), 'x'), { code: 'REGISTRY_NOT_A_CAPSULE', message: /not JSON/ });
});

test('untrusted manifest bytes never crash the reader: a result or a coded refusal', () => {
  const base = JSON.parse(Buffer.from(buildArtifact({ wasm, os: 'wasip2', created: new Date(0) }).manifest).toString()) as Record<
    string,
    unknown
  >;
  fc.assert(
    fc.property(
      fc.oneof(
        fc.jsonValue(),
        fc.record({ ...Object.fromEntries(Object.keys(base).map((key) => [key, fc.jsonValue()])) }, { requiredKeys: [] }),
      ),
      (value) => {
        try {
          readArtifactManifest(Buffer.from(JSON.stringify(value) ?? 'null'), 'x');
        } catch (error) {
          assert.match(String((error as { code?: string }).code), /^REGISTRY_(NOT_A_CAPSULE|BAD_DIGEST)$/);
        }
      },
    ),
  );
});
