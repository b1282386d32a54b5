// A streamed response body, piped to the host. Apart from http.ts, which holds the WASI handles,
// so that what happens when the body's stream fails, or the host stops taking it, runs in Node.js
// tests too.
import { describeError } from './errors.ts';

/** Where a response body goes: the WASI output stream and body, in http.ts. */
export interface BodySink {
  /** Writes `bytes`; false when the host has closed the body (it is dropped then). */
  write(bytes: Uint8Array): boolean;
  /** Ends the body whole. */
  finish(): void;
  /** Drops the body unfinished, so that the host cuts the response off rather than ending it. */
  abandon(): void;
}

/** A chunk as bytes: Workers takes any buffer source in a body's stream, not only a Uint8Array. */
function bytesOf(chunk: unknown): Uint8Array | undefined {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  return undefined;
}

const kindOf = (value: unknown) =>
  value === null ? 'null' : typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;

/**
 * Streams `source` into `sink` in pieces, so that a large response is never held whole. Never
 * rejects: the request's handler has returned, and a rejection here escaped the adapter, which
 * StarlingMonkey answers by aborting the instance (the client got a 500 in place of the parts
 * already sent, and the module's state was lost). A stream that fails is the capsule's error, as
 * an uncaught one is logged; the response is cut off, as in Workers, so that the client can tell
 * it is incomplete. `closed` runs when the host closed the body (the client went away, or the
 * body passed the host's size limit), before the stream is cancelled.
 */
export async function pipeBody(source: ReadableStream<Uint8Array>, sink: BodySink, closed: () => void): Promise<void> {
  let reader: ReadableStreamDefaultReader<unknown>;
  try {
    reader = source.getReader();
  } catch (error) {
    // Locked or read already: the capsule returned a Response whose body it had used.
    sink.abandon();
    console.error(`the response body could not be read, so the response was cut off: ${describeError(error)}`);
    return;
  }
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch (error) {
      sink.abandon();
      console.error(`the response body's stream failed, so the response was cut off: ${describeError(error)}`);
      return;
    }
    if (chunk.done) break;
    const bytes = bytesOf(chunk.value);
    // The SDK's own failures, told without frames, which would be the SDK's and not the capsule's.
    let failure: Error | undefined;
    if (bytes === undefined) {
      failure = new TypeError(`the response body's stream gave a ${kindOf(chunk.value)}, not bytes (a Uint8Array)`);
    } else {
      try {
        if (sink.write(bytes)) continue;
        closed();
      } catch (error) {
        // A failure of the host's, not a body it closed: the response is cut off for it.
        failure = error instanceof Error ? error : new Error(String(error));
      }
    }
    if (failure !== undefined) {
      sink.abandon();
      console.error(`the response was cut off: ${failure.name}: ${failure.message}`);
    }
    // What feeds the stream (an upstream fetch, a generator) learns that nobody reads it any more.
    await reader.cancel(failure).catch(() => {});
    return;
  }
  sink.finish();
}
