import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { TsigKey } from '@stratum/discovery';
import { freePort, servicesRequired } from './services.ts';

/** knotd lives in /usr/sbin, which a non-root user's PATH often lacks. */
function knotBinary(): string | undefined {
  return ['knotd', '/usr/sbin/knotd'].find((candidate) => spawnSync(candidate, ['--version']).status === 0);
}

/**
 * Starts Knot DNS (Debian `knot`) on a free loopback port, authoritative for `zone` (an SOA and
 * an NS, nothing else), taking RFC 2136 updates signed with `key`; stopped after the test.
 * Resolves to its `127.0.0.1:<port>`, or undefined when the test was skipped for want of knotd.
 */
export async function startKnot(t: TestContext, key: TsigKey, zone: string): Promise<string | undefined> {
  const knotd = knotBinary();
  if (!knotd) {
    const reason = 'knotd is not installed (Debian package knot, listed in .ci/apt-packages)';
    if (servicesRequired) throw new Error(`${reason}, and STRATUM_REQUIRE_SERVICES=1 requires it`);
    t.skip(reason);
    return undefined;
  }
  const dir = await mkdtemp(join(tmpdir(), 'stratum-knot-'));
  const port = await freePort();
  await writeFile(
    join(dir, `${zone}.zone`),
    [`$ORIGIN ${zone}.`, '$TTL 300', `@ IN SOA ns1.${zone}. hostmaster.${zone}. 1 3600 600 86400 60`, `@ IN NS ns1.${zone}.`, ''].join(
      '\n',
    ),
  );
  await writeFile(
    join(dir, 'knot.conf'),
    `server:
    rundir: "${dir}"
    listen: 127.0.0.1@${port}
database:
    storage: "${dir}"
key:
  - id: ${key.name}
    algorithm: hmac-sha256
    secret: ${key.secret}
acl:
  - id: registrar-updates
    key: ${key.name}
    action: update
zone:
  - domain: ${zone}
    file: "${dir}/${zone}.zone"
    acl: registrar-updates
    zonefile-sync: -1
log:
  - target: stderr
    any: warning
`,
  );
  const knot: ChildProcess = spawn(knotd, ['-c', join(dir, 'knot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  knot.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  knot.on('error', (error) => {
    stderr += `cannot run ${knotd}: ${error.message}`;
  });
  const exited = new Promise<void>((resolve) => {
    knot.once('close', () => resolve());
    knot.once('error', () => resolve());
  });
  t.after(async () => {
    knot.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  });
  const server = `127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    try {
      const resolver = new Resolver({ timeout: 500, tries: 1 });
      resolver.setServers([server]);
      if ((await resolver.resolveSoa(zone)).nsname === `ns1.${zone}`) return server;
    } catch (error) {
      if (attempt >= 50 || knot.exitCode !== null) throw new Error(`knotd did not start: ${String(error)}\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
