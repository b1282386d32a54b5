/**
 * Portable snapshots (spec/snapshot.md) are JSON Lines whose every line goes into a running
 * hash, so every capability's importer splits its input the same way, keeping each line's exact
 * text. Shared here because it is format, not capability.
 */
import { StratumError } from '@stratum/core';

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
export function snapshotInvalid(kind: string, message: string, line: number): StratumError {
  return new StratumError('SNAPSHOT_INVALID', `${kind.toLowerCase()} snapshot line ${line}: ${message}`, {
    hint: `The snapshot is damaged or not a Stratum ${kind} snapshot (spec/snapshot.md); export it again.`,
  });
}
