import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { credentialsFrom, defaultCredentialsFiles, readCredentialsFile } from './credentials.ts';

test('reads docker-style auths: base64 auth or username/password, keys with or without a scheme', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-creds-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'auth.json');
  await writeFile(
    file,
    JSON.stringify({
      auths: {
        'https://ghcr.io/v1/': { auth: Buffer.from('alice:pa:ss').toString('base64') },
        '127.0.0.1:5000': { username: 'bob', password: 'secret' },
        'helper.example': {},
      },
    }),
  );
  assert.deepEqual(await readCredentialsFile(file, 'ghcr.io'), { username: 'alice', password: 'pa:ss' });
  assert.deepEqual(await readCredentialsFile(file, '127.0.0.1:5000'), { username: 'bob', password: 'secret' });
  assert.equal(await readCredentialsFile(file, '127.0.0.1:5001'), undefined);
  assert.equal(await readCredentialsFile(file, 'helper.example'), undefined);
  assert.equal(await readCredentialsFile(join(dir, 'missing.json'), 'ghcr.io'), undefined);

  await writeFile(file, '{"auths": [');
  await assert.rejects(readCredentialsFile(file, 'ghcr.io'), {
    code: 'REGISTRY_CREDENTIALS_INVALID',
    message: new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
  });
  await writeFile(file, JSON.stringify({ auths: { 'ghcr.io': { auth: Buffer.from('nocolon').toString('base64') } } }));
  await assert.rejects(readCredentialsFile(file, 'ghcr.io'), {
    code: 'REGISTRY_CREDENTIALS_INVALID',
    message: /not base64 of user:password/,
  });
});

test('the environment wins, limited to STRATUM_REGISTRY_HOST when set', async () => {
  const env = { STRATUM_REGISTRY_USERNAME: 'u', STRATUM_REGISTRY_PASSWORD: 'p', STRATUM_REGISTRY_AUTH_FILE: '/nonexistent/auth.json' };
  assert.deepEqual(await credentialsFrom({ env })('any.example'), { username: 'u', password: 'p' });
  assert.equal(await credentialsFrom({ env: { ...env, STRATUM_REGISTRY_HOST: 'ghcr.io' } })('any.example'), undefined);
  assert.deepEqual(await credentialsFrom({ env: { ...env, STRATUM_REGISTRY_HOST: 'ghcr.io' } })('ghcr.io'), {
    username: 'u',
    password: 'p',
  });
});

test('the default files: STRATUM_REGISTRY_AUTH_FILE, else the stratum config file then docker config', () => {
  assert.deepEqual(defaultCredentialsFiles({ STRATUM_REGISTRY_AUTH_FILE: '/x/auth.json' }), ['/x/auth.json']);
  assert.deepEqual(defaultCredentialsFiles({ HOME: '/home/a' }), [
    '/home/a/.config/stratum/registry-auth.json',
    '/home/a/.docker/config.json',
  ]);
  assert.deepEqual(defaultCredentialsFiles({ HOME: '/home/a', XDG_CONFIG_HOME: '/cfg', DOCKER_CONFIG: '/d' }), [
    '/cfg/stratum/registry-auth.json',
    '/d/config.json',
  ]);
});
