/** One challenge from a `WWW-Authenticate` header (RFC 7235): its scheme and its parameters. */
export interface AuthChallenge {
  /** Lowercase: `bearer`, `basic`. */
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

/**
 * Parses a `WWW-Authenticate` header into its challenges. The header comes from the network, so
 * this never throws: what it cannot read, it skips.
 *
 * @example
 * parseChallenges('Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"');
 * // [{ scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry', scope: 'repository:a:pull' } }]
 */
export function parseChallenges(header: string | null | undefined): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  if (!header) return challenges;
  let rest = header.slice(0, 16 * 1024);
  let current: AuthChallenge | undefined;
  while (rest.length > 0) {
    rest = rest.replace(/^[\s,]+/, '');
    const token = TOKEN.exec(rest)?.[0];
    if (token === undefined) {
      // Skip one unreadable character and go on: a broken header must not stop the others.
      rest = rest.slice(1);
      continue;
    }
    const afterToken = rest.slice(token.length).replace(/^\s*/, '');
    if (afterToken.startsWith('=') && current) {
      let value: string;
      let remaining = afterToken.slice(1).replace(/^\s*/, '');
      if (remaining.startsWith('"')) {
        value = '';
        let index = 1;
        for (; index < remaining.length; index++) {
          const char = remaining[index];
          if (char === '\\' && index + 1 < remaining.length) {
            value += remaining[index + 1];
            index++;
          } else if (char === '"') {
            break;
          } else {
            value += char;
          }
        }
        remaining = remaining.slice(index + 1);
      } else {
        value = /^[^\s,]*/.exec(remaining)?.[0] ?? '';
        remaining = remaining.slice(value.length);
      }
      current.params[token.toLowerCase()] = value;
      rest = remaining;
      continue;
    }
    // No prototype: a parameter named __proto__ must stay a plain entry.
    current = { scheme: token.toLowerCase(), params: Object.create(null) as Record<string, string> };
    challenges.push(current);
    rest = rest.slice(token.length);
  }
  return challenges;
}
