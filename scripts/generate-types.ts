// Regenerates the TypeScript types that mirror the spec's JSON Schemas. A test checks that the
// checked-in files are current, so the types cannot drift from the schemas.
import { writeFile } from 'node:fs/promises';
import { compile } from 'json-schema-to-typescript';

export const GENERATED = [
  {
    schema: new URL('../spec/capsule/capsule-v1.schema.json', import.meta.url),
    output: new URL('../packages/manifest/src/capsule-v1.generated.ts', import.meta.url),
    name: 'CapsuleManifestV1',
  },
];

export async function generate(schemaUrl: URL, name: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const schema = JSON.parse(await readFile(schemaUrl, 'utf8'));
  schema.title = name;
  const source = await compile(schema, name, {
    bannerComment: `// Generated from ${schemaUrl.pathname.split('/spec/')[1] ? `spec/${schemaUrl.pathname.split('/spec/')[1]}` : schemaUrl.pathname} by scripts/generate-types.ts. Do not edit: run \`npm run generate\`.`,
    additionalProperties: false,
    strictIndexSignatures: true,
    format: true,
    style: { singleQuote: true, printWidth: 140 },
  });
  return source;
}

if (import.meta.main) {
  for (const { schema, output, name } of GENERATED) {
    await writeFile(output, await generate(schema, name));
    console.log(`wrote ${output.pathname}`);
  }
}
