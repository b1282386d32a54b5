import { SqlError } from './types.ts';

/**
 * A small SQL tokenizer, enough to count statements and `?` parameters, find the leading
 * keyword, refuse what leaves the sandbox, and rewrite SQLite syntax for PostgreSQL. It knows
 * strings, quoted identifiers (all four SQLite forms), blob literals, comments and numbers, so
 * that a `?` or a keyword inside any of them is never mistaken for one outside.
 *
 * Every check the host makes reads these tokens, so where a token ends must be where the engine
 * that runs the statement ends it; text the lexer takes for a comment or a string and the engine
 * for code would reach the engine unchecked. The rules follow PostgreSQL's scanner
 * (src/backend/parser/scan.l) or SQLite's (src/tokenize.c), the `dialect` given; where they
 * cannot be followed exactly, the statement is refused (README.md, "The sandbox").
 */
export type TokenKind = 'word' | 'quoted' | 'string' | 'blob' | 'number' | 'param' | 'named-param' | 'punct' | 'space' | 'comment';

/** Whose scanner the tokens must agree with: the engine the statement is sent to. */
export type Dialect = 'sqlite' | 'postgres';

export interface Token {
  kind: TokenKind;
  text: string;
}

function invalid(message: string): SqlError {
  return new SqlError('invalid-query', message);
}

/**
 * Whitespace: PostgreSQL's `space` is [ \t\n\r\f], and \v too from version 16; SQLite's is
 * \t \n \f \r and space (\v only after one of them). Taking \v as whitespace is safe where an
 * engine does not: there it is a token of its own that no statement accepts, so the statement
 * fails. Nothing else is whitespace, whatever JavaScript's \s says: both engines read every
 * character from U+0080 up (U+00A0, U+2028, ...) as part of a name, except that SQLite takes a
 * U+FEFF (a byte order mark) that begins a token for whitespace.
 */
const SPACE = /[ \t\n\r\f\v]/;
/** A name's first character and the rest: PostgreSQL's ident_start and ident_cont, SQLite's IdChar. */
const NAME_START = /[A-Za-z_\u0080-\uffff]/;
const NAME_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;

function closing(sql: string, start: number, quote: string, what: string): number {
  let i = start + 1;
  for (;;) {
    const end = sql.indexOf(quote, i);
    if (end === -1) throw invalid(`unterminated ${what}`);
    // A doubled quote is an escaped quote inside the literal (except for [brackets]).
    if (quote !== ']' && sql[end + 1] === quote) {
      i = end + 2;
      continue;
    }
    return end + 1;
  }
}

/**
 * The end of a `--` comment: PostgreSQL ends it at a newline, which its scanner defines as \n
 * or \r (`--x\rSELECT ...` runs the SELECT); SQLite at \n only. The newline is not part of it.
 */
function lineCommentEnd(sql: string, start: number, dialect: Dialect): number {
  for (let i = start + 2; i < sql.length; i++) {
    if (sql[i] === '\n' || (dialect === 'postgres' && sql[i] === '\r')) return i;
  }
  return sql.length;
}

/**
 * The end of a `/* ... *\/` comment. PostgreSQL nests them (each `/*` inside needs its own
 * `*\/`); SQLite ends at the first `*\/` (and would take an unterminated one to the end of the
 * text, which is refused here).
 */
function blockCommentEnd(sql: string, start: number, dialect: Dialect): number {
  let depth = 0;
  for (let i = start + 2; i < sql.length - 1; i++) {
    if (dialect === 'postgres' && sql[i] === '/' && sql[i + 1] === '*') {
      depth++;
      i++;
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      if (depth === 0) return i + 2;
      depth--;
      i++;
    }
  }
  throw invalid('unterminated comment');
}

/**
 * A number: digits with an optional fraction and exponent, or SQLite's 0x hex. A number directly
 * followed by a letter, digit, `_`, `$` or quote is refused: SQLite refuses it too, PostgreSQL 15
 * and later refuse "trailing junk", but PostgreSQL 14 and earlier read `1e'...'` as the number 1
 * followed by an E'' string, where backslash escapes a quote. `_` between digits is a separator
 * in SQLite 3.46 and PostgreSQL 16 and is kept in the number, which either engine reads as one
 * number or refuses.
 */
function numberEnd(sql: string, start: number): number {
  let end = start;
  const test = (pattern: RegExp, at: number) => at < sql.length && pattern.test(sql[at] as string);
  const digits = () => {
    while (test(/[0-9_]/, end)) end++;
  };
  if (sql[start] === '0' && test(/[xX]/, start + 1) && test(/[0-9A-Fa-f]/, start + 2)) {
    end = start + 2;
    while (test(/[0-9A-Fa-f_]/, end)) end++;
  } else {
    digits();
    // `1..2` is 1 and `..`, in PostgreSQL's scanner (decimalfail).
    if (sql[end] === '.' && sql[end + 1] !== '.') {
      end++;
      digits();
    }
    if (test(/[eE]/, end) && (test(/[0-9]/, end + 1) || (test(/[+-]/, end + 1) && test(/[0-9]/, end + 2)))) {
      end += 2;
      digits();
    }
  }
  if (test(NAME_CHAR, end) || test(/['"`]/, end)) {
    throw invalid(
      `a number directly followed by ${JSON.stringify(sql[end])} (at "${sql.slice(start, end + 1)}"): put a space between them`,
    );
  }
  return end;
}

export function tokenize(sql: string, dialect: Dialect): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const char = sql[i] as string;
    const next = sql[i + 1];
    let end: number;
    let kind: TokenKind;
    if (char === '\0') {
      // SQLite stops reading at U+0000; PostgreSQL's protocol ends the statement's text there.
      throw invalid('U+0000 in a statement');
    } else if (SPACE.test(char) || (char === '\ufeff' && dialect === 'sqlite')) {
      end = i + 1;
      while (end < sql.length && (SPACE.test(sql[end] as string) || (sql[end] === '\ufeff' && dialect === 'sqlite'))) end++;
      kind = 'space';
    } else if (char === '-' && next === '-') {
      end = lineCommentEnd(sql, i, dialect);
      kind = 'comment';
    } else if (char === '/' && next === '*') {
      end = blockCommentEnd(sql, i, dialect);
      kind = 'comment';
    } else if ((char === 'x' || char === 'X') && next === "'") {
      end = closing(sql, i + 1, "'", 'blob literal');
      // SQLite's blob ends at the first quote, PostgreSQL's x'' bit string too (no doubled quote).
      if (!/^[xX]'[0-9A-Fa-f]*'$/.test(sql.slice(i, end))) throw invalid("a blob literal x'...' holds hexadecimal digits only");
      kind = 'blob';
    } else if (char === "'") {
      end = closing(sql, i, "'", 'string');
      kind = 'string';
    } else if (char === '"' || char === '`') {
      end = closing(sql, i, char, 'quoted identifier');
      kind = 'quoted';
    } else if (char === '[') {
      end = closing(sql, i, ']', 'quoted identifier');
      kind = 'quoted';
    } else if (char === '?') {
      end = i + 1;
      while (end < sql.length && /[0-9]/.test(sql[end] as string)) end++;
      kind = end === i + 1 ? 'param' : 'named-param';
    } else if (
      (char === ':' || char === '@' || char === '$' || (char === '#' && dialect === 'sqlite')) &&
      next !== undefined &&
      NAME_CHAR.test(next) &&
      (next !== '$' || dialect === 'sqlite')
    ) {
      // SQLite's named parameters (# too); in PostgreSQL $1 is a parameter and $tag$ a quote
      // ($$ stays two `$`, refused as dollar quoting).
      end = i + 1;
      while (end < sql.length && NAME_CHAR.test(sql[end] as string)) end++;
      kind = 'named-param';
    } else if (/[0-9]/.test(char) || (char === '.' && next !== undefined && /[0-9]/.test(next))) {
      end = numberEnd(sql, i);
      kind = 'number';
    } else if (NAME_START.test(char)) {
      end = i + 1;
      while (end < sql.length && NAME_CHAR.test(sql[end] as string)) end++;
      kind = 'word';
    } else {
      end = i + 1;
      // Two-character operators, so that a rewrite never splits them.
      if (/^(<=|>=|<>|!=|==|\|\||<<|>>|::|\.\.)$/.test(sql.slice(i, i + 2))) end = i + 2;
      kind = 'punct';
    }
    tokens.push({ kind, text: sql.slice(i, end) });
    i = end;
  }
  return tokens;
}

export const isCode = (token: Token) => token.kind !== 'space' && token.kind !== 'comment';

/** The tokens of exactly one statement (a trailing `;` allowed), or an invalid-query error. */
export function singleStatement(sql: string, dialect: Dialect): Token[] {
  const tokens = tokenize(sql, dialect);
  const code = tokens.filter(isCode);
  if (code.length === 0) throw invalid('empty statement');
  const semicolon = code.findIndex((token) => token.text === ';');
  if (semicolon !== -1 && semicolon !== code.length - 1) {
    throw invalid('one statement per call: use transaction() to run several');
  }
  if (code.some((token) => token.kind === 'named-param')) {
    throw invalid(`only "?" parameters are supported, not "${code.find((token) => token.kind === 'named-param')?.text}"`);
  }
  return semicolon === -1 ? tokens : tokens.slice(0, tokens.lastIndexOf(code[semicolon] as Token));
}

export function words(tokens: readonly Token[]): string[] {
  return tokens.filter((token) => token.kind === 'word').map((token) => token.text.toUpperCase());
}

export function leadingKeyword(tokens: readonly Token[]): string {
  const first = tokens.find(isCode);
  return first?.kind === 'word' ? first.text.toUpperCase() : '';
}

const STATEMENT_WORDS = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'REPLACE', 'VALUES']);

/**
 * What the statement does: its leading keyword, or after `WITH ...` the statement that the
 * common table expressions lead into (`WITH x AS (...) DELETE ...` is a DELETE), since what an
 * `execute` reports depends on it. The word is found outside every parenthesis, so a CTE's own
 * SELECT is not it.
 */
export function statementKind(tokens: readonly Token[]): { kind: string; at: number } {
  const keyword = leadingKeyword(tokens);
  const code = tokens.filter(isCode);
  if (keyword !== 'WITH') return { kind: keyword, at: 0 };
  let depth = 0;
  for (let i = 1; i < code.length; i++) {
    const token = code[i] as Token;
    if (token.text === '(') depth++;
    else if (token.text === ')') depth--;
    else if (depth === 0 && token.kind === 'word' && STATEMENT_WORDS.has(token.text.toUpperCase()))
      return { kind: token.text.toUpperCase(), at: i };
  }
  return { kind: keyword, at: 0 };
}

/** Statements whose rows changed are what `rows-affected` counts; any other statement counts none. */
export const CHANGES_ROWS = new Set(['INSERT', 'UPDATE', 'DELETE', 'REPLACE']);

export function countParams(tokens: readonly Token[]): number {
  return tokens.filter((token) => token.kind === 'param').length;
}

export function checkParamCount(tokens: readonly Token[], given: number): void {
  checkParamNumber(countParams(tokens), given);
}

/** The same check with the count already known (a kept prepared statement). */
export function checkParamNumber(wanted: number, given: number): void {
  if (wanted !== given) throw invalid(`the statement has ${wanted} "?" parameter${wanted === 1 ? '' : 's'}, ${given} given`);
}

const TRANSACTION_CONTROL = new Set(['BEGIN', 'COMMIT', 'END', 'ROLLBACK', 'SAVEPOINT', 'RELEASE']);

/** Transaction control belongs to the host (transaction()), in every dialect. */
export function refuseTransactionControl(tokens: readonly Token[]): void {
  const keyword = leadingKeyword(tokens);
  if (TRANSACTION_CONTROL.has(keyword)) throw invalid(`${keyword} is not allowed: use transaction() to run statements atomically`);
}

export function notAllowed(what: string): SqlError {
  return new SqlError('invalid-query', `not allowed in a capsule's database: ${what}`);
}
