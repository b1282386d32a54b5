// StarlingMonkey is built without ICU, so a regular expression with a Unicode property escape
// (`/[\p{L}\p{N}]/u`) is a syntax error in a capsule, and the whole bundle fails to load with it:
// marked does this at its top level. Node.js has the Unicode data, so the build replaces each
// escape in a regular expression literal with the code point ranges it stands for, which the
// engine parses, in `u` and `v` patterns alike. A `v` pattern's property of strings
// (`\p{RGI_Emoji}`) has no ranges: the build refuses it, at its line. A pattern built at run time
// (`new RegExp('\\p{L}', 'u')`) cannot be reached here and still fails, with the hint the build
// gives (UNICODE_PROPERTY_HINT).
import { type Token, tokenizer, tokTypes } from 'acorn';

const LAST_CODE_POINT = 0x10ffff;

/** Ranges of code points, each [first, last], in ascending order. */
type Ranges = [number, number][];

const rangesByEscape = new Map<string, Ranges | undefined>();

/**
 * The code points `\p{name}` matches, from Node.js's own engine; undefined when it is not a
 * property escape Node.js knows (the engine then reports the pattern as it would have).
 */
function propertyRanges(name: string): Ranges | undefined {
  if (rangesByEscape.has(name)) return rangesByEscape.get(name);
  let test: RegExp | undefined;
  try {
    test = new RegExp(`^\\p{${name}}$`, 'u');
  } catch {
    test = undefined;
  }
  let ranges: Ranges | undefined;
  if (test) {
    ranges = [];
    let start = -1;
    for (let point = 0; point <= LAST_CODE_POINT + 1; point++) {
      const inside = point <= LAST_CODE_POINT && test.test(String.fromCodePoint(point));
      if (inside && start === -1) start = point;
      else if (!inside && start !== -1) {
        ranges.push([start, point - 1]);
        start = -1;
      }
    }
  }
  rangesByEscape.set(name, ranges);
  return ranges;
}

function complement(ranges: Ranges): Ranges {
  const out: Ranges = [];
  let next = 0;
  for (const [first, last] of ranges) {
    if (first > next) out.push([next, first - 1]);
    next = last + 1;
  }
  if (next <= LAST_CODE_POINT) out.push([next, LAST_CODE_POINT]);
  return out;
}

function classBody(ranges: Ranges): string {
  const point = (value: number) => `\\u{${value.toString(16)}}`;
  return ranges.map(([first, last]) => (first === last ? point(first) : `${point(first)}-${point(last)}`)).join('');
}

/**
 * A `u`- or `v`-flag pattern with its property escapes replaced by ranges, or undefined when it
 * has none that Node.js knows. With `u`, an escape outside a class becomes a class of its own
 * (`[...]`, or `[^...]` for `\P`), and one inside a class its ranges (the complement's, for `\P`).
 * With `v` (`unicodeSets`), where classes nest and combine (`[\p{L}--[a-z]]`), it becomes a class
 * in either place, a nested one inside a class: the same set, case folding with `i` included, as
 * the standard computes both from the property's code points.
 */
export function lowerPattern(pattern: string, unicodeSets = false): string | undefined {
  let out = '';
  let depth = 0;
  let changed = false;
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index] as string;
    if (char === '\\') {
      const next = pattern[index + 1];
      const close = next === 'p' || next === 'P' ? pattern.indexOf('}', index) : -1;
      if (close !== -1 && pattern[index + 2] === '{') {
        const ranges = propertyRanges(pattern.slice(index + 3, close));
        if (ranges) {
          const negated = next === 'P';
          if (depth > 0 && !unicodeSets) out += classBody(negated ? complement(ranges) : ranges);
          else out += `[${negated ? '^' : ''}${classBody(ranges)}]`;
          index = close;
          changed = true;
          continue;
        }
      }
      out += pattern.slice(index, index + 2);
      index++;
      continue;
    }
    if (char === '[' && (depth === 0 || unicodeSets)) depth++;
    else if (char === ']' && depth > 0) depth--;
    out += char;
  }
  return changed ? out : undefined;
}

/**
 * The properties of strings a `v`-flag pattern names (`\p{RGI_Emoji}`: sequences of code points,
 * not code points), which no ranges stand for: the engine cannot read them, and the build cannot
 * rewrite them.
 */
export function stringProperties(pattern: string): string[] {
  const names: string[] = [];
  for (let index = 0; index < pattern.length; index++) {
    if (pattern[index] !== '\\') continue;
    const close = pattern[index + 1] === 'p' && pattern[index + 2] === '{' ? pattern.indexOf('}', index) : -1;
    if (close !== -1) {
      const name = pattern.slice(index + 3, close);
      if (!propertyRanges(name) && isStringProperty(name)) names.push(name);
    }
    index++;
  }
  return names;
}

function isStringProperty(name: string): boolean {
  try {
    new RegExp(`\\p{${name}}`, 'v');
    return true;
  } catch {
    return false;
  }
}

/** A regular expression literal the engine cannot read: at `start` in the code, naming properties of strings. */
export interface UnreadableLiteral {
  start: number;
  literal: string;
  properties: string[];
}

/**
 * The script with every regular expression literal's property escapes lowered (`lowerPattern`),
 * how many literals changed, and the literals left that the engine cannot read (properties of
 * strings). Literals without the `u` or `v` flag have no property escapes (`\p` is then the
 * letter p).
 */
export function lowerPropertyEscapes(
  code: string,
  sourceType: 'module' | 'script',
): { code: string; lowered: number; unreadable: UnreadableLiteral[] } {
  if (!/\\[pP]\{/.test(code)) return { code, lowered: 0, unreadable: [] };
  const edits: { start: number; end: number; text: string }[] = [];
  const unreadable: UnreadableLiteral[] = [];
  for (const token of tokenizer(code, { ecmaVersion: 'latest', sourceType, allowHashBang: true })) {
    if (token.type !== tokTypes.regexp) continue;
    // acorn's typings leave out a token's value; a regexp token's is its pattern and flags.
    const { pattern, flags } = (token as Token & { value: { pattern: string; flags: string } }).value;
    const unicodeSets = flags.includes('v');
    if ((!flags.includes('u') && !unicodeSets) || !/\\[pP]\{/.test(pattern)) continue;
    const lowered = lowerPattern(pattern, unicodeSets);
    if (lowered !== undefined) edits.push({ start: token.start, end: token.end, text: `/${lowered}/${flags}` });
    const properties = unicodeSets ? stringProperties(pattern) : [];
    if (properties.length > 0) unreadable.push({ start: token.start, literal: code.slice(token.start, token.end), properties });
  }
  let out = code;
  for (const edit of edits.reverse()) out = out.slice(0, edit.start) + edit.text + out.slice(edit.end);
  return { code: out, lowered: edits.length, unreadable };
}
