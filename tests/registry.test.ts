import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSign, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parse } from '@bytecodealliance/jco';
import { isStratumError } from '@stratum/core';
import {
  buildArtifact,
  credentialsFrom,
  digestOf,
  type PulledCapsule,
  pullCapsule,
  pullComponent,
  pushCapsule,
  readArtifactManifest,
  STRATUM_MANIFEST_ANNOTATION,
  type TransferProgress,
} from '@stratum/registry';
import { registryOrSkip } from './support/registry.ts';
import { removeDir } from './support/temp.ts';

const run = promisify(execFile);

/** A small valid component; `padding` bytes of data make it as large as a test needs. */
async function makeComponent(padding = 0, answer = 42): Promise<Uint8Array> {
  const data = padding > 0 ? `(memory 1) (data (i32.const 0) "${'ab'.repeat(Math.ceil(padding / 2))}")` : '';
  return parse(`(component
    (import "wasi:cli/environment@0.2.0" (instance))
    (core module $m ${data} (func (export "f") (result i32) i32.const ${answer}))
    (core instance $i (instantiate $m))
    (func $f (result u32) (canon lift (core func $i "f")))
    (export "answer" (func $f)))`);
}

async function tempDir(t: { after(fn: () => Promise<void>): void }, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => removeDir(dir));
  return dir;
}

/** Every file under a directory, relative; empty when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1));
}

const TOML = `#:schema ../spec/capsule/capsule-v1.schema.json
# the hello capsule
stratum = 1

[capsule]
name = "hello"
version = "1.0.0"

[source]
wasm = "hello.wasm"
`;

test('push then pull through a real registry: identical bytes, the digest pins them, the second pull is offline', async (t) => {
  const registry = await registryOrSkip(t);
  if (!registry) return;
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const wasm = await makeComponent();
  const pushed = await pushCapsule({
    reference: `oci://${registry.host}/acme/hello:1.0.0`,
    wasm: { bytes: wasm },
    stratumToml: TOML,
    cacheDir,
  });
  assert.equal(pushed.digest, digestOf(wasm), 'the pin is the digest of the component itself');
  assert.match(pushed.manifestDigest, /^sha256:[a-f0-9]{64}$/);
  assert.equal(pushed.reference, `oci://${registry.host}/acme/hello:1.0.0@${pushed.manifestDigest}`);

  // The stored manifest follows the CNCF Wasm layout and carries stratum.toml.
  const raw = await fetch(`${registry.url}/v2/acme/hello/manifests/1.0.0`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  const manifestBytes = new Uint8Array(await raw.arrayBuffer());
  assert.equal(digestOf(manifestBytes), pushed.manifestDigest);
  const manifest = JSON.parse(Buffer.from(manifestBytes).toString()) as {
    config: { mediaType: string; digest: string };
    layers: { mediaType: string }[];
    annotations: Record<string, string>;
  };
  assert.equal(manifest.config.mediaType, 'application/vnd.wasm.config.v0+json');
  assert.deepEqual(
    manifest.layers.map((layer) => layer.mediaType),
    ['application/wasm'],
  );
  assert.equal(manifest.annotations[STRATUM_MANIFEST_ANNOTATION], TOML);
  const config = JSON.parse(await (await fetch(`${registry.url}/v2/acme/hello/blobs/${manifest.config.digest}`)).text()) as Record<
    string,
    unknown
  >;
  assert.equal(config.architecture, 'wasm');
  assert.equal(config.os, 'wasip2');
  assert.deepEqual(config.layerDigests, [digestOf(wasm)]);
  assert.deepEqual(config.component, { imports: ['wasi:cli/environment@0.2.0'], exports: ['answer'] });

  // A fresh cache: by tag, then by the pinned digest.
  const pullCache = await tempDir(t, 'stratum-cache-');
  const byTag = await pullCapsule({ reference: `oci://${registry.host}/acme/hello:1.0.0`, cacheDir: pullCache });
  assert.equal(byTag.digest, pushed.digest);
  assert.equal(byTag.manifestDigest, pushed.manifestDigest);
  assert.equal(byTag.fromCache, false);
  assert.deepEqual(new Uint8Array(await readFile(byTag.path)), wasm);
  assert.equal(byTag.manifestText, TOML);

  let requests = 0;
  const counting: typeof fetch = (input, init) => {
    requests++;
    return fetch(input, init);
  };
  const again = await pullComponent({
    reference: `oci://${registry.host}/acme/hello:1.0.0`,
    digest: pushed.digest,
    cacheDir: pullCache,
    fetch: counting,
  });
  assert.equal(requests, 0, 'a cached pull by digest makes no request');
  assert.equal(again.fromCache, true);
  assert.equal(again.path, byTag.path);
  assert.equal(again.manifestText, TOML, 'the cache remembers the artifact a component came in');
  assert.equal(again.size, wasm.length);

  // Without a tag, the pinned component is fetched as a blob; there is no manifest to read.
  const untagged = await pullComponent({
    reference: `oci://${registry.host}/acme/hello`,
    digest: pushed.digest,
    cacheDir: await tempDir(t, 'stratum-cache-'),
  });
  assert.deepEqual(new Uint8Array(await readFile(untagged.path)), wasm);
  assert.equal(untagged.manifestText, undefined);
  assert.equal(untagged.size, wasm.length);

  // The reference's manifest digest and the pin must name the same component.
  await assert.rejects(
    pullComponent({
      reference: `oci://${registry.host}/acme/hello@${pushed.manifestDigest}`,
      digest: digestOf(await makeComponent(0, 3)),
      cacheDir: await tempDir(t, 'stratum-cache-'),
    }),
    { code: 'REGISTRY_DIGEST_MISMATCH', message: /another component than the pinned one/ },
  );

  await registry.stop();
  for (const digest of [pushed.manifestDigest, pushed.digest]) {
    const offline = await pullCapsule({ reference: `oci://${registry.host}/acme/hello@${digest}`, cacheDir: pullCache, offline: true });
    assert.deepEqual(new Uint8Array(await readFile(offline.path)), wasm);
    assert.equal(offline.manifestText, TOML);
  }
  await assert.rejects(pullCapsule({ reference: `oci://${registry.host}/acme/hello:1.0.0`, cacheDir: pullCache, offline: true }), {
    code: 'REGISTRY_NOT_CACHED',
  });
});

test('a damaged cache entry is fetched again, not served', async (t) => {
  const registry = await registryOrSkip(t);
  if (!registry) return;
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const wasm = await makeComponent(0, 7);
  const { digest } = await pushCapsule({ reference: `oci://${registry.host}/acme/damaged:1`, wasm: { bytes: wasm }, cacheDir });
  const first = await pullComponent({ reference: `oci://${registry.host}/acme/damaged`, digest, cacheDir });
  const damaged = Buffer.from(wasm);
  damaged[damaged.length - 1] = (damaged[damaged.length - 1] ?? 0) ^ 0xff;
  await writeFile(first.path, damaged);
  const second = await pullComponent({ reference: `oci://${registry.host}/acme/damaged`, digest, cacheDir });
  assert.equal(second.fromCache, false);
  assert.deepEqual(new Uint8Array(await readFile(second.path)), wasm);
});

test('large blobs go up in chunks with progress, and a second repository mounts them', async (t) => {
  const registry = await registryOrSkip(t);
  if (!registry) return;
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const wasm = await makeComponent(300_000);
  const progress: TransferProgress[] = [];
  const pushed = await pushCapsule({
    reference: `oci://${registry.host}/acme/big:1`,
    wasm: { bytes: wasm },
    chunkBytes: 64 * 1024,
    cacheDir,
    onProgress: (event) => progress.push(event),
  });
  const uploads = progress.filter((event) => event.digest === pushed.digest);
  assert.ok(uploads.length >= Math.ceil(wasm.length / (64 * 1024)), `one progress event per chunk, got ${uploads.length}`);
  assert.equal(uploads.at(-1)?.done, wasm.length);
  assert.deepEqual(
    pushed.blobs.map((blob) => blob.result),
    ['uploaded', 'uploaded'],
  );

  const again = await pushCapsule({
    reference: `oci://${registry.host}/acme/big:1`,
    wasm: { bytes: wasm },
    cacheDir,
    created: new Date(0),
  });
  assert.deepEqual(
    again.blobs.map((blob) => blob.result),
    ['exists', 'uploaded'],
  );
  const mounted = await pushCapsule({
    reference: `oci://${registry.host}/other/big:1`,
    wasm: { bytes: wasm },
    cacheDir,
    created: new Date(0),
  });
  assert.deepEqual(
    mounted.blobs.map((blob) => blob.result),
    ['mounted', 'mounted'],
  );
  assert.equal(mounted.digest, again.digest, 'the same bytes and created time give the same digest');

  const pulled = await pullCapsule({
    reference: mounted.reference,
    cacheDir: await tempDir(t, 'stratum-cache-'),
    onProgress: (event) => progress.push(event),
  });
  assert.deepEqual(new Uint8Array(await readFile(pulled.path)), wasm);
  assert.equal(progress.filter((event) => event.phase === 'download').at(-1)?.done, wasm.length);
});

test('pullComponent refuses a source without a digest, or with one that is not sha256', async () => {
  await assert.rejects(pullComponent({ reference: 'oci://127.0.0.1:1/acme/hello:1', digest: '' }), { code: 'REGISTRY_DIGEST_REQUIRED' });
  await assert.rejects(pullComponent({ reference: 'oci://127.0.0.1:1/acme/hello:1', digest: undefined as unknown as string }), {
    code: 'REGISTRY_DIGEST_REQUIRED',
  });
  await assert.rejects(pullComponent({ reference: 'oci://127.0.0.1:1/acme/hello:1', digest: 'sha256:short' }), {
    code: 'REGISTRY_BAD_DIGEST',
  });
});

test('basic auth against an htpasswd registry: 401 without credentials, works from a credentials file or the environment', async (t) => {
  const registry = await registryOrSkip(t, { htpasswd: { alice: 'wonderland' } });
  if (!registry) return;
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const wasm = await makeComponent(0, 1);
  const reference = `oci://${registry.host}/alice/app:1`;

  const anonymous = await pushCapsule({ reference, wasm: { bytes: wasm }, cacheDir }).then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.ok(isStratumError(anonymous));
  assert.equal(anonymous.code, 'REGISTRY_UNAUTHORIZED');
  assert.match(anonymous.hint ?? '', /STRATUM_REGISTRY_USERNAME/);

  await assert.rejects(pushCapsule({ reference, wasm: { bytes: wasm }, cacheDir, credentials: { username: 'alice', password: 'wrong' } }), {
    code: 'REGISTRY_UNAUTHORIZED',
    message: /refused the credentials/,
  });

  const dir = await tempDir(t, 'stratum-auth-');
  const file = join(dir, 'registry-auth.json');
  await writeFile(
    file,
    JSON.stringify({ auths: { [`http://${registry.host}/v2/`]: { auth: Buffer.from('alice:wonderland').toString('base64') } } }),
  );
  const pushed = await pushCapsule({ reference, wasm: { bytes: wasm }, cacheDir, credentials: credentialsFrom({ file, env: {} }) });

  const env = { STRATUM_REGISTRY_USERNAME: 'alice', STRATUM_REGISTRY_PASSWORD: 'wonderland', STRATUM_REGISTRY_HOST: registry.host };
  const pulled = await pullComponent({
    reference,
    digest: pushed.digest,
    cacheDir: await tempDir(t, 'stratum-cache-'),
    credentials: credentialsFrom({ env }),
  });
  assert.deepEqual(new Uint8Array(await readFile(pulled.path)), wasm);
  // Credentials for another host are not sent here.
  await assert.rejects(
    pullComponent({
      reference,
      digest: pushed.digest,
      cacheDir: await tempDir(t, 'stratum-cache-'),
      credentials: credentialsFrom({ env: { ...env, STRATUM_REGISTRY_HOST: 'elsewhere.example' }, file: join(dir, 'missing.json') }),
    }),
    { code: 'REGISTRY_UNAUTHORIZED' },
  );
});

/** A token service for the distribution registry's bearer flow: ES256 tokens with an x5c chain. */
async function startTokenServer(t: import('node:test').TestContext, users: Record<string, string>) {
  const dir = await tempDir(t, 'stratum-token-');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=stratum-test-token',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]);
  const keyPem = await readFile(join(dir, 'key.pem'), 'utf8');
  const certPem = await readFile(join(dir, 'cert.pem'), 'utf8');
  const certDer = certPem.replace(/-----[^-]+-----|\s/g, '');
  const issued: { user: string | undefined; scopes: string[] }[] = [];
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const header = request.headers.authorization ?? '';
    const [user, password] = header.startsWith('Basic ') ? Buffer.from(header.slice(6), 'base64').toString().split(':') : [];
    if (user === undefined || users[user] !== password) {
      response.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"no"}');
      return;
    }
    const scopes = url.searchParams.getAll('scope');
    issued.push({ user, scopes });
    const access = scopes.map((scope) => {
      const [type, name, actions] = scope.split(':');
      return { type, name, actions: (actions ?? '').split(',') };
    });
    const now = Math.floor(Date.now() / 1000);
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signingInput = `${encode({ alg: 'ES256', typ: 'JWT', x5c: [certDer] })}.${encode({
      iss: 'stratum-test-issuer',
      sub: user,
      aud: url.searchParams.get('service'),
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    })}`;
    const signature = createSign('sha256').update(signingInput).sign({ key: keyPem, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    response
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token: `${signingInput}.${signature}`, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { realm: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, certPem, issued };
}

test('bearer-token auth: the WWW-Authenticate challenge flow against a local token service', async (t) => {
  const tokens = await startTokenServer(t, { bob: 'builder' });
  const registry = await registryOrSkip(t, {
    token: { realm: tokens.realm, service: 'stratum-test', issuer: 'stratum-test-issuer', rootCertPem: tokens.certPem },
  });
  if (!registry) return;
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const wasm = await makeComponent(0, 2);
  const reference = `oci://${registry.host}/bob/app:2`;
  await assert.rejects(pushCapsule({ reference, wasm: { bytes: wasm }, cacheDir }), {
    code: 'REGISTRY_UNAUTHORIZED',
    message: /token service/,
  });

  const credentials = { username: 'bob', password: 'builder' };
  const pushed = await pushCapsule({ reference, wasm: { bytes: wasm }, cacheDir, credentials });
  assert.ok(tokens.issued.some((grant) => grant.scopes.includes('repository:bob/app:pull,push')));
  const pulled = await pullComponent({ reference, digest: pushed.digest, cacheDir: await tempDir(t, 'stratum-cache-'), credentials });
  assert.deepEqual(new Uint8Array(await readFile(pulled.path)), wasm);
  assert.ok(tokens.issued.some((grant) => grant.scopes.includes('repository:bob/app:pull')));
});

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

/** A registry that lies: each test gives the answers it wants. */
async function lyingRegistry(t: import('node:test').TestContext, handler: Handler): Promise<string> {
  const server: Server = createServer((request, response) => {
    if (request.url === '/v2/') {
      response.writeHead(200).end('{}');
      return;
    }
    handler(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function artifactFor(wasm: Uint8Array) {
  return buildArtifact({ wasm: { digest: digestOf(wasm), size: wasm.length }, os: 'wasip2', created: new Date(0) });
}

async function expectCleanFailure(cacheDir: string, pull: Promise<PulledCapsule>, code: string): Promise<Error> {
  const error = await pull.then(
    () => assert.fail(`expected ${code}`),
    (failure: unknown) => failure,
  );
  assert.ok(isStratumError(error), String(error));
  assert.equal(error.code, code, error.message);
  const blobs = (await filesUnder(cacheDir)).filter((file) => !file.startsWith('sources') && !file.startsWith('artifacts'));
  return Object.assign(error, { kept: blobs });
}

test('a manifest that does not match the pinned digest is refused and not cached', async (t) => {
  const wasm = await makeComponent();
  const artifact = await artifactFor(wasm);
  const other = await artifactFor(await makeComponent(0, 9));
  const host = await lyingRegistry(t, (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(other.manifest);
  });
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const error = (await expectCleanFailure(
    cacheDir,
    pullComponent({ reference: `oci://${host}/acme/hello@${artifact.manifestDigest}`, digest: digestOf(wasm), cacheDir }),
    'REGISTRY_DIGEST_MISMATCH',
  )) as Error & { kept: string[] };
  assert.deepEqual(error.kept, []);
  assert.match(error.message, /does not match its digest/);
});

test('a blob with the wrong bytes is refused while it streams and leaves no file', async (t) => {
  const wasm = await makeComponent();
  const artifact = await artifactFor(wasm);
  const liar = Buffer.from(wasm);
  liar[20] = (liar[20] ?? 0) ^ 1;
  const host = await lyingRegistry(t, (request, response) => {
    if (request.url?.includes('/manifests/'))
      response.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(artifact.manifest);
    else response.writeHead(200, { 'content-length': String(liar.length) }).end(liar);
  });
  // Through the tag's manifest (the size is known), and as a bare blob by digest (it is not).
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const tagged = (await expectCleanFailure(
    cacheDir,
    pullComponent({ reference: `oci://${host}/acme/hello:1`, digest: digestOf(wasm), cacheDir }),
    'REGISTRY_DIGEST_MISMATCH',
  )) as Error & { kept: string[] };
  // The verified manifest may stay; the blob and any partial download must not.
  assert.deepEqual(tagged.kept, [join('blobs', 'sha256', artifact.manifestDigest.slice(7))]);
  const bareCache = await tempDir(t, 'stratum-cache-');
  const bare = (await expectCleanFailure(
    bareCache,
    pullComponent({ reference: `oci://${host}/acme/hello`, digest: digestOf(wasm), cacheDir: bareCache }),
    'REGISTRY_DIGEST_MISMATCH',
  )) as Error & { kept: string[] };
  assert.deepEqual(bare.kept, []);
});

test('a truncated blob is refused and leaves no file, whether the length is declared or not', async (t) => {
  const wasm = await makeComponent(5000);
  const artifact = await artifactFor(wasm);
  for (const declared of [true, false]) {
    const host = await lyingRegistry(t, (request, response) => {
      if (request.url?.includes('/manifests/')) {
        response.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(artifact.manifest);
        return;
      }
      response.writeHead(200, declared ? { 'content-length': String(wasm.length) } : {});
      response.write(wasm.subarray(0, 1000));
      if (declared) setTimeout(() => response.socket?.destroy(), 20);
      else response.end();
    });
    const cacheDir = await tempDir(t, 'stratum-cache-');
    const error = (await expectCleanFailure(
      cacheDir,
      pullComponent({ reference: `oci://${host}/acme/hello:1`, digest: digestOf(wasm), cacheDir }),
      'REGISTRY_TRUNCATED',
    )) as Error & { kept: string[] };
    assert.match(error.message, /ended after 1000 of/);
    assert.deepEqual(error.kept, [join('blobs', 'sha256', artifact.manifestDigest.slice(7))]);
  }
});

test('an oversized manifest is refused before it is read whole', async (t) => {
  let sent = 0;
  const host = await lyingRegistry(t, (request, response) => {
    if (request.url?.endsWith('/declared')) {
      response.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(64 * 1024 * 1024) });
      response.write('{');
      return;
    }
    // No length: an endless stream, cut off by the client's limit.
    response.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    const chunk = Buffer.alloc(64 * 1024, 32);
    const pump = () => {
      while (sent < 256 * 1024 * 1024 && response.write(chunk)) sent += chunk.length;
    };
    response.on('drain', pump);
    response.on('close', () => response.off('drain', pump));
    pump();
  });
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const declared = (await expectCleanFailure(
    cacheDir,
    pullCapsule({ reference: `oci://${host}/acme/hello:declared`, cacheDir, maxManifestBytes: 1024 * 1024 }),
    'REGISTRY_TOO_LARGE',
  )) as Error & { kept: string[] };
  assert.deepEqual(declared.kept, []);
  const streamed = (await expectCleanFailure(
    cacheDir,
    pullCapsule({ reference: `oci://${host}/acme/hello:streamed`, cacheDir, maxManifestBytes: 1024 * 1024 }),
    'REGISTRY_TOO_LARGE',
  )) as Error & { kept: string[] };
  assert.deepEqual(streamed.kept, []);
  assert.ok(sent < 64 * 1024 * 1024, `the client stopped reading early (the server sent ${sent} bytes)`);
});

test('a 401 without credentials names the problem and how to give credentials', async (t) => {
  const host = await lyingRegistry(t, (_request, response) => {
    response
      .writeHead(401, { 'www-authenticate': 'Basic realm="lying"', 'content-type': 'application/json' })
      .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
  });
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const error = (await expectCleanFailure(
    cacheDir,
    pullComponent({ reference: `oci://${host}/acme/hello`, digest: `sha256:${'c'.repeat(64)}`, cacheDir }),
    'REGISTRY_UNAUTHORIZED',
  )) as Error & { kept: string[]; hint?: string };
  assert.deepEqual(error.kept, []);
  assert.match(error.message, /asks for a user name and password/);
});

test('a registry that serves an image index or a non-Wasm manifest gets a clear refusal', () => {
  assert.throws(
    () =>
      readArtifactManifest(
        Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] })),
        'x',
      ),
    {
      code: 'REGISTRY_NOT_A_CAPSULE',
      message: /image index/,
    },
  );
  const image = {
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 2 },
    layers: [],
  };
  assert.throws(() => readArtifactManifest(Buffer.from(JSON.stringify(image)), 'x'), {
    code: 'REGISTRY_NOT_A_CAPSULE',
    message: /config media type/,
  });
});

test('a registry that stalls, before its headers or in the middle of a blob, times out and leaves nothing', async (t) => {
  const wasm = await makeComponent(5000);
  const artifact = await artifactFor(wasm);
  const host = await lyingRegistry(t, (request, response) => {
    if (request.url?.includes('/manifests/silent')) return; // never answers
    if (request.url?.includes('/manifests/')) {
      response.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(artifact.manifest);
      return;
    }
    response.writeHead(200, { 'content-length': String(wasm.length) });
    response.write(wasm.subarray(0, 2000)); // and then nothing more
  });
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const silent = (await expectCleanFailure(
    cacheDir,
    pullCapsule({ reference: `oci://${host}/acme/hello:silent`, cacheDir, timeoutMs: 300 }),
    'REGISTRY_TIMEOUT',
  )) as Error & {
    kept: string[];
  };
  assert.deepEqual(silent.kept, []);
  const stalled = (await expectCleanFailure(
    cacheDir,
    pullComponent({ reference: `oci://${host}/acme/hello:1`, digest: digestOf(wasm), cacheDir, timeoutMs: 300 }),
    'REGISTRY_TIMEOUT',
  )) as Error & { kept: string[] };
  assert.match(stalled.message, /sent more after 2000 of/);
  assert.deepEqual(stalled.kept, [join('blobs', 'sha256', artifact.manifestDigest.slice(7))]);
});

test('a pin holds when the tag moves: the pinned bytes are fetched by digest, the new ones by tag', async (t) => {
  const registry = await registryOrSkip(t);
  if (!registry) return;
  const reference = `oci://${registry.host}/acme/moving:stable`;
  const first = await makeComponent(0, 11);
  const second = await makeComponent(0, 12);
  const cacheDir = await tempDir(t, 'stratum-cache-');
  const old = await pushCapsule({ reference, wasm: { bytes: first }, stratumToml: TOML, cacheDir });
  await pushCapsule({ reference, wasm: { bytes: second }, cacheDir });

  const pinned = await pullComponent({ reference, digest: old.digest, cacheDir: await tempDir(t, 'stratum-cache-') });
  assert.deepEqual(new Uint8Array(await readFile(pinned.path)), first);
  assert.equal(pinned.manifestText, undefined, 'the tag now names another artifact, so its stratum.toml is not this one');
  const latest = await pullCapsule({ reference, cacheDir: await tempDir(t, 'stratum-cache-') });
  assert.deepEqual(new Uint8Array(await readFile(latest.path)), second);
  assert.equal(latest.digest, digestOf(second));
  // What each was found by: the pin, beside a tag it did not check; the tag, when it named them.
  assert.equal(pinned.reference, `oci://${registry.host}/acme/moving@${old.digest}`);
  assert.equal(pinned.uncheckedTag, 'stable');
  assert.equal(latest.reference, reference);
  assert.equal(latest.uncheckedTag, undefined);
  const missingTag = await pullComponent({
    reference: `oci://${registry.host}/acme/moving:0.2.0`,
    digest: old.digest,
    cacheDir: await tempDir(t, 'stratum-cache-'),
  });
  assert.deepEqual(new Uint8Array(await readFile(missingTag.path)), first, 'a tag that names nothing does not stand in the way of the pin');
  assert.equal(missingTag.reference, `oci://${registry.host}/acme/moving@${old.digest}`);
  assert.equal(missingTag.uncheckedTag, '0.2.0');
});

test('a tag that now names something else (an image index) does not stand in the way of a pin', async (t) => {
  const wasm = await makeComponent(0, 21);
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }));
  const host = await lyingRegistry(t, (request, response) => {
    if (request.url?.includes('/manifests/'))
      response.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' }).end(index);
    else if (request.url?.endsWith(digestOf(wasm))) response.writeHead(200, { 'content-length': String(wasm.length) }).end(wasm);
    else response.writeHead(404).end();
  });
  const pinned = await pullComponent({
    reference: `oci://${host}/acme/hello:1`,
    digest: digestOf(wasm),
    cacheDir: await tempDir(t, 'stratum-cache-'),
  });
  assert.deepEqual(new Uint8Array(await readFile(pinned.path)), wasm);
  await assert.rejects(pullCapsule({ reference: `oci://${host}/acme/hello:1`, cacheDir: await tempDir(t, 'stratum-cache-') }), {
    code: 'REGISTRY_NOT_A_CAPSULE',
    message: /image index/,
  });
});
