export { resolveConfig } from './capabilities/config/index.ts';
export {
  CAPABILITY_MODULES,
  type Capability,
  type CapabilityModule,
  type CapabilityPlan,
  type ConfigureContext,
  type ImportObjects,
  type PrepareContext,
  type PreparedCapability,
  type RequestScope,
  WitError,
} from './capabilities/index.ts';
export { specialAddress } from './capabilities/outbound/policy.ts';
export * from './config/index.ts';
export * from './control/index.ts';
export * from './metering/index.ts';
export { missingHostEnv, processLibc, RECOMMENDED_HOST_ENV } from './process-environment.ts';
export {
  createHostRuntime,
  type HostRuntimeOptions,
  hostName,
  type PipelineOptions,
  type RuntimeLimits,
  type RuntimeStats,
  type StratumHostRuntime,
  toOriginForm,
} from './runtime.ts';
export type {
  CapsuleLogEntry,
  CapsuleState,
  CapsuleStatus,
  HostRuntime,
  InstallRequest,
  LogLevel,
  RequestRecord,
  StartOptions,
} from './runtime-types.ts';
export { capMemory } from './wasm-memory.ts';
