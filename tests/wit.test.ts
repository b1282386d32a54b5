import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runToolchain } from '@stratum/sdk/build';
import { CAPSULE_WORLD, generateWitTypes, readWitTypes, specWitDir } from '../packages/sdk/src/wit/types.ts';
import { removeDir } from './support/temp.ts';

const STRATUM_PACKAGES = ['stratum-keyvalue', 'stratum-sql', 'stratum-bucket', 'stratum-crypto', 'stratum-intl'];

test('the capsule world and everything it depends on parse and resolve', async () => {
  const { files } = await runToolchain({ op: 'types', witPath: specWitDir, worldName: CAPSULE_WORLD, guest: true });
  const world = new TextDecoder().decode(files?.['capsule.d.ts']);
  for (const name of [
    'wasi:config/store@0.2.0-draft',
    'wasi:logging/logging@0.1.0-draft',
    'wasi:http/outgoing-handler@0.2.10',
    'stratum:keyvalue/store@0.1.0',
    'stratum:keyvalue/atomics@0.1.0',
    'stratum:keyvalue/batch@0.1.0',
    'stratum:sql/database@0.1.0',
    'stratum:bucket/objects@0.1.0',
    'stratum:crypto/primitives@0.1.0',
    'stratum:intl/services@0.1.0',
  ]) {
    assert.ok(world.includes(`// import ${name}`), `the world imports ${name}`);
  }
  assert.ok(world.includes('// export wasi:http/incoming-handler@0.2.10'));
});

for (const dir of STRATUM_PACKAGES) {
  test(`${dir} parses and resolves on its own`, async () => {
    const pkg = dir.replace('stratum-', 'stratum:');
    const { files } = await runToolchain({ op: 'types', witPath: join(specWitDir, 'deps', dir), worldName: `${pkg}/imports`, guest: true });
    assert.ok(Object.keys(files ?? {}).some((name) => name.startsWith(`interfaces/${dir}-`)));
  });
}

test("a WIT syntax error fails resolution with the parser's message", async (t) => {
  const broken = await mkdtemp(join(tmpdir(), 'stratum-wit-'));
  t.after(() => removeDir(broken));
  await cp(join(specWitDir, 'deps', 'stratum-sql'), broken, { recursive: true });
  await writeFile(join(broken, 'sql.wit'), (await readFile(join(broken, 'sql.wit'), 'utf8')).replace('record rows {', 'record rows {{'));
  await assert.rejects(
    runToolchain({ op: 'types', witPath: broken, worldName: 'stratum:sql/imports', guest: true }),
    (error: Error & { details?: string[] }) =>
      (error.details ?? []).some((line) => line.includes(`failed to parse package: ${broken}`)) &&
      (error.details ?? []).some((line) => line.includes("expected an identifier or string, found '{'")),
  );
});

test('every Stratum function returns a result, so a host failure never hangs a JSPI call', async () => {
  for (const dir of STRATUM_PACKAGES) {
    const files = (await readdir(join(specWitDir, 'deps', dir))).filter((file) => file.endsWith('.wit'));
    for (const file of files) {
      const text = await readFile(join(specWitDir, 'deps', dir, file), 'utf8');
      const functions = [...text.matchAll(/^\s*([a-z][a-z0-9-]*): (static )?func\(([^)]*)\)(.*);$/gm)];
      assert.ok(functions.length > 0, `${file} declares functions`);
      for (const [, name, , , returns] of functions) {
        assert.match(returns ?? '', /^ -> result</, `${dir}/${file}: ${name} must return result<...>`);
      }
    }
  }
});

test('the TypeScript declarations generated from spec/wit (jco types) are current', async () => {
  const generated = await generateWitTypes();
  const committed = await readWitTypes();
  for (const [name, text] of Object.entries(generated)) {
    assert.equal(committed[name], text, `${name} is stale: run \`node packages/sdk/src/wit/types.ts\` and commit the result`);
  }
});

test('a toolchain job over its time limit is stopped with a clear error instead of hanging', async () => {
  // The promise settles only when the child process has exited, so this also shows it was ended.
  await assert.rejects(
    runToolchain({ op: 'types', witPath: specWitDir, worldName: CAPSULE_WORLD, guest: true }, { timeoutMs: 1 }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TOOLCHAIN_TIMEOUT');
      assert.match(error.message, /the component toolchain \(types\) took longer than 1 ms/);
      return true;
    },
  );
});
