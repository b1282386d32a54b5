import { appendFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StratumError } from '@stratum/core';
import { parseManifest } from '@stratum/manifest';
import { linkSdkForEditors, PROJECT_TSCONFIG } from './editor-types.ts';
import { TEMPLATES, type TemplateName } from './templates.ts';

export { TEMPLATES, type TemplateName };

export const templatesDir = fileURLToPath(new URL('../../templates/', import.meta.url));

const NAME = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;

export interface InitOptions {
  template?: TemplateName;
  /** The capsule's name; default: made from the directory's name. */
  name?: string;
}

export interface InitResult {
  dir: string;
  name: string;
  template: TemplateName;
  /** Files written, relative to `dir` (`.gitignore (lines added)` when one was added to). */
  files: string[];
}

/** A capsule name (a DNS label) made from a directory name: `My App!` -> `my-app`. */
export function capsuleNameFrom(text: string): string {
  const name = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .replace(/-+$/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return name === '' ? 'capsule' : name;
}

/** What a capsule project keeps out of its commits: builds, packages, and files of secrets. */
const GITIGNORED = ['dist/', 'node_modules/', '.env', '*.vars'];

function pathExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function listTemplateFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listTemplateFiles(path)));
    else out.push(path);
  }
  return out.sort();
}

/**
 * Creates a capsule project from a template: stratum.toml, src/index.ts, a README, a
 * package.json (for the npm packages it may use) and a .gitignore. The directory may hold other
 * files (a repository's .git, its LICENSE), but not the template's: nothing is overwritten. A
 * README or package.json there is kept, and a .gitignore gets the lines it lacks. The result
 * builds as generated.
 *
 * @example
 * await initCapsule('/tmp/my-notes', { template: 'notes' });
 * @throws StratumError INIT_BAD_TEMPLATE, INIT_BAD_NAME, INIT_NOT_EMPTY
 */
export async function initCapsule(target: string, options: InitOptions = {}): Promise<InitResult> {
  const template = options.template ?? 'hello';
  if (!(TEMPLATES as readonly string[]).includes(template)) {
    throw new StratumError('INIT_BAD_TEMPLATE', `there is no template "${template}"`, { hint: `Pick one of: ${TEMPLATES.join(', ')}.` });
  }
  const dir = resolve(target);
  const name = options.name ?? capsuleNameFrom(basename(dir));
  if (!NAME.test(name) || name.length > 63) {
    throw new StratumError('INIT_BAD_NAME', `"${name}" is not a valid capsule name`, {
      hint: 'A name is a DNS label: 1 to 63 lowercase letters, digits and hyphens, starting with a letter. Pass one with --name.',
    });
  }
  const exists = await stat(dir).then(
    (info) => info,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    },
  );
  if (exists && !exists.isDirectory()) throw new StratumError('INIT_NOT_EMPTY', `${target} is a file`, { hint: 'Pick a new directory.' });
  const source = join(templatesDir, template);
  const project: { path: string; text: string }[] = [];
  for (const file of await listTemplateFiles(source)) {
    const path = relative(source, file);
    const text = (await readFile(file, 'utf8')).replaceAll('{{name}}', name).replaceAll('{{template}}', template);
    if (path === 'stratum.toml') parseManifest(text, join(target, path));
    project.push({ path, text });
  }
  // A repository just cloned or made (.git, a LICENSE, package.json) is a fine place for a
  // capsule, as for \`cargo init\`; only the capsule's own files must be new. All are checked
  // before anything is written.
  const taken: string[] = [];
  for (const { path } of project) if (await pathExists(join(dir, path))) taken.push(path);
  if (taken.length > 0) {
    throw new StratumError('INIT_NOT_EMPTY', `${target} already holds ${taken.includes('stratum.toml') ? 'a capsule' : taken.join(', ')}`, {
      details: taken.map((path) => `${path} exists`),
      hint: 'Pick another directory; stratum init never overwrites files.',
    });
  }
  const files: string[] = [];
  for (const { path, text } of project) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text, { flag: 'wx' });
    files.push(path);
  }
  // A README the directory has is the project's; a new one introduces the capsule.
  if (!(await pathExists(join(dir, 'README.md')))) {
    const readme = await readFile(join(templatesDir, 'README.md'), 'utf8');
    await writeFile(join(dir, 'README.md'), readme.replaceAll('{{name}}', name).replaceAll('{{template}}', template), { flag: 'wx' });
    files.push('README.md');
  }
  // So that `npm install hono` works at once, into this project, and its code is ES modules
  // (`npm init -y` would say CommonJS). A package.json the directory has is the project's.
  if (!(await pathExists(join(dir, 'package.json')))) {
    await writeFile(join(dir, 'package.json'), `${JSON.stringify({ name, version: '0.1.0', private: true, type: 'module' }, null, 2)}\n`, {
      flag: 'wx',
    });
    files.push('package.json');
  }
  // For the editor and `tsc --noEmit`: capsule code's globals are web APIs (editor-types.ts).
  if (!(await pathExists(join(dir, 'tsconfig.json')))) {
    await writeFile(join(dir, 'tsconfig.json'), `${JSON.stringify(PROJECT_TSCONFIG, null, 2)}\n`, { flag: 'wx' });
    files.push('tsconfig.json');
  }
  // Secrets for --var-file live in .env or *.vars files, which must not be committed: lines a
  // .gitignore lacks are added to it.
  const gitignore = join(dir, '.gitignore');
  const ignored = await readFile(gitignore, 'utf8').catch(() => undefined);
  const have = new Set((ignored ?? '').split(/\r?\n/).map((line) => line.trim()));
  const missing = GITIGNORED.filter((line) => !have.has(line));
  if (ignored === undefined) {
    await writeFile(gitignore, `${GITIGNORED.join('\n')}\n`, { flag: 'wx' });
    files.push('.gitignore');
  } else if (missing.length > 0) {
    await appendFile(gitignore, `${ignored === '' || ignored.endsWith('\n') ? '' : '\n'}# stratum\n${missing.join('\n')}\n`);
    files.push('.gitignore (lines added)');
  }
  // Not a file of the project: a convenience, which a read-only node_modules must not fail.
  await linkSdkForEditors(dir).catch(() => undefined);
  return { dir, name, template, files: files.sort() };
}
