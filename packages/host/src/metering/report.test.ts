// The monthly usage report (spec/usage-report.md): built from ledger entries, signed, and
// verified as a portal does; and the vectors in spec/usage-report/vectors, which a second
// implementation checks itself against, checked against this one.
// STRATUM_WRITE_VECTORS=1 writes the vectors again from the ledger and key there.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { type Ed25519PrivateJwk, generateEd25519KeyPair, isStratumError } from '@stratum/core';
import { canonicalJson, entryHash, GENESIS_HASH, type LedgerEntry, type Usage, verifyLedgerText } from './ledger.ts';
import {
  buildUsageReport,
  compareReportWithLedger,
  lastEndedMonth,
  monthBounds,
  parseUsageReport,
  repeatedMember,
  reportSigningInput,
  signUsageReport,
  type UsageReport,
  verifyUsageReport,
} from './report.ts';

const usage = (requests: number, extra: Partial<Usage> = {}): Usage => ({
  requests,
  cpuMs: 1.5 * requests,
  memoryMbSeconds: 0.25 * requests,
  bytesIn: 10 * requests,
  bytesOut: 100 * requests,
  limitHits: {},
  ...extra,
});

type Row = { capsule: string; registrar?: string; from: string; to: string; usage: Usage };

function chain(rows: readonly Row[]): LedgerEntry[] {
  let prev = GENESIS_HASH;
  return rows.map((row, index) => {
    const body = {
      seq: index + 1,
      time: row.to,
      capsule: row.capsule,
      ...(row.registrar !== undefined ? { registrar: row.registrar } : {}),
      from: row.from,
      to: row.to,
      usage: row.usage,
      prev,
    };
    const entry = { ...body, hash: entryHash(body) };
    prev = entry.hash;
    return entry;
  });
}

/** The ledger of the vectors: October's last seconds, November (three registrars, the legacy none among them), an instant at December's start. */
const VECTOR_ROWS: Row[] = [
  { capsule: 'hello', registrar: 'acme', from: '2026-10-31T23:59:50.000Z', to: '2026-11-01T00:00:00.000Z', usage: usage(4) },
  { capsule: 'hello', registrar: 'acme', from: '2026-11-01T00:00:00.000Z', to: '2026-11-01T00:00:10.000Z', usage: usage(2) },
  {
    capsule: 'shop',
    registrar: 'bravo',
    from: '2026-11-01T00:00:00.000Z',
    to: '2026-11-01T00:00:10.000Z',
    usage: usage(3, { limitHits: { cpu: 1, 'quota:keyvalue': 2 } }),
  },
  { capsule: 'legacy', from: '2026-11-12T08:00:00.000Z', to: '2026-11-12T08:00:10.000Z', usage: usage(1) },
  {
    capsule: 'blog',
    registrar: 'acme',
    from: '2026-11-12T08:00:00.000Z',
    to: '2026-11-12T08:00:10.000Z',
    usage: usage(1, { cpuMs: 0.1, memoryMbSeconds: 0.000001, limitHits: { timeout: 1 } }),
  },
  {
    capsule: 'hello',
    registrar: 'acme',
    from: '2026-11-30T23:59:55.000Z',
    to: '2026-12-01T00:00:00.000Z',
    usage: usage(1, { cpuMs: 0.2, memoryMbSeconds: 0.7 }),
  },
  { capsule: 'hello', registrar: 'acme', from: '2026-12-01T00:00:00.000Z', to: '2026-12-01T00:00:00.000Z', usage: usage(1) },
];

const VECTORS = new URL('../../../../spec/usage-report/vectors/', import.meta.url);
const readVector = (file: string): unknown => JSON.parse(readFileSync(new URL(file, VECTORS), 'utf8'));
const HOST = 'h1.example.net';
const AFTER_NOVEMBER = new Date('2026-12-08T00:00:00Z');

const code = (expected: string, pointer?: string) => (error: unknown) => {
  assert.ok(isStratumError(error), String(error));
  assert.equal(error.code, expected, error.message);
  if (pointer !== undefined) assert.equal(error.details[0]?.split(':')[0], pointer);
  return true;
};

async function signed(key: Ed25519PrivateJwk, month: string, entries: readonly LedgerEntry[]): Promise<UsageReport> {
  return signUsageReport(await buildUsageReport({ host: HOST, key: key.x, month, entries }), key);
}

test("a month's report holds the entries whose period begins in it, summed per registrar and capsule", async () => {
  const entries = chain(VECTOR_ROWS);
  const report = await buildUsageReport({ host: HOST, key: 'k', month: '2026-11', entries });
  assert.deepEqual(report.ledger, {
    entries: 5,
    first: 2,
    last: 6,
    prev: entries[0]?.hash,
    hash: entries[5]?.hash,
  });
  // Named registrars by name, the entries naming none last; capsules by name.
  assert.deepEqual(
    report.registrars.map((one) => [one.registrar, one.capsules.map((capsule) => capsule.capsule)]),
    [
      ['acme', ['blog', 'hello']],
      ['bravo', ['shop']],
      [null, ['legacy']],
    ],
  );
  const acme = report.registrars[0];
  // 3 + 0.2 and 0.1: summed in millionths, not as floating point (0.1 + 0.2 is 0.30000000000000004).
  assert.deepEqual(acme?.capsules[1]?.usage, { ...usage(3), cpuMs: 3.2, memoryMbSeconds: 1.2 });
  assert.equal(acme?.usage.cpuMs, 3.3);
  assert.equal(acme?.usage.memoryMbSeconds, 1.200001);
  assert.deepEqual(acme?.usage.limitHits, { timeout: 1 });
  assert.deepEqual(report.totals, {
    requests: 8,
    cpuMs: 9.3,
    memoryMbSeconds: 2.200001,
    bytesIn: 80,
    bytesOut: 800,
    limitHits: { cpu: 1, 'quota:keyvalue': 2, timeout: 1 },
  });
  // October has its last seconds only; December its first instant.
  assert.equal((await buildUsageReport({ host: HOST, key: 'k', month: '2026-10', entries })).totals.requests, 4);
  const december = await buildUsageReport({ host: HOST, key: 'k', month: '2026-12', entries });
  assert.deepEqual(december.ledger, { entries: 1, first: 7, last: 7, prev: entries[5]?.hash, hash: entries[6]?.hash });
});

test('a month without usage is a valid report with zero totals, and no anchors in the ledger', async () => {
  const { privateJwk } = await generateEd25519KeyPair();
  const report = await signed(privateJwk, '2026-09', chain(VECTOR_ROWS));
  assert.deepEqual(report.ledger, { entries: 0 });
  assert.deepEqual(report.registrars, []);
  assert.deepEqual(report.totals, { requests: 0, cpuMs: 0, memoryMbSeconds: 0, bytesIn: 0, bytesOut: 0, limitHits: {} });
  const verified = await verifyUsageReport(report, { expectedKey: privateJwk.x, now: AFTER_NOVEMBER });
  assert.equal(verified.keyChecked, true);
  await assert.rejects(buildUsageReport({ host: HOST, key: 'k', month: '2026-9', entries: [] }), code('MONTH_INVALID'));
});

test('a portal refuses a report changed after signing, of another key, not ended, or whose sums do not add up', async () => {
  const { privateJwk } = await generateEd25519KeyPair();
  const other = await generateEd25519KeyPair();
  const report = await signed(privateJwk, '2026-11', chain(VECTOR_ROWS));
  const verified = await verifyUsageReport(JSON.parse(JSON.stringify(report)), { expectedKey: privateJwk.x, now: AFTER_NOVEMBER });
  assert.equal(verified.report.totals.requests, 8);
  // Without a key to hold it to, the signature is checked with the report's own key.
  assert.equal((await verifyUsageReport(report, { now: AFTER_NOVEMBER })).keyChecked, false);

  const tampered = structuredClone(report);
  const bravo = tampered.registrars[1] as (typeof tampered.registrars)[number];
  for (const one of [tampered.totals, bravo.usage, (bravo.capsules[0] as { usage: Usage }).usage]) one.requests -= 1;
  await assert.rejects(verifyUsageReport(tampered, { now: AFTER_NOVEMBER }), code('REPORT_BAD_SIGNATURE', '/signature'));
  await assert.rejects(
    verifyUsageReport(report, { expectedKey: other.publicJwk.x, now: AFTER_NOVEMBER }),
    code('REPORT_WRONG_KEY', '/key'),
  );
  // Another key put in the report with its own signature is still not the host's.
  const impostor = await signUsageReport({ ...report, key: other.privateJwk.x }, other.privateJwk);
  await verifyUsageReport(impostor, { now: AFTER_NOVEMBER });
  await assert.rejects(verifyUsageReport(impostor, { expectedKey: privateJwk.x, now: AFTER_NOVEMBER }), code('REPORT_WRONG_KEY'));
  await assert.rejects(verifyUsageReport(report, { now: new Date('2026-11-30T23:59:59.999Z') }), code('REPORT_MONTH_NOT_ENDED', '/month'));
  await verifyUsageReport(report, { now: new Date('2026-12-01T00:00:00Z') });

  const { signature: _drop, ...body } = report;
  const unbalanced = await signUsageReport({ ...body, totals: { ...body.totals, cpuMs: body.totals.cpuMs + 0.000001 } }, privateJwk);
  await assert.rejects(verifyUsageReport(unbalanced, { now: AFTER_NOVEMBER }), code('REPORT_TOTALS_MISMATCH', '/totals/cpuMs'));
  const registrars = structuredClone(body.registrars);
  (registrars[0] as { usage: Usage }).usage.limitHits = { timeout: 1, cpu: 0 };
  const extraKind = await signUsageReport({ ...body, registrars }, privateJwk);
  await assert.rejects(
    verifyUsageReport(extraKind, { now: AFTER_NOVEMBER }),
    code('REPORT_TOTALS_MISMATCH', '/registrars/0/usage/limitHits/cpu'),
  );
});

test('a malformed report is refused naming the member at fault', async () => {
  const { privateJwk } = await generateEd25519KeyPair();
  const report = await signed(privateJwk, '2026-11', chain(VECTOR_ROWS));
  const cases: [(copy: Record<string, unknown> & UsageReport) => void, string][] = [
    [(copy) => Object.assign(copy, { month: '2026-13' }), '/month'],
    [(copy) => Object.assign(copy, { version: 2 }), '/version'],
    [(copy) => Object.assign(copy, { extra: true }), '/extra'],
    [(copy) => Object.assign(copy, { key: `${privateJwk.x.slice(0, 42)}B` }), '/key'],
    [(copy) => Object.assign(copy, { host: 'H1.example.net' }), '/host'],
    [(copy) => Object.assign(copy.totals, { cpuMs: 0.0000001 }), '/totals/cpuMs'],
    [(copy) => Object.assign(copy.totals, { requests: -1 }), '/totals/requests'],
    [(copy) => Object.assign(copy.registrars[1]?.capsules[0]?.usage ?? {}, { bytesIn: '1' }), '/registrars/1/capsules/0/usage/bytesIn'],
    [(copy) => copy.registrars.reverse(), '/registrars/1/registrar'],
    [(copy) => Object.assign(copy.ledger, { first: undefined }), '/ledger/first'],
    [(copy) => Object.assign(copy.ledger, { entries: 9 }), '/ledger/entries'],
    [(copy) => Object.assign(copy, { signature: copy.signature.slice(1) }), '/signature'],
    [(copy) => Reflect.deleteProperty(copy, 'totals'), '/totals'],
  ];
  for (const [change, pointer] of cases) {
    const copy = JSON.parse(JSON.stringify(report));
    change(copy);
    await assert.rejects(verifyUsageReport(JSON.parse(JSON.stringify(copy)), { now: AFTER_NOVEMBER }), code('REPORT_MALFORMED', pointer));
  }
  await assert.rejects(verifyUsageReport([], { now: AFTER_NOVEMBER }), code('REPORT_MALFORMED', '/'));
});

test("an auditor holding the ledger finds the report's entries and figures in it, or where they differ", async () => {
  const { privateJwk } = await generateEd25519KeyPair();
  const entries = chain(VECTOR_ROWS);
  const report = await signed(privateJwk, '2026-11', entries);
  assert.equal(await compareReportWithLedger(report, entries), undefined);
  const shorter = entries.filter((entry) => entry.seq !== 4);
  assert.match((await compareReportWithLedger(report, shorter)) ?? '', /^\/ledger\/entries: the ledger gives 4, the report 5$/);
});

test('the default month is the last that ended, and months are YYYY-MM from 1970', () => {
  assert.equal(lastEndedMonth(new Date('2026-12-08T00:00:00Z')), '2026-11');
  assert.equal(lastEndedMonth(new Date('2027-01-01T00:00:00Z')), '2026-12');
  assert.deepEqual(monthBounds('2026-12'), { start: new Date('2026-12-01T00:00:00Z'), end: new Date('2027-01-01T00:00:00Z') });
  for (const bad of ['2026-00', '2026-1', '26-01', '1969-12', '2026-01-01', ' 2026-01']) assert.equal(monthBounds(bad), undefined, bad);
});

interface VectorCase {
  description: string;
  file: string;
  now: string;
  expectedKey?: string;
  expect: { ok: true; requests: number } | { error: string; pointer: string };
}

/** The vectors' files, made from their ledger and key: written with STRATUM_WRITE_VECTORS=1, else compared. */
async function vectorFiles(): Promise<Map<string, string>> {
  const key = readVector('test-key.json') as Ed25519PrivateJwk;
  const entries = chain(VECTOR_ROWS);
  const files = new Map<string, string>();
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  files.set('ledger.jsonl', entries.map((entry) => `${canonicalJson(entry)}\n`).join(''));
  const report = await signed(key, '2026-11', entries);
  files.set('report-2026-11.json', json(report));
  files.set('report-2026-11.signing-input.txt', new TextDecoder().decode(reportSigningInput(report)));
  files.set('report-2026-09-empty.json', json(await signed(key, '2026-09', entries)));
  const tampered = structuredClone(report);
  for (const usage of [tampered.totals, tampered.registrars[1]?.usage, tampered.registrars[1]?.capsules[0]?.usage])
    if (usage) usage.requests += 1;
  files.set('tampered-requests.json', json(tampered));
  const { signature: _drop, ...body } = report;
  files.set(
    'totals-mismatch.json',
    json(await signUsageReport({ ...body, totals: { ...body.totals, bytesOut: body.totals.bytesOut + 1 } }, key)),
  );
  files.set('malformed-month.json', json(await signUsageReport({ ...body, month: '2026-13' }, key)));
  return files;
}

test('the vectors in spec/usage-report/vectors are what this implementation makes, and verify as cases.json says', async () => {
  const files = await vectorFiles();
  if (process.env.STRATUM_WRITE_VECTORS === '1') for (const [file, text] of files) writeFileSync(new URL(file, VECTORS), text);
  for (const [file, text] of files) assert.equal(readFileSync(new URL(file, VECTORS), 'utf8'), text, file);
  assert.deepEqual(verifyLedgerText(files.get('ledger.jsonl') ?? ''), { ok: true, entries: 7, head: chain(VECTOR_ROWS)[6]?.hash });
  const { cases } = readVector('cases.json') as { cases: VectorCase[] };
  assert.ok(cases.length >= 7);
  for (const one of cases) {
    const verifying = verifyUsageReport(readVector(one.file), {
      now: new Date(one.now),
      ...(one.expectedKey !== undefined ? { expectedKey: one.expectedKey } : {}),
    });
    if ('ok' in one.expect) assert.equal((await verifying).report.totals.requests, one.expect.requests, one.description);
    else await assert.rejects(verifying, code(one.expect.error, one.expect.pointer), one.description);
  }
});

test('the reports of the vectors match the JSON Schema, and the malformed one does not', async () => {
  const { Ajv2020 } = await import('ajv/dist/2020.js');
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const validate = ajv.compile(readVector('../usage-report-v1.schema.json') as object);
  for (const file of ['report-2026-11.json', 'report-2026-09-empty.json', 'tampered-requests.json', 'totals-mismatch.json'])
    assert.ok(validate(readVector(file)), `${file}: ${JSON.stringify(validate.errors)}`);
  assert.equal(validate(readVector('malformed-month.json')), false);
  assert.equal(validate({ ...(readVector('report-2026-11.json') as object), ledger: { entries: 0, first: 1 } }), false);
});

test('a member named twice in one object is found wherever it is, and such a report refused as malformed', () => {
  assert.equal(repeatedMember('{"a":1,"b":{"c":[1,{"d":2,"d":3}]}}'), '/b/c/1/d');
  assert.equal(repeatedMember('{"a":{"x":1},"b":{"x":1},"c":"\\"a\\":1,"}'), undefined);
  assert.equal(repeatedMember('[{"a/b":1,"a/b":2}]'), '/0/a~1b');
  assert.equal(repeatedMember('{"\\u0061":1,"a":2}'), '/a');
  assert.throws(() => parseUsageReport('{"totals":{"requests":999,"requests":8}}'), code('REPORT_MALFORMED', '/totals/requests'));
  assert.throws(() => parseUsageReport('{"totals":'), code('REPORT_MALFORMED'));
});

test('a ledger entry whose usage no host writes (negative, fractional counts) makes no report, naming the entry', async () => {
  for (const [bad, field] of [
    [usage(1, { cpuMs: -1 }), 'cpuMs'],
    [usage(1, { requests: 1.5 }), 'requests'],
    [usage(1, { limitHits: { cpu: -2 } }), 'limitHits["cpu"]'],
  ] as const) {
    const entries = chain([...VECTOR_ROWS.slice(0, 2), { ...(VECTOR_ROWS[2] as Row), usage: bad }]);
    await assert.rejects(buildUsageReport({ host: HOST, key: 'k', month: '2026-11', entries }), (error: unknown) => {
      assert.ok(isStratumError(error));
      assert.equal(error.code, 'LEDGER_ENTRY_INVALID');
      assert.match(error.message, new RegExp(`^ledger entry 3: usage\\.${field.replace(/[[\]"]/g, '\\$&')} is `));
      return true;
    });
  }
});
