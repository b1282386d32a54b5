// StarlingMonkey's formData() (componentize-js 0.23, and StarlingMonkey's main still) gives a
// multipart body's file part to File's constructor as the Uint8Array itself, not in an array of
// parts: the constructor walks it as the list of parts, and each byte, a number, became its
// decimal digits as text. A 13-byte `file-content\n` upload read as the 36 characters
// `102105108101…`, and no binary file survived. Text fields, and what the engine serialises
// (`new Request(url, { body: formData })`, `new Response(formData)`, a fetch() with one), were
// right. The SDK reads a multipart/form-data body itself (multipart.ts), on Request and Response,
// in dev engines and built components alike; URL-encoded bodies stay the engine's. Imported for
// this effect by globals.ts, before response-clone.ts, whose readers then call this one.
import { multipartBoundary, parseMultipart } from './multipart.ts';

for (const Body of [Request, Response]) {
  const engineFormData = Body.prototype.formData;
  Object.defineProperty(Body.prototype, 'formData', {
    configurable: true,
    writable: true,
    value: async function formData(this: Request | Response): Promise<FormData> {
      const boundary = multipartBoundary(this.headers.get('content-type'));
      if (boundary === null) return engineFormData.call(this);
      const body = new Uint8Array(await this.arrayBuffer());
      if (boundary === undefined)
        throw new TypeError('formData(): the multipart/form-data body cannot be read: its Content-Type names no boundary');
      return parseMultipart(body, boundary);
    },
  });
}
