import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { GENERATED, generate } from '../../../scripts/generate-types.ts';
import { manifestSchema } from './parse.ts';

test('the manifest schema is valid against the JSON Schema 2020-12 meta-schema', () => {
  const ajv = new Ajv2020({ strict: true, strictRequired: false });
  const valid = ajv.validateSchema(manifestSchema);
  assert.equal(valid, true, JSON.stringify(ajv.errors, null, 2));
  assert.equal(manifestSchema.$schema, 'https://json-schema.org/draft/2020-12/schema');
});

test('a schema that breaks the meta-schema is caught (the check above can fail)', () => {
  const ajv = new Ajv2020({ strict: false });
  assert.equal(ajv.validateSchema({ ...manifestSchema, type: 'tablet' }), false);
});

test('the generated TypeScript types are current with the schemas (run `npm run generate` if not)', async () => {
  for (const { schema, output, name } of GENERATED) {
    const expected = await generate(schema, name);
    const actual = await readFile(output, 'utf8');
    assert.equal(actual, expected, `${output.pathname} is stale: run \`npm run generate\``);
  }
});
