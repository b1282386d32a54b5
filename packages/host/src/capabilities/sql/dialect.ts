import { nearest } from '@stratum/manifest/nearest';
import { isCode, leadingKeyword, notAllowed, refuseTransactionControl, singleStatement, statementKind, type Token } from './lexer.ts';
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
]);

const TYPE_MAP: Record<string, string> = {
  INTEGER: 'BIGINT',
  INT: 'BIGINT',
  REAL: 'DOUBLE PRECISION',
  FLOAT: 'DOUBLE PRECISION',
  DOUBLE: 'DOUBLE PRECISION',
  BLOB: 'BYTEA',
};

export function toPostgres(sql: string): PostgresStatement {
  const tokens = singleStatement(sql);
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

  const out: string[] = [];
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
      out.push('');
      continue;
    }
    if (token.kind === 'param') {
      param++;
      out.push(`$${param}`);
    } else if (token.kind === 'quoted' && (token.text.startsWith('`') || token.text.startsWith('['))) {
      out.push(`"${unquote(token).replaceAll('"', '""')}"`);
    } else if (token.kind === 'blob') {
      out.push(`'\\x${token.text.slice(2, -1)}'::bytea`);
    } else if (token.kind === 'punct' && token.text === '==') {
      out.push('=');
    } else if (word === 'LIKE') {
      // SQLite's LIKE ignores ASCII case; PostgreSQL's does not.
      out.push('ILIKE');
    } else if (word === 'IFNULL') {
      out.push('coalesce');
    } else if (isDdl && word === 'TEXT' && isColumnType(code, codeIndex)) {
      // SQLite compares text by its bytes (BINARY); "C" is that order whatever collation the
      // database was created with, and ILIKE, lower() and upper() under it leave non-ASCII letters
      // alone, as SQLite's LIKE, lower() and upper() do.
      out.push(upper(code[codeIndex + 1]) === 'COLLATE' ? token.text : `${token.text} COLLATE "C"`);
    } else if (isDdl && word === 'AUTOINCREMENT') {
      out.push('');
    } else if (isDdl && word === 'INTEGER' && nextWords(tokens, i, 2) === 'PRIMARY KEY') {
      // SQLite's rowid alias: a key the database fills in.
      out.push('BIGINT GENERATED BY DEFAULT AS IDENTITY');
    } else if (isDdl && word in TYPE_MAP && !(word === 'DOUBLE' && nextWords(tokens, i, 1) === 'PRECISION')) {
      out.push(TYPE_MAP[word] as string);
    } else if (isDdl && word === 'WITHOUT' && nextWords(tokens, i, 1) === 'ROWID') {
      skip = 1;
      out.push('');
    } else {
      if (word === 'RETURNING') returningAt = out.length;
      out.push(token.text);
    }
  }
  if (insertOrIgnore) {
    const clause = ' ON CONFLICT DO NOTHING ';
    if (returningAt === -1) out.push(clause);
    else out.splice(returningAt, 0, clause);
  }
  const result: PostgresStatement = { text: out.join(''), params: param, keyword, kind };
  if (insertInto !== undefined) result.insertInto = insertInto;
  return result;
}

/**
 * A name is compared as PostgreSQL resolves it, quoted or not: `"pg_namespace"` is the catalog
 * as much as pg_namespace is. Quoted names are compared case-folded too, which refuses a few
 * harmless ones ("PG_X") rather than let any through. Where PostgreSQL would read the text
 * differently from this lexer, the statement is refused: `U&"..."` (an escaped name, such as
 * U&"pg\005fnamespace"), `E'...'` (a backslash escapes a quote, so the string ends elsewhere)
 * and nested comments (PostgreSQL nests them, SQLite does not).
 */
function refuseForbiddenNames(tokens: readonly Token[]): void {
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    const next = tokens[i + 1];
    if (token.kind === 'punct' && token.text === '$') throw notAllowed('dollar quoting');
    if (token.kind === 'comment' && token.text.startsWith('/*') && token.text.slice(2).includes('/*')) throw notAllowed('nested comments');
    const escaped = tokens[i + 2];
    if (token.kind === 'word' && /^[uU]$/.test(token.text) && next?.text === '&' && /^["']/.test(escaped?.text ?? ''))
      throw notAllowed('U& escapes');
    if (token.kind === 'word' && /^[eE]$/.test(token.text) && next?.kind === 'string') throw notAllowed("E'' strings");
    if (token.kind !== 'word' && token.kind !== 'quoted') continue;
    const word = unquote(token).toUpperCase();
    if (FORBIDDEN_WORDS.has(word) || word.startsWith('PG_') || word.startsWith('LO_')) throw notAllowed(token.text);
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
