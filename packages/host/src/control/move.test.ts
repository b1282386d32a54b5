// moveCapsule's order and its way back, over in-memory stand-ins for the two hosts' clients.
// The real path, two hosts and a capsule's keyvalue state, is tests/host-control-cli.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StratumError } from '@stratum/core';
import type { CapsuleStatus } from '../runtime-types.ts';
import { ControlApiError, type ControlClient } from './client.ts';
import { moveCapsule } from './move.ts';
import { type StoreRef, storesOf } from './stores.ts';

const install = { manifest: 'stratum = 1', domains: ['a.example'] };
const stores = storesOf({ keyvalue: ['default'], sql: ['main'], bucket: [] });

/**
 * `has`: the installations the host has before the move, which its status answers and does not
 * 404. `fail`: an error for a call, or "hang" for one that never answers. `grants`: the stores
 * its installation's manifest grants, as its refusal of a label it does not grant names them.
 */
function fakeHost(
  label: string,
  calls: string[],
  fail: Partial<Record<string, Error | 'hang'>> = {},
  has: string[] = [],
  grants: StoreRef[] = stores,
): ControlClient {
  const status = (name: string) => ({ name, state: 'running', domains: ['a.example'] }) as unknown as CapsuleStatus;
  const step = async <T>(what: string, value: T): Promise<T> => {
    calls.push(`${label} ${what}`);
    const error = fail[what.split(' ')[0] ?? ''];
    if (error === 'hang') await new Promise(() => {});
    if (error) throw error;
    return value;
  };
  const notGranted = (capability: string, wanted: string) =>
    new ControlApiError(404, 'STATE_NOT_FOUND', `shop's manifest grants no ${capability} label "${wanted}"`);
  const client: Partial<ControlClient> = {
    identity: async () => ({ name: label, key: { kty: 'OKP', crv: 'Ed25519', x: label }, api: '', version: '', startedAt: '' }),
    install: (options) => step(`install ${options.name} start=${String(options.start)}`, status(options.name ?? '')),
    drain: (name) => step(`drain ${name}`, status(name)),
    start: (name) => step(`start ${name}`, status(name)),
    uninstall: (name) => step(`uninstall ${name}`, {}),
    capsule: async (name) => {
      // The old host has the capsule moved, and says what its manifest grants (spec/host-api.md
      // section 4): a read the call lists leave out, as they list what changes.
      if (label === 'old') {
        const labels = (capability: string) => grants.filter((one) => one.capability === capability).map((one) => one.label);
        return { ...status(name), stores: { keyvalue: labels('keyvalue'), sql: labels('sql'), bucket: labels('bucket') } };
      }
      calls.push(`${label} status ${name}`);
      if (!has.includes(name)) throw new StratumError('CAPSULE_NOT_FOUND', `no capsule named "${name}" is installed here`);
      return status(name);
    },
    exportState: async (name, capability, label) => {
      if (!grants.some((one) => one.capability === capability && one.label === label)) throw notGranted(capability, label);
      return step(`export ${name} ${capability}/${label}`, new Blob([`snapshot of ${capability}/${label} from ${name}\n`]).stream());
    },
    // Records as many as the snapshot it received has lines, so that a test sees what crossed.
    importState: async (name, capability, label, snapshot) => {
      const text = await new Response(snapshot).text();
      return step(`import ${name} ${capability}/${label}`, { capability, label, records: text.split('\n').length - 1, skipped: 0 });
    },
  };
  return client as ControlClient;
}

test('a move installs first, then drains, copies every store and starts the new one', async () => {
  const calls: string[] = [];
  const copies: unknown[] = [];
  const result = await moveCapsule({
    from: fakeHost('old', calls),
    to: fakeHost('new', calls),
    name: 'shop',
    install,
    stores,
    onStep: (step) => {
      if (step.step === 'copy' || step.step === 'importing') copies.push(step);
    },
  });
  assert.deepEqual(calls, [
    'new status shop',
    'new install shop start=false',
    'old drain shop',
    'old export shop keyvalue/default',
    'new import shop keyvalue/default',
    'old export shop sql/main',
    'new import shop sql/main',
    'new start shop',
  ]);
  // Each snapshot crossed whole (the fake import counts its lines), through a spool file.
  assert.deepEqual(result.records, { 'keyvalue/default': 1, 'sql/main': 1 });
  const [kv, sql] = ['snapshot of keyvalue/default from shop\n'.length, 'snapshot of sql/main from shop\n'.length];
  assert.deepEqual(copies, [
    { step: 'importing', store: stores[0], bytes: kv },
    { step: 'copy', store: stores[0], records: 1, bytes: kv },
    { step: 'importing', store: stores[1], bytes: sql },
    { step: 'copy', store: stores[1], records: 1, bytes: sql },
  ]);
  assert.ok(result.downtimeMs >= 0);
});

test('a refusal by the new host leaves the old one serving, untouched', async () => {
  const calls: string[] = [];
  const refused = new StratumError('DOMAIN_TAKEN', 'a.example is already served by other');
  await assert.rejects(
    moveCapsule({ from: fakeHost('old', calls), to: fakeHost('new', calls, { install: refused }), name: 'shop', install, stores }),
    refused,
  );
  assert.deepEqual(calls, ['new status shop', 'new install shop start=false']);
});

test('a name the new host has already is refused before anything changes, and nothing there is removed', async () => {
  // An operator's key sees every installation: the status answers, and the move stops there.
  const calls: string[] = [];
  await assert.rejects(
    moveCapsule({ from: fakeHost('old', calls), to: fakeHost('new', calls, {}, ['shop']), name: 'shop', install, stores }),
    (error: StratumError) => error.code === 'MOVE_NAME_TAKEN' && /^new already has a capsule named shop \(running/.test(error.message),
  );
  assert.deepEqual(calls, ['new status shop']);
  // Another registrar's is answered 404 to this key, and its install refused: a refusal too, before the drain.
  calls.length = 0;
  const taken = new StratumError('NAME_TAKEN', 'a capsule named "shop" is installed here by another registrar');
  await assert.rejects(
    moveCapsule({ from: fakeHost('old', calls), to: fakeHost('new', calls, { install: taken }), name: 'shop', install, stores }),
    (error: StratumError) =>
      error.code === 'MOVE_NAME_TAKEN' && /another registrar's/.test(error.message) && /--name/.test(error.hint ?? ''),
  );
  assert.deepEqual(calls, ['new status shop', 'new install shop start=false']);
});

test('a failure after the drain starts the capsule on the old host again and removes the new one', async () => {
  const calls: string[] = [];
  const failure = new Error('snapshot does not verify');
  await assert.rejects(
    moveCapsule({ from: fakeHost('old', calls), to: fakeHost('new', calls, { import: failure }), name: 'shop', install, stores }),
    (error: StratumError) => error.code === 'MOVE_FAILED' && /serves from the old host again/.test(error.message),
  );
  assert.deepEqual(calls.slice(-3), ['new import shop keyvalue/default', 'old start shop', 'new uninstall shop']);
});

test('when putting it back fails too, the error says so and what to do', async () => {
  const calls: string[] = [];
  await assert.rejects(
    moveCapsule({
      from: fakeHost('old', calls, { start: new Error('connect ECONNREFUSED') }, [], []),
      to: fakeHost('new', calls, { start: new Error('instance failed') }),
      name: 'shop',
      install,
      stores: [],
    }),
    (error: StratumError) =>
      error.code === 'MOVE_FAILED' &&
      /and so did putting it back/.test(error.message) &&
      error.details.includes('could not start it on old again: connect ECONNREFUSED') &&
      /^Start it on the old host, where its state is as it was: `stratum host serve shop`\.$/.test(error.hint ?? ''),
  );
});

test('when only the new host cannot be cleaned up, the error says the capsule serves from the old host, and what is left where', async () => {
  const calls: string[] = [];
  const unreachable = new Error('cannot reach the control API at http://127.0.0.1:7070/v1');
  await assert.rejects(
    moveCapsule({
      from: fakeHost('old', calls),
      to: fakeHost('new', calls, { import: unreachable, uninstall: unreachable }),
      name: 'shop',
      install,
      stores,
      command: (side, words) => `stratum ${words.join(' ')} --${side}`,
    }),
    (error: StratumError) => {
      assert.equal(error.message, 'moving shop failed; it serves from the old host again');
      assert.deepEqual(error.details, [unreachable.message, `could not remove the copy installed on new: ${unreachable.message}`]);
      assert.equal(
        error.hint,
        'Once new answers, remove that copy and the state copied into it: `stratum host uninstall shop --delete-data --to`.',
      );
      return true;
    },
  );
  assert.deepEqual(calls.slice(-2), ['old start shop', 'new uninstall shop']);
});

test('a move to the host the capsule is on is refused before anything changes', async () => {
  const calls: string[] = [];
  await assert.rejects(
    moveCapsule({ from: fakeHost('same', calls), to: fakeHost('same', calls), name: 'shop', install, stores }),
    (error: StratumError) => error.code === 'MOVE_SAME_HOST' && /same host, same/.test(error.message),
  );
  assert.deepEqual(calls, []);
});

test('a manifest that does not grant a store the old installation has is refused before anything changes', async () => {
  const calls: string[] = [];
  const grants = storesOf({ keyvalue: ['default', 'sessions'], sql: ['main'], bucket: ['uploads'] });
  await assert.rejects(
    moveCapsule({ from: fakeHost('old', calls, {}, [], grants), to: fakeHost('new', calls), name: 'shop', install, stores }),
    (error: StratumError) => {
      assert.equal(error.code, 'MOVE_STATE_LEFT_BEHIND');
      assert.equal(error.message, 'shop on old has state in keyvalue/sessions, bucket/uploads, which the manifest given does not grant');
      return true;
    },
  );
  assert.deepEqual(calls, ['new status shop']);
});

test('a new host that stops answering mid-move is waited for no longer than the timeout, and so is putting it back', async () => {
  const calls: string[] = [];
  const steps: string[] = [];
  // The fake's hangs never end: without the timeout the test would not either.
  await assert.rejects(
    moveCapsule({
      from: fakeHost('old', calls),
      to: fakeHost('new', calls, { start: 'hang', uninstall: 'hang' }),
      name: 'shop',
      install,
      stores,
      timeoutMs: 200,
      onStep: (step) => {
        if (step.step === 'resume' || step.step === 'undo')
          steps.push(`${step.step} ${'what' in step ? `${step.what} ${step.ok}` : step.reason}`);
      },
    }),
    (error: StratumError) => {
      assert.equal(error.message, 'moving shop failed; it serves from the old host again');
      assert.deepEqual(error.details, [
        'new did not answer (start shop) within 200 ms',
        'could not remove the copy installed on new: new did not answer (uninstall shop) within 200 ms',
      ]);
      return true;
    },
  );
  assert.deepEqual(steps, ['resume new did not answer (start shop) within 200 ms', 'undo start true', 'undo remove false']);
  assert.deepEqual(calls.slice(-3), ['new start shop', 'old start shop', 'new uninstall shop']);
});

test('an interrupted move puts things back as a failed one does; a second interruption stops that, and the error says what was left', async () => {
  const calls: string[] = [];
  const stop = new AbortController();
  const abandon = new AbortController();
  const moved = moveCapsule({
    from: fakeHost('old', calls, { start: 'hang' }),
    to: fakeHost('new', calls, { import: 'hang' }),
    name: 'shop',
    install,
    stores,
    signal: stop.signal,
    abandon: abandon.signal,
    command: (side, words) => `stratum ${words.join(' ')} --${side}`,
    onStep: (step) => {
      // The new host does not answer the import: the first Ctrl-C.
      if (step.step === 'importing') setTimeout(() => stop.abort(new StratumError('MOVE_INTERRUPTED', 'interrupted')), 50);
      // The old host does not answer its start: the second Ctrl-C.
      if (step.step === 'resume') setTimeout(() => abandon.abort(new StratumError('MOVE_ABANDONED', 'stopped at once')), 50);
    },
  });
  await assert.rejects(moved, (error: StratumError) => {
    assert.equal(error.message, 'moving shop failed, and so did putting it back');
    assert.deepEqual(error.details, ['interrupted', 'could not start it on old again: stopped at once']);
    assert.equal(error.hint, 'Start it on the old host, where its state is as it was: `stratum host serve shop --from`.');
    return true;
  });
  assert.deepEqual(calls.slice(-3), ['new import shop keyvalue/default', 'old start shop', 'new uninstall shop']);
});

test('a link update cut short is put back all the same: the server may apply it after the move stopped waiting', async () => {
  const calls: string[] = [];
  let links = 'old';
  await assert.rejects(
    moveCapsule({
      from: fakeHost('old', calls),
      to: fakeHost('new', calls),
      name: 'shop',
      install,
      stores,
      timeoutMs: 500,
      switchLinks: async (_installed, _host, prepared) => {
        prepared(async () => {
          links = 'old';
        });
        // The server applies the update, and its answer never comes: the writer gives up later.
        links = 'new';
        await new Promise((resolve) => setTimeout(resolve, 600));
        throw new Error('the DNS server did not answer the update');
      },
    }),
    (error: StratumError) => {
      assert.equal(error.message, 'moving shop failed; it serves from the old host again');
      assert.match(String(error.details[0]), /the DNS update did not answer/);
      return true;
    },
  );
  assert.equal(links, 'old', "the domains' links were not put back");
});
