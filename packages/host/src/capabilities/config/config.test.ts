import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isStratumError } from '@stratum/core';
import { parseManifest } from '@stratum/manifest';
import { secretValuesOf } from '../logging/redact.ts';
import { resolveConfig } from './index.ts';

const manifest = (config: string) =>
  parseManifest(`stratum = 1\n[capsule]\nname = "x"\nversion = "0.1.0"\n[source]\nwasm = "x.wasm"\n${config}`, 'stratum.toml').manifest;

function refusal(call: () => unknown): string[] {
  try {
    call();
  } catch (error) {
    assert.ok(isStratumError(error) && error.code === 'CONFIG_INVALID', String(error));
    return [...(error.details ?? [])];
  }
  assert.fail('the configuration was taken');
}

test('variables named as members every object inherits (constructor, toString) are variables like any other: a required one needs its value, and such a value the manifest does not declare is refused', () => {
  const required = manifest('[capabilities.config.constructor]\nrequired = true\nsecret = true\n');
  assert.deepEqual(
    refusal(() => resolveConfig({ capsule: 'x', manifest: required, config: {} })),
    ['config variable "constructor" is required and has no value (a secret)'],
  );
  assert.deepEqual(resolveConfig({ capsule: 'x', manifest: required, config: { constructor: 'given-value' } }), {
    constructor: 'given-value',
  });
  assert.deepEqual(secretValuesOf(required.capabilities.config, {}), []);
  assert.deepEqual(secretValuesOf(required.capabilities.config, { constructor: 'given-value' }), ['given-value']);

  const none = manifest('');
  const given = JSON.parse('{"__proto__": "x", "constructor": "y", "toString": "z", "hasOwnProperty": "w"}') as Record<string, string>;
  assert.deepEqual(
    refusal(() => resolveConfig({ capsule: 'x', manifest: none, config: given })),
    ['__proto__', 'constructor', 'toString', 'hasOwnProperty'].map(
      (name) => `config value "${name}" is not a variable the manifest declares`,
    ),
  );
});
