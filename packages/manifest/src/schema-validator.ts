import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';

/**
 * A validator for one of Stratum's own JSON Schemas (the manifest, host.toml), compiled on first
 * use. It returns the schema's errors for `value`, none when it is valid.
 *
 * Compiling is the cost: importing a module that compiled its schema eagerly took most of the
 * 300 ms that importing this package once cost, and a fresh host paid it again for host.toml.
 * The schemas are ours and never change at run time, so they are not checked against the JSON
 * Schema meta-schema here (`validateSchema: false`: compiling the meta-schema was more than half
 * of each compile); `schema.test.ts` checks each of them against it instead.
 *
 * @example
 * const errorsOf = schemaValidator(manifestSchema);
 * for (const error of errorsOf(parsedToml)) console.log(error.instancePath, error.message);
 */
export function schemaValidator(schema: Record<string, unknown>): (value: unknown) => ErrorObject[] {
  let compiled: ValidateFunction | undefined;
  return (value) => {
    compiled ??= new Ajv2020({
      allErrors: true,
      verbose: true,
      strict: true,
      strictRequired: false,
      unicodeRegExp: true,
      validateSchema: false,
    }).compile(schema);
    return compiled(value) ? [] : (compiled.errors ?? []);
  };
}
