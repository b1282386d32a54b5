import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { GENERATED, generate, generateValidator, VALIDATORS } from '../../../scripts/generate-types.ts';
import { manifestSchema } from './parse.ts';

// The parsers validate with code generated from these schemas ahead of time (scripts/generate-types.ts),
// so nothing checks them at run time: this is where they are checked against the meta-schema.
test('every JSON Schema under spec/ is valid against the JSON Schema 2020-12 meta-schema', async () => {
  const specDir = new URL('../../../spec/', import.meta.url);
  const files = (await readdir(specDir, { recursive: true })).filter((file) => file.endsWith('.schema.json'));
  assert.ok(files.includes('capsule/capsule-v1.schema.json') && files.includes('host-config/host-config-v1.schema.json'), files.join());
  for (const file of files) {
    const schema = JSON.parse(await readFile(new URL(file, specDir), 'utf8')) as Record<string, unknown>;
    const ajv = new Ajv2020({ strict: true, strictRequired: false });
    assert.equal(ajv.validateSchema(schema), true, `${file}: ${JSON.stringify(ajv.errors, null, 2)}`);
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema', file);
  }
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

test('the generated validators are current with the schemas (run `npm run generate` if not)', async () => {
  for (const { schema, output } of VALIDATORS) {
    const { js, dts } = await generateValidator(schema);
    assert.equal(await readFile(output, 'utf8'), js, `${output.pathname} is stale: run \`npm run generate\``);
    assert.equal(await readFile(new URL(output.href.replace(/\.js$/, '.d.ts')), 'utf8'), dts, `${output.pathname}'s .d.ts is stale`);
  }
});
