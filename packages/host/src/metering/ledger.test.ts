import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, link, mkdir, mkdtemp, open, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { type Logger, silentLogger } from '@stratum/core';
import fc from 'fast-check';
import type { RequestRecord } from '../runtime-types.ts';
import { canonicalJson, entryHash, GENESIS_HASH, type LedgerEntry, UsageLedger, verifyLedgerFile, verifyLedgerText } from './ledger.ts';

const record = (capsule: string, extra: Partial<RequestRecord> = {}): RequestRecord => ({
  capsule,
  domain: `${capsule}.example`,
  requestId: 'r',
  method: 'GET',
  path: '/',
  status: 200,
  cpuMs: 2.5,
  wallMs: 500,
  memoryBytes: 2_000_000,
  bytesIn: 10,
  bytesOut: 100,
  ...extra,
});

async function tempLedger(t: { after(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-ledger-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'metering', 'ledger.jsonl');
}

test("each entry names the registrar whose installation the capsule was, and a registrar's usage is its entries'", async (t) => {
  const path = await tempLedger(t);
  const ledger = await UsageLedger.open(path);
  ledger.record(record('shop'), 'acme');
  ledger.record(record('shop'), 'acme');
  ledger.record(record('blog'));
  await ledger.flush();
  // The name changed hands: its usage under each registrar is kept apart.
  ledger.record(record('shop'), 'bravo');
  await ledger.flush();
  const entries = (await readFile(path, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as LedgerEntry);
  assert.deepEqual(
    entries.map((entry) => [entry.capsule, entry.registrar, entry.usage.requests]),
    [
      ['blog', undefined, 1],
      ['shop', 'acme', 2],
      ['shop', 'bravo', 1],
    ],
  );
  assert.deepEqual((await verifyLedgerFile(path)).ok, true);
  const requests = (usage: Record<string, { requests: number }>) =>
    Object.fromEntries(Object.entries(usage).map(([name, one]) => [name, one.requests]));
  assert.deepEqual(requests(await ledger.usage({ registrar: 'acme' })), { shop: 2 });
  assert.deepEqual(requests(await ledger.usage({ registrar: 'bravo', capsule: 'shop' })), { shop: 1 });
  assert.deepEqual(requests(await ledger.usage()), { blog: 1, shop: 3 });
  await ledger.close();
});

test('records are summed per capsule and flushed as chained entries', async (t) => {
  const path = await tempLedger(t);
  let clock = Date.parse('2026-11-01T00:00:00Z');
  const ledger = await UsageLedger.open(path, { now: () => new Date(clock) });
  ledger.record(record('hello'));
  ledger.record(record('hello', { limit: 'timeout', status: 504 }));
  ledger.record(record('counter', { bytesOut: 5 }));
  clock += 10_000;
  await ledger.flush();
  await ledger.flush();
  assert.equal(ledger.head.entries, 2);

  const lines = (await readFile(path, 'utf8')).trim().split('\n');
  const entries = lines.map((line) => JSON.parse(line) as LedgerEntry);
  assert.deepEqual(
    entries.map((entry) => [entry.seq, entry.capsule]),
    [
      [1, 'counter'],
      [2, 'hello'],
    ],
  );
  assert.equal(entries[0]?.prev, GENESIS_HASH);
  assert.equal(entries[1]?.prev, entries[0]?.hash);
  assert.equal(entries[1]?.from, '2026-11-01T00:00:00.000Z');
  assert.equal(entries[1]?.to, '2026-11-01T00:00:10.000Z');
  assert.deepEqual(entries[1]?.usage, { requests: 2, cpuMs: 5, memoryMbSeconds: 2, bytesIn: 20, bytesOut: 200, limitHits: { timeout: 1 } });
  // Lines are written canonically, so a second implementation can hash the line it reads.
  assert.equal(lines[0], canonicalJson(entries[0]));

  assert.deepEqual(await verifyLedgerFile(path), { ok: true, entries: 2, head: ledger.head.hash });
  const usage = await ledger.usage();
  assert.equal(usage.hello?.requests, 2);
  assert.equal(usage.counter?.bytesOut, 5);
  assert.deepEqual(Object.keys(await ledger.usage({ capsule: 'counter' })), ['counter']);
  assert.deepEqual(await ledger.usage({ since: new Date(clock + 1) }), {});
  assert.equal((await ledger.usage({ until: new Date(clock) })).hello?.requests, 2);
  assert.deepEqual(
    (await ledger.entries(1)).map((entry) => entry.seq),
    [2],
  );
  await ledger.close();
});

test('a reopened ledger carries on the chain and its totals', async (t) => {
  const path = await tempLedger(t);
  const first = await UsageLedger.open(path);
  first.record(record('hello'));
  await first.close();
  const second = await UsageLedger.open(path);
  assert.equal(second.head.entries, 1);
  assert.equal((await second.usage()).hello?.requests, 1);
  second.record(record('hello'));
  await second.close();
  const result = await verifyLedgerFile(path);
  assert.equal(result.ok, true);
  assert.equal(result.entries, 2);
});

test('activeSince lists the capsules used after a time, the most recent first, across a reopen', async (t) => {
  const path = await tempLedger(t);
  let clock = Date.parse('2026-11-01T00:00:00Z');
  const now = () => new Date(clock);
  const first = await UsageLedger.open(path, { now });
  first.record(record('old'));
  clock += 60_000;
  await first.flush();
  clock += 3_600_000;
  first.record(record('hello'));
  first.record(record('counter'));
  clock += 10_000;
  await first.flush();
  clock += 10_000;
  first.record(record('hello'));
  clock += 10_000;
  await first.close();
  const second = await UsageLedger.open(path, { now });
  assert.deepEqual(second.activeSince(new Date(clock - 3_600_000)), ['hello', 'counter']);
  assert.deepEqual(second.activeSince(new Date(0)), ['hello', 'counter', 'old']);
  second.record(record('old'));
  clock += 10_000;
  await second.flush();
  assert.deepEqual(second.activeSince(new Date(clock - 3_600_000)), ['old', 'hello', 'counter']);
  await second.close();
});

test('tampering with any line is detected, and the ledger refuses to open', async (t) => {
  const path = await tempLedger(t);
  const ledger = await UsageLedger.open(path);
  for (const capsule of ['a', 'b', 'c']) {
    ledger.record(record(capsule));
    await ledger.flush();
  }
  await ledger.close();
  const original = await readFile(path, 'utf8');
  const lines = original.trim().split('\n');

  const edited = lines.map((line, index) => (index === 1 ? line.replace('"requests":1', '"requests":0') : line));
  assert.notEqual(edited[1], lines[1]);
  const altered = verifyLedgerText(`${edited.join('\n')}\n`);
  assert.deepEqual(altered, { ok: false, entries: 1, line: 2, reason: 'hash does not match the entry: it was altered' });

  // Recomputing the altered entry's own hash does not help: the next entry's prev gives it away.
  const forged = JSON.parse(edited[1] as string) as LedgerEntry;
  forged.hash = entryHash(forged);
  const reforged = verifyLedgerText(`${[lines[0], canonicalJson(forged), lines[2]].join('\n')}\n`);
  assert.equal(reforged.ok, false);
  assert.equal(reforged.ok === false && reforged.line, 3);

  const removed = verifyLedgerText(`${[lines[0], lines[2]].join('\n')}\n`);
  assert.equal(removed.ok, false);

  await writeFile(path, `${edited.join('\n')}\n`);
  const refused = await UsageLedger.open(path).then(
    () => assert.fail('an altered ledger opened'),
    (error: unknown) => error as { code: string; hint: string },
  );
  assert.equal(refused.code, 'LEDGER_CORRUPT');
  // What the hint says to do works, its checkpoint left beside it: a new ledger, nothing else lost.
  assert.match(refused.hint, new RegExp(`mv ${path} ${path}\\.corrupt`));
  await rename(path, `${path}.corrupt`);
  const fresh = await UsageLedger.open(path);
  assert.equal(fresh.head.entries, 0);
  await fresh.close();
});

test('a line cut short by a crash is dropped on open, and the chain carries on', async (t) => {
  const path = await tempLedger(t);
  const ledger = await UsageLedger.open(path);
  ledger.record(record('a'));
  await ledger.close();
  await writeFile(path, `${await readFile(path, 'utf8')}{"seq":2,"capsu`);
  const reopened = await UsageLedger.open(path);
  assert.equal(reopened.head.entries, 1);
  reopened.record(record('a'));
  await reopened.close();
  assert.deepEqual((await verifyLedgerFile(path)).ok, true);
});

test('canonical JSON sorts keys at every depth and verification survives arbitrary usage', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, 'x'], c: null } }), '{"a":{"c":null,"d":[1,"x"]},"b":1}');
  fc.assert(
    fc.property(
      fc.array(fc.record({ capsule: fc.string({ minLength: 1, maxLength: 8 }), cpu: fc.double({ min: 0, max: 1e6, noNaN: true }) })),
      (rows) => {
        let prev = GENESIS_HASH;
        const lines: string[] = [];
        for (const [index, row] of rows.entries()) {
          const body = {
            seq: index + 1,
            time: 't',
            capsule: row.capsule,
            from: 'f',
            to: 't',
            usage: { requests: 1, cpuMs: row.cpu, memoryMbSeconds: 0, bytesIn: 0, bytesOut: 0, limitHits: {} },
            prev,
          };
          const hash = entryHash(body);
          lines.push(canonicalJson({ ...body, hash }));
          prev = hash;
        }
        const result = verifyLedgerText(lines.length ? `${lines.join('\n')}\n` : '');
        assert.deepEqual(result, { ok: true, entries: rows.length, head: prev });
      },
    ),
  );
});

/** Writes a valid ledger of `count` entries straight to `path` (no fsync per entry), one capsule of three each, ten seconds apart. */
async function writeChain(
  path: string,
  count: number,
  start = Date.parse('2026-11-01T00:00:00Z'),
  fromOf = (seq: number) => start + (seq - 1) * 10_000,
): Promise<LedgerEntry[]> {
  const entries: LedgerEntry[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= count; seq++) {
    const to = new Date(start + seq * 10_000).toISOString();
    const body = {
      seq,
      time: to,
      capsule: `c${seq % 3}`,
      from: new Date(fromOf(seq)).toISOString(),
      to,
      usage: { requests: seq, cpuMs: 1.5, memoryMbSeconds: 0, bytesIn: 0, bytesOut: 0, limitHits: {} },
      prev,
    };
    const entry = { ...body, hash: entryHash(body) };
    entries.push(entry);
    prev = entry.hash;
  }
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, entries.map((entry) => `${canonicalJson(entry)}\n`).join(''));
  return entries;
}

function capturingLogger(): Logger & { warnings: string[]; infos: string[] } {
  const warnings: string[] = [];
  const infos: string[] = [];
  const message = (args: unknown[]) => String(args.find((arg) => typeof arg === 'string'));
  const logger: Logger & { warnings: string[]; infos: string[] } = {
    ...silentLogger,
    warnings,
    infos,
    warn: (...args: unknown[]) => {
      warnings.push(message(args));
    },
    info: (...args: unknown[]) => {
      infos.push(message(args));
    },
    child: () => logger,
  };
  return logger;
}

test('a long read of the ledger at start-up is announced and its progress logged; a short one is quiet', async (t) => {
  const path = await tempLedger(t);
  // About 1.6 MB: two 1 MiB read pieces, so one progress line between them.
  await writeChain(path, 5000);
  const quiet = capturingLogger();
  await (await UsageLedger.open(path, { logger: quiet })).close();
  assert.deepEqual(quiet.infos, [], 'a ledger under the default 64 MiB opens without a word');

  await rm(`${path}.checkpoint`);
  const long = { announceReadBytes: 1024, progressEveryMs: 0 };
  const first = capturingLogger();
  await (await UsageLedger.open(path, { logger: first, ...long })).close();
  assert.equal(first.infos.length, 3, first.infos.join('\n'));
  assert.match(first.infos[0] ?? '', /^verifying the usage ledger: 1\.\d MiB to read$/);
  assert.match(first.infos[1] ?? '', /^verifying the usage ledger: \d{1,2}% read in \d+ ms$/);
  assert.match(first.infos[2] ?? '', /^verifying the usage ledger: 5000 entries verified in /);

  // With the checkpoint the first open wrote, the next one hashes the prefix instead.
  const again = capturingLogger();
  await (await UsageLedger.open(path, { logger: again, ...long })).close();
  assert.equal(again.infos.length, 2, again.infos.join('\n'));
  assert.match(again.infos[0] ?? '', /^checking the usage ledger against its checkpoint: 1\.\d MiB to read$/);
  assert.match(again.infos[1] ?? '', /^checking the usage ledger against its checkpoint: \d+% read in /);
});

test('a long check at start-up runs while the host serves: usage waits for it, then the chain carries on', async (t) => {
  const path = await tempLedger(t);
  const written = await writeChain(path, 5000);
  const background = { backgroundReadBytes: 1024 };
  // A first open writes the checkpoint whose activity hints stand in while a later check runs.
  await (await UsageLedger.open(path)).close();
  const logger = capturingLogger();
  const ledger = await UsageLedger.open(path, { logger, ...background });
  assert.equal(ledger.head.entries, 0, 'open returned before the check');
  assert.equal(ledger.state, 'checking');
  assert.deepEqual(ledger.activeSince(new Date('2026-11-01T13:00:00Z')), ['c2', 'c1', 'c0']);
  ledger.record(record('late'));
  await ledger.flush();
  assert.equal(ledger.state, 'ok');
  assert.equal(ledger.head.entries, 5001);
  assert.equal((await ledger.usage({ capsule: 'late' })).late?.requests, 1);
  const c1 = written.filter((entry) => entry.capsule === 'c1').reduce((sum, entry) => sum + entry.usage.requests, 0);
  assert.equal((await ledger.usage({ capsule: 'c1' })).c1?.requests, c1);
  assert.match(logger.infos[0] ?? '', /^checking the usage ledger in the background \(1\.\d MiB\); usage is written once it is done$/);
  assert.match(logger.infos.at(-1) ?? '', /^usage ledger checked in /);

  // Closed while a check still runs, it waits for it and writes what it holds.
  const again = await UsageLedger.open(path, background);
  again.record(record('last'));
  await again.close();
  // Closed with nothing to write, it ends the check instead of waiting for it.
  const checkpoint = await readFile(`${path}.checkpoint`);
  const quiet = capturingLogger();
  await (await UsageLedger.open(path, { logger: quiet, ...background })).close();
  assert.equal(quiet.infos.filter((line) => line.startsWith('usage ledger checked')).length, 0, quiet.infos.join('\n'));
  assert.deepEqual(await readFile(`${path}.checkpoint`), checkpoint);

  const reopened = await UsageLedger.open(path);
  t.after(() => reopened.close());
  assert.equal(reopened.head.entries, 5002);
  assert.equal((await reopened.usage({ capsule: 'last' })).last?.requests, 1);
  assert.deepEqual(await verifyLedgerFile(path), { ok: true, entries: 5002, head: reopened.head.hash });
});

test('a ledger that does not verify, checked in the background, takes no usage and says why', async (t) => {
  const path = await tempLedger(t);
  await writeChain(path, 5000);
  const original = await readFile(path, 'utf8');
  assert.match(original, /"requests":2500\}/);
  await writeFile(path, original.replace('"requests":2500}', '"requests":2499}'));
  const tampered = await readFile(path);
  const errors: string[] = [];
  const logger = {
    ...capturingLogger(),
    error: (...args: unknown[]) => void errors.push(String(args.find((arg) => typeof arg === 'string'))),
  };
  const ledger = await UsageLedger.open(path, { logger, backgroundReadBytes: 1024 });
  ledger.record(record('late'));
  await assert.rejects(ledger.flush(), { code: 'LEDGER_CORRUPT', details: ['line 2500: hash does not match the entry: it was altered'] });
  assert.equal(ledger.broken?.code, 'LEDGER_CORRUPT');
  assert.equal(ledger.state, 'broken');
  await assert.rejects(ledger.flush(), { code: 'LEDGER_CORRUPT' });
  await assert.rejects(ledger.usage(), { code: 'LEDGER_CORRUPT' });
  await assert.rejects(ledger.entries(), { code: 'LEDGER_CORRUPT' });
  await ledger.close();
  assert.deepEqual(await readFile(path), tampered, 'nothing was appended to the broken chain');
  assert.equal(errors.length, 2, errors.join('\n'));
  assert.equal(errors[0], `the usage ledger ${path} does not verify: no usage is written until it is repaired`);
  // What it held is lost with the stop: this line is the record of it.
  assert.match(
    errors[1] ?? '',
    /^the usage of 1 requests to late from .* was never written to the usage ledger .*, which is broken \(LEDGER_CORRUPT\)/,
  );
});

test('a ledger larger than a read piece opens, keeps a checkpoint, and pages from its index', async (t) => {
  const path = await tempLedger(t);
  // About 1.6 MB: lines cross the 1 MiB read pieces, and the index has a second point (every 4096).
  const written = await writeChain(path, 5000);
  const ledger = await UsageLedger.open(path);
  assert.equal(ledger.head.entries, 5000);
  assert.equal(ledger.head.hash, written.at(-1)?.hash);
  const expected = (filter: (entry: LedgerEntry) => boolean) => {
    const sums: Record<string, number> = {};
    for (const entry of written.filter(filter)) sums[entry.capsule] = (sums[entry.capsule] ?? 0) + entry.usage.requests;
    return sums;
  };
  const requests = (usage: Record<string, { requests: number }>) =>
    Object.fromEntries(Object.entries(usage).map(([capsule, sum]) => [capsule, sum.requests]));
  assert.deepEqual(
    requests(await ledger.usage()),
    expected(() => true),
  );
  // Entries after a seq beyond the second index point, and usage since a time past it.
  assert.deepEqual(
    (await ledger.entries(4500, 3)).map((entry) => entry.seq),
    [4501, 4502, 4503],
  );
  assert.deepEqual(
    (await ledger.entries(10, 2)).map((entry) => entry.seq),
    [11, 12],
  );
  const since = new Date(written[4800]?.to ?? 0);
  assert.deepEqual(
    requests(await ledger.usage({ since })),
    expected((entry) => new Date(entry.to) > since),
  );
  const early = new Date(written[100]?.to ?? 0);
  assert.deepEqual(
    requests(await ledger.usage({ since: early })),
    expected((entry) => new Date(entry.to) > early),
  );
  await ledger.close();
  const checkpoint = JSON.parse(await readFile(`${path}.checkpoint`, 'utf8')) as { bytes: number; entries: number; index: number[][] };
  assert.equal(checkpoint.bytes, (await stat(path)).size);
  assert.equal(checkpoint.entries, 5000);
  assert.deepEqual(
    checkpoint.index.map(([seq]) => seq),
    [1, 4097],
  );
  assert.deepEqual(await verifyLedgerFile(path), { ok: true, entries: 5000, head: written.at(-1)?.hash });

  // Reopened from the checkpoint: the same totals and pages, and the chain carries on.
  const reopened = await UsageLedger.open(path);
  assert.deepEqual(
    requests(await reopened.usage()),
    expected(() => true),
  );
  assert.deepEqual(
    (await reopened.entries(4096, 1)).map((entry) => entry.seq),
    [4097],
  );
  reopened.record(record('c1'));
  await reopened.close();
  assert.equal((await verifyLedgerFile(path)).entries, 5001);
});

test('a restart trusts the checkpointed bytes only while they hash the same, and verifies what follows', async (t) => {
  const path = await tempLedger(t);
  await writeChain(path, 20);
  await (await UsageLedger.open(path)).close();
  const lines = (await readFile(path, 'utf8')).trim().split('\n');
  const checkpointPath = `${path}.checkpoint`;
  const checkpoint = JSON.parse(await readFile(checkpointPath, 'utf8')) as { sha256: string };

  // A broken entry the checkpoint claims as verified (its bytes hash as recorded) is not read again...
  const broken = lines.map((line, index) => (index === 3 ? line.replace('"cpuMs":1.5', '"cpuMs":0.5') : line));
  const brokenText = `${broken.join('\n')}\n`;
  await writeFile(path, brokenText);
  await writeFile(checkpointPath, JSON.stringify({ ...checkpoint, sha256: createHash('sha256').update(brokenText).digest('hex') }));
  await (await UsageLedger.open(path)).close();
  // ...but without that claim, the whole chain is verified and the ledger refused.
  await writeFile(path, brokenText);
  await writeFile(checkpointPath, JSON.stringify(checkpoint));
  await assert.rejects(UsageLedger.open(path), (error: Error & { code?: string; details?: string[] }) => {
    assert.equal(error.code, 'LEDGER_CORRUPT');
    assert.deepEqual(error.details, ['line 4: hash does not match the entry: it was altered']);
    return true;
  });

  // An entry appended after the checkpoint is verified: a forged one is refused with its line.
  await writeChain(path, 20);
  await (await UsageLedger.open(path)).close();
  const last = JSON.parse(lines.at(-1) as string) as LedgerEntry;
  const forged = { ...last, seq: 21, prev: GENESIS_HASH };
  await writeFile(path, `${canonicalJson({ ...forged, hash: entryHash(forged) })}\n`, { flag: 'a' });
  await assert.rejects(UsageLedger.open(path), (error: Error & { code?: string; details?: string[] }) => {
    assert.equal(error.code, 'LEDGER_CORRUPT');
    assert.deepEqual(error.details, ['line 21: prev does not match the hash of entry 20']);
    return true;
  });
});

test('a ledger shorter than its checkpoint, or a checkpoint that is not one, means the whole chain is verified', async (t) => {
  const path = await tempLedger(t);
  await writeChain(path, 10);
  await (await UsageLedger.open(path)).close();
  const lines = (await readFile(path, 'utf8')).trim().split('\n');
  // Entries removed from the end (a ledger restored from a backup, or worse): the chain still
  // verifies, so it opens, and says what it found.
  await writeFile(path, `${lines.slice(0, 7).join('\n')}\n`);
  const logger = erroringLogger();
  const shorter = await UsageLedger.open(path, { logger });
  assert.equal(shorter.head.entries, 7);
  assert.equal(logger.errors.length, 1);
  assert.match(
    logger.errors[0]?.message ?? '',
    new RegExp(
      `^the usage ledger ${path} holds 7 entries, but this host verified 10 entries in it before \\(its checkpoint ${path}\\.checkpoint says so\\): entries 8 to 10 \\(3\\) are gone, with the usage they held; a crash does not remove verified entries.*carries it on from entry 8\\. .*stop the host and put back a ledger that holds them`,
    ),
  );
  assert.deepEqual(logger.errors[0]?.fields, { ledger: path, entries: 7, checkpointEntries: 10, missing: 3 });
  await shorter.close();
  // A checkpoint that does not parse is ignored.
  await writeFile(`${path}.checkpoint`, '{"version":1,"bytes":');
  const reopened = await UsageLedger.open(path);
  assert.equal(reopened.head.entries, 7);
  await reopened.close();
  assert.equal(JSON.parse(await readFile(`${path}.checkpoint`, 'utf8')).entries, 7);
});

test('whatever happens to a ledger and its checkpoint, it is refused as corrupt or opens onto a chain that verifies', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-ledger-fuzz-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 12 }),
      fc.boolean(),
      fc.oneof(
        fc.record({ kind: fc.constant('truncate' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
        fc.record({
          kind: fc.constant('flip' as const),
          at: fc.double({ min: 0, max: 1, noNaN: true }),
          bits: fc.integer({ min: 1, max: 255 }),
        }),
        fc.record({ kind: fc.constant('append' as const), text: fc.string({ maxLength: 40 }) }),
        fc.record({ kind: fc.constant('checkpoint' as const), text: fc.string({ maxLength: 40 }) }),
      ),
      async (count, checkpointed, damage) => {
        const path = join(dir, `${run++}`, 'ledger.jsonl');
        await writeChain(path, count);
        if (checkpointed) await (await UsageLedger.open(path)).close();
        const bytes = await readFile(path);
        if (damage.kind === 'truncate') await writeFile(path, bytes.subarray(0, Math.floor(bytes.length * damage.at)));
        else if (damage.kind === 'flip' && bytes.length > 0) {
          const at = Math.min(bytes.length - 1, Math.floor(bytes.length * damage.at));
          bytes[at] = (bytes[at] ?? 0) ^ damage.bits;
          await writeFile(path, bytes);
        } else if (damage.kind === 'append') await writeFile(path, damage.text, { flag: 'a' });
        else if (damage.kind === 'checkpoint') await writeFile(`${path}.checkpoint`, damage.text);
        let ledger: UsageLedger;
        try {
          ledger = await UsageLedger.open(path);
        } catch (error) {
          assert.equal((error as { code?: string }).code, 'LEDGER_CORRUPT', String(error));
          return;
        }
        ledger.record(record('after'));
        await ledger.close();
        const verified = await verifyLedgerFile(path);
        assert.equal(verified.ok, true, JSON.stringify({ damage, verified }));
        assert.equal(verified.entries, ledger.head.entries);
      },
    ),
    { numRuns: 150 },
  );
});

/** A logger that keeps its error lines, each with its fields. */
function erroringLogger(): Logger & { errors: { fields: Record<string, unknown>; message: string }[] } {
  const errors: { fields: Record<string, unknown>; message: string }[] = [];
  const logger: Logger & { errors: typeof errors } = {
    ...silentLogger,
    errors,
    error: (...args: unknown[]) => {
      const fields = args.find((arg) => typeof arg === 'object' && arg !== null) as Record<string, unknown> | undefined;
      errors.push({ fields: fields ?? {}, message: String(args.find((arg) => typeof arg === 'string')) });
    },
    child: () => logger,
  };
  return logger;
}

/** Both of the above in one: the warnings and the errors a ledger logs. */
function recordingLogger(): ReturnType<typeof capturingLogger> & Pick<ReturnType<typeof erroringLogger>, 'errors'> {
  const { errors, error } = erroringLogger();
  const logger = { ...capturingLogger(), errors, error, child: () => logger };
  return logger;
}

/** Waits, without asserting how long, until something moves the file's ctime past `before` (`touch` moves it by a write or a chmod). */
async function moveCtime(path: string, before: bigint, touch: () => Promise<void>): Promise<void> {
  await touch();
  // The kernel stamps ctime from a coarse clock: a change within its tick keeps the old value.
  while ((await stat(path, { bigint: true })).ctimeNs === before) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    await chmod(path, 0o600);
  }
}

test('a ledger replaced while the host runs (sed -i, mv, a restore) takes no more usage, keeps what the host wrote, and says so once', async (t) => {
  const path = await tempLedger(t);
  let clock = Date.parse('2026-11-01T00:00:00Z');
  const logger = erroringLogger();
  const ledger = await UsageLedger.open(path, { logger, now: () => new Date(clock) });
  ledger.record(record('a'));
  ledger.record(record('b'));
  clock += 10_000;
  await ledger.flush();
  const written = await readFile(path);
  // What sed -i does: a new file with the edit, renamed over the ledger.
  await writeFile(`${path}.sed`, written.toString().replace('"requests":1', '"requests":0'));
  await rename(`${path}.sed`, path);
  const replacement = await readFile(path);
  ledger.record(record('a'));
  clock += 10_000;
  await assert.rejects(ledger.flush(), { code: 'LEDGER_CHANGED' });
  assert.equal(ledger.state, 'broken');
  await assert.rejects(ledger.usage(), { code: 'LEDGER_CHANGED' });
  ledger.record(record('a'));
  await assert.rejects(ledger.flush(), { code: 'LEDGER_CHANGED' });
  await ledger.close();
  assert.deepEqual(await readFile(path), replacement, 'nothing was appended to the replacement');
  const kept = `${path}.replaced-2026-11-01T00-00-20.000Z`;
  assert.deepEqual(await readFile(kept), written, 'the ledger the host wrote is kept beside it');
  assert.equal(logger.errors.length, 2, logger.errors.map((line) => line.message).join('\n'));
  assert.match(
    logger.errors[0]?.message ?? '',
    new RegExp(
      `^the usage ledger ${path} was changed while the host ran: it was replaced by another file .*no usage is written from now on.*2 entries, is kept in ${kept}\\. .*mv ${path} ${path}\\.corrupt.*restart the host`,
    ),
  );
  // The usage held since is logged at the stop, the only record of it left.
  assert.match(
    logger.errors[1]?.message ?? '',
    /^the usage of 2 requests to a from 2026-11-01T00:00:10\.000Z to .* is lost with this stop/,
  );
  assert.equal((logger.errors[1]?.fields.usage as Record<string, { requests: number }> | undefined)?.a?.requests, 2);
});

test('a ledger deleted while the host runs is reported at the next flush, even one with nothing to write', async (t) => {
  const path = await tempLedger(t);
  const logger = erroringLogger();
  const ledger = await UsageLedger.open(path, { logger });
  ledger.record(record('a'));
  await ledger.flush();
  await rm(path);
  await assert.rejects(ledger.flush(), {
    code: 'LEDGER_CHANGED',
    message: `the usage ledger ${path} was changed while the host ran: it was deleted or moved away`,
  });
  await ledger.close();
  assert.equal(logger.errors.length, 1);
  await assert.rejects(stat(path), { code: 'ENOENT' });
});

test('a ledger written to in place while the host runs takes no more usage: cut short, appended to, its last or an earlier entry edited', async (t) => {
  const damages: [string, (path: string, bytes: Buffer) => Promise<void>, RegExp][] = [
    [
      'cut short',
      (path, bytes) => truncate(path, bytes.length - 10),
      /it is \d+ bytes long, where the 3 entries this host verified and wrote end at byte \d+/,
    ],
    ['appended to', (path) => writeFile(path, '\n', { flag: 'a' }), /bytes long/],
    [
      'its last entry edited',
      (path, bytes) => overwrite(path, bytes.lastIndexOf('"requests":1'), '"requests":7'),
      /its last line \(entry 3\) is not the entry this host wrote there/,
    ],
    [
      'an earlier entry edited',
      (path, bytes) => overwrite(path, bytes.indexOf('"requests":1'), '"requests":7'),
      /its first 3 entries are not the bytes this host verified and wrote/,
    ],
  ];
  for (const [what, damage, reason] of damages) {
    const path = await tempLedger(t);
    const ledger = await UsageLedger.open(path);
    for (const capsule of ['a', 'b', 'c']) ledger.record(record(capsule));
    await ledger.flush();
    const before = (await stat(path, { bigint: true })).ctimeNs;
    await moveCtime(path, before, async () => damage(path, await readFile(path)));
    const damaged = await readFile(path);
    ledger.record(record('a'));
    await assert.rejects(ledger.flush(), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'LEDGER_CHANGED', what);
      assert.match(error.message, reason, what);
      return true;
    });
    await ledger.close();
    assert.deepEqual(await readFile(path), damaged, `${what}: nothing was appended`);
  }
});

test('a ledger whose ctime moved but whose bytes are those the host wrote (a chmod, a backup hard link) takes usage on', async (t) => {
  const path = await tempLedger(t);
  const ledger = await UsageLedger.open(path);
  ledger.record(record('a'));
  await ledger.flush();
  const before = (await stat(path, { bigint: true })).ctimeNs;
  await moveCtime(path, before, () => link(path, `${path}.backup`));
  ledger.record(record('a'));
  await ledger.flush();
  assert.equal(ledger.state, 'ok');
  await ledger.close();
  assert.deepEqual(await verifyLedgerFile(path), { ok: true, entries: 2, head: ledger.head.hash });
});

async function overwrite(path: string, at: number, text: string): Promise<void> {
  assert.ok(at >= 0);
  const file = await open(path, 'r+');
  try {
    await file.write(Buffer.from(text), 0, Buffer.byteLength(text), at);
  } finally {
    await file.close();
  }
}

test('no entry spans a UTC month start: usage held across one is written as an entry on each side, so a month is exactly its entries', async (t) => {
  const path = await tempLedger(t);
  let clock = Date.parse('2026-12-31T23:59:50Z');
  const ledger = await UsageLedger.open(path, { now: () => new Date(clock) });
  clock += 5_000;
  ledger.record(record('a'));
  ledger.record(record('b'), 'acme');
  clock += 8_000;
  ledger.record(record('a'));
  ledger.record(record('a'));
  clock += 2_000;
  await ledger.flush();
  const entries = (await readFile(path, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as LedgerEntry);
  assert.deepEqual(
    entries.map((entry) => [entry.capsule, entry.from, entry.to, entry.usage.requests, entry.time]),
    [
      ['a', '2026-12-31T23:59:50.000Z', '2027-01-01T00:00:00.000Z', 1, '2027-01-01T00:00:05.000Z'],
      ['b', '2026-12-31T23:59:50.000Z', '2027-01-01T00:00:00.000Z', 1, '2027-01-01T00:00:05.000Z'],
      ['a', '2027-01-01T00:00:00.000Z', '2027-01-01T00:00:05.000Z', 2, '2027-01-01T00:00:05.000Z'],
    ],
  );
  const requests = (usage: Record<string, { requests: number }>) =>
    Object.fromEntries(Object.entries(usage).map(([name, one]) => [name, one.requests]));
  const december = { since: new Date('2026-12-01T00:00:00Z'), until: new Date('2027-01-01T00:00:00Z') };
  const january = { since: new Date('2027-01-01T00:00:00Z'), until: new Date('2027-02-01T00:00:00Z') };
  assert.deepEqual(requests(await ledger.usage(december)), { a: 1, b: 1 });
  assert.deepEqual(requests(await ledger.usage(january)), { a: 2 });
  await ledger.close();
});

test('usage held only before a month start is written up to it, and months without usage are skipped', async (t) => {
  const path = await tempLedger(t);
  let clock = Date.parse('2026-10-31T23:59:00Z');
  const ledger = await UsageLedger.open(path, { now: () => new Date(clock) });
  ledger.record(record('a'));
  clock = Date.parse('2026-11-01T00:00:10Z');
  await ledger.flush();
  clock = Date.parse('2026-12-15T12:00:00Z');
  ledger.record(record('a'));
  clock += 10_000;
  await ledger.flush();
  const entries = (await readFile(path, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as LedgerEntry);
  assert.deepEqual(
    entries.map((entry) => [entry.from, entry.to]),
    [
      ['2026-10-31T23:59:00.000Z', '2026-11-01T00:00:00.000Z'],
      ['2026-12-01T00:00:00.000Z', '2026-12-15T12:00:10.000Z'],
    ],
  );
  await ledger.close();
});

test("an entry's period starts at the flush before it, with usage or not", async (t) => {
  const path = await tempLedger(t);
  let clock = Date.parse('2026-11-02T00:00:00Z');
  const ledger = await UsageLedger.open(path, { now: () => new Date(clock) });
  clock += 10_000;
  await ledger.flush();
  clock += 10_000;
  ledger.record(record('a'));
  await ledger.flush();
  const [entry] = (await ledger.entries()) as [LedgerEntry];
  assert.deepEqual([entry.from, entry.to], ['2026-11-02T00:00:10.000Z', '2026-11-02T00:00:20.000Z']);
  await ledger.close();
});

test('an entry of one instant, at a month start, is in the month it starts', async (t) => {
  const path = await tempLedger(t);
  let clock = Date.parse('2026-11-30T23:59:55Z');
  const ledger = await UsageLedger.open(path, { now: () => new Date(clock) });
  clock = Date.parse('2026-12-01T00:00:00Z');
  await ledger.flush();
  ledger.record(record('a'));
  await ledger.flush();
  const [entry] = (await ledger.entries()) as [LedgerEntry];
  assert.deepEqual([entry.from, entry.to], ['2026-12-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z']);
  const november = { since: new Date('2026-11-01T00:00:00Z'), until: new Date('2026-12-01T00:00:00Z') };
  const december = { since: new Date('2026-12-01T00:00:00Z'), until: new Date('2027-01-01T00:00:00Z') };
  assert.deepEqual(await ledger.usage(november), {});
  assert.equal((await ledger.usage(december)).a?.requests, 1);
  await ledger.close();
});

test("usage since a time includes an entry of that one instant, however far into the ledger's index", async (t) => {
  const path = await tempLedger(t);
  const start = Date.parse('2026-11-01T00:00:00Z');
  // Entry 4096, the last before the index's second point, is the instant its `to` is.
  const written = await writeChain(path, 4100, start, (seq) => start + (seq === 4096 ? seq : seq - 1) * 10_000);
  const instant = written[4095] as LedgerEntry;
  assert.equal(instant.from, instant.to);
  const ledger = await UsageLedger.open(path);
  const since = new Date(instant.to);
  const expected: Record<string, number> = {};
  for (const entry of written.slice(4095)) expected[entry.capsule] = (expected[entry.capsule] ?? 0) + entry.usage.requests;
  const usage = await ledger.usage({ since });
  assert.deepEqual(Object.fromEntries(Object.entries(usage).map(([capsule, sum]) => [capsule, sum.requests])), expected);
  await ledger.close();
});

test('a ledger deleted, or cut inside an entry, since its checkpoint says plainly which verified entries are gone', async (t) => {
  const path = await tempLedger(t);
  await writeChain(path, 10);
  await (await UsageLedger.open(path)).close();
  const bytes = await readFile(path);
  const logger = recordingLogger();
  // Cut inside entry 9: its rest is no crash's, and 9 and 10 are gone.
  const cut = bytes.indexOf('"seq":9') + 3;
  const ninth = Buffer.byteLength(`${(await readFile(path, 'utf8')).split('\n').slice(0, 8).join('\n')}\n`);
  await writeFile(path, bytes.subarray(0, cut));
  await (await UsageLedger.open(path, { logger })).close();
  assert.deepEqual(logger.warnings, [`dropping the ${cut - ninth} bytes left of entry 9, which was verified before and is cut short`]);
  assert.match(
    logger.errors[0]?.message ?? '',
    /holds 8 entries, but this host verified 10 entries in it before .*: entries 9 to 10 \(2\) are gone/,
  );

  await rm(path);
  logger.errors.length = 0;
  const fresh = await UsageLedger.open(path, { logger });
  assert.equal(fresh.head.entries, 0);
  await fresh.close();
  assert.match(
    logger.errors[0]?.message ?? '',
    new RegExp(
      `^the usage ledger ${path} is missing or empty, but this host verified 8 entries in it before .*: all 8 are gone, with the usage they held, and a new chain begins at entry 1\\. If this was meant`,
    ),
  );
  // Said once: the checkpoint now describes the new chain.
  logger.errors.length = 0;
  await (await UsageLedger.open(path, { logger })).close();
  assert.deepEqual(logger.errors, []);
});

test('a ledger cut short while the host runs is held to all the entries that host wrote at the next start, not to its last checkpoint', async (t) => {
  const path = await tempLedger(t);
  const ledger = await UsageLedger.open(path);
  ledger.record(record('a'));
  await ledger.flush();
  // Checkpointed at open; these come after it, as a busy host's last minutes do.
  for (const capsule of ['b', 'c', 'd']) {
    ledger.record(record(capsule));
    await ledger.flush();
  }
  const lines = (await readFile(path, 'utf8')).split('\n');
  const before = (await stat(path, { bigint: true })).ctimeNs;
  await moveCtime(path, before, () => writeFile(path, `${lines.slice(0, 2).join('\n')}\n`));
  ledger.record(record('a'));
  await assert.rejects(ledger.flush(), (error: Error & { code?: string }) => error.code === 'LEDGER_CHANGED');
  await ledger.close();
  const logger = recordingLogger();
  await (await UsageLedger.open(path, { logger })).close();
  assert.match(
    logger.errors[0]?.message ?? '',
    /holds 2 entries, but this host verified 4 entries in it before .*: entries 3 to 4 \(2\) are gone/,
  );
});

test('a ledger deleted while the host ran is reported at the next start with the copy that host kept of it', async (t) => {
  const path = await tempLedger(t);
  const ledger = await UsageLedger.open(path);
  for (const capsule of ['a', 'b', 'c']) {
    ledger.record(record(capsule));
    await ledger.flush();
  }
  await rm(path);
  ledger.record(record('a'));
  await assert.rejects(ledger.flush(), (error: Error & { code?: string }) => error.code === 'LEDGER_CHANGED');
  await ledger.close();
  const logger = recordingLogger();
  await (await UsageLedger.open(path, { logger })).close();
  assert.match(logger.errors[0]?.message ?? '', /is missing or empty, but this host verified 3 entries in it before .*: all 3 are gone/);
  const copy = /The host before kept what it had written in (\S+): that may be the ledger to put back\./.exec(
    logger.errors[0]?.message ?? '',
  )?.[1];
  assert.ok(copy?.startsWith(`${path}.replaced-`), logger.errors[0]?.message);
  assert.deepEqual(await verifyLedgerFile(copy ?? ''), { ok: true, entries: 3, head: ledger.head.hash });
});

test('a write that fails (a full disk) leaves no partial line, and its usage is written by the next flush', async (t) => {
  const path = await tempLedger(t);
  let clock = Date.parse('2026-11-01T00:00:00Z');
  const ledger = await UsageLedger.open(path, { now: () => new Date(clock) });
  ledger.record(record('a'));
  clock += 10_000;
  await ledger.flush();
  const before = await readFile(path);
  ledger.record(record('a'));
  ledger.record(record('b'));
  clock += 10_000;
  // Every FileHandle's write, the ledger's among them: a write that reaches the disk in part, then fails.
  const probe = await open(path, 'r');
  await probe.close();
  const fileHandle = Object.getPrototypeOf(probe) as { write: (buffer: Buffer) => Promise<unknown> };
  const write = fileHandle.write;
  fileHandle.write = async function (this: unknown, buffer: Buffer) {
    await write.call(this, buffer.subarray(0, 20));
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  };
  try {
    await assert.rejects(ledger.flush(), { code: 'ENOSPC' });
  } finally {
    fileHandle.write = write;
  }
  assert.deepEqual(await readFile(path), before, 'the partial entry was cut off');
  ledger.record(record('a'));
  clock += 10_000;
  await ledger.flush();
  assert.equal(ledger.state, 'ok');
  const entries = (await ledger.entries()).map((entry) => [entry.capsule, entry.from, entry.to, entry.usage.requests]);
  assert.deepEqual(entries, [
    ['a', '2026-11-01T00:00:00.000Z', '2026-11-01T00:00:10.000Z', 1],
    ['a', '2026-11-01T00:00:10.000Z', '2026-11-01T00:00:20.000Z', 1],
    ['b', '2026-11-01T00:00:10.000Z', '2026-11-01T00:00:20.000Z', 1],
    ['a', '2026-11-01T00:00:20.000Z', '2026-11-01T00:00:30.000Z', 1],
  ]);
  await ledger.close();
  assert.equal((await verifyLedgerFile(path)).ok, true);
});

test('a clock that goes back writes no usage into a period, or a month, that entries already closed', async (t) => {
  const path = await tempLedger(t);
  let clock = Date.parse('2026-11-30T23:59:50Z');
  let ledger = await UsageLedger.open(path, { now: () => new Date(clock) });
  ledger.record(record('a'));
  clock = Date.parse('2026-12-01T00:00:10Z');
  await ledger.flush();
  // Stepped back across the month start, while running.
  clock = Date.parse('2026-11-30T23:59:00Z');
  ledger.record(record('a'));
  await ledger.flush();
  await ledger.close();
  // And across it again at a restart, with usage held across the month start the clock then passes.
  clock = Date.parse('2026-11-30T23:59:30Z');
  ledger = await UsageLedger.open(path, { now: () => new Date(clock) });
  ledger.record(record('b'));
  clock = Date.parse('2026-12-01T00:00:02Z');
  ledger.record(record('b'));
  clock = Date.parse('2026-12-01T00:00:20Z');
  await ledger.flush();
  const entries = await ledger.entries();
  assert.deepEqual(
    entries.map((entry) => [entry.capsule, entry.from, entry.to, entry.usage.requests]),
    [
      ['a', '2026-11-30T23:59:50.000Z', '2026-12-01T00:00:00.000Z', 1],
      ['a', '2026-12-01T00:00:10.000Z', '2026-12-01T00:00:10.000Z', 1],
      ['b', '2026-12-01T00:00:10.000Z', '2026-12-01T00:00:10.000Z', 1],
      ['b', '2026-12-01T00:00:10.000Z', '2026-12-01T00:00:20.000Z', 1],
    ],
  );
  const november = { since: new Date('2026-11-01T00:00:00Z'), until: new Date('2026-12-01T00:00:00Z') };
  assert.equal((await ledger.usage(november)).a?.requests, 1);
  assert.equal((await ledger.usage(november)).b, undefined);
  await ledger.close();
});
