// The host never follows a redirect itself (each hop must be checked against the manifest's
// outbound origins, as a request of its own), and StarlingMonkey's fetch() does not follow one
// either: it resolved with the 3xx whatever `redirect` said. The Fetch standard, browsers,
// Node.js and Workers follow by default, so code ported from them met a 302 where it expected the
// page. fetch() now follows as the standard says: up to 20 hops, a 303 (and a 301 or 302 after a
// POST) becomes a GET without a body, a 307 or 308 repeats the method and a body it can send
// again, an Authorization header is dropped on the way to another origin; `redirect: 'manual'`
// hands the 3xx back and `'error'` rejects. Every hop is a request of its own to the host, which
// refuses one to an origin the manifest does not grant. Imported for this effect by globals.ts.

import { atTopLevel, refuseAtTopLevel } from './top-level.ts';

const fetchOnce = globalThis.fetch;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 20;

/** A body that can be sent again (not a stream, which the first request used up). */
function replayable(body: unknown): boolean {
  return (
    body === null ||
    body === undefined ||
    typeof body === 'string' ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof URLSearchParams ||
    body instanceof Blob ||
    body instanceof FormData
  );
}

globalThis.fetch = function fetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
  // A production build's engine rejects it there ("fetch can only be used during request
  // handling"), where stratum dev's, which runs the top-level code on a request, sent it. Refused
  // alike in both, at the caller's line, and thrown rather than returned as a rejection, as Workers
  // does: a top-level fetch that nothing awaits (a config loaded into a promise for later) failed
  // silently, the capsule built and served without it. Here, in the outermost wrapper, the caller
  // is two frames up.
  if (atTopLevel()) {
    const target = input instanceof Request ? input.url : typeof input === 'string' ? input : input instanceof URL ? input.href : '…';
    refuseAtTopLevel(
      `fetch(${JSON.stringify(target)})`,
      `let data; … data ??= await fetch(${JSON.stringify(target)}).then((response) => response.json())`,
      'where no request can go out',
    );
  }
  return fetchFollowing(input, init);
};

async function fetchFollowing(input: Request | string | URL, init?: RequestInit): Promise<Response> {
  const first = input instanceof Request ? input : undefined;
  // StarlingMonkey's Request has no `redirect` (engine-types.ts): a Request made with one reads as undefined.
  const mode = init?.redirect ?? (first as { redirect?: RequestInit['redirect'] } | undefined)?.redirect ?? 'follow';
  let response = await fetchOnce(input, init);
  if (mode === 'manual' || !REDIRECT_STATUSES.has(response.status) || !response.headers.has('location')) return response;

  let url = first ? first.url : String(input);
  let method = (init?.method ?? first?.method ?? 'GET').toUpperCase();
  const headers = new Headers(init?.headers ?? first?.headers);
  // A Request's own body was a stream, sent once.
  let body: unknown = init && 'body' in init ? init.body : first?.body;
  for (let hops = 1; ; hops++) {
    const location = response.headers.get('location') ?? '';
    if (mode === 'error') throw new TypeError(`fetch(${url}) was redirected to ${location}, and its redirect mode is "error"`);
    if (hops > MAX_REDIRECTS) throw new TypeError(`fetch(${url}) was redirected more than ${MAX_REDIRECTS} times`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new TypeError(`fetch(${url}) was redirected to ${JSON.stringify(location)}, which is not a URL`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new TypeError(`fetch(${url}) was redirected to ${next.href}, which is not http(s)`);
    }
    const status = response.status;
    if (status === 303 ? method !== 'GET' && method !== 'HEAD' : (status === 301 || status === 302) && method === 'POST') {
      method = 'GET';
      body = null;
      for (const name of ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location'])
        headers.delete(name);
    } else if (body !== null && body !== undefined && !replayable(body)) {
      throw new TypeError(`fetch(${url}) was redirected (${status}) with a streamed body, which cannot be sent again`);
    }
    if (next.origin !== new URL(url).origin) headers.delete('authorization');
    // Its body is not wanted: let the host end that request.
    await response.body?.cancel().catch(() => {});
    url = next.href;
    response = await fetchOnce(url, {
      method,
      headers,
      redirect: 'manual',
      ...(body === null || body === undefined ? {} : { body: body as NonNullable<RequestInit['body']> }),
      ...(init?.signal ? { signal: init.signal } : {}),
    });
    if (!REDIRECT_STATUSES.has(response.status) || !response.headers.has('location')) {
      Object.defineProperties(response, { url: { value: url }, redirected: { value: true } });
      return response;
    }
  }
}
