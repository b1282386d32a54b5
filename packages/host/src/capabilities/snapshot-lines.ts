/**
 * Portable snapshots (spec/snapshot.md) are JSON Lines whose every line goes into a running
 * hash, so every capability's importer splits its input the same way, keeping each line's exact
 * text. Shared here because it is format, not capability.
 */
import { isStratumError, StratumError } from '@stratum/core';

export type SnapshotInput = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

/** Splits a byte or text stream into lines, each with its newline, for the hash. */
export async function* snapshotLines(input: SnapshotInput): AsyncIterable<string> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of input) {
    pending += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      yield pending.slice(0, newline + 1);
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
    }
  }
  pending += decoder.decode();
  if (pending !== '') yield pending;
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
