import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { isStratumError } from '@stratum/core';
import { linkSdkForEditors, sdkPackageDir } from './editor-types.ts';
import { initCapsule } from './init.ts';

test('init goes into a repository that holds no capsule yet: its files are kept, its .gitignore gets the lines it lacks', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-init-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, '.git'));
  await writeFile(join(dir, 'LICENSE'), 'MIT\n');
  await writeFile(join(dir, 'README.md'), '# mine\n');
  await writeFile(join(dir, '.gitignore'), 'node_modules/\n.env');
  await writeFile(join(dir, 'package.json'), '{"name":"theirs"}\n');
  const created = await initCapsule(dir, { name: 'shop' });
  assert.deepEqual(created.files, ['.gitignore (lines added)', 'src/index.ts', 'stratum.toml', 'tsconfig.json']);
  assert.equal(await readFile(join(dir, 'package.json'), 'utf8'), '{"name":"theirs"}\n');
  assert.equal(await readFile(join(dir, 'README.md'), 'utf8'), '# mine\n');
  assert.equal(await readFile(join(dir, 'LICENSE'), 'utf8'), 'MIT\n');
  assert.equal(await readFile(join(dir, '.gitignore'), 'utf8'), 'node_modules/\n.env\n# stratum\ndist/\n*.vars\n');
  assert.match(await readFile(join(dir, 'stratum.toml'), 'utf8'), /name = "shop"/);

  // Again: the capsule's own files exist, so nothing is written.
  const before = await readFile(join(dir, 'src', 'index.ts'), 'utf8');
  const again = await initCapsule(dir, { template: 'counter' }).catch((error: unknown) => error);
  assert.ok(isStratumError(again) && again.code === 'INIT_NOT_EMPTY', String(again));
  assert.equal(again.message, `${dir} already holds a capsule`);
  assert.equal(await readFile(join(dir, 'src', 'index.ts'), 'utf8'), before);
});

test('init refuses a directory holding one of the template’s files before it writes any of them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stratum-init-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'index.ts'), 'export default {};\n');
  const refused = await initCapsule(dir).catch((error: unknown) => error);
  assert.ok(isStratumError(refused) && refused.code === 'INIT_NOT_EMPTY', String(refused));
  assert.deepEqual(refused.details, ['src/index.ts exists']);
  assert.deepEqual((await readdir(dir)).sort(), ['src']);
  assert.equal(await readFile(join(dir, 'src', 'index.ts'), 'utf8'), 'export default {};\n');
});

test('init into a new directory writes the whole project, a README and .gitignore with it', async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'stratum-init-'));
  t.after(() => rm(parent, { recursive: true, force: true }));
  const created = await initCapsule(join(parent, 'My Notes'), { template: 'notes' });
  assert.equal(created.name, 'my-notes');
  assert.deepEqual(created.files, ['.gitignore', 'README.md', 'package.json', 'src/index.ts', 'stratum.toml', 'tsconfig.json']);
  assert.equal(await readFile(join(created.dir, '.gitignore'), 'utf8'), 'dist/\nnode_modules/\n.env\n*.vars\n');
  // An ES module project of its own, so that `npm install <package>` goes here.
  assert.deepEqual(JSON.parse(await readFile(join(created.dir, 'package.json'), 'utf8')), {
    name: 'my-notes',
    version: '0.1.0',
    private: true,
    type: 'module',
  });
});

test("@stratum/sdk is linked into a project's node_modules for its editor, unless the project reaches one already", async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'stratum-link-'));
  t.after(() => rm(parent, { recursive: true, force: true }));
  const project = join(parent, 'app');
  await mkdir(project);
  const link = join(project, 'node_modules', '@stratum', 'sdk');
  assert.equal(await linkSdkForEditors(project), 'linked');
  assert.equal(resolve(dirname(link), await readlink(link)), sdkPackageDir);
  assert.equal(await linkSdkForEditors(project), 'present');
  // One left by a checkout that is gone is pointed at this SDK.
  await rm(link);
  await symlink(join(parent, 'gone'), link);
  assert.equal(await linkSdkForEditors(project), 'linked');
  assert.equal(resolve(dirname(link), await readlink(link)), sdkPackageDir);
  // A real install is the project's own.
  await rm(link);
  await mkdir(link);
  assert.equal(await linkSdkForEditors(project), 'present');
  assert.ok((await lstat(link)).isDirectory());
  // So is one Node.js finds further up (a workspace).
  const nested = join(project, 'capsules', 'shop');
  await mkdir(nested, { recursive: true });
  assert.equal(await linkSdkForEditors(nested), 'present');
  await assert.rejects(lstat(join(nested, 'node_modules')));
});
