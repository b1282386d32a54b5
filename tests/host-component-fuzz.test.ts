// Corrupt components, as a registrar could send by mistake or a stranger on purpose: tiny's
// component with bytes flipped, cut short, inserted or overwritten, installed one after another
// on one runtime. Each is refused with a coded error that says what is wrong and where, or
// installs and then starts or fails cleanly; none is left half-installed, and the host still
// serves a good capsule at the end.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { isStratumError } from '@stratum/core';
import { parseManifest } from '@stratum/manifest';
import { startHarness } from './fixtures/hostile/harness.ts';
import { buildTiny } from './support/tiny.ts';

/** A small deterministic generator, so that a failure names a seed that repeats it. */
function generator(seed: number): () => number {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff;
    return state / 0x80000000;
  };
}

function mutate(good: Buffer, random: () => number): { bytes: Buffer; how: string } {
  const at = (from = 0) => from + Math.floor(random() * (good.length - from));
  const bytes = Buffer.from(good);
  switch (Math.floor(random() * 4)) {
    case 0: {
      const flips = 1 + Math.floor(random() * 8);
      for (let k = 0; k < flips; k++) {
        const index = at();
        bytes[index] = (bytes[index] ?? 0) ^ (1 << Math.floor(random() * 8));
      }
      return { bytes, how: `${flips} bits flipped` };
    }
    case 1: {
      const length = at();
      return { bytes: bytes.subarray(0, length), how: `cut to ${length} bytes` };
    }
    case 2: {
      const index = at();
      const inserted = Buffer.from([Math.floor(random() * 256), Math.floor(random() * 256)]);
      return { bytes: Buffer.concat([bytes.subarray(0, index), inserted, bytes.subarray(index)]), how: `2 bytes inserted at ${index}` };
    }
    default: {
      // A LEB128 length or count overwritten with a huge one.
      const index = at(8);
      bytes.fill(0xff, index, Math.min(bytes.length, index + 4));
      return { bytes, how: `0xff written at ${index}` };
    }
  }
}

const REFUSALS = new Set(['TRANSPILE_FAILED', 'NOT_A_COMPONENT', 'NOT_AN_HTTP_CAPSULE', 'CAPABILITY_UNKNOWN_IMPORT', 'WASM_INVALID']);

test('corrupt components are refused with a coded error naming the problem, never half-installed, and the host serves on', async (t) => {
  const tiny = await buildTiny();
  const good = await readFile(tiny);
  const host = await startHarness(t);
  // STRATUM_FUZZ_SEED runs another sequence, to look further than CI does.
  const seed = Number(process.env.STRATUM_FUZZ_SEED ?? 20261206);
  const random = generator(seed);
  const outcomes = new Map<string, number>();
  for (let i = 0; i < 120; i++) {
    const { bytes, how } = mutate(good, random);
    const name = `mutant${i}`;
    const context = `mutant ${i} of seed ${seed} (${how})`;
    const { manifest } = parseManifest(`stratum = 1\n[capsule]\nname = "${name}"\nversion = "0.1.0"\n[source]\nwasm = "x.wasm"\n`);
    try {
      await host.runtime.install({ name, manifest, component: bytes, domains: [`${name}.test`] });
    } catch (error) {
      assert.ok(isStratumError(error) && REFUSALS.has(error.code), `${context}: ${String(error)}`);
      assert.ok(error.user, `${context}: ${error.code} is the sender's problem, not the host's`);
      if (error.code === 'TRANSPILE_FAILED') assert.match(error.details?.[0] ?? '', /\(at offset 0x[0-9a-f]+\)/, context);
      assert.equal(
        host.runtime.status().find((capsule) => capsule.name === name),
        undefined,
        `${context}: refused, yet installed`,
      );
      outcomes.set(`refused ${error.code}`, (outcomes.get(`refused ${error.code}`) ?? 0) + 1);
      continue;
    }
    // A mutation the decoder cannot see (a name, a custom section, an unused byte) still makes a
    // component; its start and its answer may fail, but only as errors.
    let outcome = 'installed, started';
    try {
      await host.runtime.start(name);
      const reply = await host.get(`${name}.test`);
      assert.ok(reply.status === 200 || reply.status >= 500, `${context}: ${reply.status}`);
    } catch (error) {
      assert.ok(isStratumError(error), `${context}: ${String(error)}`);
      outcome = `installed, start failed ${error.code}`;
    }
    await host.runtime.uninstall(name);
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  const refused = [...outcomes].filter(([outcome]) => outcome.startsWith('refused')).reduce((sum, [, count]) => sum + count, 0);
  assert.ok(refused >= 60, `most mutants should be refused: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  t.diagnostic(JSON.stringify(Object.fromEntries(outcomes)));
  assert.deepEqual(host.runtime.status(), []);

  await host.install('tiny', tiny);
  const reply = await host.get('tiny.test');
  assert.equal(reply.status, 200);
  assert.match(reply.body.toString(), /hello from tiny/);
});
