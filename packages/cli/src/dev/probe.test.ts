import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CapsuleLogEntry } from '@stratum/host';
import { probeBundle, topLevelError } from './probe.ts';

const entry = (message: string, source = 'stderr', level: CapsuleLogEntry['level'] = 'error'): CapsuleLogEntry => ({
  time: '2026-12-07T10:00:00.000Z',
  capsule: 'counter',
  level,
  source,
  message,
});

test("the probe's bundle ends with the bundle's own sourceURL, which the engine names the script by", () => {
  const bundle = '(() => { run(); })();\n//# sourceURL=src/index.ts.bundle.js\n';
  const probed = probeBundle(bundle);
  assert.ok(probed.startsWith(bundle));
  assert.equal(probed.slice(probed.lastIndexOf('//# sourceURL=')).trim(), '//# sourceURL=src/index.ts.bundle.js');
});

test('a top-level throw is named by what it threw, with the frames the engine logged after it, each once', () => {
  const error = topLevelError(
    {
      status: 500,
      body: "stratum dev: the capsule's top-level code threw: SyntaxError: JSON.parse: bad\n",
    },
    [
      entry('top-level output', 'stdout', 'info'),
      entry(
        "stratum dev: the capsule's top-level code threw on this instance's first request (a production build runs it while building, and would fail)",
      ),
      entry('SyntaxError: JSON.parse: bad'),
      entry('@src/index.ts:7:21\n@stratum-entry.js:4:62'),
    ],
  );
  assert.equal(error.code, 'DEV_TOP_LEVEL_THREW');
  assert.equal(error.message, "the capsule's top-level code threw: SyntaxError: JSON.parse: bad");
  assert.deepEqual(error.details, ['@src/index.ts:7:21', '@stratum-entry.js:4:62']);
});

test("a top-level throw whose message names a place is named at the sources' place the log gives, not the bundle's", () => {
  const threw = 'Error: openKeyValue("x") was called by the modules\' top-level code at src/index.ts.bundle.js:1395:24, which runs once';
  const mapped = 'Error: openKeyValue("x") was called by the modules\' top-level code at src/index.ts:9:15, which runs once';
  const error = topLevelError({ status: 500, body: `stratum dev: the capsule's top-level code threw: ${threw}\n` }, [
    entry(
      "stratum dev: the capsule's top-level code threw on this instance's first request (a production build runs it while building, and would fail)",
    ),
    entry(`${mapped}\n@src/index.ts:9:15`),
  ]);
  assert.equal(error.message, `the capsule's top-level code threw: ${mapped}`);
  assert.deepEqual(error.details, ['@src/index.ts:9:15']);
});

test("an answer that is not the engine's (a CPU limit on a loop) is named by its status, with the host's lines", () => {
  const error = topLevelError({ status: 504, body: 'the capsule used more CPU time than allowed\n' }, [
    entry('installed counter 0.1.0', 'host', 'info'),
    entry('limit hit (cpu): used 2056 ms of CPU', 'host', 'warn'),
  ]);
  assert.equal(
    error.message,
    "the capsule's top-level code did not finish: its first request was answered 504 (the capsule used more CPU time than allowed)",
  );
  assert.deepEqual(error.details, ['limit hit (cpu): used 2056 ms of CPU']);
});
