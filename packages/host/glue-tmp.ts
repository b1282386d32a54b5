import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { transpile } from '@bytecodealliance/jco';
import { buildTiny } from '/work/main/tests/support/tiny.ts';

const path = process.argv[2] ?? (await buildTiny());
const out = process.argv[3] ?? '/tmp/glue-tiny';
const r = await transpile(await readFile(path), {
  name: 'c',
  instantiation: 'async',
  noTypescript: true,
  quiet: true,
  importBindings: 'hybrid',
});
await mkdir(out, { recursive: true });
for (const [n, b] of Object.entries(r.files)) await writeFile(`${out}/${n.split('/').pop()}`, b as Uint8Array);
console.log(Object.keys(r.files));
