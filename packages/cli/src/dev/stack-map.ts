// Stack frames of a dev bundle, mapped back to the capsule's sources. The dev engine evaluates
// one bundled script, so a capsule's errors name `src/index.ts.bundle.js:51:44`; a developer
// needs `src/index.ts:7:36`. esbuild writes the map with each bundle (build.ts).
import { SourceMap } from 'node:module';
import { isAbsolute, relative, resolve } from 'node:path';

/** Rewrites every `<bundle>:line:column` in a log line to the source position it came from. */
export type FrameMapper = (text: string) => string;

const leaveAsIs: FrameMapper = (text) => text;

/**
 * A mapper for the bundle named `bundleUrl` in stack traces, from its source map (JSON). A
 * position the map does not cover, or a map that does not parse, leaves the text as it was.
 */
export function bundleFrameMapper(bundleUrl: string, sourceMapJson: string, projectDir: string): FrameMapper {
  let map: SourceMap;
  try {
    map = new SourceMap(JSON.parse(sourceMapJson) as ConstructorParameters<typeof SourceMap>[0]);
  } catch {
    return leaveAsIs;
  }
  const escaped = bundleUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const position = new RegExp(`${escaped}:(\\d+):(\\d+)`, 'g');
  return (text) =>
    text.includes(bundleUrl)
      ? text.replace(position, (whole, line: string, column: string) => {
          // SpiderMonkey counts lines and columns from 1; source maps count both from 0.
          const entry = map.findEntry(Number(line) - 1, Number(column) - 1);
          if (!('originalSource' in entry)) return whole;
          // The project's own files as build errors show them; others (the SDK's) whole, not ../../..
          const absolute = resolve(projectDir, entry.originalSource);
          const inProject = relative(projectDir, absolute);
          const source = inProject.startsWith('..') || isAbsolute(inProject) ? absolute : inProject;
          return `${source}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
        })
      : text;
}
