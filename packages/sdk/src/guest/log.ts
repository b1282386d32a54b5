/// <reference path="../wit/guest.generated.d.ts" />
import { type Level, log as logImport } from 'wasi:logging/logging@0.1.0-draft';

export interface CapsuleLog {
  trace(message: string, context?: string): void;
  debug(message: string, context?: string): void;
  info(message: string, context?: string): void;
  warn(message: string, context?: string): void;
  error(message: string, context?: string): void;
  critical(message: string, context?: string): void;
}

const at =
  (level: Level) =>
  (message: string, context = ''): void =>
    logImport(level, context, message);

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
