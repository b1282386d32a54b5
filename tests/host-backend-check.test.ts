// A host tells at start whether the backends in host.toml answer, one line per table, and
// serves all the same; a reload that changes a table checks that table.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';
import { parseHostConfig } from '../packages/host/src/config/parse.ts';
import { startHost } from '../packages/host/src/control/host.ts';
import { startS3rver, stopS3rver } from './capabilities-s3rver.ts';
import { captureLogger, type LoggedLine } from './support/capture-logger.ts';
import { testHostToml } from './support/host-dir.ts';
import { installingRuntime } from './support/installing-runtime.ts';
import { freePort, requireService } from './support/services.ts';
import { testDir } from './support/temp.ts';

after(stopS3rver);

const PASSWORD = 'hunter2-not-logged';
const SECRET_KEY = 'S3RVER';

/** The backend check's lines, once `count` of them are logged. */
async function backendLines(lines: LoggedLine[], count: number): Promise<LoggedLine[]> {
  for (let tries = 0; tries < 300; tries++) {
    const found = lines.filter((line) => line.fields.component === 'backends');
    if (found.length >= count) return found;
    await setTimeout(20);
  }
  assert.fail(`fewer than ${count} backend lines in:\n${lines.map((line) => line.message).join('\n')}`);
}

function lineOf(lines: LoggedLine[], table: string): LoggedLine {
  const line = lines.find((one) => one.fields.table === table);
  assert.ok(line, `no line for [${table}]`);
  return line;
}

test('a started host logs whether each backend in host.toml answers, masking credentials, and serves all the same', async (t) => {
  const redis = await requireService(t, 'redis');
  const postgres = await requireService(t, 'postgres');
  if (!redis || !postgres) return;
  const { options: s3 } = await startS3rver();
  const { dir, closing } = await testDir(t, 'stratum-backend-check-');
  const closed = await freePort();
  const registrar = await generateEd25519KeyPair();
  await writeKeyFile(join(dir, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const s3Keys = `endpoint = "${s3.endpoint}"\naccess_key_id = "S3RVER"\nsecret_access_key = "${SECRET_KEY}"`;
  const tables = `[keyvalue.default]
type = "redis"
url = "${redis}"
[keyvalue.cache]
type = "redis"
url = "redis://:${PASSWORD}@127.0.0.1:${closed}/0"
[keyvalue.events]
type = "nats"
url = "nats://s3cr3t-token@127.0.0.1:${closed}"
[keyvalue.local]
type = "sqlite"
[sql.default]
type = "postgres"
url = "postgres://stratum_no_such_user:${PASSWORD}@127.0.0.1:5432/test"
[bucket.files]
type = "s3"
location = "s3://stratum-test/check"
${s3Keys}
[bucket.missing]
type = "s3"
location = "s3://stratum-no-such-bucket"
${s3Keys}
`;
  const config = parseHostConfig(testHostToml({ registrar: registrar.publicJwk.x, operator: true, tables }), join(dir, 'host.toml'));
  const lines: LoggedLine[] = [];
  const host = closing(
    await startHost(config, {
      createRuntime: () => installingRuntime(),
      pullComponent: false,
      logger: captureLogger(lines),
      backendCheckMs: 3000,
    }),
  );
  // Started and listening before any backend has answered: the checks run after.
  assert.deepEqual(
    lines.filter((line) => line.fields.component === 'backends'),
    [],
  );
  const checked = await backendLines(lines, 6);
  assert.equal(checked.length, 6, 'one line per table that is not embedded');
  assert.ok(!checked.some((line) => line.fields.table === 'keyvalue.local'));

  const answered = lineOf(checked, 'keyvalue.default');
  assert.equal(answered.level, 'info');
  assert.match(String(answered.message), /^\[keyvalue\.default\] .*redis at redis:\/\/127\.0\.0\.1:6379\/0\) answers \(\d+ ms\)$/);

  const down = lineOf(checked, 'keyvalue.cache');
  assert.equal(down.level, 'warn');
  assert.match(String(down.message), /^\[keyvalue\.cache\] /);
  assert.ok(String(down.message).includes(`redis at redis://:***@127.0.0.1:${closed}/0`), String(down.message));
  assert.match(String(down.message), /is unavailable: connect ECONNREFUSED [^;]*; capsules granted it fail to start until it answers$/);

  const events = lineOf(checked, 'keyvalue.events');
  assert.equal(events.level, 'warn');
  assert.ok(
    String(events.message).includes(`nats at nats://***@127.0.0.1:${closed}) is unavailable: connect ECONNREFUSED`),
    String(events.message),
  );

  const refused = lineOf(checked, 'sql.default');
  assert.equal(refused.level, 'warn');
  assert.match(String(refused.message), /postgres at postgres:\/\/stratum_no_such_user:\*\*\*@127\.0\.0\.1:5432\/test/);
  assert.match(String(refused.message), /stratum_no_such_user" does not exist|authentication failed/);

  assert.equal(lineOf(checked, 'bucket.files').level, 'info');
  const missing = lineOf(checked, 'bucket.missing');
  assert.equal(missing.level, 'warn');
  assert.match(
    String(missing.message),
    /^\[bucket\.missing\] .*s3:\/\/stratum-no-such-bucket via http:\/\/127\.0\.0\.1:\d+\/?\) is unavailable: NoSuchBucket/,
  );

  for (const line of lines) {
    const text = JSON.stringify(line);
    assert.ok(!text.includes(PASSWORD) && !text.includes('s3cr3t-token'), `a password in ${text}`);
    assert.ok(!text.includes(`"${SECRET_KEY}"`) && !text.includes(`:${SECRET_KEY}`), `a secret key in ${text}`);
  }
  assert.ok(host.ingressUrl.port, 'the host serves');

  // A reload checks the tables it changed, and only those.
  const fixed = tables.replace(`redis://:${PASSWORD}@127.0.0.1:${closed}/0`, redis);
  const next = parseHostConfig(testHostToml({ registrar: registrar.publicJwk.x, operator: true, tables: fixed }), join(dir, 'host.toml'));
  assert.deepEqual(host.reload(next).restartNeeded, ['keyvalue.cache']);
  const rechecked = (await backendLines(lines, 7)).slice(6);
  assert.deepEqual(
    rechecked.map((line) => [line.fields.table, line.level]),
    [['keyvalue.cache', 'info']],
  );
  host.reload(next);
  await setTimeout(300);
  assert.equal((await backendLines(lines, 7)).length, 7, 'a reload that changes no table checks nothing');

  // Settings the next start would refuse are told, and the reload goes on.
  const typo = `${fixed}[keyvalue.typo]\ntype = "redis"\nurll = "${redis}"\n`;
  host.reload(parseHostConfig(testHostToml({ registrar: registrar.publicJwk.x, operator: true, tables: typo }), join(dir, 'host.toml')));
  const refusedLater = lines.find((line) => /the next start refuses it$/.test(String(line.message)));
  assert.match(String((refusedLater?.fields.problems as string[] | undefined)?.[0]), /\[keyvalue\.typo\] unknown key "urll"/);
});

test('a backend that does not answer within the time is told so', async (t) => {
  const { dir, closing } = await testDir(t, 'stratum-backend-check-slow-');
  // A server that takes connections and never says a word: a Redis behind a firewall that drops.
  const { createServer } = await import('node:net');
  const silent = createServer((socket) => socket.on('error', () => {}));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    silent.close();
    silent.unref();
  });
  const port = (silent.address() as { port: number }).port;
  const registrar = await generateEd25519KeyPair();
  await writeKeyFile(join(dir, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const tables = `[keyvalue.default]\ntype = "redis"\nurl = "redis://127.0.0.1:${port}/0"\n`;
  const config = parseHostConfig(testHostToml({ registrar: registrar.publicJwk.x, operator: true, tables }), join(dir, 'host.toml'));
  const lines: LoggedLine[] = [];
  closing(
    await startHost(config, {
      createRuntime: () => installingRuntime(),
      pullComponent: false,
      logger: captureLogger(lines),
      backendCheckMs: 500,
    }),
  );
  const [line] = await backendLines(lines, 1);
  assert.equal(line?.level, 'warn');
  assert.match(
    String(line?.message),
    /^\[keyvalue\.default\] .* is unavailable: no answer within 0\.5 s; capsules granted it fail to start/,
  );
});
