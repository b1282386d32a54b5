import type { AST } from 'toml-eslint-parser';

export interface Position {
  line: number;
  column: number;
}

type Segment = string | number;

/**
 * Finds where a key path is written in a TOML document, so that an error can point at the line
 * and column. TOML lets one path be spelled as a table header, a dotted key or an inline table;
 * this walks all of them. Where the exact key is not written (a missing key), it returns the
 * nearest enclosing table that is.
 */
export function locate(ast: AST.TOMLProgram, path: readonly Segment[]): Position {
  const top = ast.body[0];
  if (!top) return { line: 1, column: 1 };
  let best: { depth: number; position: Position } = { depth: -1, position: { line: 1, column: 1 } };

  const consider = (depth: number, node: { loc: { start: { line: number; column: number } } }) => {
    if (depth > best.depth) best = { depth, position: { line: node.loc.start.line, column: node.loc.start.column + 1 } };
  };

  const keyNames = (key: AST.TOMLKey): string[] => key.keys.map((part) => (part.type === 'TOMLBare' ? part.name : part.value));

  const visitValue = (value: AST.TOMLContentNode, prefix: Segment[], node: { loc: AST.SourceLocation }) => {
    if (!matches(prefix)) return;
    consider(prefix.length, node);
    if (value.type === 'TOMLInlineTable') {
      for (const pair of value.body) visitPair(pair, prefix);
    } else if (value.type === 'TOMLArray') {
      for (const [index, element] of value.elements.entries()) visitValue(element, [...prefix, index], element);
    }
  };

  const visitPair = (pair: AST.TOMLKeyValue, prefix: Segment[]) => {
    const names = keyNames(pair.key);
    for (let i = 1; i < names.length; i++) {
      const partial = [...prefix, ...names.slice(0, i)];
      if (matches(partial)) consider(partial.length, pair);
    }
    visitValue(pair.value, [...prefix, ...names], pair);
  };

  const matches = (candidate: readonly Segment[]) =>
    candidate.length <= path.length && candidate.every((segment, index) => segment === path[index]);

  for (const item of top.body) {
    if (item.type === 'TOMLKeyValue') {
      visitPair(item, []);
    } else {
      // resolvedKey addresses an array of tables ([[x]]) by its index, as the value does.
      const names: Segment[] = [...item.resolvedKey];
      // A header names its enclosing tables too: [registrar.operator] is where an unknown
      // "registrar" is written.
      for (let end = 1; end <= names.length; end++) {
        const partial = names.slice(0, end);
        if (matches(partial)) consider(partial.length, item);
      }
      for (const pair of item.body) visitPair(pair, names);
    }
  }
  return best.position;
}
