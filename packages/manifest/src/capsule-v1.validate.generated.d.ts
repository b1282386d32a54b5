// Generated from spec/capsule/capsule-v1.schema.json by scripts/generate-types.ts with ajv's standalone code. Do not edit: run `npm run generate`.
import type { ErrorObject } from 'ajv/dist/2020.js';

/** True when the value is valid; otherwise `validate.errors` lists why. */
export declare const validate: { (value: unknown): boolean; errors?: ErrorObject[] | null };
export default validate;
