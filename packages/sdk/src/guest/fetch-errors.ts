// StarlingMonkey rejects an outbound fetch() that the host refused or could not complete with a
// bare "fetch_https: An error occurred while using the host API." or "NetworkError when
// attempting to fetch resource": the wasi:http error code that says why is dropped on the way.
// The host writes its reason into the capsule's log (the outbound capability: an origin not in
// [capabilities] outbound, DNS, a refused connection, the request's limits), so the error names
// the URL and points there. Imported for this effect by globals.ts.

const platformFetch = globalThis.fetch;

globalThis.fetch = async function fetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
  try {
    return await platformFetch(input, init);
  } catch (error) {
    // "...while using the host API" when the host refuses at once; "NetworkError when attempting
    // to fetch resource" when the request it started fails.
    if (!(error instanceof Error) || !/host API|NetworkError/.test(error.message)) throw error;
    const url = input instanceof Request ? input.url : String(input);
    throw new TypeError(`fetch(${url}) failed: the host refused it or could not complete it; its reason is in the capsule's log`, {
      cause: error,
    });
  }
};

// A body that fails after the head (over the host's max_response_size, cut off, too slow) fails
// its read with StarlingMonkey's "IO error reading from incoming response body"; the host's log
// line says which. `text()`, `json()` and `bytes()` read through `arrayBuffer()` (body-text.ts).
const platformArrayBuffer = Response.prototype.arrayBuffer;

Object.defineProperty(Response.prototype, 'arrayBuffer', {
  configurable: true,
  writable: true,
  value: async function arrayBuffer(this: Response): Promise<ArrayBuffer> {
    try {
      return await platformArrayBuffer.call(this);
    } catch (error) {
      if (!(error instanceof Error) || !/IO error reading/.test(error.message)) throw error;
      throw new TypeError(`reading the body of ${this.url || 'a response'} failed: ${error.message}; the reason is in the capsule's log`, {
        cause: error,
      });
    }
  },
});
