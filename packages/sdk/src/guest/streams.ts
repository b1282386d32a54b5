// What StarlingMonkey's streams lack and modern code uses: `for await (const chunk of
// response.body)` (ReadableStream's async iteration), `ReadableStream.from(iterable)`, and
// TextDecoderStream and TextEncoderStream, with which streaming clients (an AI API's server-sent
// events, say) read text as it arrives. Each follows the Streams and Encoding standards, and
// only fills a gap: an engine that has one keeps its own. Imported for this effect by globals.ts.

interface IterationOptions {
  preventCancel?: boolean;
}

const readableProto = ReadableStream.prototype as ReadableStream & Record<PropertyKey, unknown>;

if (typeof readableProto[Symbol.asyncIterator] !== 'function') {
  // The reader is taken when iteration begins; leaving the loop early cancels the stream, unless
  // told not to, and the lock is released either way (as the standard's `values()` does).
  const values = function values<T>(this: ReadableStream<T>, options?: IterationOptions): AsyncGenerator<T, undefined, undefined> {
    const reader = this.getReader();
    let finished = false;
    return (async function* iterate() {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) {
            finished = true;
            return undefined;
          }
          yield value;
        }
      } catch (error) {
        finished = true;
        throw error;
      } finally {
        if (!finished && !options?.preventCancel) await reader.cancel();
        reader.releaseLock();
      }
    })();
  };
  Object.defineProperty(readableProto, 'values', { value: values, writable: true, configurable: true });
  Object.defineProperty(readableProto, Symbol.asyncIterator, { value: values, writable: true, configurable: true });
}

const ReadableStatics = ReadableStream as typeof ReadableStream & { from?: unknown };
if (typeof ReadableStatics.from !== 'function') {
  Object.defineProperty(ReadableStream, 'from', {
    writable: true,
    configurable: true,
    value: function from<T>(source: AsyncIterable<T> | Iterable<T>): ReadableStream<T> {
      const iterator =
        typeof (source as AsyncIterable<T>)[Symbol.asyncIterator] === 'function'
          ? (source as AsyncIterable<T>)[Symbol.asyncIterator]()
          : (source as Iterable<T>)[Symbol.iterator]();
      return new ReadableStream<T>(
        {
          async pull(controller) {
            const { done, value } = await iterator.next();
            if (done) controller.close();
            else controller.enqueue(value);
          },
          async cancel(reason) {
            await iterator.return?.(reason);
          },
        },
        { highWaterMark: 0 },
      );
    },
  });
}

const globals = globalThis as Record<string, unknown>;

/** What TextDecoder's decode() takes: a buffer, or a view of one. */
type DecodeInput = NonNullable<Parameters<InstanceType<typeof TextDecoder>['decode']>[0]>;

if (typeof globals.TextDecoderStream !== 'function') {
  class TextDecoderStream extends TransformStream<DecodeInput, string> {
    readonly encoding: string;
    readonly fatal: boolean;
    readonly ignoreBOM: boolean;
    constructor(label = 'utf-8', options: { fatal?: boolean; ignoreBOM?: boolean } = {}) {
      const decoder = new TextDecoder(label, options);
      super({
        transform(chunk, controller) {
          const text = decoder.decode(chunk, { stream: true });
          if (text !== '') controller.enqueue(text);
        },
        flush(controller) {
          const text = decoder.decode();
          if (text !== '') controller.enqueue(text);
        },
      });
      this.encoding = decoder.encoding;
      this.fatal = decoder.fatal;
      this.ignoreBOM = decoder.ignoreBOM;
    }
  }
  Object.defineProperty(globalThis, 'TextDecoderStream', { value: TextDecoderStream, writable: true, configurable: true });
}

if (typeof globals.TextEncoderStream !== 'function') {
  class TextEncoderStream extends TransformStream<string, Uint8Array> {
    readonly encoding = 'utf-8';
    constructor() {
      const encoder = new TextEncoder();
      // A chunk may end in the first half of a surrogate pair, whose second half starts the next.
      let pending = '';
      super({
        transform(chunk, controller) {
          let text = pending + String(chunk);
          pending = '';
          const last = text.charCodeAt(text.length - 1);
          if (last >= 0xd800 && last <= 0xdbff) {
            pending = text.slice(-1);
            text = text.slice(0, -1);
          }
          if (text !== '') controller.enqueue(encoder.encode(text));
        },
        flush(controller) {
          if (pending !== '') controller.enqueue(encoder.encode(pending));
        },
      });
    }
  }
  Object.defineProperty(globalThis, 'TextEncoderStream', { value: TextEncoderStream, writable: true, configurable: true });
}
