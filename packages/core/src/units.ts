import { StratumError } from './errors.ts';

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export const SIZE_PATTERN = '^[0-9]+(\\.[0-9]+)?\\s*([kKmMgG][iI]?[bB]|[bB])$';
export const DURATION_PATTERN = '^[0-9]+(\\.[0-9]+)?\\s*(ms|s|m|h)$';

/**
 * Parses a size such as "64mb", "1gib" or "512kb" into bytes. Decimal units (kb, mb, gb) are
 * powers of 1000 and binary units (kib, mib, gib) powers of 1024, as in IEC 80000-13.
 */
export function parseSize(text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)\s*([a-z]+)$/i.exec(text.trim());
  const unit = match?.[2]?.toLowerCase();
  const factor = unit === undefined ? undefined : SIZE_UNITS[unit];
  if (!match?.[1] || factor === undefined) {
    throw new StratumError('INVALID_SIZE', `"${text}" is not a size`, {
      hint: 'Write a number and a unit: b, kb, mb, gb, kib, mib or gib (for example "64mb").',
    });
  }
  return Math.round(Number(match[1]) * factor);
}

/** Parses a duration such as "30s", "250ms", "5m" or "1h" into milliseconds. */
export function parseDuration(text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)\s*([a-z]+)$/i.exec(text.trim());
  const unit = match?.[2]?.toLowerCase();
  const factor = unit === undefined ? undefined : DURATION_UNITS[unit];
  if (!match?.[1] || factor === undefined) {
    throw new StratumError('INVALID_DURATION', `"${text}" is not a duration`, {
      hint: 'Write a number and a unit: ms, s, m or h (for example "30s").',
    });
  }
  return Math.round(Number(match[1]) * factor);
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}
