// A host asked to stop (SIGTERM, Ctrl-C: `stratum host start` then calls close()) lets the
// requests in flight finish before it ends them, as README's "Run a host" says: they were cut
// off (an empty reply), every restart losing what was being served.
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { generateEd25519KeyPair } from '@stratum/core';
import { parseHostConfig, startHost } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { writeTestHost } from './support/host-dir.ts';
import { ingressGet } from './support/ingress.ts';
import { testDir } from './support/temp.ts';
import { buildHostile } from './support/tiny.ts';

test('a host that stops lets its requests in flight finish, and takes no new ones', async (t) => {
  const { dir } = await testDir(t, 'stratum-stop-');
  const { path, text } = await writeTestHost(dir, { registrar: (await generateEd25519KeyPair()).publicJwk.x });
  const host = await startHost(parseHostConfig(text, path), { pullComponent: false });
  let closed = false;
  t.after(async () => {
    if (!closed) await host.close();
  });
  const component = await buildHostile('moody');
  const { manifest } = parseManifest(
    `stratum = 1\n[capsule]\nname = "moody"\nversion = "0.1.0"\n[source]\nwasm = "${component.split('/').at(-1)}"\n`,
  );
  await host.runtime.install({ name: 'moody', manifest, baseDir: dirname(component), domains: ['moody.test'] });
  await host.runtime.start('moody');
  assert.equal((await ingressGet(host.ingressUrl, 'moody.test', '/')).status, 200);

  // Two sleeps of 2 s in flight when the stop is asked: longer than a stopping host leaves
  // connections open once it has no requests in flight.
  const sleeping = [ingressGet(host.ingressUrl, 'moody.test', '/wait-1'), ingressGet(host.ingressUrl, 'moody.test', '/wait-2')];
  await setTimeout(100);
  const stopping = host.close();
  closed = true;
  await setTimeout(50);
  // No new connection is taken meanwhile.
  await assert.rejects(ingressGet(host.ingressUrl, 'moody.test', '/'), /ECONNREFUSED/);
  for (const reply of await Promise.all(sleeping)) {
    assert.equal(reply.status, 200);
    assert.match(reply.body, /^hello from tiny \d+\n$/);
  }
  await stopping;
});
