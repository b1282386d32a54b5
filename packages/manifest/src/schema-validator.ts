import type { ErrorObject } from 'ajv/dist/2020.js';

/** A validator compiled ahead of time from one of Stratum's JSON Schemas (`npm run generate`). */
export interface GeneratedValidator {
  (value: unknown): boolean;
  errors?: ErrorObject[] | null;
}

/**
 * The errors a generated validator finds in `value`, none when it is valid.
 *
 * The validators are ajv's standalone code, generated from the schemas under `spec/` by
 * scripts/generate-types.ts and checked to be current by a test: compiling a schema with ajv at
 * run time cost every process that read a manifest or a host.toml about 65 ms per schema, plus
 * about 50 ms to load ajv, and the schemas never change at run time.
 *
 * @example
 * import { validate } from './capsule-v1.validate.generated.js';
 * for (const error of schemaErrors(validate, parsedToml)) console.log(error.instancePath, error.message);
 */
export function schemaErrors(validate: GeneratedValidator, value: unknown): ErrorObject[] {
  return validate(value) ? [] : (validate.errors ?? []);
}

/**
 * For a number written where the schema wants a duration or a size string (`timeout = 30`,
 * `memory = 64`), what to write instead (`; write it with its unit, such as timeout = "30s"`);
 * empty for any other error. Both schemas name these `$defs/duration` and `$defs/size`.
 */
export function unitHint(error: ErrorObject, where: string): string {
  if (error.keyword !== 'type' || typeof error.data !== 'number') return '';
  const unit = error.schemaPath.endsWith('/duration/type') ? 's' : error.schemaPath.endsWith('/size/type') ? 'mib' : undefined;
  return unit === undefined ? '' : `; write it with its unit, such as ${where.split('.').at(-1)} = "${error.data}${unit}"`;
}
