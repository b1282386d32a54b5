// What a `log.*` call becomes: the WIT call's `context` (wasi:logging's category, which the host
// shows as the line's source, `wasi:logging <category>`, cut at 128 characters) and its message.
// Structured fields do not fit a category, so they go after the message as JSON, where they stay
// one line that `stratum host logs` and `stratum dev` print whole and a reader can parse back.
// Kept apart from log.ts, which imports the WIT interface, so that Node.js can test it.

import { isErrorLike } from './errors.ts';

/** Fields for a log line, written after the message as JSON: `{ id: 7, title: "hi" }`. */
export type LogFields = Readonly<Record<string, unknown>>;

/**
 * JSON.stringify's replacer for what JSON has no form of, or one that says nothing: a bigint as its
 * digits (JSON.stringify throws on one), an Error as its name and message (`{}` otherwise), a Map
 * as an object, a Set as an array.
 */
function plain(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (isErrorLike(value)) return `${value.name}: ${value.message}`;
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  return value;
}

/** A value as the JSON a log line holds; never throws, as a log call must not fail a request. */
export function fieldsText(value: unknown): string {
  try {
    return JSON.stringify(value, plain) ?? String(value);
  } catch {
    // A cycle: each object is written once, and met again, `[Circular]` (an object reached
    // twice without a cycle is written once too: this is the fallback, not the usual path).
    const seen = new WeakSet<object>();
    try {
      return JSON.stringify(value, (key, item: unknown) => {
        const shown = plain(key, item);
        if (typeof shown === 'object' && shown !== null) {
          if (seen.has(shown)) return '[Circular]';
          seen.add(shown);
        }
        return shown;
      });
    } catch (error) {
      return `[fields not shown: ${isErrorLike(error) ? error.message : String(error)}]`;
    }
  }
}

/**
 * The category and the text of a `log.<level>(message, categoryOrFields?, fields?)` call. The
 * second argument is a category when it is a string (as before fields were taken), else fields;
 * fields may follow a category. A message that is not a string is written as a field would be.
 */
export function logLine(message: unknown, second?: unknown, third?: unknown): { category: string; text: string } {
  let text = typeof message === 'string' ? message : isErrorLike(message) ? `${message.name}: ${message.message}` : fieldsText(message);
  let category = '';
  if (typeof second === 'string') category = second;
  else if (second !== undefined && second !== null) text += ` ${fieldsText(second)}`;
  if (third !== undefined && third !== null) text += ` ${fieldsText(third)}`;
  return { category, text };
}
