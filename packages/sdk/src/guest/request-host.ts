// The Host field of a request a capsule serves. StarlingMonkey's Request drops the fields a
// browser may not set, Host among them, so `request.headers.get('host')` was null where Workers
// and Node.js give the host a client asked for (multi-tenant routing, absolute links). The
// adapter (http.ts) names each request's Host here, and that request's Headers answer with it
// from their first read: get, has, iteration in sorted place and forEach; set, append and delete
// of Host act on it. Requests the capsule makes, and copies (`new Request(request)`, `clone()`,
// `new Headers(request.headers)`), are as the engine makes them, without it.

const hosts = new WeakMap<Request, string>();
const proto = Headers.prototype;
const headersOf = Object.getOwnPropertyDescriptor(Request.prototype, 'headers')?.get as ((this: Request) => Headers) | undefined;

/** Gives `request`'s headers the Host field `host` when they are first read. */
export function keepHost(request: Request, host: string): void {
  if (headersOf) hosts.set(request, host);
}

if (headersOf) {
  Object.defineProperty(Request.prototype, 'headers', {
    configurable: true,
    get(this: Request): Headers {
      const headers = headersOf.call(this);
      const host = hosts.get(this);
      if (host !== undefined) {
        hosts.delete(this);
        giveHost(headers, host);
      }
      return headers;
    },
  });
}

const isHost = (name: string) => name.length === 4 && name.toLowerCase() === 'host';

function giveHost(headers: Headers, given: string): void {
  let host: string | undefined = given;
  // Headers iterate sorted by name, which host keeps.
  const entries = (): [string, string][] => {
    const list = [...proto.entries.call(headers)] as [string, string][];
    if (host !== undefined) {
      const at = list.findIndex(([name]) => name > 'host');
      list.splice(at === -1 ? list.length : at, 0, ['host', host]);
    }
    return list;
  };
  const value = (fn: (...args: never[]) => unknown) => ({ configurable: true, writable: true, value: fn });
  Object.defineProperties(headers, {
    get: value((name: string) => (isHost(name) ? (host ?? null) : proto.get.call(headers, name))),
    has: value((name: string) => (isHost(name) ? host !== undefined : proto.has.call(headers, name))),
    set: value((name: string, text: string) => {
      if (isHost(name)) host = String(text);
      else proto.set.call(headers, name, text);
    }),
    append: value((name: string, text: string) => {
      if (isHost(name)) host = host === undefined ? String(text) : `${host}, ${text}`;
      else proto.append.call(headers, name, text);
    }),
    delete: value((name: string) => {
      if (isHost(name)) host = undefined;
      else proto.delete.call(headers, name);
    }),
    entries: value(() => entries()[Symbol.iterator]()),
    [Symbol.iterator]: value(() => entries()[Symbol.iterator]()),
    keys: value(() =>
      entries()
        .map(([name]) => name)
        [Symbol.iterator](),
    ),
    values: value(() =>
      entries()
        .map(([, text]) => text)
        [Symbol.iterator](),
    ),
    forEach: value((callback: (text: string, name: string, parent: Headers) => void, thisArg?: unknown) => {
      for (const [name, text] of entries()) callback.call(thisArg, text, name, headers);
    }),
  });
}
