export {
  AUTH_SCHEME,
  type AuthFailure,
  bodyHash,
  ControlAuthError,
  createRequestVerifier,
  MAX_TOKEN_LIFETIME_SECONDS,
  NonceStore,
  type SignRequestOptions,
  signControlRequest,
  TOKEN_TYPE,
} from './auth.ts';
export {
  type CallOptions,
  ControlApiError,
  type ControlClient,
  type ControlClientOptions,
  createControlClient,
  type HostIdentity,
  type InstallationStatus,
  type InstallOptions,
  type KeptData,
  type LinkCheck,
  type UsageResponse,
} from './client.ts';
export {
  createConfiguredRuntime,
  type RunningHost,
  type RuntimeContext,
  type RuntimeFactory,
  registryPuller,
  type StartHostOptions,
  startHost,
} from './host.ts';
export { type Installation, InstallationStore } from './installations.ts';
export { type MoveOptions, type MoveResult, type MoveStep, moveCapsule, retainedStores } from './move.ts';
export { CONTROL_API_VERSION, CONTROL_BASE_PATH, createControlHandler, type InstallBody, type PullComponent } from './server.ts';
export { type StoreLabels, type StoreRef, storeName, storesBesides, storesOf } from './stores.ts';
