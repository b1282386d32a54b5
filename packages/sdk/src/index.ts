/**
 * `@stratum/sdk`: write a Stratum capsule in JavaScript or TypeScript.
 *
 * A capsule's entry module default-exports a handler; `stratum build` turns it into a
 * WebAssembly component that exports `wasi:http/incoming-handler`. Capabilities come from
 * subpath modules, so that the component imports only the ones the capsule uses:
 * `@stratum/sdk/keyvalue`, `@stratum/sdk/sql`, `@stratum/sdk/bucket`, `@stratum/sdk/config`,
 * `@stratum/sdk/log`. Build tooling (for Node.js, not for capsules) is `@stratum/sdk/build`.
 *
 * @example
 * import type { Capsule } from '@stratum/sdk';
 * export default {
 *   fetch(request) {
 *     return new Response(`hello from ${new URL(request.url).pathname}`);
 *   },
 * } satisfies Capsule;
 */
export interface Capsule {
  /** Answers one HTTP request. One instance serves many requests, one or more at a time. */
  fetch(request: Request): Response | Promise<Response>;
}

/** Identity helper that types a capsule's handler without `satisfies`. */
export function defineCapsule(capsule: Capsule): Capsule {
  return capsule;
}

export { CapabilityError } from './guest/errors.ts';
