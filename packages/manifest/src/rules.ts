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
 * The ports a fetch never uses (the Fetch standard's "bad ports": SMTP, SSH, IRC and the like),
 * which a wildcard port does not cover: browsers refuse them for every request, and a plain
 * HTTP request's lines reach such a service as its own commands. An origin that names one
 * explicitly still allows it.
 */
const BAD_PORTS = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117,
  119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636,
  989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/** One `[capabilities] outbound` origin, read. */
export interface OutboundOrigin {
  scheme: 'http:' | 'https:';
  /** `*` for any host, `*.example.com` for any name below example.com, else the one name; lowercase. */
  host: string;
  /** The port, the scheme's when the origin names none, or `*` for any. */
  port: string;
}

const LABEL = /^[a-z0-9-]+$/;

/**
 * Reads an outbound origin as the manifest writes it: `http://` or `https://`; a host name,
 * `*.` and a domain (the names below it), or `*` (any host); an optional
 * port, or `:*` for any; and nothing after it but an optional `/`. For one that is not valid, a
 * phrase saying what is wrong and what to write, to follow the origin in a message.
 *
 * @example
 * parseOrigin('https://*:*'); // { scheme: 'https:', host: '*', port: '*' }
 * parseOrigin('https://api.example.com/v1'); // 'has a path: ... write "https://api.example.com"'
 */
export function parseOrigin(text: string): OutboundOrigin | string {
  const anyHost = (scheme: string) => `write "${scheme}://*" (port ${scheme === 'http' ? 80 : 443}) or "${scheme}://*:*" (any port)`;
  if (text === '*') return `is not an origin: to allow any host, ${anyHost('https')}, or the same with http://`;
  const schemeEnd = text.indexOf('://');
  if (schemeEnd < 0) return `has no scheme: write "https://${text}" (or "http://${text}")`;
  const schemeText = text.slice(0, schemeEnd);
  let rest = text.slice(schemeEnd + 3);
  if (rest.endsWith('/')) rest = rest.slice(0, -1);
  if (schemeText === '*') return `has a wildcard scheme: write "https://${rest}" and "http://${rest}" as two origins`;
  if (schemeText !== 'http' && schemeText !== 'https') {
    return ['http', 'https'].includes(schemeText.toLowerCase())
      ? `has its scheme in capitals: write "${schemeText.toLowerCase()}://"`
      : 'is not an http:// or https:// origin: outbound requests are HTTP only';
  }
  const scheme = schemeText === 'https' ? 'https:' : 'http:';
  const end = rest.search(/[/?#]/);
  if (end >= 0) {
    const part = rest[end] === '/' ? 'a path' : rest[end] === '?' ? 'a query' : 'a fragment';
    return `has ${part}: an origin is a scheme, a host and a port, and covers every path there; write "${schemeText}://${rest.slice(0, end)}"`;
  }
  if (rest.includes('@')) return 'has credentials in it: an origin is a scheme, a host and a port only';
  if (rest.startsWith('[')) return 'names an IPv6 address, which an origin cannot: name the host';
  const colon = rest.lastIndexOf(':');
  const host = (colon < 0 ? rest : rest.slice(0, colon)).toLowerCase();
  const portText = colon < 0 ? undefined : rest.slice(colon + 1);
  if (
    portText !== undefined &&
    portText !== '*' &&
    !(/^[0-9]{1,5}$/.test(portText) && Number(portText) >= 1 && Number(portText) <= 65535)
  ) {
    return `has the port "${portText}": a port is a number from 1 to 65535, or * for any`;
  }
  const port = portText ?? (DEFAULT_PORTS[scheme] as string);
  if (host === '') return 'has no host name';
  if (host === '*') return { scheme, host, port };
  const wildcard = host.startsWith('*.');
  const domain = wildcard ? host.slice(2) : host;
  if (domain.includes('*')) {
    return `has a * inside its host name: a wildcard is "*." before a domain ("${schemeText}://*.example.com") or the whole host, for any host ("${schemeText}://*")`;
  }
  const labels = domain.split('.');
  if (!labels.every((label) => LABEL.test(label))) {
    return `has "${domain}", which is not a host name: letters, digits and hyphens, in labels separated by dots`;
  }
  return { scheme, host, port };
}

/** An origin as the normalised manifest holds it: lowercased, without a trailing `/`. */
export function normaliseOrigin(origin: string): string {
  return origin.toLowerCase().replace(/\/$/, '');
}

/**
 * Whether one of the origins allows `url`: `allowed`; `bad-port` when one would but for a port
 * its wildcard port does not cover (see {@link BAD_PORTS}); else `not-listed`. An origin's port
 * defaults to its scheme's; `*.` matches one or more labels below the named domain, never the
 * domain itself; a host of `*` matches any host. Which addresses the host may then reach is the
 * host's to check.
 */
export function originMatch(origins: readonly string[], url: URL): 'allowed' | 'bad-port' | 'not-listed' {
  const port = url.port || DEFAULT_PORTS[url.protocol] || '';
  const host = url.hostname.toLowerCase();
  let badPort = false;
  for (const text of origins) {
    const origin = parseOrigin(text);
    if (typeof origin === 'string' || origin.scheme !== url.protocol) continue;
    const hostMatches = origin.host === '*' || (origin.host.startsWith('*.') ? host.endsWith(origin.host.slice(1)) : host === origin.host);
    if (!hostMatches) continue;
    if (origin.port === port) return 'allowed';
    if (origin.port !== '*') continue;
    if (!BAD_PORTS.has(Number(port))) return 'allowed';
    badPort = true;
  }
  return badPort ? 'bad-port' : 'not-listed';
}

/** True when `url` is inside one of the allowed origins (see {@link originMatch}). */
export function originAllowed(origins: readonly string[], url: URL): boolean {
  return originMatch(origins, url) === 'allowed';
}
