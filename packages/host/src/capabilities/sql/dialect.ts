import { nearest } from '@stratum/manifest/nearest';
import {
  isCode,
  leadingKeyword,
  notAllowed,
  refuseTransactionControl,
  singleStatement,
  statementKind,
  type Token,
  tokenize,
} from './lexer.ts';
import { SqlError } from './types.ts';

/**
 * Rewrites one statement of Stratum's SQL dialect (SQLite's) for PostgreSQL, and refuses
 * what would leave the capsule's schema. What it accepts and how results differ is in
 * ./README.md; keep the two in step.
 */
export interface PostgresStatement {
  text: string;
  /** Number of `$n` parameters. */
  params: number;
  keyword: string;
  /** What the statement does (`statementKind`): the keyword after `WITH ...`, else `keyword`. */
  kind: string;
  /** For `INSERT INTO t ...` without RETURNING: the table, so the caller can return its key. */
  insertInto?: string;
}

/** Statements a capsule may run; anything else (SET, COPY, DO, GRANT, LISTEN, ...) is refused. */
const ALLOWED_LEADING = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'WITH', 'VALUES', 'CREATE', 'DROP', 'ALTER']);
/**
 * What CREATE / DROP / ALTER may act on. Not TEMP objects: they live outside the schema and its
 * quota, and stay on the pooled connection after the request (the host's user also revokes
 * PUBLIC's TEMPORARY on the database, backends/postgres.ts).
 */
const ALLOWED_OBJECTS = new Set(['TABLE', 'INDEX', 'UNIQUE', 'VIEW']);
/**
 * Names that reach outside the schema or change the session: settings (SET and RESET
 * statements are already refused by their leading keyword), catalogs, moving or giving away a
 * table, and functions that run SQL text or touch files. What keeps capsules apart is that each
 * logs in as its own role (backends/postgres.ts); these are a second wall, so that a capsule
 * cannot change its own session's settings or read the catalog's list of other capsules.
 */
const FORBIDDEN_WORDS = new Set([
  'SET_CONFIG',
  'CURRENT_SETTING',
  'INFORMATION_SCHEMA',
  'QUERY_TO_XML',
  'QUERY_TO_XMLSCHEMA',
  'QUERY_TO_XML_AND_XMLSCHEMA',
  'CURSOR_TO_XML',
  'CURSOR_TO_XMLSCHEMA',
  'DATABASE_TO_XML',
  'DATABASE_TO_XMLSCHEMA',
  'DATABASE_TO_XML_AND_XMLSCHEMA',
  'SCHEMA_TO_XML',
  'SCHEMA_TO_XMLSCHEMA',
  'SCHEMA_TO_XML_AND_XMLSCHEMA',
  'TABLE_TO_XML',
  'TABLE_TO_XMLSCHEMA',
  'TABLE_TO_XML_AND_XMLSCHEMA',
  // Both run a query given as text.
  'TS_STAT',
  'TS_REWRITE',
  'DBLINK',
  'DBLINK_EXEC',
  'DBLINK_CONNECT',
  'COPY',
  'SECURITY',
  'AUTHORIZATION',
  'TABLESPACE',
  'SCHEMA',
  'OWNER',
  // Whether a table exists, given its name: an error for another schema's names says so.
  'ROW_SECURITY_ACTIVE',
]);

/**
 * Names refused by their form: catalogs and functions (`pg_*`), large objects (`lo_*`: database
 * wide, outside the quota), and what tells whether another capsule's role, schema or table
 * exists from its name: `to_regrole(...)`, `to_regnamespace(...)` and the other `to_reg*`, casts
 * to `regrole`, `regnamespace`, `regclass`, ... (an error names a missing one), and
 * `has_*_privilege(...)` (an error for a missing name, false for another's).
 */
const FORBIDDEN_PATTERN =
  /^(PG_|LO_|TO_REG|REG(CLASS|COLLATION|CONFIG|DATABASE|DICTIONARY|NAMESPACE|OPER|OPERATOR|PROC|PROCEDURE|ROLE|TYPE)$|HAS_[A-Z_]+_PRIVILEGE$)/;

const TYPE_MAP: Record<string, string> = {
  INTEGER: 'BIGINT',
  INT: 'BIGINT',
  REAL: 'DOUBLE PRECISION',
  FLOAT: 'DOUBLE PRECISION',
  DOUBLE: 'DOUBLE PRECISION',
  BLOB: 'BYTEA',
};

export function toPostgres(sql: string): PostgresStatement {
  const tokens = singleStatement(sql, 'postgres');
  refuseTransactionControl(tokens);
  const keyword = leadingKeyword(tokens);
  if (!ALLOWED_LEADING.has(keyword)) {
    // A misspelt statement is not a forbidden one: PostgreSQL's own parser is never reached.
    const meant = keyword === '' ? undefined : nearest(keyword, [...ALLOWED_LEADING]);
    if (meant !== undefined) throw new SqlError('invalid-query', `${keyword} is not a statement: did you mean ${meant}?`);
    throw notAllowed(keyword === '' ? 'this statement' : keyword);
  }
  const code = tokens.filter(isCode);
  const upper = (token: Token | undefined) => (token?.kind === 'word' ? token.text.toUpperCase() : '');

  if (keyword === 'CREATE' || keyword === 'DROP' || keyword === 'ALTER') {
    const object = upper(code[1]);
    if (!ALLOWED_OBJECTS.has(object)) throw notAllowed(`${keyword} ${object || code[1]?.text || ''}`.trim());
  }
  refuseForbiddenNames(tokens);

  const isDdl = (keyword === 'CREATE' && upper(code[1]) === 'TABLE') || (keyword === 'ALTER' && upper(code[1]) === 'TABLE');
  let insertOrIgnore = false;
  let insertInto: string | undefined;
  const { kind, at } = statementKind(tokens);
  if (kind === 'INSERT') {
    const second = upper(code[at + 1]);
    if (second === 'OR') {
      const action = upper(code[at + 2]);
      if (action !== 'IGNORE')
        throw new SqlError(
          'invalid-query',
          `INSERT OR ${action} is not supported on this host's database: use INSERT ... ON CONFLICT (...) DO UPDATE`,
        );
      insertOrIgnore = true;
    }
    const intoAt = code.findIndex((token, index) => index > at && upper(token) === 'INTO');
    const table = code[intoAt + 1];
    const hasReturning = code.some((token) => upper(token) === 'RETURNING');
    if (table && !hasReturning && code[intoAt + 2]?.text !== '.') insertInto = unquote(table);
  }

  // Each piece of the output is a token's text, or what replaces it (rewritten: true).
  const out: { text: string; rewritten: boolean }[] = [];
  const keep = (text: string) => out.push({ text, rewritten: false });
  const rewrite = (text: string) => out.push({ text, rewritten: true });
  let param = 0;
  let skip = 0;
  let returningAt = -1;
  let codeIndex = -1;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    if (isCode(token)) codeIndex++;
    if (skip > 0) {
      if (isCode(token)) skip--;
      continue;
    }
    const word = upper(token);
    if (insertOrIgnore && codeIndex === at + 1) {
      skip = 1; // the IGNORE after OR
      rewrite('');
      continue;
    }
    if (token.kind === 'param') {
      param++;
      rewrite(`$${param}`);
    } else if (token.kind === 'quoted' && (token.text.startsWith('`') || token.text.startsWith('['))) {
      rewrite(`"${unquote(token).replaceAll('"', '""')}"`);
    } else if (token.kind === 'blob') {
      rewrite(`'\\x${token.text.slice(2, -1)}'::bytea`);
    } else if (token.kind === 'punct' && token.text === '==') {
      rewrite('=');
    } else if (word === 'LIKE') {
      // SQLite's LIKE ignores ASCII case; PostgreSQL's does not.
      rewrite('ILIKE');
    } else if (word === 'IFNULL') {
      rewrite('coalesce');
    } else if (isDdl && word === 'TEXT' && isColumnType(code, codeIndex)) {
      // SQLite compares text by its bytes (BINARY); "C" is that order whatever collation the
      // database was created with, and ILIKE, lower() and upper() under it leave non-ASCII letters
      // alone, as SQLite's LIKE, lower() and upper() do.
      if (upper(code[codeIndex + 1]) === 'COLLATE') keep(token.text);
      else rewrite(`${token.text} COLLATE "C"`);
    } else if (isDdl && word === 'AUTOINCREMENT') {
      rewrite('');
    } else if (isDdl && word === 'INTEGER' && nextWords(tokens, i, 2) === 'PRIMARY KEY') {
      // SQLite's rowid alias: a key the database fills in.
      rewrite('BIGINT GENERATED BY DEFAULT AS IDENTITY');
    } else if (isDdl && word in TYPE_MAP && !(word === 'DOUBLE' && nextWords(tokens, i, 1) === 'PRECISION')) {
      rewrite(TYPE_MAP[word] as string);
    } else if (isDdl && word === 'WITHOUT' && nextWords(tokens, i, 1) === 'ROWID') {
      skip = 1;
      rewrite('');
    } else {
      if (word === 'RETURNING') returningAt = out.length;
      keep(token.text);
    }
  }
  if (insertOrIgnore) {
    // On a line of its own: the statement may end in a -- comment.
    const clause = { text: '\n ON CONFLICT DO NOTHING\n', rewritten: true };
    if (returningAt === -1) out.push(clause);
    else out.splice(returningAt, 0, clause);
  }
  const text = glue(out);
  checkRewrite(tokens, text);
  const result: PostgresStatement = { text, params: param, keyword, kind };
  if (insertInto !== undefined) result.insertInto = insertInto;
  return result;
}

/** Characters that, side by side, PostgreSQL may read as one token: a name's, a number's, a quote after a name (E'', U&''). */
const JOINS = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * Joins the output's pieces, with a space where a rewritten piece would otherwise run into its
 * neighbour and be read differently: `-AUTOINCREMENT-` must not become the comment `--`,
 * `/WITHOUT ROWID*` not `/*`, `a?` not the name `a$1`, `'a'x'00'` not one string `'a''\x00'`,
 * `U&[name]` not the escaped name `U&"name"`.
 */
function glue(pieces: readonly { text: string; rewritten: boolean }[]): string {
  const parts: string[] = [];
  // The last character so far, kept apart: reading it off the text built with += flattened that
  // text at every piece, and a statement of 65,535 parameters took 150 s to translate.
  let last: string | undefined;
  // Whether a rewritten piece (or a removed token) comes between the text so far and the next piece.
  let boundary = false;
  for (const piece of pieces) {
    if (piece.rewritten) boundary = true;
    if (piece.text === '') continue;
    if (boundary && last !== undefined && joins(last, piece.text[0] as string)) parts.push(' ');
    parts.push(piece.text);
    last = piece.text.at(-1);
    boundary = piece.rewritten;
  }
  return parts.join('');
}

function joins(last: string, first: string): boolean {
  if (JOINS.test(last) && (JOINS.test(first) || first === "'" || first === '"')) return true;
  if ((last === "'" || last === '"') && first === last) return true;
  if (last === '&' && (first === "'" || first === '"')) return true;
  return (last === '-' && first === '-') || (last === '/' && first === '*') || (last === '*' && first === '/');
}

/**
 * The rewritten text, read again by the lexer, must hold the same comments as the statement and
 * none of the names refused in it: a rewrite that joined two tokens into a comment or a name
 * would hide text from every check above.
 */
function checkRewrite(tokens: readonly Token[], text: string): void {
  const comments = (list: readonly Token[]) =>
    list
      .filter((token) => token.kind === 'comment')
      .map((token) => token.text)
      .join('\0');
  const again = tokenize(text, 'postgres');
  if (comments(again) !== comments(tokens)) throw notAllowed('this statement (its rewrite would read differently)');
  refuseForbiddenNames(again);
}

/**
 * A name is compared as PostgreSQL resolves it, quoted or not: `"pg_namespace"` is the catalog
 * as much as pg_namespace is. Quoted names are compared case-folded too, which refuses a few
 * harmless ones ("PG_X") rather than let any through. Where PostgreSQL would read the text
 * differently from this lexer, the statement is refused: `U&"..."` (an escaped name, such as
 * U&"pg\005fnamespace"; also `U&[...]`, `U&\`...\`` and `U&x'...'`, rewritten into quotes),
 * `E'...'` (a backslash escapes a quote, so the string ends elsewhere) and nested comments
 * (PostgreSQL nests them, SQLite does not, and the dialect is SQLite's).
 */
function refuseForbiddenNames(tokens: readonly Token[]): void {
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    const next = tokens[i + 1];
    if (token.kind === 'punct' && token.text === '$') throw notAllowed('dollar quoting');
    if (token.kind === 'comment' && token.text.startsWith('/*') && token.text.slice(2).includes('/*')) throw notAllowed('nested comments');
    // Any quoted form after U&: a `[name]` or x'' is rewritten into quotes that U& would escape.
    const escaped = tokens[i + 2];
    if (
      token.kind === 'word' &&
      /^[uU]$/.test(token.text) &&
      next?.text === '&' &&
      (escaped?.kind === 'quoted' || escaped?.kind === 'string' || escaped?.kind === 'blob')
    )
      throw notAllowed('U& escapes');
    if (token.kind === 'word' && /^[eE]$/.test(token.text) && next?.kind === 'string') throw notAllowed("E'' strings");
    if (token.kind !== 'word' && token.kind !== 'quoted') continue;
    const word = unquote(token).toUpperCase();
    if (FORBIDDEN_WORDS.has(word) || FORBIDDEN_PATTERN.test(word)) throw notAllowed(token.text);
  }
}

/**
 * Whether the word at `code[index]` is a column definition's type: it follows the column's name,
 * which opens the definition (after "(", "," or ALTER TABLE's ADD [COLUMN]). A column named
 * `text` is not its own type.
 */
function isColumnType(code: readonly Token[], index: number): boolean {
  const name = code[index - 1];
  const before = code[index - 2];
  if (!name || !before) return false;
  const nameWord = name.text.toUpperCase();
  if (name.kind !== 'quoted' && (name.kind !== 'word' || nameWord === 'COLUMN' || nameWord === 'ADD')) return false;
  return before.text === '(' || before.text === ',' || ['COLUMN', 'ADD'].includes(before.text.toUpperCase());
}

function nextWords(tokens: readonly Token[], index: number, count: number): string {
  const found: string[] = [];
  for (let i = index + 1; i < tokens.length && found.length < count; i++) {
    const token = tokens[i] as Token;
    if (!isCode(token)) continue;
    if (token.kind !== 'word') break;
    found.push(token.text.toUpperCase());
  }
  return found.join(' ');
}

/** An identifier token's name: quotes removed, or an unquoted word folded as PostgreSQL folds it. */
export function unquote(token: Token): string {
  if (token.kind !== 'quoted') return token.text.toLowerCase();
  const body = token.text.slice(1, -1);
  return token.text.startsWith('"') ? body.replaceAll('""', '"') : token.text.startsWith('`') ? body.replaceAll('``', '`') : body;
}
