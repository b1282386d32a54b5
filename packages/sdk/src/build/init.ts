import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StratumError } from '@stratum/core';
import { parseManifest } from '@stratum/manifest';
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
  /** Files written, relative to `dir`. */
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
 * Creates a capsule project from a template: stratum.toml, src/index.ts, a README and a
 * .gitignore. The directory must not exist or be empty. The result builds as generated.
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
  const existing = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    if (error.code === 'ENOTDIR') throw new StratumError('INIT_NOT_EMPTY', `${target} is a file`, { hint: 'Pick a new directory.' });
    throw error;
  });
  if (existing.length > 0) {
    throw new StratumError('INIT_NOT_EMPTY', `${target} is not empty`, {
      details: [`it holds ${existing.slice(0, 5).join(', ')}${existing.length > 5 ? ', ...' : ''}`],
      hint: 'Pick a new or empty directory; stratum init never overwrites files.',
    });
  }
  const source = join(templatesDir, template);
  const files: string[] = [];
  for (const file of await listTemplateFiles(source)) {
    const path = relative(source, file);
    const text = (await readFile(file, 'utf8')).replaceAll('{{name}}', name).replaceAll('{{template}}', template);
    if (path === 'stratum.toml') parseManifest(text, join(target, path));
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text, { flag: 'wx' });
    files.push(path);
  }
  const readme = await readFile(join(templatesDir, 'README.md'), 'utf8');
  await writeFile(join(dir, 'README.md'), readme.replaceAll('{{name}}', name).replaceAll('{{template}}', template), { flag: 'wx' });
  // Secrets for --var-file live in .env or *.vars files, which must not be committed.
  await writeFile(join(dir, '.gitignore'), 'dist/\nnode_modules/\n.env\n*.vars\n', { flag: 'wx' });
  files.push('README.md', '.gitignore');
  return { dir, name, template, files: files.sort() };
}
