import { errorMessage, formatDuration, isStratumError } from '@stratum/core';
import type { CapsuleLogEntry, RequestRecord } from '@stratum/host';
import { paint, printable } from '../command.ts';

/** A request's wait for an instance from this long is shown beside its time. */
const QUEUED_SHOWN_MS = 10;

type Stream = NodeJS.WritableStream & { isTTY?: boolean };

/** What one capsule looks like once it serves, for the banner and the `ready` event. */
export interface ServedCapsule {
  name: string;
  version: string;
  dir: string;
  urls: string[];
  capabilities: { grant: string; backend: string }[];
  /** The manifest's config variables, as the version serving has them; secrets without their values. */
  config: ShownVariable[];
  /** The project's `.env`, when dev reads it for config values (no --var-file was given). */
  varFile?: string;
  stateDir: string;
}

export interface ShownVariable {
  name: string;
  secret: boolean;
  /** `given` (by `from`), the manifest's `default`, `unset` (optional, without one) or `missing` (required, without one). */
  value: 'given' | 'default' | 'unset' | 'missing';
  /** The value, for a variable that is not a secret and has one. */
  text?: string;
  /** Where a given value came from: `--var`, or the file it was read from. */
  from?: string;
}

/** Values are shown for what they are, not whole: a line of the banner each. */
const SHOWN_VALUE_CHARS = 40;

/**
 * How a version came to be: `bundle`, re-bundled and run on the dev engine already built for its
 * imports (the fast path); `engine`, re-bundled with a new dev engine built for changed imports;
 * `component`, a full production build (`--full-build`); `cached`, a full build found in
 * `.stratum/build/`; `prebuilt`, a component the project ships (no sources).
 */
export type BuildKind = 'bundle' | 'engine' | 'component' | 'cached' | 'prebuilt';

export interface SwapDetails {
  version: string;
  /** The component's digest (for a dev build, the engine's, the same from save to save). */
  digest: string;
  /** For a dev build: the bundle's digest, `sha256:<hex>`, which changes on every save. */
  bundle?: string;
  /** For a dev build: what its engine serves (`keyvalue, sql`). */
  engine?: string;
  build: BuildKind;
  buildMs: number;
  swapMs: number;
  first: boolean;
}

/**
 * How a version is named in messages: a dev build by its bundle (its engine is the same from
 * save to save), anything else by its component.
 */
export function versionId(version: { digest: string; bundle?: string | undefined }): string {
  return version.bundle ? `bundle ${version.bundle.slice(7, 19)}` : version.digest.slice(0, 19);
}

const CAPSULE_COLOURS = [36, 35, 34, 33, 32];
const LEVEL_COLOURS: Readonly<Record<string, number>> = { trace: 2, debug: 2, info: 0, warn: 33, error: 31, critical: 31 };

const clock = (time: Date = new Date()) => time.toTimeString().slice(0, 8);

/**
 * Everything `stratum dev` tells the user, as text for a terminal (coloured only on a TTY, and
 * never with NO_COLOR) or as one JSON object per line with `--json`.
 */
export class DevOutput {
  readonly #out: Stream;
  readonly #json: boolean;
  readonly #watching: boolean;
  readonly #colours = new Map<string, number>();
  #width = 8;

  /** `watching`: whether a save rebuilds (not with --no-watch), which decides what a failure tells the user to do. */
  constructor(out: Stream, options: { json: boolean; watching?: boolean }) {
    this.#out = out;
    this.#json = options.json;
    this.#watching = options.watching ?? true;
  }

  /** Names are padded to the longest, so that columns line up with several capsules. */
  setCapsules(names: readonly string[]): void {
    this.#width = Math.max(...names.map((name) => name.length), 1);
    for (const name of names)
      if (!this.#colours.has(name)) this.#colours.set(name, CAPSULE_COLOURS[this.#colours.size % CAPSULE_COLOURS.length] ?? 36);
  }

  #paint(code: number, text: string): string {
    return code === 0 ? text : paint(this.#out, code, text);
  }

  #capsule(name: string): string {
    return this.#paint(this.#colours.get(name) ?? 36, name.padEnd(this.#width));
  }

  #event(type: string, fields: Record<string, unknown>): void {
    this.#out.write(`${JSON.stringify({ type, time: new Date().toISOString(), ...fields })}\n`);
  }

  #line(text: string): void {
    this.#out.write(`${text}\n`);
  }

  ready(capsules: readonly ServedCapsule[], options: { watching: boolean; port: number }): void {
    if (this.#json) {
      this.#event('ready', { port: options.port, watching: options.watching, capsules });
      return;
    }
    const lines: string[] = [''];
    for (const capsule of capsules) {
      lines.push(`  ${this.#paint(1, capsule.name)} ${this.#paint(2, capsule.version)}  ${this.#paint(2, capsule.dir)}`);
      for (const url of capsule.urls) lines.push(`  ${this.#paint(32, '➜')}  ${this.#paint(1, url)}`);
      const width = Math.max(0, ...capsule.capabilities.map((item) => item.grant.length));
      if (capsule.capabilities.length === 0) lines.push(`     capabilities  ${this.#paint(2, 'none (HTTP in only)')}`);
      capsule.capabilities.forEach((item, index) => {
        lines.push(
          `     ${index === 0 ? 'capabilities' : '            '}  ${item.grant.padEnd(width)}  ${this.#paint(2, `→ ${item.backend}`)}`,
        );
      });
      const nameWidth = Math.max(0, ...capsule.config.map((variable) => variable.name.length));
      capsule.config.forEach((variable, index) => {
        lines.push(
          `     ${index === 0 ? 'config      ' : '            '}  ${variable.name.padEnd(nameWidth)}  ${this.#paint(2, this.#shownValue(variable))}`,
        );
      });
      if (capsule.varFile !== undefined)
        lines.push(
          `     values from   ${capsule.varFile} ${this.#paint(2, '(name=value lines, as --var-file; read again when it changes)')}`,
        );
      lines.push(`     state         ${this.#paint(2, capsule.stateDir)}`, '');
    }
    lines.push(
      this.#paint(
        2,
        options.watching ? '  watching for changes · Ctrl-C to stop' : '  not watching for changes (--no-watch) · Ctrl-C to stop',
      ),
      '',
    );
    this.#line(lines.join('\n'));
  }

  #shownValue(variable: ShownVariable): string {
    const from = variable.from ? ` ← ${variable.from}` : '';
    if (variable.value === 'unset') return 'not set';
    if (variable.value === 'missing') return `required, no value${variable.secret ? ' (a secret)' : ''}`;
    if (variable.secret) return `secret, ${variable.value === 'default' ? 'default' : 'set'}${from}`;
    const text = variable.text ?? '';
    const shown = JSON.stringify(text.length > SHOWN_VALUE_CHARS ? `${text.slice(0, SHOWN_VALUE_CHARS)}…` : text);
    return `${printable(this.#out, shown)}${variable.value === 'default' ? ' (default)' : from}`;
  }

  building(capsule: string, reason: string): void {
    if (this.#json) this.#event('building', { capsule, reason });
    else this.#line(`${this.#paint(2, clock())} ${this.#capsule(capsule)}  ${this.#paint(2, `… ${reason}`)}`);
  }

  /** A build (or reload) that is now serving. */
  swapped(capsule: string, details: SwapDetails): void {
    if (this.#json) {
      this.#event(details.first ? 'started' : 'reloaded', { capsule, ...details });
      return;
    }
    const built = `${details.first ? 'built' : 'rebuilt'} in ${formatDuration(details.buildMs)}`;
    const what: Record<BuildKind, string> = {
      bundle: `${built}: bundle only, dev engine for ${details.engine ?? 'it'} reused`,
      engine: `${built}: bundle and a new dev engine for ${details.engine ?? 'it'}`,
      component: `${built}: full build`,
      cached: 'build unchanged',
      prebuilt: 'prebuilt component',
    };
    const id = versionId(details);
    const verb = details.first ? 'serving' : 'reloaded';
    this.#line(
      `${this.#paint(2, clock())} ${this.#capsule(capsule)}  ${this.#paint(32, `✓ ${verb}`)} ${details.version} ${this.#paint(2, `(${what[details.build]}; ${details.first ? 'started' : 'swapped'} in ${formatDuration(details.swapMs)}; ${id})`)}`,
    );
  }

  /** A build, manifest or install error: what went wrong, the details, how to fix it. */
  failed(capsule: string, error: unknown, keptServing: string | undefined): void {
    const stratum = isStratumError(error) ? error : undefined;
    if (this.#json) {
      this.#event('error', {
        capsule,
        code: stratum?.code ?? 'INTERNAL',
        message: errorMessage(error),
        details: stratum?.details ?? [],
        ...(stratum?.hint ? { hint: stratum.hint } : {}),
        ...(keptServing ? { serving: keptServing } : {}),
      });
      return;
    }
    const lines = [`${this.#paint(2, clock())} ${this.#capsule(capsule)}  ${this.#paint(31, '✗ error:')} ${errorMessage(error)}`];
    for (const detail of stratum?.details ?? []) lines.push(`    ${detail}`);
    if (stratum?.hint) lines.push(`    ${this.#paint(36, 'hint:')} ${stratum.hint}`);
    const next = keptServing
      ? `still serving the last good version (${keptServing}); fix it and save to reload`
      : this.#watching
        ? 'nothing is served yet; fix it and save to retry'
        : 'nothing is served; fix it and run stratum dev again';
    lines.push(`    ${this.#paint(33, next)}`);
    this.#line(lines.join('\n'));
  }

  request(record: RequestRecord): void {
    if (this.#json) {
      this.#event('request', { ...record });
      return;
    }
    const status = record.status;
    const statusColour = status >= 500 ? 31 : status >= 400 ? 33 : status >= 300 ? 36 : 32;
    // A wait for an instance (requests that sleep or stream hold theirs) is the client's wait
    // too: shown, so that a request logged as quick is not one that was slow to answer.
    const queued = record.queuedMs ?? 0;
    const time =
      queued >= QUEUED_SHOWN_MS
        ? `${formatDuration(record.wallMs)} (waited ${formatDuration(queued)} for an instance)`
        : formatDuration(record.wallMs);
    let line = `${this.#paint(2, clock())} ${this.#capsule(record.capsule)}  ${record.method.padEnd(6)} ${record.path} ${this.#paint(statusColour, String(status))} ${this.#paint(2, time)}`;
    if (record.limit !== undefined) line += ` ${this.#paint(41, ` limit: ${record.limit} `)}`;
    this.#line(line);
  }

  /** A request no `[http] route` serves: answered 404 before the capsule (DevCapsule.handleRequest). */
  unrouted(request: { capsule: string; method: string; path: string; routes: readonly string[] }): void {
    if (this.#json) {
      this.#event('unrouted', { ...request, status: 404 });
      return;
    }
    this.#line(
      `${this.#paint(2, clock())} ${this.#capsule(request.capsule)}  ${request.method.padEnd(6)} ${request.path} ${this.#paint(33, '404')} ${this.#paint(2, `no [http] route matches (${request.routes.join(', ')})`)}`,
    );
  }

  log(entry: CapsuleLogEntry): void {
    if (this.#json) {
      this.#event('log', { ...entry });
      return;
    }
    const limitHit = entry.message.startsWith('limit hit');
    const colour = limitHit ? 41 : entry.source === 'host' && entry.level === 'info' ? 2 : (LEVEL_COLOURS[entry.level] ?? 0);
    // The capsule's stdout and stderr say so; wasi:logging lines carry their level instead, and
    // the category the capsule gave (`wasi:logging pastes`), which sorts its lines as `host logs` shows.
    const logging = /^wasi:logging(?: (.*))?$/s.exec(entry.source);
    const from = logging ? entry.level : entry.source;
    const category = logging?.[1] ? `${printable(this.#out, logging[1])}: ` : '';
    const prefix = `${this.#paint(2, clock(new Date(entry.time)))} ${this.#capsule(entry.capsule)}  ${this.#paint(2, `│ ${from}`)}`;
    // A message of several lines (an uncaught error and its frames) is a terminal line each.
    for (const line of entry.message.split('\n'))
      this.#line(`${prefix} ${this.#paint(colour, `${category}${printable(this.#out, line)}`)}`);
  }

  notice(message: string, capsule?: string): void {
    if (this.#json) this.#event('notice', { message, ...(capsule ? { capsule } : {}) });
    else this.#line(`${this.#paint(2, clock())} ${capsule ? `${this.#capsule(capsule)}  ` : ''}${this.#paint(2, message)}`);
  }

  stopped(stateDirs: readonly string[]): void {
    if (this.#json) this.#event('stopped', { state: stateDirs });
    else this.#line(`${this.#paint(2, clock())} stopped; state kept in ${stateDirs.join(', ')}`);
  }
}
