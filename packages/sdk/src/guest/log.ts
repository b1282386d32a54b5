/// <reference path="../wit/guest.generated.d.ts" />
import { type Level, log as logImport } from 'wasi:logging/logging@0.1.0-draft';
import { type LogFields, logLine } from './log-line.ts';
import { atTopLevel } from './top-level.ts';

export type { LogFields };

/**
 * One level's logging call. `category` is a short name the host shows as the line's source
 * (`wasi:logging notes`); `fields` go after the message as JSON.
 */
export interface LogMethod {
  (message: string, categoryOrFields?: string | LogFields): void;
  (message: string, category: string, fields?: LogFields): void;
}

export interface CapsuleLog {
  trace: LogMethod;
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  critical: LogMethod;
}

const LOUD = new Set<Level>(['warn', 'error', 'critical']);

const at =
  (level: Level): LogMethod =>
  (message: string, second?: string | LogFields, third?: LogFields): void => {
    const { category, text } = logLine(message, second, third);
    // No host takes a line while the modules' top-level code runs (a build would trap on the
    // import); the line goes to stdout or stderr instead: the build's output, or stratum dev's log.
    if (atTopLevel()) {
      const line = `${level}${category ? ` ${category}` : ''}: ${text}`;
      if (LOUD.has(level)) console.error(line);
      else console.log(line);
      return;
    }
    logImport(level, category, text);
  };

/**
 * Structured log lines through `wasi:logging`: the host tags them with the capsule, the domain
 * and the request, and streams them to the registrar. (console.log also works; it goes to
 * stdout, which the host captures as plain lines.) Needs no grant.
 *
 * @example
 * import { log } from '@stratum/sdk/log';
 * log.info('note created', { id, title });          // note created {"id":7,"title":"hi"}
 * log.warn('slow query', 'notes', { ms: 120 });      // source: wasi:logging notes
 * log.info('note created', 'notes');                 // a category alone, as before
 */
export const log: CapsuleLog = {
  trace: at('trace'),
  debug: at('debug'),
  info: at('info'),
  warn: at('warn'),
  error: at('error'),
  critical: at('critical'),
};
