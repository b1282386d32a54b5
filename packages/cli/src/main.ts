import { releaseVersion } from '@stratum/core';
import { nearest } from '@stratum/manifest/nearest';
import { type Command, type CommandIo, EXIT_OK, EXIT_USAGE, helpText, parseCommandArgs, reportError, usageError } from './command.ts';
import { commands } from './commands/index.ts';

function topLevelHelp(): string {
  const width = Math.max(...commands.map((command) => command.name.length));
  const rows = commands.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`);
  return [
    'stratum: build, run and ship WebAssembly capsules; run a Stratum host.',
    '',
    'Usage: stratum <command> [options]',
    '',
    'Commands:',
    ...rows,
    '',
    'Options:',
    '  -h, --help     show help (also after any command)',
    '  -V, --version  print the version',
    '',
    "Run `stratum <command> --help` for a command's options.",
    '',
  ].join('\n');
}

/** Finds the longest command name (`host start` before `host`) that the arguments start with. */
function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  let best: { command: Command; rest: string[] } | undefined;
  for (const command of commands) {
    const words = command.name.split(' ');
    if (words.every((word, index) => argv[index] === word)) {
      if (!best || words.length > best.command.name.split(' ').length) best = { command, rest: argv.slice(words.length) };
    }
  }
  return best;
}

/**
 * "did you mean" for a first word that names no command: the nearest command, with the second
 * word too when that makes one (`hots start` is `host start`).
 */
function didYouMean(argv: string[]): string | undefined {
  const guess = nearest(argv[0] ?? '', [...new Set(commands.map((command) => command.name.split(' ')[0] ?? ''))]);
  if (!guess) return undefined;
  const two = commands.find((command) => command.name === `${guess} ${argv[1]}`);
  return `did you mean \`stratum ${two ? two.name : guess}\`? `;
}

export async function main(argv: string[], io: CommandIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const first = argv[0];
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    io.stdout.write(topLevelHelp());
    return first === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (first === '-V' || first === '--version') {
    io.stdout.write(`stratum ${releaseVersion()} (Node.js ${process.versions.node})\n`);
    return EXIT_OK;
  }
  const found = findCommand(argv);
  try {
    if (!found) {
      const group = commands.filter((command) => command.name.startsWith(`${first} `));
      if (group.length > 0) {
        const words = argv.slice(0, 2).join(' ');
        const isHelp = argv[1] === undefined || argv[1] === '--help' || argv[1] === '-h';
        const text = group.map((command) => `  stratum ${command.usage}\n      ${command.summary}`).join('\n');
        if (isHelp) {
          io.stdout.write(`Commands under \`stratum ${first}\`:\n${text}\n`);
          return argv[1] === undefined ? EXIT_USAGE : EXIT_OK;
        }
        const guess = nearest(
          argv[1] ?? '',
          group.map((command) => command.name.slice(first.length + 1)),
        );
        throw usageError(
          `unknown command \`stratum ${words}\``,
          `${guess ? `did you mean \`stratum ${first} ${guess}\`? ` : ''}Commands under \`stratum ${first}\`:\n${text}`,
        );
      }
      throw usageError(`unknown command \`${first}\``, `${didYouMean(argv) ?? ''}Run \`stratum --help\` for the list of commands.`);
    }
    const args = parseCommandArgs(found.command, found.rest);
    if (args.help) {
      io.stdout.write(helpText(found.command));
      return EXIT_OK;
    }
    return await found.command.run(args, io);
  } catch (error) {
    return reportError(error, io);
  }
}
