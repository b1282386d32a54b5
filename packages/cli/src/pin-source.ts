// Pinning a stratum.toml to a pushed artifact, apart from the push command: it needs the
// manifest parser, which `stratum` loads only for the commands that use it (commands/index.ts).
import { basename } from 'node:path';
import { StratumError } from '@stratum/core';
import { parseManifest } from '@stratum/manifest';
import type { AST } from 'toml-eslint-parser';

type Edit = { start: number; end: number; text: string };

const keyNames = (key: AST.TOMLKey): string[] => key.keys.map((part) => (part.type === 'TOMLBare' ? part.name : part.value));

/** Where `stratum push --pin` writes the pinned copy of a manifest: `stratum.pinned.toml` beside `stratum.toml`. */
export function pinnedManifestPath(manifestFile: string): string {
  return manifestFile.replace(/(\.toml)?$/, '.pinned.toml');
}

/**
 * A pinned copy of a stratum.toml, for `stratum push --pin` to write beside it: `[source]` names
 * the pushed artifact, `registry` and `digest` in place of `wasm` (kept as a comment), and a
 * `[build]` table, which needs a local source, is commented out. Only those lines change, under
 * a first line that says where the copy came from: every other comment, blank line and key
 * order stays. The result is validated before it is returned. The manifest copied is left as it
 * is: `stratum dev` and `stratum build` go on working from it, as the published build's pin is
 * for installing that build (Spin and wasmCloud leave the developer's manifest alone too).
 *
 * @example
 * pinSource(text, 'stratum.toml', 'oci://ghcr.io/acme/hello:1.0', 'sha256:...');
 */
export function pinSource(text: string, file: string, registry: string, digest: string): string {
  const value = (name: 'registry' | 'digest') => JSON.stringify(name === 'registry' ? registry : digest);
  const { edits, sourcePairs, lineStart, lineEnd } = sourceEdits(
    text,
    file,
    `{ registry = ${value('registry')}, digest = ${value('digest')} }`,
    `# Off in this pinned copy: ${basename(file)} builds.`,
  );
  const header = `# Written by \`stratum push --pin\`: ${basename(file)} pinned to the component pushed, for\n# \`stratum host install ${pinnedManifestPath(basename(file))} --domain <name>\`. Edit ${basename(file)}, not this copy.\n`;
  const wasm = sourcePairs.find((entry) => entry.name === 'wasm');
  for (const { name, pair, prefix } of sourcePairs) {
    if (name === 'wasm') {
      const indent = text.slice(lineStart(pair.range[0]), pair.range[0]);
      const original = text.slice(pair.range[0], pair.range[1]);
      edits.push({
        start: pair.range[0],
        end: pair.range[1],
        text: `# ${original} (in ${basename(file)})\n${indent}${prefix}registry = ${value('registry')}\n${indent}${prefix}digest = ${value('digest')}`,
      });
    } else if (name === 'digest' && wasm) {
      // The local file's digest gives way to the artifact's, written beside registry.
      edits.push({ start: lineStart(pair.range[0]), end: lineEnd(pair.range[1]), text: '' });
    } else if (name === 'registry' || name === 'digest') {
      edits.push({ start: pair.value.range[0], end: pair.value.range[1], text: value(name) });
    }
  }
  if (!sourcePairs.some((entry) => entry.name === 'digest') && !wasm) {
    const registryPair = sourcePairs.find((entry) => entry.name === 'registry');
    if (registryPair) {
      const indent = text.slice(lineStart(registryPair.pair.range[0]), registryPair.pair.range[0]);
      edits.push({
        start: registryPair.pair.range[1],
        end: registryPair.pair.range[1],
        text: `\n${indent}${registryPair.prefix}digest = ${value('digest')}`,
      });
    }
  }
  const edited = applyEdits(text, edits);
  // After a `#:schema` line, which editors (Taplo) read at the top only.
  const schema = /^#:schema[^\n]*\n/.exec(edited)?.[0] ?? '';
  const rest = edited.slice(schema.length);
  // A copy pinned again (by hand) keeps the one it has.
  const result = schema + (rest.startsWith(header.slice(0, header.indexOf(':'))) ? '' : header) + rest;
  const { manifest } = parseManifest(result, file);
  if (manifest.source.kind !== 'registry' || manifest.source.registry !== registry || manifest.source.digest !== digest) {
    throw new StratumError('PIN_FAILED', `could not write the pin into ${file}`, {
      hint: `Write it by hand under [source]: registry = ${value('registry')} and digest = ${value('digest')}.`,
      user: false,
    });
  }
  return result;
}

type SourcePair = { name: string; pair: AST.TOMLKeyValue; prefix: string };

/**
 * What both rewrites of `[source]` start from: the edits that comment out `[build]` (headed by
 * `buildNote`) and rewrite an inline `source = { ... }` whole as `inlineSource`, and each
 * key-value under `[source]` with the text its keys are written after (`source.` for a dotted
 * key at the top, nothing inside a [source] table), for the caller to edit.
 */
function sourceEdits(text: string, file: string, inlineSource: string, buildNote: string) {
  const { ast } = parseManifest(text, file);
  const top = ast.body[0];
  if (!top) throw new StratumError('PIN_FAILED', `${file} is empty`);
  const edits: Edit[] = [];
  const lineStart = (offset: number) => text.lastIndexOf('\n', offset - 1) + 1;
  const lineEnd = (offset: number) => {
    const end = text.indexOf('\n', offset);
    return end === -1 ? text.length : end + 1;
  };
  const commentLines = (from: number, to: number) => {
    for (let offset = lineStart(from); offset < to; offset = lineEnd(offset)) {
      edits.push({ start: offset, end: offset, text: '# ' });
      if (lineEnd(offset) === offset) break;
    }
  };
  const sourcePairs: SourcePair[] = [];
  let buildCommented = false;
  for (const item of top.body) {
    if (item.type === 'TOMLTable') {
      if (item.resolvedKey[0] === 'build') {
        commentLines(item.range[0], item.range[1]);
        buildCommented = true;
        continue;
      }
      if (item.resolvedKey.length !== 1 || item.resolvedKey[0] !== 'source') continue;
      for (const pair of item.body) {
        const [name] = keyNames(pair.key);
        if (name !== undefined) sourcePairs.push({ name, pair, prefix: '' });
      }
      continue;
    }
    const names = keyNames(item.key);
    if (names[0] === 'build') {
      commentLines(item.range[0], item.range[1]);
      buildCommented = true;
    }
    if (names[0] !== 'source') continue;
    if (names.length === 1 && item.value.type === 'TOMLInlineTable') {
      // An inline table cannot hold a comment: it is rewritten whole.
      edits.push({ start: item.value.range[0], end: item.value.range[1], text: inlineSource });
      continue;
    }
    const last = item.key.keys.at(-1);
    if (names.length === 2 && last)
      sourcePairs.push({ name: names[1] ?? '', pair: item, prefix: text.slice(item.key.range[0], last.range[0]) });
  }
  if (buildCommented) {
    const first = edits.find((edit) => edit.text === '# ');
    if (first) first.text = `${buildNote}\n${first.text}`;
  }
  return { edits, sourcePairs, lineStart, lineEnd };
}

function applyEdits(text: string, edits: Edit[]): string {
  let result = text;
  // Later edits first, so that earlier offsets stay right (no two edits share an offset).
  for (const edit of edits.sort((a, b) => b.start - a.start)) result = result.slice(0, edit.start) + edit.text + result.slice(edit.end);
  return result;
}

/**
 * Rewrites the stratum.toml an artifact carries for the component pulled beside it: `[source]`
 * becomes that file (`wasm`, relative to the manifest) and its digest, and `[build]`, whose
 * source did not come with the artifact, is commented out. Without this the pair did not work
 * together: the manifest named the author's `dist/` path and offered a build.
 *
 * @example
 * pulledSource(text, 'pulled/stratum.toml', 'hello.wasm', 'sha256:...');
 */
export function pulledSource(text: string, file: string, wasm: string, digest: string): string {
  const pair = `wasm = ${JSON.stringify(wasm)}, digest = ${JSON.stringify(digest)}`;
  const { edits, sourcePairs, lineStart, lineEnd } = sourceEdits(
    text,
    file,
    `{ ${pair} }`,
    '# Off: `stratum pull` wrote this manifest beside the pulled component, without its source.',
  );
  for (const [index, { pair: item, prefix }] of sourcePairs.entries()) {
    // The first key's line holds both new ones; the others' lines go.
    const indent = text.slice(lineStart(item.range[0]), item.range[0]);
    edits.push({
      start: lineStart(item.range[0]),
      end: lineEnd(item.range[1]),
      text: index === 0 ? `${indent}${prefix}wasm = ${JSON.stringify(wasm)}\n${indent}${prefix}digest = ${JSON.stringify(digest)}\n` : '',
    });
  }
  const result = applyEdits(text, edits);
  const { manifest } = parseManifest(result, file);
  if (manifest.source.kind !== 'wasm' || manifest.source.wasm !== wasm || manifest.source.digest !== digest) {
    throw new StratumError('PIN_FAILED', `could not write the pulled component into ${file}`, {
      hint: `Write it by hand under [source]: ${pair.replace(', ', ' and ')}.`,
      user: false,
    });
  }
  return result;
}
