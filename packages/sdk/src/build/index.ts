/**
 * `@stratum/sdk/build`: the Node.js side of the SDK, behind `stratum build` and `stratum init`.
 */
export {
  type BuildOptions,
  type BuildResult,
  type BuildStep,
  buildCapsule,
  componentInterfaces,
  DEFAULT_ENTRIES,
  INCOMING_HANDLER,
  WASI_HTTP_VERSION,
} from './build.ts';
export { checkImports, type Grant, grantFor, type ImportCheck, unversioned } from './grants.ts';
export { capsuleNameFrom, type InitOptions, type InitResult, initCapsule, TEMPLATES, type TemplateName, templatesDir } from './init.ts';
export { runToolchain } from './toolchain.ts';
