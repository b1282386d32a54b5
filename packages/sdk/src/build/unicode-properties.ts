// StarlingMonkey is built without ICU, so a regular expression with a Unicode property escape
// (`/[\p{L}\p{N}]/u`) is a syntax error in a capsule, and the whole bundle fails to load with it:
// marked does this at its top level. Node.js has the Unicode data, so the build replaces each
// escape in a regular expression literal with the code point ranges it stands for, which the
// engine parses. A pattern built at run time (`new RegExp('\\p{L}', 'u')`) cannot be reached here
// and still fails, with the hint the build gives (UNICODE_PROPERTY_HINT).
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
 * A `u`-flag pattern with its property escapes replaced by ranges, or undefined when it has
 * none that Node.js knows. Outside a class an escape becomes a class of its own (`[...]`, or
 * `[^...]` for `\P`); inside one, its ranges (the complement's, for `\P`).
 */
export function lowerPattern(pattern: string): string | undefined {
  let out = '';
  let inClass = false;
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
          if (inClass) out += classBody(negated ? complement(ranges) : ranges);
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
    if (char === '[' && !inClass) inClass = true;
    else if (char === ']' && inClass) inClass = false;
    out += char;
  }
  return changed ? out : undefined;
}

/**
 * The script with every regular expression literal's property escapes lowered (`lowerPattern`),
 * and how many literals changed. Literals without the `u` flag have no property escapes (`\p` is
 * then the letter p), and `v`-flag ones are left as they are.
 */
export function lowerPropertyEscapes(code: string, sourceType: 'module' | 'script'): { code: string; lowered: number } {
  if (!/\\[pP]\{/.test(code)) return { code, lowered: 0 };
  const edits: { start: number; end: number; text: string }[] = [];
  for (const token of tokenizer(code, { ecmaVersion: 'latest', sourceType, allowHashBang: true })) {
    if (token.type !== tokTypes.regexp) continue;
    // acorn's typings leave out a token's value; a regexp token's is its pattern and flags.
    const { pattern, flags } = (token as Token & { value: { pattern: string; flags: string } }).value;
    if (!flags.includes('u') || !/\\[pP]\{/.test(pattern)) continue;
    const lowered = lowerPattern(pattern);
    if (lowered !== undefined) edits.push({ start: token.start, end: token.end, text: `/${lowered}/${flags}` });
  }
  let out = code;
  for (const edit of edits.reverse()) out = out.slice(0, edit.start) + edit.text + out.slice(edit.end);
  return { code: out, lowered: edits.length };
}
