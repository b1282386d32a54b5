// A client that leaves before its response ends: the capsule's next write to the response finds
// it closed (a stream it feeds is cancelled and ends, rather than hold its instance until the
// timeout), and a request that reaches its timeout after its client left is not counted as the
// capsule failing (a few closed browser tabs of an event stream backed the capsule off for all).
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import type { RequestRecord } from '@stratum/host';
import { startHarness } from './fixtures/hostile/harness.ts';
import { buildExample } from './support/examples.ts';
import { buildHostile } from './support/tiny.ts';

/** Sends a GET and leaves: after the first bytes of the body, or after `ms` when none come. */
function getAndLeave(port: number, host: string, path: string, ms?: number): Promise<void> {
  return new Promise((resolve) => {
    const outgoing = request({ port, host: '127.0.0.1', path, headers: { host }, agent: false }, (response) => {
      response.once('data', () => {
        outgoing.destroy();
        resolve();
      });
    });
    outgoing.on('error', () => {});
    outgoing.end();
    if (ms !== undefined) {
      void setTimeout(ms).then(() => {
        outgoing.destroy();
        resolve();
      });
    }
  });
}

async function recordOf(records: RequestRecord[], path: string): Promise<RequestRecord> {
  for (let tries = 0; tries < 400; tries++) {
    const found = records.find((record) => record.path === path);
    if (found) return found;
    await setTimeout(25);
  }
  throw new Error(`no record of ${path} in 10 s`);
}

test('a stream whose client left ends at its next write, not at the timeout', async (t) => {
  const host = await startHarness(t, { instancesPerCapsule: 1 });
  // Its 200 ticks take 10 s: past the timeout, had it run on.
  await host.install('moody', await buildHostile('moody'), { manifest: '[resources]\ntimeout = "3s"\n' });
  const records: RequestRecord[] = [];
  host.runtime.onRequest((record) => records.push(record));
  await getAndLeave(host.port, 'moody.test', '/kick');
  const streamed = await recordOf(records, '/kick');
  assert.equal(streamed.status, 499);
  assert.equal(streamed.limit, undefined, `the stream ran to its ${streamed.limit}`);
  assert.deepEqual(host.runtime.status()[0]?.limitHits, {});
  // The same instance serves the next request: it was not ended.
  const next = await host.get('moody.test', '/');
  assert.equal(next.status, 200);
  assert.equal(host.runtime.stats().workersStarted, 1);
});

test('requests that reach their timeout after their clients left do not back the capsule off', async (t) => {
  const host = await startHarness(t, { instancesPerCapsule: 1 });
  // /zzz sleeps 400 ms: past its 300 ms timeout, every time.
  await host.install('moody', await buildHostile('moody'), { manifest: '[resources]\ntimeout = "300ms"\n' });
  const records: RequestRecord[] = [];
  host.runtime.onRequest((record) => records.push(record));
  // One more than the failures in a row that back a capsule off (3). Each leaves once its request
  // runs (a request whose client leaves while it waits for an instance is not run at all): the
  // instance that replaces the one ended starts at once, and has a second to.
  for (let index = 0; index < 4; index++) {
    await getAndLeave(host.port, 'moody.test', `/zzz-${index}`, 150);
    assert.equal((await recordOf(records, `/zzz-${index}`)).limit, 'timeout');
    await setTimeout(1000);
  }
  assert.equal(host.runtime.status()[0]?.limitHits.timeout, 4);
  assert.equal((await host.get('moody.test', '/')).status, 200);
});

test('a client that leaves once it has every byte its content-length said was answered: logged 200, not 499', async (t) => {
  const host = await startHarness(t);
  await host.install('moody', await buildHostile('moody'));
  const records: RequestRecord[] = [];
  host.runtime.onRequest((record) => records.push(record));
  // A connection of its own: the client closes it once the 5 bytes are in, before the body's end.
  const reply = await host.get('moody.test', '/early');
  assert.equal(reply.body.toString(), 'hello');
  const early = await recordOf(records, '/early');
  assert.equal(early.status, 200);
  assert.equal(early.bytesOut, 5);
});

test('a request whose client left while it waited for an instance is not run', async (t) => {
  const host = await startHarness(t, { instancesPerCapsule: 1, asyncInstancesPerCapsule: 1 });
  await host.install('moody', await buildHostile('moody'));
  const records: RequestRecord[] = [];
  host.runtime.onRequest((record) => records.push(record));
  assert.equal((await host.get('moody.test', '/')).body.toString(), 'hello from tiny 1\n');
  // The one instance sleeps 400 ms; the second request waits behind it, and its client leaves.
  const sleeping = host.get('moody.test', '/zzz');
  await setTimeout(50);
  await getAndLeave(host.port, 'moody.test', '/left', 100);
  assert.equal((await sleeping).body.toString(), 'hello from tiny 2\n');
  assert.equal((await host.get('moody.test', '/')).body.toString(), 'hello from tiny 3\n');
  assert.deepEqual(
    records.map((record) => record.path),
    ['/', '/zzz', '/'],
  );
});

test('requests whose bodies were still arriving at their timeout do not back the capsule off', async (t) => {
  const host = await startHarness(t, { instancesPerCapsule: 1 });
  // hello's /echo reads the whole body: a client that sends 10 of 100 bytes holds it to the timeout.
  await host.install('hello', await buildExample('hello'), { manifest: '[resources]\ntimeout = "1s"\n' });
  const slowUpload = async () => {
    const socket = connect(host.port, '127.0.0.1');
    socket.write('POST /echo HTTP/1.1\r\nHost: hello.test\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n0123456789');
    let received = '';
    socket.setEncoding('latin1');
    for await (const chunk of socket) {
      received += chunk;
      if (received.includes('\r\n\r\n')) break;
    }
    socket.destroy();
    return received.split(' ')[1];
  };
  // One more than the failures in a row that back a capsule off (3).
  for (let index = 0; index < 4; index++) assert.equal(await slowUpload(), '504');
  assert.equal(host.runtime.status()[0]?.limitHits.timeout, 4);
  assert.equal((await host.get('hello.test', '/')).status, 200);
});

test('a client that stops reading holds the capsule back instead of the host buffering the whole response', async (t) => {
  const MiB = 1024 * 1024;
  const host = await startHarness(t, { limits: { responseBodyBytes: 16 * MiB }, instancesPerCapsule: 1 });
  // 64 KiB chunks until the host refuses one: 16 MiB, had nothing held it back.
  await host.install('huge', await buildHostile('huge-body'), { manifest: '[resources]\ntimeout = "2s"\n' });
  const records: RequestRecord[] = [];
  host.runtime.onRequest((record) => records.push(record));

  // A reader that stops: the capsule waits on it until its timeout, with what the host holds and
  // what the loopback's socket buffers take (several MiB) out, rather than run to the limit.
  const stalled = connect(host.port, '127.0.0.1');
  stalled.write('GET /stalled HTTP/1.1\r\nHost: huge.test\r\n\r\n');
  stalled.pause();
  const held = await recordOf(records, '/stalled');
  stalled.destroy();
  assert.equal(held.limit, 'timeout', `${held.bytesOut} bytes went out to a client that read none`);
  assert.ok(held.bytesOut < 16 * MiB, `${held.bytesOut} bytes went out to a client that read none`);

  // A reader that is slow but reads: held back and let go again, it gets every byte up to the limit.
  const slow = connect(host.port, '127.0.0.1');
  slow.write('GET /slow HTTP/1.1\r\nHost: huge.test\r\n\r\n');
  let received = 0;
  for await (const chunk of slow) {
    received += (chunk as Buffer).length;
    if (received % (4 * MiB) < 65_536) await setTimeout(100);
  }
  const read = await recordOf(records, '/slow');
  assert.equal(read.limit, 'response-body');
  assert.ok(received > 16 * MiB, `received ${received} bytes`);
});
