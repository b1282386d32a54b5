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
 * `old`: the state the old host's installation is in (running by default) and the stores it holds
 * data in that its manifest no longer grants; `linkProblems`: what the new host's link check finds.
 */
function fakeHost(
  label: string,
  calls: string[],
  fail: Partial<Record<string, Error | 'hang'>> = {},
  has: string[] = [],
  grants: StoreRef[] = stores,
  old: { state?: CapsuleStatus['state']; retained?: StoreRef[]; linkProblems?: string[]; keptData?: { uninstalledAt: string } } = {},
): ControlClient {
  const status = (name: string, state = 'running') => ({ name, state, domains: ['a.example'], digest: 'sha256:d' }) as CapsuleStatus;
  const labels = (refs: StoreRef[], capability: string) => refs.filter((one) => one.capability === capability).map((one) => one.label);
  const byCapability = (refs: StoreRef[]) => ({
    keyvalue: labels(refs, 'keyvalue'),
    sql: labels(refs, 'sql'),
    bucket: labels(refs, 'bucket'),
  });
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
    // `keptData`: the name held the data of an installation uninstalled here, as the install says.
    install: (options) =>
      step(`install ${options.name} start=${String(options.start)}`, {
        ...status(options.name ?? '', 'installed'),
        stores: byCapability(grants),
        ...(old.keptData ? { keptData: old.keptData } : {}),
      }),
    drain: (name) => step(`drain ${name}`, status(name, 'stopped')),
    start: (name) => step(`start ${name}`, status(name)),
    stop: (name) => step(`stop ${name}`, status(name, 'stopped')),
    uninstall: (name, call) => step(`uninstall ${name}${call?.deleteData ? ' data=delete' : ''}`, {}),
    links: (domains) => {
      const problems = (old.linkProblems ?? []).map((problem) => ({ domain: domains[0] ?? '', problem }));
      return step(`links ${domains.join(',')}`, { checked: true, problems, ...(problems.length ? { hint: 'Publish the link.' } : {}) });
    },
    capsule: async (name) => {
      // The old host has the capsule moved, and says what its manifest grants (spec/host-api.md
      // section 4): a read the call lists leave out, as they list what changes.
      if (label === 'old') {
        const retained = old.retained?.length ? { retainedStores: byCapability(old.retained) } : {};
        return { ...status(name, old.state), stores: byCapability(grants), ...retained };
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
    'new links a.example',
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
  assert.deepEqual(calls.slice(-3), ['new import shop keyvalue/default', 'old start shop', 'new uninstall shop data=delete']);
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
  assert.deepEqual(calls.slice(-2), ['old start shop', 'new uninstall shop data=delete']);
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
  assert.deepEqual(calls.slice(-3), ['new start shop', 'old start shop', 'new uninstall shop data=delete']);
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
  assert.deepEqual(calls.slice(-3), ['new import shop keyvalue/default', 'old start shop', 'new uninstall shop data=delete']);
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

test('a stopped capsule moves stopped: neither drained nor started on either host, and a failed move does not start it', async () => {
  const calls: string[] = [];
  const steps: string[] = [];
  const moved = await moveCapsule({
    from: fakeHost('old', calls, {}, [], stores, { state: 'stopped' }),
    to: fakeHost('new', calls),
    name: 'shop',
    install,
    stores,
    onStep: (step) => steps.push(step.step),
  });
  assert.deepEqual(calls, [
    'new status shop',
    'new install shop start=false',
    'old export shop keyvalue/default',
    'new import shop keyvalue/default',
    'old export shop sql/main',
    'new import shop sql/main',
    // Recorded as stopped on the new host too, so that its restart keeps it out of service.
    'new stop shop',
  ]);
  assert.equal(moved.status.state, 'stopped');
  assert.equal(moved.downtimeMs, 0);
  assert.ok(steps.includes('leave') && !steps.includes('start') && !steps.includes('drain'), steps.join(' '));

  calls.length = 0;
  await assert.rejects(
    moveCapsule({
      from: fakeHost('old', calls, {}, [], stores, { state: 'stopped' }),
      to: fakeHost('new', calls, { import: new Error('snapshot does not verify') }),
      name: 'shop',
      install,
      stores,
    }),
    (error: StratumError) => {
      assert.equal(error.message, 'moving shop failed; it is stopped on old, as it was');
      return true;
    },
  );
  assert.ok(!calls.includes('old start shop'), calls.join(', '));
  assert.equal(calls.at(-1), 'new uninstall shop data=delete');
});

test('a capsule installed and never started moves so, and is left installed on the new host', async () => {
  const calls: string[] = [];
  const moved = await moveCapsule({
    from: fakeHost('old', calls, {}, [], stores, { state: 'installed' }),
    to: fakeHost('new', calls),
    name: 'shop',
    install,
    stores,
  });
  assert.equal(moved.status.state, 'installed');
  assert.ok(!calls.some((call) => /drain|start shop|stop/.test(call)), calls.join(', '));
});

test('a capsule draining on the old host is refused before anything changes', async () => {
  const calls: string[] = [];
  await assert.rejects(
    moveCapsule({
      from: fakeHost('old', calls, {}, [], stores, { state: 'draining' }),
      to: fakeHost('new', calls),
      name: 'shop',
      install,
      stores,
    }),
    (error: StratumError) => error.code === 'MOVE_DRAINING',
  );
  assert.deepEqual(calls, ['new status shop']);
});

test('links the new host would refuse stop the move before the drain, with the records to publish', async () => {
  const calls: string[] = [];
  const problem = '_stratum.a.example names host old, not this host (new)';
  await assert.rejects(
    moveCapsule({
      from: fakeHost('old', calls),
      to: fakeHost('new', calls, {}, [], stores, { linkProblems: [problem] }),
      name: 'shop',
      install,
      stores,
    }),
    (error: StratumError) => {
      assert.equal(error.message, 'moving shop failed; it never stopped serving on old');
      assert.deepEqual(error.details, ['shop would not be served on new: its domains do not link to it', problem]);
      assert.equal(error.hint, 'Publish the link.');
      assert.equal((error.cause as StratumError).code, 'DOMAIN_NOT_LINKED');
      return true;
    },
  );
  assert.deepEqual(calls, ['new status shop', 'new install shop start=false', 'new links a.example', 'new uninstall shop data=delete']);

  // A host older than the check answers 404: its start checks, as before.
  calls.length = 0;
  const older = new ControlApiError(404, 'NOT_FOUND', 'no such endpoint: /links');
  await moveCapsule({ from: fakeHost('old', calls), to: fakeHost('new', calls, { links: older }), name: 'shop', install, stores });
  assert.equal(calls.at(-1), 'new start shop');
  // With a link switch the links name the new host only after the copy: nothing to check before.
  calls.length = 0;
  await moveCapsule({
    from: fakeHost('old', calls),
    to: fakeHost('new', calls, {}, [], stores, { linkProblems: [problem] }),
    name: 'shop',
    install,
    stores,
    switchLinks: async () => async () => {},
  });
  assert.ok(!calls.some((call) => call.startsWith('new links')), calls.join(', '));
  assert.equal(calls.at(-1), 'new start shop');
});

test('stores the old installation no longer grants are left behind, and the result says which', async () => {
  const retained = storesOf({ keyvalue: [], sql: [], bucket: ['images'] });
  const moved = await moveCapsule({
    from: fakeHost('old', [], {}, [], stores, { retained }),
    to: fakeHost('new', []),
    name: 'shop',
    install,
    stores,
  });
  assert.deepEqual(moved.leftBehind, retained);
  assert.deepEqual(Object.keys(moved.records), ['keyvalue/default', 'sql/main']);
});

test('an export that sends nothing for the timeout says so of that store', async () => {
  await assert.rejects(
    moveCapsule({ from: fakeHost('old', [], { export: 'hang' }), to: fakeHost('new', []), name: 'shop', install, stores, timeoutMs: 200 }),
    (error: StratumError) => {
      assert.equal(error.details[0], 'the old host sent nothing of keyvalue/default for 200 ms');
      return true;
    },
  );
});

test('a name whose data the new host keeps is refused before the drain, and what the move installed goes without deleting that data', async () => {
  const calls: string[] = [];
  const keptData = { uninstalledAt: '2026-11-01T10:00:00.000Z' };
  await assert.rejects(
    moveCapsule({
      from: fakeHost('old', calls),
      to: fakeHost('new', calls, {}, [], stores, { keptData }),
      name: 'shop',
      install,
      stores,
      command: (side, words) => `stratum ${words.join(' ')} --${side}`,
    }),
    (error: StratumError) => {
      assert.equal(error.code, 'MOVE_KEPT_DATA');
      assert.equal(
        error.message,
        'new keeps data under the name shop, left by its installation there uninstalled on 2026-11-01T10:00:00.000Z: moving shop there would replace it with the copy from old',
      );
      assert.deepEqual(error.details, [
        'the data kept there may be in keyvalue/default, sql/main',
        'nothing else changed: shop serves from old, and the data on new is as it was',
      ]);
      assert.equal(
        error.hint,
        'If that data is not needed, delete it, then move again: `stratum host uninstall shop --delete-data --to`. To replace it with the copy from old, move with --replace-kept-data; to keep both, give the capsule another name there (--name).',
      );
      return true;
    },
  );
  // No drain, no copy: the install, and a plain uninstall that leaves the name's data.
  assert.deepEqual(calls, ['new status shop', 'new install shop start=false', 'new uninstall shop']);
});

test('told to replace kept data, a move that fails puts back without deleting the data the name held; one that succeeds says what it replaced', async () => {
  const keptData = { uninstalledAt: '2026-11-01T10:00:00.000Z' };
  const calls: string[] = [];
  const undone: unknown[] = [];
  await assert.rejects(
    moveCapsule({
      from: fakeHost('old', calls),
      to: fakeHost('new', calls, { start: new Error('instance failed') }, [], stores, { keptData }),
      name: 'shop',
      install,
      stores,
      replaceKeptData: true,
      onStep: (step) => {
        if (step.step === 'undo') undone.push(step);
      },
    }),
    (error: StratumError) => error.code === 'MOVE_FAILED',
  );
  assert.deepEqual(calls.slice(-2), ['old start shop', 'new uninstall shop']);
  assert.deepEqual(undone, [
    { step: 'undo', what: 'start', ok: true },
    { step: 'undo', what: 'remove', ok: true, keptData: 'kept' },
  ]);

  const result = await moveCapsule({
    from: fakeHost('old', []),
    to: fakeHost('new', [], {}, [], stores, { keptData }),
    name: 'shop',
    install,
    stores,
    replaceKeptData: true,
  });
  assert.deepEqual(result.keptData, { uninstalledAt: keptData.uninstalledAt, retained: [] });
});

test('an install cut short is taken back without deleting data: the new host may have kept some under the name', async () => {
  const calls: string[] = [];
  const undone: unknown[] = [];
  await assert.rejects(
    moveCapsule({
      from: fakeHost('old', calls),
      to: fakeHost('new', calls, { install: 'hang' }),
      name: 'shop',
      install,
      stores,
      timeoutMs: 100,
      onStep: (step) => {
        if (step.step === 'undo') undone.push(step);
      },
    }),
    (error: StratumError) => error.code === 'MOVE_FAILED',
  );
  assert.equal(calls.at(-1), 'new uninstall shop');
  assert.deepEqual(undone, [{ step: 'undo', what: 'remove', ok: true, keptData: 'unknown' }]);
});
