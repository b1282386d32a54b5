export type {
  CapsuleLogEntry,
  CapsuleState,
  CapsuleStatus,
  HostRuntime,
  InstallRequest,
  LogLevel,
  RequestRecord,
} from './runtime-types.ts';
