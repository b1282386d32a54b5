// A connection that never sends a request is closed (Node.js times out a slow request head and
// an idle kept-alive connection, not one that sends nothing: a few hundred of those used up a
// host's file descriptors, its control API's too), and the timer does not cut a request that
// takes longer than it to answer.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { generateEd25519KeyPair } from '@stratum/core';
import { parseHostConfig, startHost } from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { captureLogger, type LoggedLine } from './support/capture-logger.ts';
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

/** Opens a connection from `from` and says whether the host kept it open a moment (true) or closed it at once. */
async function heldOpen(port: number, from: string): Promise<{ socket: Socket; open: boolean }> {
  const socket = connect({ port, host: '127.0.0.1', localAddress: from });
  await once(socket, 'connect');
  const open = await Promise.race([once(socket, 'close').then(() => false), setTimeout(300, true)]);
  return { socket, open };
}

test('the ingress refuses connections past its limits, per client and in all, and takes them again once some close', async (t) => {
  const { dir, closing } = await testDir(t, 'stratum-connection-limits-');
  const { path, text } = await writeTestHost(dir, {
    registrar: (await generateEd25519KeyPair()).publicJwk.x,
    ingress: 'max_connections = 3\nmax_connections_per_client = 2',
  });
  const lines: LoggedLine[] = [];
  const host = closing(await startHost(parseHostConfig(text, path), { pullComponent: false, logger: captureLogger(lines) }));
  const port = Number(host.ingressUrl.port);
  const sockets: Socket[] = [];
  t.after(() => {
    for (const socket of sockets) socket.destroy();
  });
  const open = async (from: string) => {
    const { socket, open: kept } = await heldOpen(port, from);
    sockets.push(socket);
    return kept;
  };
  // Two clients (two loopback addresses): the first may hold two, and the second only one more.
  assert.deepEqual([await open('127.0.0.1'), await open('127.0.0.1'), await open('127.0.0.1')], [true, true, false]);
  assert.deepEqual([await open('127.0.0.2'), await open('127.0.0.2')], [true, false]);
  // The control API is not the ingress: its connections are not counted.
  assert.equal((await fetch(new URL('identity', `${host.controlUrl.href}/`))).status, 200);
  // A request on a new connection from the first client is refused with its connection...
  await assert.rejects(ingressGet(host.ingressUrl, 'nobody.test', '/'));
  // ...and answered once one of its connections closes (a Host no capsule serves: 404).
  sockets[0]?.destroy();
  await setTimeout(100);
  assert.equal((await ingressGet(host.ingressUrl, 'nobody.test', '/')).status, 404);

  // The first refusal is logged at once, naming the limit and what a proxy needs; the others
  // together, with their count, at the end of the minute or when the host stops.
  const refusals = () => lines.filter((line) => line.message?.startsWith('ingress'));
  assert.deepEqual(
    refusals().map((line) => [line.fields.client, line.message]),
    [
      [
        '127.0.0.1',
        'ingress connection refused: 127.0.0.1 holds its limit of 2 connections ([ingress] max_connections_per_client; a proxy in front of the ingress belongs in [ingress] trusted_proxies)',
      ],
    ],
  );
  await host.close();
  const summary = refusals()[1];
  assert.equal(summary?.fields.refused, 2);
  assert.deepEqual(summary?.fields.clients, { '127.0.0.1': 1, '127.0.0.2': 1 });
  assert.match(String(summary?.message), /^ingress: 2 more connections refused in the last minute: /);
  assert.match(String(summary?.message), /the ingress holds its limit of 3 connections \(\[ingress\] max_connections\)/);
});
