/// <reference path="../wit/guest.generated.d.ts" />
import { type Level, log as logImport } from 'wasi:logging/logging@0.1.0-draft';
import { atTopLevel } from './top-level.ts';

export interface CapsuleLog {
  trace(message: string, context?: string): void;
  debug(message: string, context?: string): void;
  info(message: string, context?: string): void;
  warn(message: string, context?: string): void;
  error(message: string, context?: string): void;
  critical(message: string, context?: string): void;
}

const LOUD = new Set<Level>(['warn', 'error', 'critical']);

const at =
  (level: Level) =>
  (message: string, context = ''): void => {
    // No host takes a line while the modules' top-level code runs (a build would trap on the
    // import); the line goes to stdout or stderr instead: the build's output, or stratum dev's log.
    if (atTopLevel()) {
      const line = `${level}${context ? ` ${context}` : ''}: ${message}`;
      if (LOUD.has(level)) console.error(line);
      else console.log(line);
      return;
    }
    logImport(level, context, message);
  };

/**
 * Structured log lines through `wasi:logging`: the host tags them with the capsule, the domain
 * and the request, and streams them to the registrar. (console.log also works; it goes to
 * stdout, which the host captures as plain lines.)
 *
 * @example
 * import { log } from '@stratum/sdk/log';
 * log.info('note created', 'notes');
 */
export const log: CapsuleLog = {
  trace: at('trace'),
  debug: at('debug'),
  info: at('info'),
  warn: at('warn'),
  error: at('error'),
  critical: at('critical'),
};
