import { readFile } from 'node:fs/promises';
import { type OptionSpec, type ParsedArgs, stringListOption, usageError } from '../command.ts';

/** One `--var [capsule:]name=value`: a value for a manifest's config variable. */
export interface VarFlag {
  /** Only this capsule gets it; every capsule when absent. */
  capsule?: string;
  name: string;
  value: string;
  /** The --var-file and line it came from; absent for a --var flag. */
  from?: string;
}

const VAR_KEY = /^(?:([a-z][a-z0-9-]*):)?([a-z][a-z0-9_]*)$/;
const VAR_HINT =
  'Write name=value for a config variable of the manifest (names are lowercase, digits and _), or capsule:name=value to give it to one capsule.';

/**
 * Parses `--var api_url=https://...` or, with several capsules, `--var notes:api_url=...`.
 * Values may contain `=` and `:`; the name is what stands before the first `=`. An error quotes
 * only the name: the value may be a secret.
 */
export function parseVarFlag(text: string): VarFlag {
  const parsed = parseVar(text);
  if (parsed === NO_EQUALS) throw usageError('--var takes name=value, and one has no "="', VAR_HINT);
  if (typeof parsed === 'string')
    throw usageError(`--var ${parsed}`, `${VAR_HINT} For secrets, --var-file keeps them off the command line.`);
  return parsed;
}

const NO_EQUALS = Symbol('no "="');

/** A VarFlag, or what is wrong with the text (quoting its name, never its value). */
function parseVar(text: string): VarFlag | string | typeof NO_EQUALS {
  const equals = text.indexOf('=');
  if (equals === -1) return NO_EQUALS;
  const key = text.slice(0, equals).trim();
  const match = VAR_KEY.exec(key);
  if (!match?.[2]) return `${JSON.stringify(key)} is not a config variable's name`;
  return { ...(match[1] ? { capsule: match[1] } : {}), name: match[2], value: text.slice(equals + 1) };
}

/**
 * A --var-file: a `name=value` (or `capsule:name=value`) per line, as the dotenv files many
 * tools read. Blank lines and lines starting with # are skipped, an `export ` before the name is
 * allowed, and an unquoted value ends at a ` #` comment. A value in double quotes may span lines
 * and takes `\n`, `\"` and `\\` escapes (a PEM key); one in single quotes is taken as written,
 * lines too. A later line wins over an earlier one for the same name. Errors name the file and
 * line but never show a value.
 */
export function parseVarFile(text: string, path: string): VarFlag[] {
  const flags: VarFlag[] = [];
  const lines = text.split('\n').map((line) => line.replace(/\r$/, ''));
  for (let index = 0; index < lines.length; index++) {
    const line = (lines[index] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    const start = index;
    const parsed = parseVar(line.replace(/^export\s+/, ''));
    if (parsed === NO_EQUALS) throw usageError(`${path}:${index + 1}: the line has no "=": each is name=value`, VAR_HINT);
    if (typeof parsed === 'string') throw usageError(`${path}:${index + 1}: ${parsed}`, VAR_HINT);
    let value = parsed.value.trim();
    const quote = value[0];
    if (quote === '"' || quote === "'") {
      // Up to the matching quote, on this line or a later one.
      let rest = value.slice(1);
      let end = closingQuote(rest, quote);
      while (end === -1 && index + 1 < lines.length) {
        index++;
        rest += `\n${lines[index]}`;
        end = closingQuote(rest, quote);
      }
      const after = end === -1 ? '' : rest.slice(end + 1).trim();
      if (end === -1 || (after !== '' && !after.startsWith('#'))) {
        // No quote that closes it as a quoted value: the line's value as written, as dotenv takes it.
        index = start;
      } else {
        const inner = rest.slice(0, end);
        value = quote === '"' ? inner.replace(/\\([n"\\])/g, (_, escaped: string) => (escaped === 'n' ? '\n' : escaped)) : inner;
      }
    } else {
      value = value.replace(/\s+#.*$/, '');
    }
    flags.push({ ...parsed, value, from: `${path}:${start + 1}` });
  }
  return flags;
}

/** Where `quote` closes `text` (a double quote not escaped by a backslash), or -1. */
function closingQuote(text: string, quote: string): number {
  for (let at = 0; at < text.length; at++) {
    if (quote === '"' && text[at] === '\\') at++;
    else if (text[at] === quote) return at;
  }
  return -1;
}

/** The --var-file option, beside --var, of every command that takes config values. */
export const VAR_FILE_OPTION: OptionSpec = {
  type: 'string',
  multiple: true,
  value: 'file',
  description: 'name=value lines, as a .env file: config values kept off the command line, where other users see them (repeatable)',
};

/** The config values a command was given: its --var-file lines, then its --var flags, which win. */
export async function varFlags(args: ParsedArgs): Promise<VarFlag[]> {
  const flags: VarFlag[] = [];
  for (const path of stringListOption(args, 'var-file')) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw usageError(`--var-file ${path}: ${code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? String(error)})`}`);
    }
    flags.push(...parseVarFile(text, path));
  }
  flags.push(...stringListOption(args, 'var').map(parseVarFlag));
  return flags;
}

/**
 * The values one capsule gets: the flags without a capsule, then its own (which win). With
 * `declared` (its manifest's variables, when several capsules run), a flag without a capsule
 * goes only to the capsules that declare it: a host refuses a value for a variable the manifest
 * does not declare, and such a flag is meant for the others. Alone, a capsule gets them all, so
 * that a misspelt name is refused with the variables it could have meant.
 */
export function varsFor(capsule: string, flags: readonly VarFlag[], declared?: readonly string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const flag of flags) {
    if (flag.capsule === undefined && (declared === undefined || declared.includes(flag.name))) values[flag.name] = flag.value;
  }
  for (const flag of flags) if (flag.capsule === capsule) values[flag.name] = flag.value;
  return values;
}

/**
 * The file in a project that `stratum dev` reads config values from when no --var-file is given,
 * as wrangler reads `.dev.vars`: the one `stratum init`'s .gitignore lists and its README names.
 */
export const PROJECT_VAR_FILE = '.env';

/**
 * A project's `.env` (`path`, shown as `shown`), read as --var-file reads a file; undefined when
 * the project has none. A bad line names the file and says why dev read it: the developer gave no
 * flag naming it, and may keep a .env there for another tool.
 */
export async function readProjectVarFile(path: string, shown: string): Promise<VarFlag[] | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw usageError(`${shown}: cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  try {
    return parseVarFile(text, shown);
  } catch (error) {
    throw usageError(
      (error as Error).message,
      `${VAR_HINT} stratum dev reads ${shown} for config values when no --var-file is given; to read another file instead, give --var-file <file>.`,
    );
  }
}

/**
 * Where each of a capsule's values came from, by variable, as `varsFor` picks them: the
 * --var-file a line was in (without its line number), or `--var`.
 */
export function varSources(capsule: string, flags: readonly VarFlag[], declared?: readonly string[]): Record<string, string> {
  const sources: Record<string, string> = {};
  const source = (flag: VarFlag) => (flag.from === undefined ? '--var' : flag.from.replace(/:\d+$/, ''));
  for (const flag of flags) {
    if (flag.capsule === undefined && (declared === undefined || declared.includes(flag.name))) sources[flag.name] = source(flag);
  }
  for (const flag of flags) if (flag.capsule === capsule) sources[flag.name] = source(flag);
  return sources;
}
