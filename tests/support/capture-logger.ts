import type { Logger } from '@stratum/core';

/** One line a `captureLogger` took: its level, its fields (with the child's bindings) and message. */
export interface LoggedLine {
  level: string;
  fields: Record<string, unknown>;
  message: string | undefined;
}

/** A Logger that keeps every line in `lines`, for a test to look at what a host logged. */
export function captureLogger(lines: LoggedLine[], bindings: Record<string, unknown> = {}): Logger {
  const at =
    (level: string) =>
    (fieldsOrMessage: Record<string, unknown> | string, message?: string): void => {
      if (typeof fieldsOrMessage === 'string') lines.push({ level, fields: { ...bindings }, message: fieldsOrMessage });
      else lines.push({ level, fields: { ...bindings, ...fieldsOrMessage }, message });
    };
  return {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: (more) => captureLogger(lines, { ...bindings, ...more }),
  };
}
