// A JavaScript capsule's stack frames, mapped back to its sources. Its code runs as one bundled
// script, so an error's frames name `capsule.js:13:42` (or a dev bundle's
// `src/index.ts.bundle.js:51:44`); a developer reading the capsule's log needs `src/index.ts:7:42`.
// `stratum build` ships the bundle's source map in the component (JS_SOURCE_MAP_SECTION) and
// `stratum dev` hands its own over at install; its `file` is the script's name in the frames.
// `stratum build` maps the positions in componentize-js's errors the same way.
import { SourceMap } from 'node:module';

/** Rewrites every `<script>:line:column` in a log line to the source position it came from. */
export type FrameMapper = (text: string) => string;

/** A map larger than this is not read: capsules' maps are tens of KB, and this is untrusted input. */
export const SOURCE_MAP_MAX_BYTES = 4 * 1024 * 1024;

/**
 * The script a source map is for (its `file`), or undefined when it names none or does not parse.
 */
export function sourceMapScript(sourceMapJson: string): string | undefined {
  try {
    return scriptOf(JSON.parse(sourceMapJson));
  } catch {
    return undefined;
  }
}

function scriptOf(payload: unknown): string | undefined {
  const file = typeof payload === 'object' && payload !== null ? (payload as { file?: unknown }).file : undefined;
  return typeof file === 'string' && /^\S{1,200}$/.test(file) ? file : undefined;
}

/**
 * A mapper from a source map (JSON) for the script its `file` names. A position the map does not
 * cover, or a map that does not parse, leaves the text as it was. The sources' names come from
 * the capsule, so their control characters are dropped: a mapped line stays one line.
 */
export function frameMapper(sourceMapJson: string): FrameMapper | undefined {
  if (sourceMapJson.length > SOURCE_MAP_MAX_BYTES) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(sourceMapJson);
  } catch {
    return undefined;
  }
  const file = scriptOf(payload);
  if (file === undefined) return undefined;
  let map: SourceMap;
  try {
    map = new SourceMap(payload as ConstructorParameters<typeof SourceMap>[0]);
  } catch {
    return undefined;
  }
  const escaped = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const position = new RegExp(`${escaped}:(\\d+):(\\d+)`, 'g');
  return (text) =>
    text.includes(file)
      ? text.replace(position, (whole, line: string, column: string) => {
          // SpiderMonkey counts lines and columns from 1; source maps count both from 0.
          let entry: ReturnType<SourceMap['findEntry']>;
          try {
            entry = map.findEntry(Number(line) - 1, Number(column) - 1);
          } catch {
            return whole;
          }
          if (!('originalSource' in entry) || typeof entry.originalSource !== 'string') return whole;
          const source = entry.originalSource.replace(/\p{Cc}/gu, '');
          return `${source}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
        })
      : text;
}
