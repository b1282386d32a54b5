/**
 * `@stratum/sdk/build`: the Node.js side of the SDK, behind `stratum build` and `stratum init`.
 */
export {
  type BuildOptions,
  type BuildResult,
  type BuildStep,
  buildCapsule,
  buildDevCapsule,
  componentInterfaces,
  DEFAULT_ENTRIES,
  type DevBuildOptions,
  type DevBuildResult,
  type DevEngine,
  devEngine,
  INCOMING_HANDLER,
  locateDevEngine,
  WASI_HTTP_VERSION,
} from './build.ts';
export { DEV_SOURCE_INTERFACE, describeImportSet, devEngineCacheDir, devEngineSource } from './dev-engine.ts';
export { linkSdkForEditors, PROJECT_TSCONFIG, sdkPackageDir } from './editor-types.ts';
export { declaredProbes, ENGINE_LIBS, engineTypesFile, libraryFiles, type Probe, typescriptLibDir } from './engine-types.ts';
export { checkImports, type Grant, grantFor, type ImportCheck, unversioned } from './grants.ts';
export { capsuleNameFrom, type InitOptions, type InitResult, initCapsule, TEMPLATES, type TemplateName, templatesDir } from './init.ts';
export { runToolchain, TOOLCHAIN_TIMEOUT_MS } from './toolchain.ts';
