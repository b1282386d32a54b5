// The monthly usage report end to end (spec/usage-report.md, spec/host-api.md section 5.13): a
// host started on a ledger that holds past months, serving requests, asked for a month's report
// over the signed control API by `stratum host report`, the report checked as a portal checks
// it by `stratum host report verify`, and the refusals on the way.
import assert from 'node:assert/strict';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generateEd25519KeyPair, readKeyFile, writeKeyFile } from '@stratum/core';
import { parseHostConfig } from '../packages/host/src/config/parse.ts';
import type { TrustedRegistrar } from '../packages/host/src/config/types.ts';
import { bodyHash } from '../packages/host/src/control/auth.ts';
import { createControlClient } from '../packages/host/src/control/client.ts';
import { type RunningHost, startHost } from '../packages/host/src/control/host.ts';
import { InstallationStore } from '../packages/host/src/control/installations.ts';
import { createControlHandler } from '../packages/host/src/control/server.ts';
import { canonicalJson, entryHash, GENESIS_HASH, type LedgerEntry, type Usage, UsageLedger } from '../packages/host/src/metering/ledger.ts';
import { compareReportWithLedger, lastEndedMonth, monthBounds, type UsageReport } from '../packages/host/src/metering/report.ts';
import type { CapsuleStatus, HostRuntime, InstallRequest, RequestRecord } from '../packages/host/src/runtime-types.ts';
import { runCli as run } from './support/cli.ts';
import { writeTestHost } from './support/host-dir.ts';
import { ingressGet } from './support/ingress.ts';
import { installingRuntime } from './support/installing-runtime.ts';
import { testDir } from './support/temp.ts';

/** `stratum host report verify <report> --host h1.example.net ...`: a report checked as the portal checks the test host's. */
const verifyAsPortal = (report: string, ...more: string[]) =>
  run(['host', 'report', 'verify', report, '--host', 'h1.example.net', ...more]);

/** A runtime whose capsules answer every request themselves, each request metered as the real one meters it. */
function servingRuntime(): HostRuntime {
  const base = installingRuntime();
  const listeners = new Set<(record: RequestRecord) => void>();
  const capsules = new Map<string, CapsuleStatus>();
  return {
    ...base,
    async install(request: InstallRequest) {
      const status = await base.install(request);
      capsules.set(status.name, status);
      return { ...status };
    },
    async start(name: string) {
      const status = capsules.get(name) as CapsuleStatus;
      status.state = 'running';
      return { ...status };
    },
    status: () => [...capsules.values()].map((status) => ({ ...status })),
    handleRequest(request, response) {
      const domain = (request.headers.host ?? '').replace(/:\d+$/, '');
      const capsule = [...capsules.values()].find((status) => status.domains.includes(domain));
      if (!capsule) return void response.writeHead(404).end();
      response.writeHead(200).end('served');
      const record: RequestRecord = {
        capsule: capsule.name,
        domain,
        requestId: 'r',
        method: 'GET',
        path: '/',
        status: 200,
        cpuMs: 2,
        wallMs: 1,
        memoryBytes: 1_000_000,
        bytesIn: 0,
        bytesOut: 6,
      };
      for (const listener of listeners) listener(record);
    },
    onRequest(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

const MANIFEST = `stratum = 1
[capsule]
name = "shop"
version = "1.0.0"
[source]
wasm = "shop.wasm"
`;

const used = (requests: number, extra: Partial<Usage> = {}): Usage => ({
  requests,
  cpuMs: 1.25 * requests,
  memoryMbSeconds: 0.5 * requests,
  bytesIn: 7 * requests,
  bytesOut: 70 * requests,
  limitHits: {},
  ...extra,
});

/** A valid chain of entries, as a host before this one wrote them. */
function chain(rows: { capsule: string; registrar?: string; from: Date; to: Date; usage: Usage }[]): LedgerEntry[] {
  let prev = GENESIS_HASH;
  return rows.map((row, index) => {
    const body = {
      seq: index + 1,
      time: row.to.toISOString(),
      capsule: row.capsule,
      ...(row.registrar !== undefined ? { registrar: row.registrar } : {}),
      from: row.from.toISOString(),
      to: row.to.toISOString(),
      usage: row.usage,
      prev,
    };
    const entry = { ...body, hash: entryHash(body) };
    prev = entry.hash;
    return entry;
  });
}

const monthBefore = (month: string): string => lastEndedMonth(monthBounds(month)?.start as Date);

/**
 * A host whose ledger holds, before it starts, the two months before this one: `last` (the one
 * that ended last) with usage of registrars acme and operator and of none, and `earlier` with a
 * little usage whose period ends at `last`'s start.
 */
async function hostWithPastMonths(t: TestContext) {
  const { dir, closing } = await testDir(t, 'stratum-usage-report-');
  const [operator, acme, stranger] = [await generateEd25519KeyPair(), await generateEd25519KeyPair(), await generateEd25519KeyPair()];
  await writeKeyFile(join(dir, 'operator.key'), operator.privateJwk);
  await writeKeyFile(join(dir, 'acme.key'), acme.privateJwk);
  await writeKeyFile(join(dir, 'stranger.key'), stranger.privateJwk);
  const { path, text } = await writeTestHost(dir, {
    name: 'h1.example.net',
    registrar: operator.publicJwk.x,
    registrarName: 'operator',
    operator: true,
    tables: `[registrars.acme]\nkey = "${acme.publicJwk.x}"\n[metering]\nflush_interval = "1h"\n`,
  });
  const last = lastEndedMonth(new Date());
  const earlier = monthBefore(last);
  const start = monthBounds(last)?.start as Date;
  const at = (ms: number) => new Date(start.getTime() + ms);
  const entries = chain([
    { capsule: 'shop', registrar: 'acme', from: at(-10_000), to: start, usage: used(5) },
    { capsule: 'shop', registrar: 'acme', from: start, to: at(10_000), usage: used(2) },
    { capsule: 'blog', registrar: 'operator', from: at(86_400_000), to: at(86_410_000), usage: used(3, { limitHits: { cpu: 1 } }) },
    { capsule: 'shop', registrar: 'acme', from: at(86_400_000), to: at(86_410_000), usage: used(1, { cpuMs: 0.1 }) },
    { capsule: 'legacy', from: at(172_800_000), to: at(172_810_000), usage: used(4, { cpuMs: 0.2 }) },
  ]);
  await mkdir(join(dir, 'data', 'metering'), { recursive: true });
  await writeFile(join(dir, 'data', 'metering', 'ledger.jsonl'), entries.map((entry) => `${canonicalJson(entry)}\n`).join(''));
  const host: RunningHost = closing(await startHost(parseHostConfig(text, path), { createRuntime: servingRuntime, pullComponent: false }));
  const hostKey = await readKeyFile(join(dir, 'host.key'));
  const control = (key: typeof operator) => createControlClient({ url: host.controlUrl, key: key.privateJwk, audience: 'h1.example.net' });
  return { dir, host, entries, last, earlier, hostKey, operator: control(operator), acme: control(acme) };
}

const errorOf = async (response: Response) => ((await response.json()) as { error: { code: string; message: string } }).error;

test('stratum host report fetches the signed report of a month that ended, and host report verify checks it as a portal does', async (t) => {
  const { dir, host, entries, last, earlier, hostKey, operator, acme } = await hostWithPastMonths(t);
  // This month's requests, written to the ledger as the report is asked for: none is in a past month's report.
  await acme.install({ name: 'shop', domains: ['shop.example'], manifest: MANIFEST, component: new Uint8Array([1]) });
  for (let i = 0; i < 3; i++) assert.equal((await ingressGet(host.ingressUrl, 'shop.example')).status, 200);
  const cli = ['--url', host.controlUrl.href, '--key', join(dir, 'operator.key')];
  const file = join(dir, 'report.json');

  // The month defaults to the last that ended.
  const fetched = await run(['host', 'report', ...cli, '--out', file]);
  assert.equal(fetched.code, 0, fetched.stderr);
  const report = JSON.parse(await readFile(file, 'utf8')) as UsageReport;
  assert.equal(report.month, last);
  assert.equal(report.host, 'h1.example.net');
  assert.equal(report.key, hostKey.x);
  assert.deepEqual(report.ledger, { entries: 4, first: 2, last: 5, prev: entries[0]?.hash, hash: entries[4]?.hash });
  assert.deepEqual(
    report.registrars.map((one) => [one.registrar, one.usage.requests, one.capsules.map((capsule) => capsule.capsule)]),
    [
      ['acme', 3, ['shop']],
      ['operator', 3, ['blog']],
      [null, 4, ['legacy']],
    ],
  );
  assert.deepEqual(report.totals, {
    requests: 10,
    cpuMs: 6.55,
    memoryMbSeconds: 5,
    bytesIn: 70,
    bytesOut: 700,
    limitHits: { cpu: 1 },
  });
  assert.match(fetched.stdout, new RegExp(`^usage report of h1\\.example\\.net, ${last}: ledger entries 2 to 5 \\(4\\)`));
  assert.match(
    fetched.stdout,
    /\nREGISTRAR +CAPSULES +REQUESTS .*\nacme +1 +3 .*\noperator +1 +3 .*cpu:1\n\(none\) +1 +4 .*\nTOTAL +3 +10 /,
  );
  assert.match(fetched.stdout, new RegExp(`written to ${file.replaceAll('.', '\\.')}\\n$`));

  // The answer is what the OpenAPI document and the report's own JSON Schema say.
  const { Ajv2020 } = await import('ajv/dist/2020.js');
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema(JSON.parse(await readFile(new URL('../spec/host-api.openapi.json', import.meta.url), 'utf8')) as object, 'openapi');
  const answered = await (await operator.request('GET', `/usage/report?month=${last}`)).json();
  assert.deepEqual(answered, report);
  for (const validate of [
    ajv.getSchema('openapi#/paths/~1usage~1report/get/responses/200/content/application~1json/schema'),
    ajv.compile(JSON.parse(await readFile(new URL('../spec/usage-report/usage-report-v1.schema.json', import.meta.url), 'utf8')) as object),
  ])
    assert.ok(validate?.(answered), JSON.stringify(validate?.errors));

  // An auditor reading the whole ledger over the API finds the report's entries and sums in it:
  // this month's requests, flushed by the report, are in the ledger and not in the report.
  const { entries: audited } = await operator.ledger();
  assert.equal(audited.length, 6);
  assert.equal(audited[5]?.usage.requests, 3);
  assert.equal(await compareReportWithLedger(report, audited), undefined);

  // The same with the CLI, from the ledger file; one cut short before the month's last entry
  // still verifies, but makes another report.
  const ledgerFile = join(dir, 'ledger.jsonl');
  await writeFile(ledgerFile, audited.map((entry) => `${canonicalJson(entry)}\n`).join(''));
  const audit = await verifyAsPortal(file, '--key', join(dir, 'host.key'), '--ledger', ledgerFile);
  assert.equal(audit.code, 0, audit.stderr);
  assert.match(audit.stdout, new RegExp(`\nthe ledger .*ledger.jsonl verifies, and its entries of ${last} make this report\n`));
  await writeFile(
    ledgerFile,
    audited
      .slice(0, 4)
      .map((entry) => `${canonicalJson(entry)}\n`)
      .join(''),
  );
  const short = await verifyAsPortal(file, '--key', join(dir, 'host.key'), '--ledger', ledgerFile);
  assert.equal(short.code, 1);
  assert.match(short.stderr, /^error: the report does not match the ledger .*\n {2}\/ledger\/entries: the ledger gives 3, the report 4\n/);
  await writeFile(ledgerFile, audited.map((entry) => `${canonicalJson({ ...entry, capsule: 'other' })}\n`).join(''));
  const forged = await verifyAsPortal(file, '--key', join(dir, 'host.key'), '--ledger', ledgerFile);
  assert.equal(forged.code, 1);
  assert.match(forged.stderr, /^error: the ledger .* does not verify\n {2}line 1: hash does not match the entry/);

  // A month with no usage: a valid report with zero totals.
  const emptyFile = join(dir, 'empty.json');
  const empty = await run(['host', 'report', ...cli, '--month', monthBefore(earlier), '--out', emptyFile, '--json']);
  assert.equal(empty.code, 0, empty.stderr);
  assert.deepEqual((JSON.parse(empty.stdout) as UsageReport).ledger, { entries: 0 });
  assert.deepEqual((JSON.parse(await readFile(emptyFile, 'utf8')) as UsageReport).totals.requests, 0);
  const earlierReport = await operator.request('GET', `/usage/report?month=${earlier}`);
  assert.equal(((await earlierReport.json()) as UsageReport).totals.requests, 5);

  // Verified with the host's key file, or its _stratum-host record, as a portal gets it.
  const verified = await verifyAsPortal(file, '--key', join(dir, 'host.key'));
  assert.equal(verified.code, 0, verified.stderr);
  assert.match(verified.stdout, new RegExp(`^valid: usage report of h1\\.example\\.net, ${last}: ledger entries 2 to 5 \\(4\\)`));
  assert.match(verified.stdout, /\nTOTAL +3 +10 /);
  const record = `"v=stratum1" "k=${hostKey.x}" "api=https://h1.example.net/stratum/v1"`;
  const byRecord = await verifyAsPortal(emptyFile, '--record', record, '--json');
  assert.equal(byRecord.code, 0, byRecord.stderr);
  assert.equal((JSON.parse(byRecord.stdout) as { valid: boolean; ledger: { entries: number } }).ledger.entries, 0);

  // A copy with a request more, its sums kept consistent: the signature says so.
  const tampered = structuredClone(report);
  for (const usage of [tampered.totals, tampered.registrars[0]?.usage, tampered.registrars[0]?.capsules[0]?.usage])
    if (usage) usage.requests += 1;
  await writeFile(join(dir, 'tampered.json'), JSON.stringify(tampered));
  const refused = await verifyAsPortal(join(dir, 'tampered.json'), '--key', join(dir, 'host.key'));
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^error: .*tampered\.json: the signature does not verify with the report's key/);
  // Another key than the host's.
  const wrongKey = await verifyAsPortal(file, '--key', join(dir, 'stranger.key'));
  assert.equal(wrongKey.code, 1);
  assert.match(wrongKey.stderr, new RegExp(`the report is signed for key ${hostKey.x}, not the host's key`));
  const strangerKey = (await readKeyFile(join(dir, 'stranger.key'))).x;
  const wrongRecord = await verifyAsPortal(file, '--record', record.replace(hostKey.x, strangerKey));
  assert.equal(wrongRecord.code, 1);
  assert.match(wrongRecord.stderr, /not the host's key/);
  // A malformed member, named by its path.
  await writeFile(join(dir, 'malformed.json'), JSON.stringify({ ...report, totals: { ...report.totals, bytesIn: -1 } }));
  const malformed = await verifyAsPortal(join(dir, 'malformed.json'), '--key', join(dir, 'host.key'));
  assert.equal(malformed.code, 1);
  assert.match(malformed.stderr, /malformed at \/totals\/bytesIn: not a whole number from 0\n {2}\/totals\/bytesIn/);
  // The host's own key, given for another host: the report names h1, not h2.
  const otherHost = await run(['host', 'report', 'verify', file, '--host', 'h2.example.net', '--key', join(dir, 'host.key')]);
  assert.equal(otherHost.code, 1);
  assert.match(otherHost.stderr, /the report names host h1\.example\.net, not h2\.example\.net, the host whose key was given/);
  // A member named twice: JSON.parse keeps the last, another parser the first.
  const signedText = await readFile(file, 'utf8');
  assert.match(signedText, /"totals": ?\{/);
  await writeFile(join(dir, 'twice.json'), signedText.replace(/"totals": ?\{/, '"totals": {"requests": 999,'));
  const twice = await verifyAsPortal(join(dir, 'twice.json'), '--key', join(dir, 'host.key'));
  assert.equal(twice.code, 1);
  assert.match(twice.stderr, /malformed at \/totals\/requests: a member named twice in one object/);
  // No key: nothing proves whose the report is.
  const keyless = await run(['host', 'report', 'verify', file]);
  assert.equal(keyless.code, 2);
  assert.match(keyless.stderr, /give the host's key, --key <file> or --record/);
});

test("the report is the operator key's, of a month that ended and is YYYY-MM, and not from a ledger changed under the host", async (t) => {
  const { dir, host, last, operator, acme } = await hostWithPastMonths(t);
  const forbidden = await acme.request('GET', `/usage/report?month=${last}`);
  assert.equal(forbidden.status, 403);
  assert.equal((await errorOf(forbidden)).code, 'OPERATOR_ONLY');
  const asAcme = await run(['host', 'report', '--url', host.controlUrl.href, '--key', join(dir, 'acme.key'), '--out', join(dir, 'a.json')]);
  assert.equal(asAcme.code, 1);
  assert.match(asAcme.stderr, /^error: the usage report sums every registrar's capsules; only an operator key reads it/);

  const now = new Date();
  const current = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
  const notEnded = await operator.request('GET', `/usage/report?month=${current}`);
  assert.equal(notEnded.status, 409);
  const problem = (await notEnded.json()) as { error: { code: string; hint: string } };
  assert.equal(problem.error.code, 'MONTH_NOT_ENDED');
  assert.match(problem.error.hint, new RegExp(`from ${monthBounds(current)?.end.toISOString()}`));
  assert.equal((await operator.request('GET', '/usage/report?month=9999-12')).status, 409);
  const cli = ['--url', host.controlUrl.href, '--key', join(dir, 'operator.key')];
  const currentCli = await run(['host', 'report', ...cli, '--month', current, '--out', join(dir, 'c.json')]);
  assert.equal(currentCli.code, 1);
  assert.match(currentCli.stderr, new RegExp(`^error: ${current} has not ended`));

  for (const month of ['2026-13', '2026-1', '1969-12', '', 'x']) {
    const bad = await operator.request('GET', `/usage/report?month=${month}`);
    assert.equal(bad.status, 400, month);
    assert.equal((await errorOf(bad)).code, 'INVALID_REQUEST');
  }
  assert.equal((await operator.request('GET', '/usage/report')).status, 400);
  const badCli = await run(['host', 'report', ...cli, '--month', '2026-13']);
  assert.equal(badCli.code, 2);
  assert.match(badCli.stderr, /--month 2026-13: give a month as YYYY-MM/);
  assert.equal((await operator.request('POST', `/usage/report?month=${last}`)).status, 405);

  // A ledger written to by something else: no report from it.
  await appendFile(host.ledger.path, '{"seq":99}\n');
  const broken = await operator.request('GET', `/usage/report?month=${last}`);
  assert.equal(broken.status, 500);
  assert.equal((await errorOf(broken)).code, 'LEDGER_CHANGED');
});

test('a report asked for just after its month ended holds the usage the host still held across the end', async (t) => {
  const { dir } = await testDir(t, 'stratum-usage-report-flush-');
  // The ledger's clock is in the month's last seconds, then past its end; the host's (the real
  // one) is long past it. The usage held is written with the month's end as its `to` only by
  // the flush that the report asks for first.
  let clock = Date.parse('2026-11-30T23:59:55Z');
  const ledger = await UsageLedger.open(join(dir, 'ledger.jsonl'), { now: () => new Date(clock) });
  t.after(() => ledger.close());
  ledger.record(
    {
      capsule: 'shop',
      domain: 'shop.example',
      requestId: 'r',
      method: 'GET',
      path: '/',
      status: 200,
      cpuMs: 3,
      wallMs: 1,
      memoryBytes: 0,
      bytesIn: 0,
      bytesOut: 0,
    },
    'acme',
  );
  clock = Date.parse('2026-12-01T00:00:05Z');
  const store = new InstallationStore(join(dir, 'installations'));
  await store.init();
  const { publicJwk, privateJwk } = await generateEd25519KeyPair();
  const operator = { name: 'operator', key: { ...publicJwk, kid: publicJwk.kid as string }, operator: true } as TrustedRegistrar;
  const { signEd25519 } = await import('@stratum/core');
  const server = createServer(
    createControlHandler({
      name: 'h1.example.net',
      identity: publicJwk,
      sign: (data) => signEd25519(privateJwk, data),
      version: 'test',
      runtime: installingRuntime(),
      store,
      ledger,
      verify: async () => ({ registrar: operator, claims: {}, bodyHash: bodyHash(new Uint8Array()) }),
      maxBodyBytes: 1024,
      maxStateBytes: 1024,
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  const answer = await fetch(`http://127.0.0.1:${port}/v1/usage/report?month=2026-11`, { headers: { authorization: 'Stratum-JWS x' } });
  assert.equal(answer.status, 200);
  const report = (await answer.json()) as UsageReport;
  assert.deepEqual(report.ledger.entries, 1);
  assert.deepEqual([report.registrars[0]?.registrar, report.totals.requests, report.totals.cpuMs], ['acme', 1, 3]);
  const [entry] = await ledger.entries();
  assert.deepEqual([entry?.from, entry?.to], ['2026-11-30T23:59:55.000Z', '2026-12-01T00:00:00.000Z']);
});
