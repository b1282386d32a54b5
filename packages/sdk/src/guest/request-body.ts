// How a read of the request body fails, as the capsule sees it. The bindings throw the WIT
// stream-error in jco's ComponentError, whose message is "[object Object] (see error.payload)":
// a capsule that let it go uncaught logged only that. Kept apart from http.ts, which imports the
// WASI modules, so that Node.js can test it.

import { witError } from './errors.ts';

/** The stream-error a read of a body that ended throws: `closed`, not a failure. */
export function streamClosed(thrown: unknown): boolean {
  return witError(thrown)?.tag === 'closed';
}

/**
 * The error a failed read of the request body errors its stream with: the host fails it when the
 * client closed the connection before the body's end, or sent more than the host takes (it
 * answered 413 then). Anything but a stream-error is passed on as it is.
 */
export function requestBodyError(thrown: unknown): unknown {
  if (witError(thrown)?.tag !== 'last-operation-failed') return thrown;
  return new TypeError(
    'the request body was not received whole: the client closed the connection before its end, or sent more than the host takes',
    { cause: thrown },
  );
}
