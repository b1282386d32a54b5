export {
  DEFAULT_CONTROL_LISTEN,
  DEFAULT_CONTROL_MAX_BODY,
  DEFAULT_INGRESS_LISTEN,
  DEFAULT_METERING_FLUSH_MS,
  HostConfigError,
  type HostConfigProblem,
  hostConfigSchema,
  hostConfigSchemaUrl,
  loadHostConfig,
  parseHostConfig,
} from './parse.ts';
export { type HostConfigTemplate, hostConfigTemplate } from './template.ts';
export type {
  BackendConfig,
  CapabilityBackends,
  CapabilityConfig,
  HostConfig,
  HostLimits,
  InstanceLimits,
  ListenAddress,
  OutboundConfig,
  TrustedRegistrar,
} from './types.ts';
