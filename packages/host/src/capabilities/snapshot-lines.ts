/**
 * Portable snapshots (spec/snapshot.md) are JSON Lines whose every line goes into a running
 * hash, so every capability's importer splits its input the same way, keeping each line's exact
 * text. Shared here because it is format, not capability.
 */
import { isStratumError, StratumError } from '@stratum/core';

export type SnapshotInput = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

/**
 * The longest line an importer reads: a SQL row holding a blob of about 190 MB, far past any
 * default quota. A stream without line feeds fails here with the line's number, before it
 * holds more, instead of running into V8's largest string (about 512 Mi characters).
 */
export const MAX_SNAPSHOT_LINE = 256 * 1024 * 1024;

/**
 * Splits a byte or text stream into lines, each with its newline, for the hash; `kind` names the
 * snapshot in errors. A line that spans chunks is kept in pieces until its end comes, so a large
 * record (a row with a big blob) is joined once, not copied again with every chunk.
 */
export async function* snapshotLines(input: SnapshotInput, kind: string, maxLine = MAX_SNAPSHOT_LINE): AsyncIterable<string> {
  const decoder = new TextDecoder();
  let pieces: string[] = [];
  let pending = 0;
  let line = 1;
  for await (const chunk of input) {
    const text = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let from = 0;
    for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', from)) {
      pieces.push(text.slice(from, newline + 1));
      yield pieces.length === 1 ? (pieces[0] as string) : pieces.join('');
      pieces = [];
      pending = 0;
      line++;
      from = newline + 1;
    }
    if (from < text.length) {
      pieces.push(text.slice(from));
      pending += text.length - from;
      if (pending > maxLine) throw snapshotInvalid(kind, `longer than ${maxLine} characters, more than any record`, line);
    }
  }
  const rest = pieces.join('') + decoder.decode();
  if (rest !== '') yield rest;
}

/**
 * The error for a damaged snapshot: which kind (as people name it, "key-value", "SQL"), which
 * line, what is wrong.
 */
export function snapshotInvalid(kind: string, message: string, line: number, options: { cause?: unknown } = {}): StratumError {
  return new StratumError('SNAPSHOT_INVALID', `${kind.toLowerCase()} snapshot line ${line}: ${message}`, {
    hint: `The snapshot is damaged or not a Stratum ${kind} snapshot (spec/snapshot.md); export it again.`,
    ...options,
  });
}

/**
 * Hands a snapshot's records to the store. Its checksum is no signature, so a snapshot that
 * verifies may still hold what a store refuses (a table defined twice, a row against its
 * constraints, an object name with ".."): that is the snapshot's fault, said with its line
 * (`lastLine`: the end of a batch that starts at `line`). A quota, or the store failing, passes as it is.
 */
export async function storing<T>(kind: string, line: number, work: () => Promise<T> | T, lastLine = line): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!isStratumError(error) || !error.user || error.code.endsWith('_QUOTA')) throw error;
    const where = lastLine > line ? ` (a record of lines ${line} to ${lastLine})` : '';
    throw snapshotInvalid(kind, `the store refused it${where}: ${error.message}`, line, { cause: error });
  }
}
