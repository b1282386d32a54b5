/**
 * Errors that carry a stable code, so callers (and the CLI) can tell the user's mistakes
 * from the system's and print what went wrong, the details, and how to fix it.
 *
 * @example
 * throw new StratumError('MANIFEST_INVALID', 'stratum.toml is not valid', {
 *   details: ['stratum.toml:3:1: unknown key "nmae"'],
 *   hint: 'Run `stratum validate` for the full list of problems.',
 * });
 */
export interface StratumErrorOptions {
  /** One line per problem, already formatted for a person (for example `file:line:col: message`). */
  details?: readonly string[];
  /** How to fix it, when we know. */
  hint?: string;
  /** True when the user (their input, their config) caused it; false for our own failures. */
  user?: boolean;
  cause?: unknown;
}

export class StratumError extends Error {
  readonly code: string;
  readonly details: readonly string[];
  readonly hint: string | undefined;
  readonly user: boolean;

  constructor(code: string, message: string, options: StratumErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StratumError';
    this.code = code;
    this.details = options.details ?? [];
    this.hint = options.hint;
    this.user = options.user ?? true;
  }
}

export function isStratumError(value: unknown): value is StratumError {
  return value instanceof StratumError;
}

/** A message for any thrown value, without leaking stack traces into user-facing text. */
export function errorMessage(value: unknown): string {
  if (value instanceof Error) return value.message;
  return String(value);
}
