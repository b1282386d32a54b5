// StarlingMonkey's Response has no clone() (its Request has one), and Hono's etag middleware,
// caches and loggers that read a body before passing the response on all call it. A clone takes
// one branch of the body's tee. The engine keeps a Response's body in a slot that script cannot
// replace, so the other branch goes into a stand-in Response, and the original's body, bodyUsed
// and readers (here, on the prototype) read the stand-in once there is one. Imported for this
// effect by globals.ts, after body-text.ts, whose text() and json() read arrayBuffer().

type BodyReader = 'arrayBuffer' | 'blob' | 'formData' | 'json' | 'text' | 'bytes';

const proto = Response.prototype;
const bodyOf = Object.getOwnPropertyDescriptor(proto, 'body')?.get;
const bodyUsedOf = Object.getOwnPropertyDescriptor(proto, 'bodyUsed')?.get;

if (typeof (proto as { clone?: unknown }).clone !== 'function' && bodyOf && bodyUsedOf) {
  const standIns = new WeakMap<Response, Response>();
  for (const [name, get] of [
    ['body', bodyOf],
    ['bodyUsed', bodyUsedOf],
  ] as const) {
    Object.defineProperty(proto, name, {
      configurable: true,
      get(this: Response) {
        return get.call(standIns.get(this) ?? this);
      },
    });
  }
  for (const name of ['arrayBuffer', 'blob', 'formData', 'json', 'text', 'bytes'] as const satisfies BodyReader[]) {
    const read = (proto as unknown as Record<BodyReader, ((this: Response) => Promise<unknown>) | undefined>)[name];
    if (typeof read !== 'function') continue;
    Object.defineProperty(proto, name, {
      configurable: true,
      writable: true,
      value: function readBody(this: Response) {
        return read.call(standIns.get(this) ?? this);
      },
    });
  }
  // The properties a constructed Response cannot be given; a fetch() response has them.
  const carried = ['url', 'redirected', 'type'] as const;
  Object.defineProperty(proto, 'clone', {
    configurable: true,
    writable: true,
    value: function clone(this: Response): Response {
      const source = standIns.get(this) ?? this;
      if (bodyUsedOf.call(source)) throw new TypeError('Response.clone: the body has already been read');
      const init = { status: this.status, statusText: this.statusText, headers: this.headers };
      const body = bodyOf.call(source) as ReadableStream<Uint8Array> | null;
      let copy: Response;
      if (body === null) {
        copy = new Response(null, init);
      } else {
        const [kept, given] = body.tee();
        standIns.set(this, new Response(kept, init));
        copy = new Response(given, init);
      }
      for (const name of carried) Object.defineProperty(copy, name, { value: this[name], enumerable: false });
      return copy;
    },
  });
}
