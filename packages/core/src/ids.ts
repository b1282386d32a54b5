import { randomBytes, randomFillSync } from 'node:crypto';

/** A short random id for requests and operations: 16 bytes of entropy, URL-safe. */
export function newId(prefix = ''): string {
  return prefix + randomBytes(16).toString('base64url');
}

const REQUEST_ID_BYTES = 9;
// Every request takes an id on the ingress's hot path; one call into the system's random source
// per request was 2.6% of a host's main thread under load, so ids are cut from a pool.
const pool = Buffer.alloc(REQUEST_ID_BYTES * 512);
let poolOffset = pool.length;

/** Request ids are shorter: they appear on every log line and need only be unique per host. */
export function newRequestId(): string {
  if (poolOffset === pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const id = pool.toString('base64url', poolOffset, poolOffset + REQUEST_ID_BYTES);
  poolOffset += REQUEST_ID_BYTES;
  return id;
}
