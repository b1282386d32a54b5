import { domainToASCII } from 'node:url';
import { parseArgs } from 'node:util';
import { errorMessage, isStratumError, StratumError } from '@stratum/core';

/** Exit statuses every command keeps: 0 success, 1 the job failed (invalid input, ...), 2 usage. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Shown in --help, for example "--out <file>  where to write the component". */
  description: string;
  /** The placeholder shown after the option in --help, for string options. */
  value?: string;
}

export interface CommandIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface ParsedArgs {
  positionals: string[];
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
}

/**
 * One `stratum` subcommand. Names read `noun verb` (`host start`) with everyday shortcuts
 * (`dev`, `build`, `init`) as single words.
 */
export interface Command {
  name: string;
  summary: string;
  /** The synopsis after `stratum`, for example "validate [path]". */
  usage: string;
  /** Extra paragraphs for --help: what it does, examples. */
  description?: string;
  options?: Record<string, OptionSpec>;
  /** How many positionals the command takes, at most; more is a usage error. */
  maxPositionals?: number;
  run(args: ParsedArgs, io: CommandIo): Promise<number>;
}

/** A path or word as a shell needs it to be pasted back: single-quoted when it holds anything but plain characters. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/**
 * A domain name as hosts and DNS compare it: lowercase, without a trailing dot, an
 * internationalised name in its ASCII form (`bücher.example` is `xn--bcher-kva.example`).
 * `what` names where it was given, for the error when it is no domain name at all.
 */
export function asciiDomain(given: string, what: string): string {
  const ascii = domainToASCII(given.replace(/\.$/, ''));
  if (!ascii) throw usageError(`${what} ${JSON.stringify(given)} is not a domain name`, 'Give a host name such as shop.example.com.');
  return ascii;
}

/** A count and its noun, plural but for one: "1 record", "2 records". */
export function counted(count: number, noun: string): string {
  return `${count.toLocaleString('en-US')} ${noun}${count === 1 ? '' : 's'}`;
}

export function usageError(message: string, hint?: string): StratumError {
  return new StratumError('USAGE', message, { hint: hint ?? 'Run with --help to see the usage.' });
}

export function helpText(command: Command): string {
  const lines = [`${command.summary}`, '', `Usage: stratum ${command.usage}`];
  if (command.description) lines.push('', command.description.trim());
  const options = Object.entries(command.options ?? {});
  const rows: [string, string][] = options.map(([name, spec]) => [
    `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.type === 'string' ? ` <${spec.value ?? 'value'}>` : ''}`,
    spec.description,
  ]);
  rows.push(['-h, --help', 'show this help']);
  const width = Math.max(...rows.map(([left]) => left.length));
  lines.push('', 'Options:');
  for (const [left, right] of rows) lines.push(`  ${left.padEnd(width)}  ${right}`);
  return `${lines.join('\n')}\n`;
}

/** Parses argv for one command; throws a usage error that names the bad option. */
export function parseCommandArgs(command: Command, argv: string[]): ParsedArgs & { help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, spec] of Object.entries(command.options ?? {})) {
    options[name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.multiple ? { multiple: true } : {}) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw usageError(errorMessage(error).replace(/\. To specify a positional argument.*$/s, ''), `Run \`stratum ${command.name} --help\`.`);
  }
  const help = parsed.values.help === true;
  if (!help && command.maxPositionals !== undefined && parsed.positionals.length > command.maxPositionals) {
    throw usageError(
      `too many arguments: ${parsed.positionals.slice(command.maxPositionals).join(' ')}`,
      `Usage: stratum ${command.usage}`,
    );
  }
  return { positionals: parsed.positionals, values: parsed.values as ParsedArgs['values'], help };
}

export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const value = args.values[name];
  return typeof value === 'string' ? value : undefined;
}

export function booleanOption(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

export function stringListOption(args: ParsedArgs, name: string): string[] {
  const value = args.values[name];
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
  return typeof value === 'string' ? [value] : [];
}

const useColour = (stream: { isTTY?: boolean }) => stream.isTTY === true && !process.env.NO_COLOR;

export function paint(stream: { isTTY?: boolean }, code: number, text: string): string {
  return useColour(stream) ? `\x1b[${code}m${text}\x1b[0m` : text;
}

/** Characters a terminal acts on rather than shows (C0 but tab, DEL, C1), and bidi overrides. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const UNPRINTABLE = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;
/** A colour or style (SGR) sequence, which is all of a capsule's escapes a terminal may get. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: a style sequence starts with ESC.
const STYLE = /^\x1b\[[0-9;]{0,32}m/;

/**
 * A capsule's text (a log line) as a terminal may show it. Capsules are strangers' code, and an
 * escape sequence in a line they log reaches the operator's terminal: it could move the cursor
 * to hide lines, retitle the window or write the clipboard (OSC 52). Colours and styles pass
 * (loggers such as Hono's colour their lines), when `stream` shows colour; every other control
 * character, and the bidi overrides that reorder what a line seems to say, are shown escaped.
 */
export function printable(stream: { isTTY?: boolean }, text: string): string {
  if (!UNPRINTABLE.test(text)) return text;
  const colour = useColour(stream);
  let out = '';
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code === 0x1b) {
      const style = STYLE.exec(text.slice(index, index + 40));
      if (style) {
        if (colour) out += style[0];
        index += style[0].length - 1;
        continue;
      }
    }
    if (code !== 0x09 && UNPRINTABLE.test(text[index] as string)) {
      out += code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`;
      continue;
    }
    out += text[index];
  }
  return out;
}

/** Prints an error as: what went wrong, the details, how to fix it. Returns the exit status. */
export function reportError(error: unknown, io: CommandIo): number {
  if (isStratumError(error)) {
    io.stderr.write(`${paint(io.stderr, 31, 'error:')} ${error.message}\n`);
    for (const detail of error.details) io.stderr.write(`  ${detail}\n`);
    if (error.hint) io.stderr.write(`${paint(io.stderr, 36, 'hint:')} ${error.hint}\n`);
    if (error.code === 'USAGE') return EXIT_USAGE;
    return EXIT_FAILURE;
  }
  io.stderr.write(`${paint(io.stderr, 31, 'error:')} ${errorMessage(error)}\n`);
  if (process.env.STRATUM_DEBUG && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
  else io.stderr.write(`${paint(io.stderr, 36, 'hint:')} this looks like a bug in Stratum; set STRATUM_DEBUG=1 for the stack trace.\n`);
  return EXIT_FAILURE;
}
