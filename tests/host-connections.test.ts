// A connection that never sends a request is closed (Node.js times out a slow request head and
// an idle kept-alive connection, not one that sends nothing: a few hundred of those used up a
// host's file descriptors, its control API's too), and the timer does not cut a request that
// takes longer than it to answer.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
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

test('a connection that sends no request is closed; a request slower than that timer is answered', async (t) => {
  const { dir, closing } = await testDir(t, 'stratum-connections-');
  const { path, text } = await writeTestHost(dir, { registrar: (await generateEd25519KeyPair()).publicJwk.x });
  const host = closing(await startHost(parseHostConfig(text, path), { pullComponent: false, silentConnectionMs: 500 }));
  const component = await buildHostile('moody');
  const { manifest } = parseManifest(
    `stratum = 1\n[capsule]\nname = "moody"\nversion = "0.1.0"\n[source]\nwasm = "${component.split('/').at(-1)}"\n`,
  );
  await host.runtime.install({ name: 'moody', manifest, baseDir: dirname(component), domains: ['moody.test'] });
  await host.runtime.start('moody');

  for (const url of [host.ingressUrl, host.controlUrl]) {
    const silent = connect(Number(url.port), '127.0.0.1');
    const ended = await Promise.race([once(silent, 'close').then(() => 'closed'), setTimeout(5000, 'open')]);
    silent.destroy();
    assert.equal(ended, 'closed', `${url.href}: a silent connection stayed open 5 s`);
  }
  // Two seconds of sleep, four times the timer: the request's own limits apply, not the timer.
  const slow = await ingressGet(host.ingressUrl, 'moody.test', '/wait');
  assert.equal(slow.status, 200);
  assert.match(slow.body, /^hello from tiny \d+\n$/);
});
