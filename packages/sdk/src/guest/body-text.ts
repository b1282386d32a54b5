// StarlingMonkey decodes a body strictly: `text()` and `json()` of a Request or Response throw a
// TypeError ("malformed UTF-8 character sequence") on bytes that are not UTF-8, and `text()`
// keeps a leading byte order mark. The Fetch standard decodes with replacement (U+FFFD) and drops
// the mark, as TextDecoder does by default and as browsers, Node.js and workerd do: a form posted
// in Latin-1, or an upload read as text, must not fail the request. StarlingMonkey also lacks
// the standard's newer `bytes()`, which browsers, Node.js and workerd have, and its `blob()` gives a
// Blob whose type is "" where the standard gives the body's Content-Type (mime-type.ts). Imported
// for this effect by globals.ts.
import { blobType } from './mime-type.ts';

const decoder = new TextDecoder();

for (const Body of [Request, Response]) {
  Object.defineProperties(Body.prototype, {
    text: {
      configurable: true,
      writable: true,
      value: async function text(this: Request | Response): Promise<string> {
        return decoder.decode(await this.arrayBuffer());
      },
    },
    json: {
      configurable: true,
      writable: true,
      value: async function json(this: Request | Response): Promise<unknown> {
        return JSON.parse(decoder.decode(await this.arrayBuffer()));
      },
    },
    blob: {
      configurable: true,
      writable: true,
      value: async function blob(this: Request | Response): Promise<Blob> {
        return new Blob([await this.arrayBuffer()], { type: blobType(this.headers.get('content-type')) });
      },
    },
  });
  if (!('bytes' in Body.prototype)) {
    Object.defineProperty(Body.prototype, 'bytes', {
      configurable: true,
      writable: true,
      value: async function bytes(this: Request | Response): Promise<Uint8Array> {
        return new Uint8Array(await this.arrayBuffer());
      },
    });
  }
}
