/**
 * What a TOML parse error says, for a person: where, and in words that name the mistake when the
 * parser's own do not (toml-eslint-parser reports a table header left open, `[host`, as "The
 * key, equals sign, and value must be on the same line" at the next line). Shared by stratum.toml
 * and host.toml, whose readers both parse with toml-eslint-parser.
 */
export function tomlSyntaxProblem(error: unknown, text: string): { line: number; column: number; message: string } {
  const parseError = error as { message?: string; lineNumber?: number; column?: number };
  const line = parseError.lineNumber ?? 1;
  const column = (parseError.column ?? 0) + 1;
  let message = String(parseError.message ?? error)
    .replace(/\s+/g, ' ')
    .slice(0, 200);
  const lines = text.split('\n');
  if (/multiple times/.test(message) && parseError.lineNumber !== undefined) {
    const rest = (lines[line - 1] ?? '').slice(parseError.column ?? 0);
    const key = /^\s*\[*\s*([^=\]]+?)\s*(=|\])/.exec(rest)?.[1];
    if (key) return { line, column, message: `invalid TOML: ${key} is defined more than once` };
  }
  // A header left open: the error lands on its own line or the one after.
  for (const at of [line, line - 1]) {
    const header = /^\s*(\[\[?)\s*([^\]\s#]*)\s*(#.*)?$/.exec(lines[at - 1] ?? '');
    if (header?.[1] && header[2] !== undefined) {
      const open = header[1];
      return {
        line: at,
        column: (lines[at - 1] ?? '').indexOf('[') + 1,
        message: `invalid TOML: the table header ${open}${header[2]} has no closing ${open === '[[' ? ']]' : ']'}`,
      };
    }
  }
  // A word for a value: TOML's strings are quoted (`cpu = small` said only "Unexpected character").
  const bare = /^\s*([A-Za-z0-9_.-]+)\s*=\s*([A-Za-z_][A-Za-z0-9_.:/-]*)\s*(#.*)?$/.exec(lines[line - 1] ?? '');
  if (bare?.[1] && bare[2] && !['true', 'false', 'inf', 'nan'].includes(bare[2])) {
    return { line, column, message: `invalid TOML: a string value needs quotes: ${bare[1]} = "${bare[2]}"` };
  }
  message = `invalid TOML: ${message}`;
  return { line, column, message };
}
