// Migration: how long a capsule is out of service while it moves to another host with its
// keyvalue state (moveCapsule: install there without starting, drain here, copy each store,
// start there), against the same capsule drained and started again where it is, no state
// copied, in the same rounds. DNS is not part of it: the registrar switches the domain's
// record afterwards, and resolvers follow within the record's TTL.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateEd25519KeyPair } from '@stratum/core';
import {
  type ControlClient,
  createControlClient,
  moveCapsule,
  parseHostConfig,
  type RunningHost,
  startHost,
  storesOf,
} from '@stratum/host';
import { parseManifest } from '@stratum/manifest';
import { testHostToml, writeTestHost } from '../../tests/support/host-dir.ts';
import { exampleComponent } from '../lib/components.ts';
import { get } from '../lib/http.ts';
import { summarise } from '../lib/stats.ts';
import type { BenchRow, Suite } from '../lib/suite.ts';

interface Side {
  name: string;
  host: RunningHost;
  client: ControlClient;
  dir: string;
}

/** A keyvalue snapshot (spec/snapshot.md) of `records` counters, as examples/counter keeps them. */
function counterSnapshot(records: number): string {
  const lines = [JSON.stringify({ 'stratum-snapshot': 1, capability: 'keyvalue', label: 'default', created: new Date().toISOString() })];
  const keys = Array.from({ length: records }, (_, index) => `hits:/k${String(index).padStart(7, '0')}`).sort();
  const value = Buffer.from('1').toString('base64');
  for (const key of keys) lines.push(JSON.stringify({ key, value }));
  const body = `${lines.join('\n')}\n`;
  const sha256 = createHash('sha256').update(body).digest('hex');
  return `${body}${JSON.stringify({ end: { records, sha256 } })}\n`;
}

async function startSide(name: string, registrar: string, key: Parameters<typeof createControlClient>[0]['key']): Promise<Side> {
  const dir = await mkdtemp(join(tmpdir(), `stratum-bench-move-${name}-`));
  const { path } = await writeTestHost(dir, { name, registrar });
  const host = await startHost(parseHostConfig(testHostToml({ name, registrar }), path), { pullComponent: false });
  return { name, host, dir, client: createControlClient({ url: host.controlUrl, key, audience: name }) };
}

/** The count examples/counter answers for `path` through `side`'s ingress. */
async function countThrough(side: Side, domain: string, path: string): Promise<number> {
  const { status, body } = await get(new URL(path, side.host.ingressUrl).href, domain);
  if (status !== 200) throw new Error(`${domain}${path} answered ${status} on ${side.name}: ${body}`);
  return (JSON.parse(body) as { count: number }).count;
}

export const migrationSuite: Suite = {
  name: 'migration',
  title: 'Migration: time out of service while a capsule moves to another host with its state',
  async run(options) {
    // Up to half the default key quota (100,000): the bench adds a key of its own.
    const sizes = options.quick ? [0, 1_000, 10_000] : [0, 1_000, 10_000, 50_000];
    const counter = await exampleComponent('counter');
    const manifestText = await readFile(counter.manifest, 'utf8');
    const { manifest } = parseManifest(manifestText, counter.manifest);
    const component = new Uint8Array(await readFile(counter.component));
    const registrar = await generateEd25519KeyPair();
    const sides = [
      await startSide('h1.bench', registrar.publicJwk.x, registrar.privateJwk),
      await startSide('h2.bench', registrar.publicJwk.x, registrar.privateJwk),
    ];
    try {
      const [first] = sides as [Side, Side];
      // Each size a capsule of its own on the first host, its store filled by an import.
      const where = new Map<number, Side>();
      for (const size of sizes) {
        const name = `counter-${size}`;
        await first.client.install({ name, domains: [`${name}.bench.test`], manifest: manifestText, component, start: false });
        await first.client.importState(name, 'keyvalue', 'default', counterSnapshot(size));
        await first.client.start(name);
        where.set(size, first);
        options.log(`${name}: ${size} records on ${first.name}`);
      }
      const restart: number[] = [];
      const downtime = new Map<number, number[]>(sizes.map((size) => [size, []]));
      const total = new Map<number, number[]>(sizes.map((size) => [size, []]));
      for (let round = 0; round < options.rounds * 2; round++) {
        // The baseline: the smallest capsule drained and started again where it is.
        const still = where.get(0) ?? first;
        const began = performance.now();
        await still.client.drain('counter-0');
        await still.client.start('counter-0');
        restart.push(performance.now() - began);
        for (const size of sizes) {
          const name = `counter-${size}`;
          const from = where.get(size) ?? first;
          const to = sides.find((side) => side !== from) ?? first;
          const started = performance.now();
          const result = await moveCapsule({
            from: from.client,
            name,
            to: to.client,
            install: { name, domains: [`${name}.bench.test`], manifest: manifestText, component },
            stores: storesOf(manifest.capabilities),
          });
          total.get(size)?.push(performance.now() - started);
          downtime.get(size)?.push(result.downtimeMs);
          // The old installation goes, as a registrar removes it once DNS has moved.
          await from.client.uninstall(name);
          where.set(size, to);
          // The state came along: the count of a path asked once a round goes on.
          const count = await countThrough(to, `${name}.bench.test`, '/moved');
          if (count !== round + 1) throw new Error(`${name} counted ${count} on ${to.name}, not ${round + 1}: its state did not move`);
          options.log(
            `round ${round + 1}: ${name}: ${result.records['keyvalue/default'] ?? 0} records, out of service ${result.downtimeMs.toFixed(1)} ms`,
          );
        }
      }
      const baseline = summarise(restart);
      const rows: BenchRow[] = [{ name: 'drained and started again on the same host (no state copied)', unit: 'ms', summary: baseline }];
      for (const size of sizes) {
        const summary = summarise(downtime.get(size) ?? []);
        rows.push({
          name: `moved to another host, ${size.toLocaleString('en-US')} keyvalue records: out of service (drain to start)`,
          unit: 'ms',
          summary,
          extra: { 'whole move ms': summarise(total.get(size) ?? []) },
          baseline: 'same host',
          ratio: summary.median / baseline.median,
        });
      }
      return {
        suite: 'migration',
        title: this.title,
        rows,
        notes: [
          'Two hosts in the bench process, SQLite keyvalue (the default), examples/counter; each size its own capsule, its store filled by an import and then moved back and forth, the old installation uninstalled after each move.',
          'Out of service: from the drain on the old host to the answer of the start on the new one; the whole move adds the install on the new host before it. DNS is not included: a registrar switches the link of each domain to the new host before that start, which checks it (the domains here are under .test, which need none).',
        ],
      };
    } finally {
      for (const side of sides) {
        await side.host.close();
        await rm(side.dir, { recursive: true, force: true });
      }
    }
  },
};
