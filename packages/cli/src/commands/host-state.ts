// `stratum host export` and `host import`: one store of a capsule to a snapshot file and back
// (spec/snapshot.md, spec/host-api.md section 5.11), for backups and for moves made by hand.
import { createWriteStream, openAsBlob } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatBytes, isStratumError, StratumError } from '@stratum/core';
import { booleanOption, type Command, counted, EXIT_OK, type ParsedArgs, paint, stringOption, usageError } from '../command.ts';
import { CONTROL_HELP, CONTROL_OPTIONS, CONTROL_USAGE, connectControl, nextCommand } from '../control-connection.ts';

const STORE_KINDS = ['keyvalue', 'sql', 'bucket'];

/** `keyvalue/default` into its two parts, refusing anything else with the form it takes. */
function storeOf(args: ParsedArgs, command: string): { capsule: string; capability: string; label: string } {
  const [capsule, store] = args.positionals;
  if (!capsule || !store) {
    throw usageError(
      `say which capsule and which store: stratum ${command} <capsule> <capability>/<label>`,
      "A store is one of the manifest's grants, such as keyvalue/default or sql/main; run with --help for more.",
    );
  }
  const [capability, label, ...rest] = store.split('/');
  if (!capability || !label || rest.length > 0 || !STORE_KINDS.includes(capability)) {
    throw usageError(
      `"${store}" is not a store: give <capability>/<label>, with a capability of ${STORE_KINDS.join(', ')}`,
      'For example keyvalue/default.',
    );
  }
  return { capsule, capability, label };
}

/** The trailer's record count (spec/snapshot.md section 2): the last line of what was written. */
function trailerRecords(tail: string): number | undefined {
  const last = tail.trimEnd().split('\n').at(-1);
  try {
    const records = (JSON.parse(last ?? '') as { end?: { records?: unknown } }).end?.records;
    return typeof records === 'number' ? records : undefined;
  } catch {
    return undefined;
  }
}

export const hostExportCommand: Command = {
  name: 'host export',
  summary: "write one of a capsule's stores to a snapshot file: a backup, or the first half of a move by hand",
  usage: `host export <capsule> <capability>/<label> [--out <file>] ${CONTROL_USAGE} [--json]`,
  description: `
Streams the store's state (keyvalue, sql or bucket, under one of the labels the capsule's
manifest grants) from the host into a portable snapshot (spec/snapshot.md): JSON lines that
any Stratum host imports into any backend. The file is written under a temporary name and
renamed when complete, so a file of that name is always a whole snapshot.

A capsule that is serving may change its store while it is read: drain it first
(\`stratum host drain\`) for a copy of one moment.

${CONTROL_HELP}

With --out -, the snapshot goes to standard output (to compress it, or to send it elsewhere),
and what is said of it to standard error.

Examples:
  stratum host export counter keyvalue/default --config host.toml
  stratum host export shop sql/main --out shop-main.jsonl --config host.toml
  stratum host export shop bucket/images --out - --config host.toml | gzip > shop-images.jsonl.gz`,
  maxPositionals: 2,
  options: {
    out: {
      type: 'string',
      short: 'o',
      value: 'file',
      description: 'where to write it, - for standard output (default: <capsule>-<capability>-<label>.jsonl here)',
    },
    ...CONTROL_OPTIONS,
    json: { type: 'boolean', description: 'print what was written as JSON (not with --out -, where the snapshot goes)' },
  },
  async run(args, io) {
    const { capsule, capability, label } = storeOf(args, 'host export');
    const out = stringOption(args, 'out') ?? `${capsule}-${capability}-${label}.jsonl`;
    const json = booleanOption(args, 'json');
    if (json && out === '-') throw usageError('--json and --out - both write to standard output: give --out <file> with --json');
    const { client } = await connectControl(args);
    // The export first: a store the manifest does not grant (or no such capsule) is said alone,
    // not after a note about a capsule that is serving.
    const stream = await client.exportState(capsule, capability, label);
    const status = await client.capsule(capsule).catch(() => undefined);
    if (status?.state === 'running') {
      io.stderr.write(
        `${paint(io.stderr, 33, 'note:')} ${capsule} is serving; the snapshot may mix writes made while it is read (drain it for a copy of one moment)\n`,
      );
    }
    const toStdout = out === '-';
    const partial = `${out}.partial`;
    // Counts what came (said every few seconds on a long export) and keeps the end, for the trailer.
    let bytes = 0;
    let tail = '';
    const watch = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        bytes += chunk.byteLength;
        tail = (tail + chunk.toString('latin1')).slice(-4096);
        done(null, chunk);
      },
    });
    const ticker = setInterval(() => io.stderr.write(`exporting ${capability}/${label}: ${formatBytes(bytes)} so far\n`), 3000);
    try {
      if (toStdout) await pipeline(stream, watch, io.stdout, { end: false });
      // A customer's data: readable by the operator alone, as the host keeps its installations.
      else await pipeline(stream, watch, createWriteStream(partial, { mode: 0o600 }));
    } catch (error) {
      if (!toStdout) await rm(partial, { force: true });
      throw error;
    } finally {
      clearInterval(ticker);
    }
    const records = trailerRecords(tail);
    if (records === undefined) {
      if (!toStdout) await rm(partial, { force: true });
      throw usageError(`the host's snapshot of ${capability}/${label} ended without its trailer: it was cut short`, 'Export it again.');
    }
    if (toStdout) {
      io.stderr.write(
        `${paint(io.stderr, 32, 'exported')} ${capsule}'s ${capability}/${label}: ${counted(records, 'record')}, ${formatBytes(bytes)}\n`,
      );
      return EXIT_OK;
    }
    await rename(partial, out);
    const { size } = await stat(out);
    if (json) {
      io.stdout.write(`${JSON.stringify({ capsule, capability, label, records, bytes: size, file: out }, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stdout.write(
      `${paint(io.stdout, 32, 'exported')} ${capsule}'s ${capability}/${label}: ${counted(records, 'record')}, ${formatBytes(size)} to ${out}\n`,
    );
    io.stdout.write(
      `restore it with \`${nextCommand(args, ['host', 'import', capsule, `${capability}/${label}`, out])}\` on a stopped capsule\n`,
    );
    return EXIT_OK;
  },
};

export const hostImportCommand: Command = {
  name: 'host import',
  summary: "replace one of a stopped capsule's stores with a snapshot file",
  usage: `host import <capsule> <capability>/<label> <file> ${CONTROL_USAGE} [--json]`,
  description: `
Replaces the store's whole state with the snapshot's (spec/snapshot.md), whatever backend the
host binds the label to. The capsule must not be serving: install it with --no-start, or stop
or drain it, then \`stratum host serve\` it after. The file is read twice, to hash it for the
signature and to send it, and never held whole, so a snapshot of gigabytes goes as one of
kilobytes does (up to the host's [control] max_state_body, 4 GiB by default). The host checks
it before it changes anything and refuses a damaged or forged one, naming its line.

${CONTROL_HELP}

Example:
  stratum host drain counter --config host.toml
  stratum host import counter keyvalue/default counter-keyvalue-default.jsonl --config host.toml
  stratum host serve counter --config host.toml`,
  maxPositionals: 3,
  options: { ...CONTROL_OPTIONS, json: { type: 'boolean', description: "print the host's answer as JSON" } },
  async run(args, io) {
    const { capsule, capability, label } = storeOf(args, 'host import');
    const file = args.positionals[2];
    if (!file) throw usageError(`say which snapshot file: stratum host import ${capsule} ${capability}/${label} <file>`);
    const snapshot = await openAsBlob(file).catch((error: NodeJS.ErrnoException) => {
      throw usageError(
        `cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`,
        'Give a file `stratum host export` wrote.',
      );
    });
    const { client } = await connectControl(args);
    io.stderr.write(`sending ${formatBytes(snapshot.size)} to ${capsule}'s ${capability}/${label}\n`);
    const result = await client.importState(capsule, capability, label, snapshot).catch((error: unknown) => {
      // The host's hint speaks the API ("start": false); this user types commands.
      if (!isStratumError(error) || error.code !== 'CAPSULE_RUNNING') throw error;
      throw new StratumError(error.code, error.message, {
        details: error.details,
        hint: `Take it out of service first: \`${nextCommand(args, ['host', 'drain', capsule])}\`, import, then \`${nextCommand(args, ['host', 'serve', capsule])}\`.`,
      });
    });
    if (booleanOption(args, 'json')) {
      io.stdout.write(`${JSON.stringify({ capsule, ...result }, null, 2)}\n`);
      return EXIT_OK;
    }
    // A skipped record is a key that expired on the way, not a fault, but it is not there: say so.
    const skipped = result.skipped > 0 ? `, ${counted(result.skipped, 'expired key')} skipped` : '';
    io.stdout.write(
      `${paint(io.stdout, 32, 'imported')} ${counted(result.records, 'record')} into ${capsule}'s ${capability}/${label}${skipped}\n`,
    );
    return EXIT_OK;
  },
};
