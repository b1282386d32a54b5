import { StratumError } from '@stratum/core';
import type { Capability } from '../contract.ts';
import { redact, secretValuesOf } from './redact.ts';

/**
 * `wasi:logging/logging`: a capsule's log calls become lines of its own log (the bounded ring
 * the control API's logs endpoint streams), with level, time and the request id the runtime
 * adds, and the source `wasi:logging` plus the guest's context. Secret config values are
 * masked before a line is kept, so a capsule that logs its own secret does not leak it to
 * whoever reads the logs.
 */
export interface LoggingSettings {
  /** Secret values to mask, longest first. */
  secrets: string[];
  maxMessageBytes: number;
}

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'critical']);
const MAX_MESSAGE_BYTES = 16 * 1024;
const MAX_CONTEXT = 128;

function truncate(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  return `${Buffer.from(text)
    .subarray(0, maxBytes)
    .toString()
    .replace(/\uFFFD+$/, '')}... (truncated)`;
}

const logging: Capability<LoggingSettings> = {
  name: 'logging',
  interfaces: ['wasi:logging/logging'],
  configure(context) {
    if (context.hostConfig !== undefined) {
      throw new StratumError('HOST_CONFIG_INVALID', 'host.toml: logging takes no settings', { hint: 'Remove the [logging] table.' });
    }
    return {
      settings: { secrets: secretValuesOf(context.manifest.capabilities.config, context.config), maxMessageBytes: MAX_MESSAGE_BYTES },
    };
  },
  prepare(context) {
    const { secrets, maxMessageBytes } = context.settings;
    return {
      imports: {
        'wasi:logging/logging': {
          // No result<> in this WIT: it must never throw, or a JSPI request would hang.
          log(level: string, logContext: string, message: string): void {
            try {
              const kept = LEVELS.has(level) ? (level as 'info') : 'info';
              const source = logContext ? `wasi:logging ${redact(String(logContext), secrets).slice(0, MAX_CONTEXT)}` : 'wasi:logging';
              context.log(kept, truncate(redact(String(message), secrets), maxMessageBytes), source);
            } catch (error) {
              context.logger.warn({ err: String(error) }, 'dropping a capsule log line');
            }
          },
        },
      },
    };
  },
};

export default logging;
