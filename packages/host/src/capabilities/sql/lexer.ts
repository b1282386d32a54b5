import { SqlError } from './types.ts';

/**
 * A small SQL tokenizer, enough to count statements and `?` parameters, find the leading
 * keyword, refuse what leaves the sandbox, and rewrite SQLite syntax for PostgreSQL. It knows
 * strings, quoted identifiers (all four SQLite forms), blob literals, comments and numbers, so
 * that a `?` or a keyword inside any of them is never mistaken for one outside.
 */
export type TokenKind = 'word' | 'quoted' | 'string' | 'blob' | 'number' | 'param' | 'named-param' | 'punct' | 'space' | 'comment';

export interface Token {
  kind: TokenKind;
  text: string;
}

function invalid(message: string): SqlError {
  return new SqlError('invalid-query', message);
}

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

export function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const char = sql[i] as string;
    const next = sql[i + 1];
    let end: number;
    let kind: TokenKind;
    if (/\s/.test(char)) {
      end = i + 1;
      while (end < sql.length && /\s/.test(sql[end] as string)) end++;
      kind = 'space';
    } else if (char === '-' && next === '-') {
      end = sql.indexOf('\n', i);
      end = end === -1 ? sql.length : end + 1;
      kind = 'comment';
    } else if (char === '/' && next === '*') {
      end = sql.indexOf('*/', i + 2);
      if (end === -1) throw invalid('unterminated comment');
      end += 2;
      kind = 'comment';
    } else if ((char === 'x' || char === 'X') && next === "'") {
      end = closing(sql, i + 1, "'", 'blob literal');
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
    } else if ((char === ':' || char === '@' || char === '$') && next !== undefined && /[A-Za-z0-9_]/.test(next)) {
      end = i + 1;
      while (end < sql.length && /[A-Za-z0-9_$]/.test(sql[end] as string)) end++;
      kind = 'named-param';
    } else if (/[0-9]/.test(char) || (char === '.' && next !== undefined && /[0-9]/.test(next))) {
      end = i + 1;
      while (end < sql.length && /[0-9A-Za-z_.]/.test(sql[end] as string)) {
        if (/[eE]/.test(sql[end] as string) && /[+-]/.test(sql[end + 1] ?? '')) end++;
        end++;
      }
      kind = 'number';
    } else if (/[A-Za-z_\u0080-\uffff]/.test(char)) {
      end = i + 1;
      while (end < sql.length && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[end] as string)) end++;
      kind = 'word';
    } else {
      end = i + 1;
      // Two-character operators, so that a rewrite never splits them.
      if (/^(<=|>=|<>|!=|==|\|\||<<|>>|::)$/.test(sql.slice(i, i + 2))) end = i + 2;
      kind = 'punct';
    }
    tokens.push({ kind, text: sql.slice(i, end) });
    i = end;
  }
  return tokens;
}

export const isCode = (token: Token) => token.kind !== 'space' && token.kind !== 'comment';

/** The tokens of exactly one statement (a trailing `;` allowed), or an invalid-query error. */
export function singleStatement(sql: string): Token[] {
  const tokens = tokenize(sql);
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
