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
  /**
   * Answers one HTTP request. One instance serves many requests, one or more at a time. The
   * arguments are a Worker's: `env` is empty (capabilities and config come from the SDK's
   * modules), `ctx.waitUntil` keeps work going after the response.
   */
  fetch(request: Request, env: CapsuleEnv, ctx: ExecutionContext): Response | Promise<Response>;
}

/** A Worker's `env`: empty in a capsule, whose capabilities are modules (`@stratum/sdk/keyvalue`, `/config`, ...). */
export type CapsuleEnv = Readonly<Record<string, never>>;

/** The third argument of `fetch`, as in Workers. */
export interface ExecutionContext {
  /**
   * Lets work go on after the response is sent (logging, a cache write): the request ends when
   * `promise` settles, within the capsule's `[resources]` limits; a rejection is logged.
   */
  waitUntil(promise: Promise<unknown>): void;
  /** In Workers, a throw sends the request on to the origin; a capsule has none, so this does nothing. */
  passThroughOnException(): void;
}

/** Identity helper that types a capsule's handler without `satisfies`. */
export function defineCapsule(capsule: Capsule): Capsule {
  return capsule;
}

export { CapabilityError } from './guest/errors.ts';
