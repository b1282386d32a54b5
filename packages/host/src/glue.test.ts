import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eagerInstantiate } from './glue.ts';

const glue = (body: string) =>
  `"use components";\nexport function instantiate(getCoreModule, imports, instantiateCore = WebAssembly.instantiate) {\n${body}\n};\n\nexport const _util = {\n}\n`;

async function load(source: string): Promise<{ instantiate: (...args: unknown[]) => unknown }> {
  return import(`data:text/javascript,${encodeURIComponent(source)}`);
}

test("jco's instantiate becomes a parenthesised function expression that does the same", async () => {
  const original = glue('  const inner = () => "{ not the end };";\n  return { got: getCoreModule("m"), inner: inner() };');
  const eager = eagerInstantiate(original);
  assert.match(eager, /^"use components";\nexport const instantiate = \(function instantiate\(getCoreModule, imports, instantiateCore/);
  assert.match(eager, /\n\}\);\n\nexport const _util = \{\n\}\n$/);
  for (const source of [original, eager]) {
    const { instantiate } = await load(source);
    assert.deepEqual(
      instantiate((name: string) => `module ${name}`),
      { got: 'module m', inner: '{ not the end };' },
    );
  }
});

test('glue of another shape is left as it is', () => {
  const twice = `${glue('return 1;')}\n${glue('return 2;')}`;
  for (const source of ['export async function instantiate() {}\n', glue('return 1;').replace('\n};\n', '\n}\n'), twice]) {
    assert.equal(eagerInstantiate(source), source);
  }
});
