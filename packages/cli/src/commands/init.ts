import { relative } from 'node:path';
import { TEMPLATES, type TemplateName } from '@stratum/sdk/templates';
import { type Command, EXIT_OK, paint, shellWord, stringOption, usageError } from '../command.ts';
import { stratumInvocation } from '../launcher.ts';

export const initCommand: Command = {
  name: 'init',
  summary: 'create a new capsule project from a template',
  usage: 'init [dir] [--template hello|counter|notes|gallery] [--name <name>]',
  description: `
Writes stratum.toml, src/index.ts, a README, a package.json (so that \`npm install <package>\`
works at once), a tsconfig.json and a .gitignore into the directory (default: the current one),
and links @stratum/sdk into its node_modules, for the editor's types. The directory may be new,
or a repository that holds no capsule yet: nothing in it is overwritten, a README, package.json
or tsconfig.json it has is kept, and its .gitignore gets the lines it lacks. The project
builds as generated: run \`stratum dev <dir>\` next to serve it, or \`stratum build <dir>\` for
the component a host runs.

Templates:
  hello    HTTP only: answers JSON and echoes POST bodies
  counter  counts hits per path (keyvalue)
  notes    a JSON API to create, list and delete notes (sql)
  gallery  uploads and serves images (bucket)

Examples:
  stratum init my-capsule
  stratum init /tmp/notes --template notes --name my-notes`,
  maxPositionals: 1,
  options: {
    template: { type: 'string', short: 't', value: 'name', description: `what to start from: ${TEMPLATES.join(', ')} (default: hello)` },
    name: { type: 'string', value: 'name', description: "the capsule's name (default: made from the directory's name)" },
  },
  async run(args, io) {
    const template = stringOption(args, 'template') ?? 'hello';
    if (!(TEMPLATES as readonly string[]).includes(template)) {
      throw usageError(`unknown template "${template}"`, `Pick one of: ${TEMPLATES.join(', ')}.`);
    }
    const name = stringOption(args, 'name');
    const target = args.positionals[0] ?? '.';
    const { initCapsule } = await import('@stratum/sdk/build');
    const result = await initCapsule(target, { template: template as TemplateName, ...(name !== undefined ? { name } : {}) });
    const fromHere = relative(process.cwd(), result.dir);
    const shown = fromHere.startsWith('..') ? result.dir : fromHere || '.';
    const { command, hint } = stratumInvocation();
    io.stdout.write(
      [
        `${paint(io.stdout, 32, 'created')} ${result.name} in ${shown} (template ${result.template})`,
        ...result.files.map((file) => `  ${file}`),
        '',
        'Next:',
        `  ${shellWord(command)} dev ${shellWord(shown)}      serve it on this machine, rebuilt on every save`,
        `  ${shellWord(command)} build ${shellWord(shown)}    the component a host runs`,
        ...(hint ? ['', hint] : []),
        '',
      ].join('\n'),
    );
    return EXIT_OK;
  },
};
