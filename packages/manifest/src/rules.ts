/**
 * How the host reads `[http] routes` and `[capabilities] outbound`: one place, so that the
 * spec's wording, the host and `stratum validate` cannot disagree.
 */

/** True when `path` is served by one of the route patterns (`/x` exact, `/x/*` prefix, `/*` all). */
export function routeMatches(routes: readonly string[], path: string): boolean {
  for (const route of routes) {
    if (route === '/*') return true;
    if (route.endsWith('/*')) {
      const prefix = route.slice(0, -2);
      if (path === prefix || path.startsWith(`${prefix}/`)) return true;
    } else if (route === path) {
      return true;
    }
  }
  return false;
}

/**
 * A path the first route serves, for a URL to show: `/x` and `/x/*` give `/x`, `/*` gives `/`.
 * Showing `/` for a capsule that serves only `/notes` would show a 404 first.
 */
export function routeExample(routes: readonly string[]): string {
  const first = routes[0];
  if (first === undefined || first === '/*') return '/';
  return first.endsWith('/*') ? first.slice(0, -2) : first;
}

const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' };

/**
 * True when `url` is inside one of the allowed origins. An origin's port defaults to its
 * scheme's; a leading `*.` matches exactly one or more labels below the named domain, never the
 * domain itself.
 */
export function originAllowed(origins: readonly string[], url: URL): boolean {
  const port = url.port || DEFAULT_PORTS[url.protocol] || '';
  const host = url.hostname.toLowerCase();
  for (const origin of origins) {
    const match = /^(https?:)\/\/(\*\.)?([^:/]+)(?::([0-9]+))?$/.exec(origin.toLowerCase());
    if (!match) continue;
    const [, scheme, wildcard, domain, originPort] = match;
    if (scheme !== url.protocol) continue;
    if ((originPort ?? DEFAULT_PORTS[scheme] ?? '') !== port) continue;
    if (wildcard ? host.endsWith(`.${domain}`) : host === domain) return true;
  }
  return false;
}
