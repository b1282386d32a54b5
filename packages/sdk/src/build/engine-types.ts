// The types a capsule project's editor and `tsc` check its code against: what StarlingMonkey, as
// componentize-js builds it, and the SDK's additions give a capsule, and nothing else. TypeScript's
// DOM library declared `URLPattern`, `caches`, `navigator` and `Response.error`, which a capsule
// lacks (a ReferenceError at run time, or a failed build), and its ES2023 library left out
// `Object.groupBy`, `Set#union` and iterator helpers, which the engine has.
//
// `engine.generated.d.ts` is made from TypeScript's own libraries: it references the ECMAScript
// ones the engine implements (`ENGINE_LIBS`), and holds the web platform's declarations from
// lib.webworker.d.ts for the globals the engine has (`WEB_GLOBALS`), without the members it lacks
// (`MISSING_MEMBERS`), and the interfaces and types those reach. `node
// packages/sdk/src/build/engine-types.ts` writes it again (after a TypeScript upgrade, or a change
// of the lists); tests/sdk-guest.test.ts checks that each global and member it declares is in the
// engine, and engine-types.test.ts that the file is what this module makes.
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The declaration file a capsule project's tsconfig.json names in `types` (as `@stratum/sdk/engine`). */
export const engineTypesFile = fileURLToPath(new URL('../engine.generated.d.ts', import.meta.url));

/**
 * TypeScript's ECMAScript libraries for the engine, by their leaves: ES2017's and later umbrellas
 * would bring `SharedArrayBuffer` and `Atomics` (the `sharedmemory` leaves), which the engine lacks,
 * and ESNext's `Temporal`, `Date#toTemporalInstant` and `Symbol.metadata` (`esnext.temporal`,
 * `esnext.date`, `esnext.intl`, `esnext.decorators`) are missing too. `Intl` is the SDK's
 * (guest/intl.ts), which the build adds to a capsule whose code mentions it, without ES2025's
 * `Intl.DurationFormat` (`es2025.intl`).
 */
export const ENGINE_LIBS = [
  'es5',
  'es2015',
  'es2016',
  'es2017.arraybuffer',
  'es2017.date',
  'es2017.intl',
  'es2017.object',
  'es2017.string',
  'es2017.typedarrays',
  'es2018.asyncgenerator',
  'es2018.asynciterable',
  'es2018.intl',
  'es2018.promise',
  'es2018.regexp',
  'es2019.array',
  'es2019.intl',
  'es2019.object',
  'es2019.string',
  'es2019.symbol',
  'es2020.bigint',
  'es2020.date',
  'es2020.intl',
  'es2020.number',
  'es2020.promise',
  'es2020.string',
  'es2020.symbol.wellknown',
  'es2021.intl',
  'es2021.promise',
  'es2021.string',
  'es2021.weakref',
  'es2022.array',
  'es2022.error',
  'es2022.intl',
  'es2022.object',
  'es2022.regexp',
  'es2022.string',
  'es2023.array',
  'es2023.collection',
  'es2023.intl',
  'es2024.arraybuffer',
  'es2024.collection',
  'es2024.object',
  'es2024.promise',
  'es2024.regexp',
  'es2024.string',
  'es2025.collection',
  'es2025.float16',
  'es2025.iterator',
  'es2025.promise',
  'es2025.regexp',
  'esnext.array',
  'esnext.collection',
  'esnext.disposable',
  'esnext.error',
  'esnext.typedarrays',
] as const;

/**
 * The web platform's globals a capsule has, each declared as lib.webworker.d.ts declares it: the
 * engine's (Fetch, streams, URL, encoding, Web Crypto, events, timers, console) and the SDK's
 * (`MessageChannel`, `TextDecoderStream`, `TextEncoderStream`).
 */
export const WEB_GLOBALS = [
  'AbortController',
  'AbortSignal',
  'Blob',
  'ByteLengthQueuingStrategy',
  'CompressionStream',
  'CountQueuingStrategy',
  'Crypto',
  'CryptoKey',
  'CustomEvent',
  'DOMException',
  'DecompressionStream',
  'Event',
  'EventTarget',
  'File',
  'FormData',
  'Headers',
  'MessageChannel',
  'Performance',
  'ReadableByteStreamController',
  'ReadableStream',
  'ReadableStreamBYOBReader',
  'ReadableStreamBYOBRequest',
  'ReadableStreamDefaultController',
  'ReadableStreamDefaultReader',
  'Request',
  'Response',
  'SubtleCrypto',
  'TextDecoder',
  'TextDecoderStream',
  'TextEncoder',
  'TextEncoderStream',
  'TransformStream',
  'URL',
  'URLSearchParams',
  'WorkerLocation',
  'WritableStream',
  'addEventListener',
  'atob',
  'btoa',
  'clearInterval',
  'clearTimeout',
  'console',
  'crypto',
  'dispatchEvent',
  'fetch',
  'location',
  'performance',
  'queueMicrotask',
  'removeEventListener',
  'self',
  'setInterval',
  'setTimeout',
  'structuredClone',
] as const;

/**
 * Members lib.webworker.d.ts declares for those globals that a capsule lacks, left out of the
 * types: `Name.member` is a static one (of `declare var Name: { ... }`), `Name.prototype.member`
 * one of `interface Name`. The SDK's README lists the ones code meets, with what to use instead.
 */
export const MISSING_MEMBERS: readonly string[] = [
  'Response.error',
  'Request.prototype.cache',
  'Request.prototype.credentials',
  'Request.prototype.destination',
  'Request.prototype.integrity',
  'Request.prototype.keepalive',
  'Request.prototype.mode',
  'Request.prototype.redirect',
  'Request.prototype.referrer',
  'Request.prototype.referrerPolicy',
  'Event.prototype.NONE',
  'Event.prototype.CAPTURING_PHASE',
  'Event.prototype.AT_TARGET',
  'Event.prototype.BUBBLING_PHASE',
  'Event.prototype.cancelBubble',
  'CustomEvent.prototype.initCustomEvent',
  'File.prototype.webkitRelativePath',
  'Console.prototype.timeStamp',
  // Refused by the SDK's WebCrypto, which has no AES-KW: export the key and encrypt it with AES-GCM.
  'SubtleCrypto.prototype.wrapKey',
  'SubtleCrypto.prototype.unwrapKey',
  // The performance timeline: the engine's Performance has timeOrigin and now() (and the SDK's toJSON).
  'Performance.prototype.onresourcetimingbufferfull',
  'Performance.prototype.clearMarks',
  'Performance.prototype.clearMeasures',
  'Performance.prototype.clearResourceTimings',
  'Performance.prototype.getEntries',
  'Performance.prototype.getEntriesByName',
  'Performance.prototype.getEntriesByType',
  'Performance.prototype.mark',
  'Performance.prototype.measure',
  'Performance.prototype.setResourceTimingBufferSize',
  'Performance.prototype.addEventListener',
  'Performance.prototype.removeEventListener',
];

/** Interfaces declared with another first line: the engine's Performance is no EventTarget. */
const HEADER_REWRITES: Readonly<Record<string, [string, string]>> = {
  Performance: ['interface Performance extends EventTarget {', 'interface Performance {'],
};

/** How `self` is declared: the global object, whose web members are the globals above. */
const SELF = 'declare var self: typeof globalThis;';

/**
 * Types narrowed to what a capsule has: lib.webworker.d.ts's name canvases, video frames and
 * service workers, which would bring their declarations in.
 */
const TYPE_REWRITES: Readonly<Record<string, string>> = {
  Transferable: 'type Transferable = MessagePort | ReadableStream | WritableStream | TransformStream | ArrayBuffer;',
  MessageEventSource: 'type MessageEventSource = MessagePort;',
};

/** A top-level declaration of a TypeScript library file, with the comments before it. */
export interface Declaration {
  kind: 'interface' | 'var' | 'function' | 'type' | 'namespace' | 'class' | 'global' | 'reference' | 'other';
  name: string;
  lines: string[];
}

const DECLARATION = /^(?:declare\s+)?(?:abstract\s+)?(interface|var|function|type|namespace|class)\s+([A-Za-z_$][\w$]*)/;

/**
 * The top-level declarations of a library file whose declarations start at the line's start and
 * whose bodies are indented, as TypeScript's are: each runs to the next line that starts a
 * declaration or a comment. Comments before one are its own.
 */
export function topLevel(text: string): Declaration[] {
  const out: Declaration[] = [];
  let comments: string[] = [];
  let current: Declaration | undefined;
  let inComment = false;
  for (const line of text.split('\n')) {
    if (inComment) {
      comments.push(line);
      if (line.includes('*/')) inComment = false;
      continue;
    }
    if (line === '' || /^[\s}]/.test(line)) {
      if (current) current.lines.push(line);
      continue;
    }
    current = undefined;
    if (line.startsWith('/*')) {
      comments.push(line);
      inComment = !line.includes('*/');
      continue;
    }
    if (line.startsWith('//')) {
      const reference = /^\/\/\/\s*<reference\s+lib="([^"]+)"/.exec(line);
      if (reference) out.push({ kind: 'reference', name: reference[1] as string, lines: [line] });
      else comments.push(line);
      continue;
    }
    const match = DECLARATION.exec(line);
    const global = /^declare\s+global\b/.test(line);
    current = {
      kind: global ? 'global' : ((match?.[1] ?? 'other') as Declaration['kind']),
      name: match?.[2] ?? '',
      lines: [...comments, line],
    };
    comments = [];
    out.push(current);
  }
  for (const declaration of out) {
    while (declaration.lines.at(-1) === '') declaration.lines.pop();
  }
  return out;
}

/** A declaration's code without its comments. */
function code(lines: readonly string[]): string {
  return lines
    .join('\n')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '');
}

/** What a member line of an interface or object type declares: its name, `[Symbol.x]` as `Symbol.x`. */
export function memberName(line: string): { name: string; optional: boolean } | undefined {
  const match = /^\s*(?:readonly\s+|abstract\s+|static\s+)*(?:[gs]et\s+(?=[\w$[]))?(\[Symbol\.(\w+)\]|[A-Za-z_$][\w$]*)(\?)?\s*[:(<]/.exec(
    line,
  );
  if (!match) return undefined;
  const name = match[2] ? `Symbol.${match[2]}` : (match[1] as string);
  if (name === 'new') return undefined;
  return { name, optional: match[3] === '?' };
}

/**
 * `lines` of a block (an interface, or `declare var X: { ... }`) without the members named in
 * `drop`, each with the comment before it; members are the lines one indent (four spaces) in.
 */
function withoutMembers(lines: readonly string[], drop: ReadonlySet<string>): string[] {
  const out: string[] = [];
  let pending: string[] = [];
  for (const line of lines) {
    if (/^ {4}\/\*\*/.test(line) || (pending.length > 0 && /^ {5}\*/.test(line))) {
      pending.push(line);
      continue;
    }
    const member = /^ {4}\S/.test(line) ? memberName(line) : undefined;
    if (!member || !drop.has(member.name)) out.push(...pending, line);
    pending = [];
  }
  return out;
}

/** The library file's declarations for the engine's web globals, and the types they reach. */
export function engineTypes(webworker: string, libs: readonly string[] = ENGINE_LIBS): string {
  const declarations = topLevel(webworker);
  const wanted = new Set<string>(WEB_GLOBALS);
  const values = declarations.filter((one) => (one.kind === 'var' || one.kind === 'function') && wanted.has(one.name));
  for (const name of wanted) {
    if (!values.some((one) => one.name === name)) throw new Error(`lib.webworker.d.ts declares no global ${name}`);
  }
  const statics = new Map<string, Set<string>>();
  const members = new Map<string, Set<string>>();
  for (const key of MISSING_MEMBERS) {
    const [owner = '', ...rest] = key.split('.');
    const instance = rest[0] === 'prototype';
    const table = instance ? members : statics;
    const set = table.get(owner) ?? new Set<string>();
    set.add(rest.slice(instance ? 1 : 0).join('.'));
    table.set(owner, set);
  }
  const kept = new Set<Declaration>();
  const text = new Map<Declaration, string[]>();
  const keep = (one: Declaration) => {
    if (kept.has(one)) return;
    kept.add(one);
    const rewritten = one.kind === 'type' ? TYPE_REWRITES[one.name] : undefined;
    if (rewritten) {
      text.set(one, [...one.lines.filter((line) => !line.startsWith('type ')), rewritten]);
      return;
    }
    const dropped = one.kind === 'var' ? statics.get(one.name) : one.kind === 'interface' ? members.get(one.name) : undefined;
    let lines = dropped ? withoutMembers(one.lines, dropped) : one.lines;
    const header = one.kind === 'interface' ? HEADER_REWRITES[one.name] : undefined;
    if (header) {
      if (!lines.includes(header[0])) throw new Error(`lib.webworker.d.ts no longer declares ${header[0]}`);
      lines = lines.map((line) => (line === header[0] ? header[1] : line));
    }
    text.set(one, lines);
  };
  for (const one of values) {
    keep(one);
    // The global scope's event map would bring in the worker's whole scope (navigator, caches,
    // IndexedDB...): the engine dispatches no event on it, and a listener takes any type.
    const lines = text.get(one) ?? [];
    text.set(one, one.name === 'self' ? [SELF] : lines.filter((line) => !/WorkerGlobalScope/.test(line)));
  }
  // The interfaces and types the kept declarations name, and the ones those name, and so on.
  const types = new Map<string, Declaration[]>();
  for (const one of declarations) {
    if (one.kind !== 'interface' && one.kind !== 'type') continue;
    types.set(one.name, [...(types.get(one.name) ?? []), one]);
  }
  let reached = [...kept];
  while (reached.length > 0) {
    const next: Declaration[] = [];
    for (const one of reached) {
      for (const name of new Set(code(text.get(one) ?? one.lines).match(/[A-Za-z_$][\w$]*/g) ?? [])) {
        for (const type of types.get(name) ?? []) {
          if (kept.has(type)) continue;
          keep(type);
          next.push(type);
        }
      }
    }
    reached = next;
  }
  for (const [table, kind] of [
    [statics, 'var'],
    [members, 'interface'],
  ] as const) {
    for (const [owner, names] of table) {
      const blocks = declarations.filter((one) => one.kind === kind && one.name === owner && kept.has(one));
      if (blocks.length === 0) throw new Error(`MISSING_MEMBERS names ${owner}, which the engine's types do not declare`);
      for (const name of names) {
        if (!blocks.some((block) => block.lines.some((line) => /^ {4}\S/.test(line) && memberName(line)?.name === name))) {
          throw new Error(`MISSING_MEMBERS names ${owner} ${name}, which lib.webworker.d.ts does not declare`);
        }
      }
    }
  }
  const header = /^\/\*![\s\S]*?\*\/\n/.exec(webworker)?.[0] ?? '';
  const body = declarations.filter((one) => kept.has(one)).map((one) => (text.get(one) ?? one.lines).join('\n'));
  return `${header}
// Generated by @stratum/sdk (src/build/engine-types.ts) from TypeScript's lib.webworker.d.ts: the
// ECMAScript libraries StarlingMonkey implements, and the web platform's globals a Stratum capsule
// has, without the members it lacks. Do not edit: run \`node packages/sdk/src/build/engine-types.ts\`.

${libs.map((lib) => `/// <reference lib="${lib}" />`).join('\n')}

${body.join('\n\n')}
`;
}

/** The directory of TypeScript's library files: the platform package `typescript` runs (TypeScript 7), or its own `lib`. */
export async function typescriptLibDir(): Promise<string> {
  const typescript = dirname(fileURLToPath(import.meta.resolve('typescript/package.json')));
  try {
    const getExePath = (await import(join(typescript, 'lib', 'getExePath.js'))) as { default: () => string };
    return dirname(getExePath.default());
  } catch {
    return join(typescript, 'lib');
  }
}

/** The file's text as this module makes it from the TypeScript installed. */
export async function currentEngineTypes(): Promise<string> {
  return engineTypes(await readFile(join(await typescriptLibDir(), 'lib.webworker.d.ts'), 'utf8'));
}

if (import.meta.main) {
  await writeFile(engineTypesFile, await currentEngineTypes());
  console.log(`wrote ${engineTypesFile}`);
}

/**
 * Where a declared interface's members are found in the engine: on the value at `path` itself
 * (`value`: a namespace, `Math`, a constructor's statics) or on its `prototype`. `path` is from
 * `globalThis`; the first candidate that exists is the one.
 */
export interface ProbeTarget {
  path: string[];
  on: 'value' | 'prototype';
}

/** Members a declaration file says some object has: `Symbol.iterator` and the like by that name. */
export interface Probe {
  /** The declaration, as a person reads it: `Response` (an interface), `Response (static)`, `globalThis`. */
  owner: string;
  candidates: ProbeTarget[];
  members: string[];
}

interface Shape {
  globals: Map<string, Set<string>>;
  interfaces: Map<string, { path: string[]; extends: string[]; members: Set<string> }>;
  statics: Map<string, { path: string[]; members: Set<string> }>;
  /** `declare var console: Console`: Console's members are console's. */
  valueTypes: Map<string, string[][]>;
}

/** Interfaces whose object has no name of its own on `globalThis`. */
const PROBE_TARGETS: Readonly<Record<string, ProbeTarget>> = {
  IteratorObject: { path: ['Iterator'], on: 'prototype' },
  // The SDK adds its algorithms to the object (webcrypto.ts), for code that mentions `subtle`.
  SubtleCrypto: { path: ['crypto', 'subtle'], on: 'value' },
};

/** The names an `extends` clause lists, without their type arguments. */
function extendsList(header: string): string[] {
  const clause = /\bextends\s+([\s\S]*?)\s*\{/.exec(header)?.[1];
  if (!clause) return [];
  let depth = 0;
  let part = '';
  const parts: string[] = [];
  for (const char of clause) {
    if (char === '<') depth++;
    else if (char === '>') depth--;
    else if (char === ',' && depth === 0) {
      parts.push(part);
      part = '';
      continue;
    }
    if (depth === 0 && char !== '>') part += char;
  }
  parts.push(part);
  return parts.map((one) => one.trim().replace(/^globalThis\./, '')).filter(Boolean);
}

/** Adds what a declaration file declares to `shape`: globals, interfaces' and object types' members. */
function readShape(text: string, shape: Shape): void {
  interface Context {
    indent: number;
    kind: 'container' | 'members' | 'skip';
    path: string[];
    members?: Set<string>;
  }
  const stack: Context[] = [{ indent: -4, kind: 'container', path: [] }];
  let inComment = false;
  for (const raw of text.split('\n')) {
    if (inComment) {
      if (raw.includes('*/')) inComment = false;
      continue;
    }
    const line = raw.replace(/\/\*.*?\*\//g, '').replace(/\/\/.*$/, '');
    if (line.trim().startsWith('/*')) {
      inComment = !line.includes('*/');
      continue;
    }
    if (line.trim() === '') continue;
    const indent = line.length - line.trimStart().length;
    const top = stack.at(-1) as Context;
    if (indent === top.indent && /^\s*\}/.test(line) && stack.length > 1) {
      stack.pop();
      continue;
    }
    if (indent !== top.indent + 4 || top.kind === 'skip') continue;
    const opens = /\{\s*$/.test(line);
    if (top.kind === 'members') {
      const member = memberName(line);
      if (member && !member.optional) top.members?.add(member.name);
      if (opens) stack.push({ indent, kind: 'skip', path: top.path });
      continue;
    }
    const trimmed = line.trim().replace(/^declare\s+/, '');
    const named = /^(?:abstract\s+)?(interface|var|let|const|function|namespace|class|type|global)\b\s*([A-Za-z_$][\w$]*)?/.exec(trimmed);
    const kind = named?.[1];
    const name = named?.[2] ?? '';
    const path = [...top.path, name];
    const key = path.join('.');
    if (kind === 'global') {
      stack.push({ indent, kind: 'container', path: [] });
    } else if (kind === 'namespace') {
      shape.globals.set(top.path.join('.'), (shape.globals.get(top.path.join('.')) ?? new Set()).add(name));
      stack.push({ indent, kind: 'container', path });
    } else if (kind === 'interface') {
      const entry = shape.interfaces.get(key) ?? { path, extends: [], members: new Set<string>() };
      entry.extends.push(...extendsList(trimmed));
      shape.interfaces.set(key, entry);
      if (opens) stack.push({ indent, kind: 'members', path, members: entry.members });
    } else if (kind === 'var' || kind === 'let' || kind === 'const' || kind === 'function' || kind === 'class') {
      shape.globals.set(top.path.join('.'), (shape.globals.get(top.path.join('.')) ?? new Set()).add(name));
      const typed = /^[^:]*:\s*([A-Za-z_$][\w$.]*)\s*;$/.exec(trimmed)?.[1];
      if (kind !== 'function' && kind !== 'class' && typed) {
        const typeKey = top.path.length > 0 && !typed.includes('.') ? `${top.path.join('.')}.${typed}` : typed;
        shape.valueTypes.set(typeKey, [...(shape.valueTypes.get(typeKey) ?? []), path]);
      }
      if (opens && kind !== 'class' && kind !== 'function') {
        const entry = shape.statics.get(key) ?? { path, members: new Set<string>() };
        shape.statics.set(key, entry);
        stack.push({ indent, kind: 'members', path, members: entry.members });
      } else if (opens) stack.push({ indent, kind: 'skip', path });
    } else if (opens) stack.push({ indent, kind: 'skip', path });
  }
}

/**
 * What the declaration files `texts` say exists, as probes for the engine: every global (in
 * namespaces too), every static member of `declare var X: { ... }`, and every member an interface
 * and its ancestors declare that is not optional, where the interface names an object the engine
 * has (`XConstructor` is X's statics, `X` is X.prototype's or, for `declare var x: X`, x's).
 */
export function declaredProbes(texts: readonly string[]): Probe[] {
  const shape: Shape = { globals: new Map(), interfaces: new Map(), statics: new Map(), valueTypes: new Map() };
  for (const text of texts) readShape(text, shape);
  const probes: Probe[] = [];
  for (const [owner, names] of shape.globals) {
    probes.push({
      owner: owner || 'globalThis',
      candidates: [{ path: owner ? owner.split('.') : [], on: 'value' }],
      members: [...names].sort(),
    });
  }
  for (const [owner, { path, members }] of shape.statics) {
    const names = [...members].filter((name) => name !== 'prototype');
    if (names.length > 0) probes.push({ owner: `${owner} (static)`, candidates: [{ path, on: 'value' }], members: names.sort() });
  }
  const ancestors = (key: string, seen = new Set<string>()): Set<string> => {
    const entry = shape.interfaces.get(key);
    if (!entry || seen.has(key)) return new Set();
    seen.add(key);
    const all = new Set(entry.members);
    for (const parent of entry.extends) {
      const scoped = [...entry.path.slice(0, -1), parent].join('.');
      for (const name of ancestors(shape.interfaces.has(scoped) ? scoped : parent, seen)) all.add(name);
    }
    return all;
  };
  for (const [key, { path }] of shape.interfaces) {
    const members = [...ancestors(key)].sort();
    if (members.length === 0) continue;
    const name = path.at(-1) as string;
    const candidates: ProbeTarget[] = [];
    const special = PROBE_TARGETS[key];
    if (special) candidates.push(special);
    for (const value of shape.valueTypes.get(key) ?? []) candidates.push({ path: value, on: 'value' });
    if (name.endsWith('Constructor') && name.length > 'Constructor'.length) {
      candidates.push({ path: [...path.slice(0, -1), name.slice(0, -'Constructor'.length)], on: 'value' });
    } else {
      candidates.push({ path, on: 'prototype' });
    }
    probes.push({ owner: key, candidates, members });
  }
  return probes;
}

/** The library files `libs` name and those they reference, in TypeScript's `dir`, by name. */
export async function libraryFiles(libs: readonly string[], dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const pending = [...libs];
  while (pending.length > 0) {
    const lib = pending.pop() as string;
    if (files.has(lib)) continue;
    const text = await readFile(join(dir, `lib.${lib}.d.ts`), 'utf8');
    files.set(lib, text);
    for (const [, referenced] of text.matchAll(/^\/\/\/\s*<reference\s+lib="([^"]+)"/gm)) pending.push(referenced as string);
  }
  return files;
}
