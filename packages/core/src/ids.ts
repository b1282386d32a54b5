import { randomBytes } from 'node:crypto';

/** A short random id for requests and operations: 16 bytes of entropy, URL-safe. */
export function newId(prefix = ''): string {
  return prefix + randomBytes(16).toString('base64url');
}

/** Request ids are shorter: they appear on every log line and need only be unique per host. */
export function newRequestId(): string {
  return randomBytes(9).toString('base64url');
}
