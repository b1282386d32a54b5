// Regenerates what is derived from the spec's JSON Schemas: the TypeScript types that mirror
// them, and their validators compiled ahead of time. A test checks that the checked-in files are
// current, so neither can drift from the schemas.
import { readFile, writeFile } from 'node:fs/promises';
import { Ajv2020 } from 'ajv/dist/2020.js';
import ajvStandalone from 'ajv/dist/standalone/index.js';
import { compile } from 'json-schema-to-typescript';

// A CommonJS module whose module.exports is the function itself; its types describe only `.default`.
const standaloneCode = ajvStandalone as unknown as typeof ajvStandalone.default;

export const GENERATED = [
  {
    schema: new URL('../spec/capsule/capsule-v1.schema.json', import.meta.url),
    output: new URL('../packages/manifest/src/capsule-v1.generated.ts', import.meta.url),
    name: 'CapsuleManifestV1',
  },
];

/**
 * The validators, as ajv's standalone code. Compiling a schema with ajv at run time cost every
 * process that read a manifest or a host.toml about 65 ms per schema on our machines, on top of
 * loading ajv itself (about 50 ms); a host start paid both for both.
 */
export const VALIDATORS = [
  {
    schema: new URL('../spec/capsule/capsule-v1.schema.json', import.meta.url),
    output: new URL('../packages/manifest/src/capsule-v1.validate.generated.js', import.meta.url),
  },
  {
    schema: new URL('../spec/host-config/host-config-v1.schema.json', import.meta.url),
    output: new URL('../packages/host/src/config/host-config-v1.validate.generated.js', import.meta.url),
  },
];

function specPath(schemaUrl: URL): string {
  const inSpec = schemaUrl.pathname.split('/spec/')[1];
  return inSpec ? `spec/${inSpec}` : schemaUrl.pathname;
}

export async function generate(schemaUrl: URL, name: string): Promise<string> {
  const schema = JSON.parse(await readFile(schemaUrl, 'utf8'));
  schema.title = name;
  const source = await compile(schema, name, {
    bannerComment: `// Generated from ${specPath(schemaUrl)} by scripts/generate-types.ts. Do not edit: run \`npm run generate\`.`,
    additionalProperties: false,
    strictIndexSignatures: true,
    format: true,
    style: { singleQuote: true, printWidth: 140 },
  });
  return source;
}

/**
 * ajv's standalone validator for a schema, as an ES module exporting `validate` (the function
 * sets `validate.errors` as ajv's compiled functions do). The options are the ones the parsers'
 * error messages rely on: every error (`allErrors`), with the failing data and its parent schema
 * (`verbose`: "did you mean" looks at the schema's properties), and patterns as Unicode.
 */
export async function generateValidator(schemaUrl: URL): Promise<{ js: string; dts: string }> {
  const schema = JSON.parse(await readFile(schemaUrl, 'utf8')) as Record<string, unknown>;
  const ajv = new Ajv2020({
    allErrors: true,
    verbose: true,
    strict: true,
    strictRequired: false,
    unicodeRegExp: true,
    code: { source: true, esm: true },
  });
  const code = standaloneCode(ajv, ajv.compile(schema));
  // ajv's ES module output still `require`s its small runtime helpers (string length in code
  // points, deep equality); an ES module has no `require`, so they become imports.
  const helpers = new Set<string>();
  const body = code.replace(/require\("ajv\/dist\/runtime\/([a-z0-9]+)"\)/g, (_match, helper: string) => {
    helpers.add(helper);
    return `ajvRuntime_${helper}`;
  });
  if (/\brequire\(/.test(body)) throw new Error(`${specPath(schemaUrl)}: ajv's code requires a module this generator does not import`);
  const banner = `// Generated from ${specPath(schemaUrl)} by scripts/generate-types.ts with ajv's standalone code. Do not edit: run \`npm run generate\`.`;
  const imports = [...helpers].map((helper) => `import ajvRuntime_${helper} from 'ajv/dist/runtime/${helper}.js';`);
  const js = `${[banner, ...imports, body].join('\n')}\n`;
  const dts = `${banner}\nimport type { ErrorObject } from 'ajv/dist/2020.js';\n\n/** True when the value is valid; otherwise \`validate.errors\` lists why. */\nexport declare const validate: { (value: unknown): boolean; errors?: ErrorObject[] | null };\nexport default validate;\n`;
  return { js, dts };
}

if (import.meta.main) {
  for (const { schema, output, name } of GENERATED) {
    await writeFile(output, await generate(schema, name));
    console.log(`wrote ${output.pathname}`);
  }
  for (const { schema, output } of VALIDATORS) {
    const { js, dts } = await generateValidator(schema);
    await writeFile(output, js);
    await writeFile(new URL(output.href.replace(/\.js$/, '.d.ts')), dts);
    console.log(`wrote ${output.pathname} (and its .d.ts)`);
  }
}
