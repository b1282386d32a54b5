import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseDuration, parseSize, StratumError } from '@stratum/core';
import type { ErrorObject } from 'ajv/dist/2020.js';
import { type AST, getStaticTOMLValue, parseTOML } from 'toml-eslint-parser';
import type { CapsuleManifestV1 } from './capsule-v1.generated.ts';
import { validate as validateManifestShape } from './capsule-v1.validate.generated.js';
import { CPU_CLASSES, DEFAULT_CPU_CLASS, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, RESOURCE_CLASSES } from './classes.ts';
import { locate } from './locate.ts';
import { nearest } from './nearest.ts';
import { normaliseOrigin, parseOrigin } from './rules.ts';
import { schemaErrors, unitHint } from './schema-validator.ts';
import { tomlSyntaxProblem } from './toml-syntax.ts';
import type { ConfigVariable, Manifest, ManifestProblem, ResourceKey } from './types.ts';

const RESOURCE_KEYS: readonly ResourceKey[] = ['cpu', 'memory', 'timeout', 'concurrency'];

/** The manifest JSON Schema, the single source of truth for its shape. */
export const schemaUrl = new URL('../../../spec/capsule/capsule-v1.schema.json', import.meta.url);
export const manifestSchema = JSON.parse(readFileSync(schemaUrl, 'utf8')) as Record<string, unknown>;

/** Manifests are small; anything this large is refused before it is parsed. */
export const MAX_MANIFEST_BYTES = 256 * 1024;

type Segment = string | number;

/** Thrown for an invalid manifest; `problems` lists every problem found, with its position. */
export class ManifestError extends StratumError {
  readonly problems: readonly ManifestProblem[];

  constructor(file: string, problems: ManifestProblem[]) {
    const first = problems[0];
    super(
      'MANIFEST_INVALID',
      problems.length === 1 && first ? `${file} is not a valid manifest: ${first.message}` : `${file} has ${problems.length} problems`,
      {
        details: problems.map(formatProblem),
        hint: 'Fix each line above; the manifest spec is spec/capsule/README.md.',
      },
    );
    this.problems = problems;
  }
}

export function formatProblem(problem: ManifestProblem): string {
  return `${problem.file}:${problem.line}:${problem.column}: ${problem.message}`;
}

export interface ParsedManifest {
  manifest: Manifest;
  /** The value as written, before defaults. */
  raw: Record<string, unknown>;
  /** The syntax tree, for tools that edit the file in place. */
  ast: AST.TOMLProgram;
}

/**
 * Parses, validates and normalises the text of a `stratum.toml`.
 *
 * @example
 * const { manifest } = parseManifest(text, 'examples/hello/stratum.toml');
 * manifest.resources.memoryBytes; // 134217728
 * @throws ManifestError naming the file, line, column and key of every problem.
 */
export function parseManifest(text: string, file = 'stratum.toml'): ParsedManifest {
  if (text.length > MAX_MANIFEST_BYTES) {
    throw new ManifestError(file, [
      {
        file,
        line: 1,
        column: 1,
        path: '',
        message: `the manifest is ${text.length} bytes; the most a manifest may be is ${MAX_MANIFEST_BYTES}`,
      },
    ]);
  }
  if (text.includes('\uFFFD')) {
    const index = text.indexOf('\uFFFD');
    const { line, column } = positionOf(text, index);
    throw new ManifestError(file, [{ file, line, column, path: '', message: 'the manifest is not valid UTF-8' }]);
  }
  const tooDeep = findExcessiveNesting(text);
  if (tooDeep !== undefined) {
    const { line, column } = positionOf(text, tooDeep);
    throw new ManifestError(file, [{ file, line, column, path: '', message: `values are nested more than ${MAX_NESTING} levels deep` }]);
  }
  let ast: AST.TOMLProgram;
  let raw: Record<string, unknown>;
  try {
    ast = parseTOML(text);
    const deepKey = findExcessiveKeyNesting(ast);
    if (deepKey) {
      throw new ManifestError(file, [
        { file, line: deepKey.line, column: deepKey.column + 1, path: '', message: `keys are nested more than ${MAX_NESTING} levels deep` },
      ]);
    }
    raw = getStaticTOMLValue(ast) as Record<string, unknown>;
  } catch (error) {
    if (error instanceof ManifestError) throw error;
    // The parser recurses per nesting level: a hostile file can exhaust the stack.
    if (error instanceof RangeError) {
      throw new ManifestError(file, [{ file, line: 1, column: 1, path: '', message: 'the manifest is nested too deeply to read' }]);
    }
    throw syntaxError(error, file, text);
  }
  const shapeProblems = checkShape(raw);
  const problems = shapeProblems
    .slice(0, MAX_PROBLEMS)
    .map(({ path, message }) => ({ file, ...locate(ast, path), path: formatPath(path), message }));
  if (shapeProblems.length > MAX_PROBLEMS) {
    problems.push({ file, line: 1, column: 1, path: '', message: `and ${shapeProblems.length - MAX_PROBLEMS} more problems not shown` });
  }
  if (problems.length === 0) {
    const { manifest, problems: semantic } = normalise(raw);
    if (semantic.length === 0 && manifest) return { manifest, raw, ast };
    problems.push(...semantic.map(({ path, message }) => ({ file, ...locate(ast, path), path: formatPath(path), message })));
  }
  problems.sort((a, b) => a.line - b.line || a.column - b.column);
  throw new ManifestError(file, problems);
}

/** Reads and parses a manifest file; `displayPath` is how errors name it (default: the path). */
export async function loadManifest(path: string, displayPath = path): Promise<ParsedManifest> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new StratumError('MANIFEST_NOT_FOUND', `cannot read ${displayPath}`, {
      details: [code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : String(error)],
      hint: code === 'EISDIR' ? `Point at the stratum.toml inside it: ${displayPath}/stratum.toml` : 'Create one with `stratum init`.',
      cause: error,
    });
  }
  return parseManifestBytes(bytes, displayPath);
}

/** Parses a manifest from raw bytes: invalid UTF-8 is reported as such, with its position. */
export function parseManifestBytes(bytes: Uint8Array, file = 'stratum.toml'): ParsedManifest {
  return parseManifest(new TextDecoder('utf-8', { fatal: false }).decode(bytes), file);
}

/** Nothing in a manifest needs deep nesting; bounding it keeps a recursive parser safe. */
export const MAX_NESTING = 32;
/** Past this many problems a file is not worth describing line by line (and locating each costs). */
const MAX_PROBLEMS = 50;

/** The index where arrays and inline tables first nest past MAX_NESTING, skipping strings and comments. */
function findExcessiveNesting(text: string): number | undefined {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === '#') {
      const end = text.indexOf('\n', i);
      if (end < 0) return undefined;
      i = end;
    } else if (char === '"' || char === "'") {
      const fence = text.startsWith(char.repeat(3), i) ? char.repeat(3) : char;
      let j = i + fence.length;
      while (j < text.length && !text.startsWith(fence, j)) j += char === '"' && text[j] === '\\' ? 2 : 1;
      i = j + fence.length - 1;
    } else if (char === '[' || char === '{') {
      if (++depth > MAX_NESTING) return i;
    } else if (char === ']' || char === '}') {
      depth = Math.max(0, depth - 1);
    }
  }
  return undefined;
}

/**
 * Where dotted keys and table headers first nest past MAX_NESTING (`a.b.c… = 1`, `[a.b.c…]`),
 * which the text's brackets do not show: every later step walks the value by recursion, and
 * 60,000 dotted levels overflowed the stack. Inline tables are walked here too, at most
 * MAX_NESTING deep (`findExcessiveNesting` has bounded them).
 */
function findExcessiveKeyNesting(ast: AST.TOMLProgram): { line: number; column: number } | undefined {
  const keyValues = (body: readonly AST.TOMLKeyValue[], above: number): { line: number; column: number } | undefined => {
    for (const pair of body) {
      const depth = above + pair.key.keys.length;
      if (depth > MAX_NESTING) return pair.key.loc.start;
      if (pair.value.type === 'TOMLInlineTable') {
        const inner = keyValues(pair.value.body, depth);
        if (inner) return inner;
      }
    }
    return undefined;
  };
  for (const top of ast.body) {
    for (const item of top.body) {
      if (item.type === 'TOMLTable') {
        if (item.key.keys.length > MAX_NESTING) return item.key.loc.start;
        const inner = keyValues(item.body, item.key.keys.length);
        if (inner) return inner;
      } else {
        const inner = keyValues([item], 0);
        if (inner) return inner;
      }
    }
  }
  return undefined;
}

function positionOf(text: string, index: number): { line: number; column: number } {
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  return { line, column: index - before.lastIndexOf('\n') };
}

function syntaxError(error: unknown, file: string, text: string): ManifestError {
  return new ManifestError(file, [{ file, path: '', ...tomlSyntaxProblem(error, text) }]);
}

export function formatPath(path: readonly Segment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? quoteKey(segment) : `.${quoteKey(segment)}`;
  }
  return out;
}

const quoteKey = (key: string) => (/^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key));

function pointerToPath(pointer: string): Segment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^(0|[1-9][0-9]*)$/.test(part) ? Number(part) : part));
}

function tableName(path: readonly Segment[]): string {
  return path.length === 0 ? 'the top level' : `[${formatPath(path)}]`;
}

function describeType(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date-time';
  if (typeof value === 'object') return 'a table';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a float';
  if (typeof value === 'bigint') return 'an integer';
  return `a ${typeof value}`;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean (true or false)',
  array: 'an array',
  object: 'a table',
};

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'object') return describeType(value);
  return String(value);
}

interface ShapeProblem {
  path: Segment[];
  message: string;
}

/** Errors from the `[source]` table's oneOf (and its branches) are replaced by one clear message. */
const isSourceBranch = (error: ErrorObject) => error.instancePath === '/source' && /\/oneOf(\/|$)/.test(error.schemaPath);

function checkShape(raw: Record<string, unknown>): ShapeProblem[] {
  // TOML integers beyond 2^53 come back as bigint; the schema only knows numbers.
  const value = JSON.parse(JSON.stringify(raw, (_key, item) => (typeof item === 'bigint' ? Number(item) : item))) as unknown;
  const errors = schemaErrors(validateManifestShape, value);
  if (errors.length === 0) return [];
  const problems: ShapeProblem[] = [];
  const seen = new Set<string>();
  // "missing name" says nothing that "unknown key nmae; did you mean name?" does not say better.
  const misspelt = new Set(
    errors
      .filter((error) => error.keyword === 'additionalProperties')
      .map((error) => {
        const known = Object.keys((error.parentSchema as { properties?: Record<string, unknown> }).properties ?? {});
        return `${error.instancePath}/${nearest(String((error.params as { additionalProperty: unknown }).additionalProperty), known)}`;
      }),
  );
  for (const error of errors) {
    if (
      error.keyword === 'required' &&
      misspelt.has(`${error.instancePath}/${String((error.params as { missingProperty: unknown }).missingProperty)}`)
    )
      continue;
    // The source's oneOf branches each report what they miss; one clear message replaces them.
    const problem = isSourceBranch(error)
      ? error.keyword === 'oneOf'
        ? describeSource(['source'], value)
        : undefined
      : describeError(error);
    if (!problem) continue;
    const key = `${formatPath(problem.path)}\u0000${problem.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      problems.push(problem);
    }
  }
  return problems;
}

function describeError(error: ErrorObject): ShapeProblem | undefined {
  const path = pointerToPath(error.instancePath);
  const where = formatPath(path);
  const params = error.params as Record<string, unknown>;
  const schema = error.parentSchema as { description?: string; properties?: Record<string, unknown> } | undefined;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const known = Object.keys(schema?.properties ?? {});
      const guess = nearest(key, known);
      const value = (error.data as Record<string, unknown>)[key];
      const isTable = value !== null && typeof value === 'object' && !Array.isArray(value);
      const name = (segment: string) => (isTable ? `[${formatPath([...path, segment])}]` : `"${segment}"`);
      const place = path.length === 0 ? '' : ` in ${tableName(path)}`;
      const known_ = known.map((item) => (isTable ? `[${formatPath([...path, item])}]` : item)).join(', ');
      return {
        path: [...path, key],
        message: `unknown ${isTable ? 'table' : 'key'} ${name(key)}${place}${guess ? `; did you mean ${name(guess)}?` : known.length > 0 ? ` (known: ${known_})` : ''}`,
      };
    }
    case 'required': {
      const key = String(params.missingProperty);
      if (path.length === 0 && key === 'stratum') {
        return { path, message: 'missing "stratum = 1" at the top: the manifest spec version' };
      }
      const isTable = path.length === 0;
      return { path, message: isTable ? `missing required table [${key}]` : `${tableName(path)} is missing required key "${key}"` };
    }
    case 'type': {
      const expected = String(params.type);
      return {
        path,
        message: `${where} must be ${TYPE_NAMES[expected] ?? expected}, not ${describeType(error.data)}${unitHint(error, where)}`,
      };
    }
    case 'const':
      if (where === 'stratum') {
        return { path, message: `stratum must be 1 (the manifest spec version this tool reads), not ${show(error.data)}` };
      }
      return { path, message: `${where} must be ${JSON.stringify(params.allowedValue)}` };
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const guess = typeof error.data === 'string' ? nearest(error.data, allowed) : undefined;
      return {
        path,
        message: `${where} must be one of ${allowed.join(', ')}, not ${show(error.data)}${guess ? `; did you mean "${guess}"?` : ''}`,
      };
    }
    case 'pattern': {
      if (error.schemaPath.includes('propertyNames')) return undefined;
      // An origin has several parts to get wrong: say which, and what to write.
      const origin = error.schemaPath === '#/$defs/origin/pattern' && typeof error.data === 'string' ? parseOrigin(error.data) : undefined;
      if (typeof origin === 'string') return { path, message: `${where} ${show(error.data)} ${origin}` };
      return {
        path,
        message: `${where} ${show(error.data)} is not valid: ${schema?.description ?? `it must match ${String(params.pattern)}`}`,
      };
    }
    case 'propertyNames': {
      const name = String(params.propertyName);
      return {
        path: [...path, name],
        message: `${where} has an invalid name "${name}": names are lowercase letters, digits and underscores, starting with a letter, at most 64 long`,
      };
    }
    case 'maxLength':
      return { path, message: `${where} is too long: at most ${String(params.limit)} characters` };
    case 'minLength':
      return { path, message: `${where} must not be empty` };
    case 'maxItems':
      return { path, message: `${where} has too many entries: at most ${String(params.limit)}` };
    case 'minItems':
      return { path, message: `${where} must have at least ${String(params.limit)} ${params.limit === 1 ? 'entry' : 'entries'}` };
    case 'maxProperties':
      return { path, message: `${where} has too many entries: at most ${String(params.limit)}` };
    case 'uniqueItems': {
      const list = error.data as unknown[];
      const duplicate = list[Number(params.j)];
      return { path: [...path, Number(params.i)], message: `${where} lists ${show(duplicate)} more than once` };
    }
    case 'minimum':
    case 'maximum':
      return {
        path,
        message: `${where} must be ${error.keyword === 'minimum' ? 'at least' : 'at most'} ${String(params.limit)}, not ${show(error.data)}`,
      };
    case 'not':
      if (error.schemaPath.includes('configVariable')) {
        return { path: [...path, 'required'], message: `${where} has a default, so it cannot also be required = true` };
      }
      return { path, message: `${where} is not allowed here` };
    default:
      return { path, message: `${where || 'the manifest'} ${error.message ?? 'is not valid'}` };
  }
}

function describeSource(path: Segment[], root: unknown): ShapeProblem {
  const source = ((root as Record<string, unknown>).source ?? {}) as Record<string, unknown>;
  if ('wasm' in source && 'registry' in source) {
    return { path: [...path, 'registry'], message: '[source] has both wasm and registry; a capsule comes from one of them' };
  }
  if ('registry' in source) {
    return {
      path: [...path, 'registry'],
      message: '[source] registry needs digest = "sha256:<64 hex digits>": a registry source is pinned to exact bytes',
    };
  }
  return { path, message: '[source] needs wasm = "<path to the .wasm file>" or registry = "oci://..." with a digest' };
}

/** Fills defaults, converts units, and checks what the schema cannot (limits between keys). */
function normalise(raw: Record<string, unknown>): { manifest?: Manifest; problems: ShapeProblem[] } {
  // The value has passed the schema, so it has the schema's generated type.
  const typed = raw as unknown as CapsuleManifestV1;
  const problems: ShapeProblem[] = [];
  const { capsule, source, build } = typed;
  const resources = typed.resources ?? {};
  const capabilities = typed.capabilities ?? {};
  const http = typed.http ?? {};

  const cpu = resources.cpu ?? DEFAULT_CPU_CLASS;
  const resourceClass = RESOURCE_CLASSES[cpu];
  const memoryBytes = resources.memory === undefined ? resourceClass.maxMemoryBytes : parseSize(resources.memory);
  if (memoryBytes > resourceClass.maxMemoryBytes) {
    const largest = CPU_CLASSES.find((name) => RESOURCE_CLASSES[name].maxMemoryBytes >= memoryBytes);
    problems.push({
      path: ['resources', 'memory'],
      message: `resources.memory "${resources.memory}" is more than the cpu class "${cpu}" allows (${resourceClass.maxMemoryBytes / 1024 / 1024}mib)${largest ? `; use cpu = "${largest}" or ask for less` : ''}`,
    });
  }
  if (memoryBytes < 64 * 1024) {
    problems.push({ path: ['resources', 'memory'], message: 'resources.memory must be at least 64kib, one WebAssembly page' });
  }
  const timeoutMs = resources.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(resources.timeout);
  if (timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
    problems.push({ path: ['resources', 'timeout'], message: `resources.timeout must be between 1ms and 15m, not "${resources.timeout}"` });
  }
  const concurrency = resources.concurrency ?? resourceClass.concurrency;
  if (concurrency > resourceClass.concurrency) {
    problems.push({
      path: ['resources', 'concurrency'],
      message: `resources.concurrency ${concurrency} is more than the cpu class "${cpu}" allows (${resourceClass.concurrency})`,
    });
  }
  // What the schema's pattern cannot say: a port past 65535, say.
  for (const [index, origin] of (capabilities.outbound ?? []).entries()) {
    const problem = parseOrigin(origin);
    if (typeof problem === 'string') {
      const path = ['capabilities', 'outbound', index];
      problems.push({ path, message: `${formatPath(path)} ${show(origin)} ${problem}` });
    }
  }
  if (build && source.registry !== undefined) {
    problems.push({
      path: ['build'],
      message: '[build] needs a [source] wasm path to write the component to, but the source is a registry',
    });
  }
  if (problems.length > 0) return { problems };

  const config: Record<string, ConfigVariable> = {};
  for (const [name, variable] of Object.entries(capabilities.config ?? {})) {
    if (!variable) continue;
    config[name] = {
      required: variable.required ?? false,
      secret: variable.secret ?? false,
      ...(variable.default !== undefined ? { default: variable.default } : {}),
      ...(variable.description !== undefined ? { description: variable.description } : {}),
    };
  }
  const manifest: Manifest = {
    stratum: 1,
    capsule: {
      name: capsule.name,
      version: capsule.version,
      authors: capsule.authors ?? [],
      ...(capsule.description !== undefined ? { description: capsule.description } : {}),
      ...(capsule.license !== undefined ? { license: capsule.license } : {}),
    },
    source:
      source.registry !== undefined
        ? { kind: 'registry', registry: source.registry, digest: source.digest as string }
        : { kind: 'wasm', wasm: source.wasm as string, ...(source.digest !== undefined ? { digest: source.digest } : {}) },
    ...(build?.entry !== undefined ? { build: { entry: build.entry } } : {}),
    resources: {
      cpu,
      cpuMsPerRequest: resourceClass.cpuMsPerRequest,
      memoryBytes,
      timeoutMs,
      concurrency,
      requested: RESOURCE_KEYS.filter((key) => resources[key] !== undefined),
    },
    capabilities: {
      keyvalue: capabilities.keyvalue ?? [],
      sql: capabilities.sql ?? [],
      bucket: capabilities.bucket ?? [],
      outbound: [...new Set((capabilities.outbound ?? []).map(normaliseOrigin))],
      config,
    },
    http: { routes: http.routes ?? ['/*'] },
  };
  return { manifest, problems };
}
