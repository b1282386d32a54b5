// The string a Response was made with, so that the adapter (http.ts) can send it without its
// stream. Reading a body through its ReadableStream (a reader, two reads, two awaits) is work in
// StarlingMonkey's interpreter that a body given as a string does not need, and nearly every
// answer is one: `new Response('...')`, `Response.json(...)`, what Hono's `c.text()` and
// `c.json()` make. The global Response becomes a Proxy of the engine's that remembers a string
// body; instances, `instanceof`, subclasses and the static methods are the engine's own, and the
// prototype's `constructor` is the Proxy.
// Imported for this effect by globals.ts.

const texts = new WeakMap<Response, string>();
const EngineResponse = Response;

const RememberingResponse = new Proxy(EngineResponse, {
  construct(target, args, newTarget) {
    const response = Reflect.construct(target, args, newTarget) as Response;
    if (typeof args[0] === 'string') texts.set(response, args[0]);
    return response;
  },
});
globalThis.Response = RememberingResponse;
// So that `response.constructor === Response` holds, and `new response.constructor(...)` remembers too.
Object.defineProperty(EngineResponse.prototype, 'constructor', { configurable: true, writable: true, value: RememberingResponse });

const JSON_TYPE = { 'content-type': 'application/json' };

// Response.json makes its text here, as the standard says (the JSON, then `application/json`
// unless the init names a type), so that its responses are remembered too.
const engineJson = EngineResponse.json;
Object.defineProperty(EngineResponse, 'json', {
  configurable: true,
  writable: true,
  value: function json(data: unknown, init?: ResponseInit): Response {
    const text = JSON.stringify(data);
    // What JSON cannot hold (undefined, a function) gets the engine's own error.
    if (typeof text !== 'string') return engineJson.call(EngineResponse, data, init);
    let response: Response;
    if (init === undefined) {
      response = new EngineResponse(text, { headers: JSON_TYPE });
    } else {
      const headers = new Headers(init.headers);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      response = new EngineResponse(text, {
        headers,
        ...(init.status !== undefined ? { status: init.status } : {}),
        ...(init.statusText !== undefined ? { statusText: init.statusText } : {}),
      });
    }
    texts.set(response, text);
    return response;
  },
});

/** The string `response` was made with while its body is unread, else undefined. */
export function unreadBodyText(response: Response): string | undefined {
  const text = texts.get(response);
  return text !== undefined && !response.bodyUsed ? text : undefined;
}
