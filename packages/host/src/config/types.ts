import type { Ed25519PublicJwk } from '@stratum/core';

/** A listen address, split. `port` 0 asks the OS for a free one. */
export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * Caps on every capsule, from `[limits]`. A limit left out leaves the manifest's resource
 * class in force; one given is the most any capsule gets, whatever its manifest asks for.
 */
export interface HostLimits {
  memoryBytes?: number;
  cpuMsPerRequest?: number;
  timeoutMs?: number;
  concurrency?: number;
  queue?: number;
  requestBodyBytes?: number;
  responseBodyBytes?: number;
  outboundRequests?: number;
  /** Lines a second one instance may write to its capsule's log, after a burst of four seconds' worth. */
  logLinesPerSecond?: number;
  /** How long a capsule's last instance may stay idle before it is retired; 0 keeps it. */
  idleMs?: number;
}

/** `[instances]`: what all capsules together may run. Left out, the runtime's defaults apply. */
export interface InstanceLimits {
  /** Instances (threads) all capsules together may run at once. */
  max?: number;
  /** Instances one capsule may run while its requests wait on a backend, outbound HTTP or a timer. */
  waitingPerCapsule?: number;
}

/** A registrar this host obeys: its name (the operator's) and its Ed25519 public key. */
export interface TrustedRegistrar {
  name: string;
  /** With `kid` set to the key's RFC 7638 thumbprint, which control requests name. */
  key: Ed25519PublicJwk & { kid: string };
  /** Its domain name, lower-case, as the `registrar=` of the domain links it publishes names it. */
  domain?: string;
  description?: string;
  /**
   * The host operator's own key: it drives every installation, whichever registrar made it, and
   * reads the usage ledger. Any other registrar sees only the installations it made.
   */
  operator?: true;
}

/** `[discovery]`: checking domain links before serving (spec/discovery.md section 5.3). */
export interface DiscoveryConfig {
  verifyLinks: boolean;
  /** The DNS server to ask, `ip:port`; the system's resolvers when left out. */
  resolver?: string;
  /** How often the links of the domains served are checked again. */
  recheckMs: number;
}

/**
 * One capability label's backend as written in host.toml: `type` picks the implementation, and
 * the other keys are that backend's own settings, which the capability's configure step checks.
 */
export interface BackendConfig {
  type: string;
  [setting: string]: unknown;
}

export type CapabilityBackends = Record<'keyvalue' | 'sql' | 'bucket', Record<string, BackendConfig>>;

/** `[outbound]` as written (snake_case keys), for the outbound capability to read. */
export interface OutboundConfig {
  allow_addresses?: string[];
  max_response_size?: string;
  timeout?: string;
}

/** Each capability's section of host.toml, by capability name: the runtime's `capabilityConfig`. */
export type CapabilityConfig = CapabilityBackends & { outbound?: OutboundConfig };

/** host.toml after validation: paths absolute, sizes in bytes, times in ms. */
export interface HostConfig {
  /** The file it was read from, as given. */
  file: string;
  /** The host's DNS name: the audience of every control request. */
  name: string;
  keyFile: string;
  dataDir: string;
  ingress: {
    listen: ListenAddress;
    /** CIDR ranges of the proxies whose X-Forwarded-Proto gives a request's scheme. */
    trustedProxies: string[];
    /** Client connections held at once; the default comes from the process's open-file limit. */
    maxConnections?: number;
    /** Client connections one client address holds at once; the default is 512. */
    maxConnectionsPerClient?: number;
  };
  control: {
    listen: ListenAddress;
    tls?: { certFile: string; keyFile: string };
    maxBodyBytes: number;
    /** The largest state snapshot one import takes (`[control] max_state_body`). */
    maxStateBytes: number;
  };
  limits: HostLimits;
  instances: InstanceLimits;
  metering: { flushIntervalMs: number };
  discovery: DiscoveryConfig;
  registrars: TrustedRegistrar[];
  capabilities: CapabilityConfig;
  /**
   * Where each capability table and its keys are written (`keyvalue.default`,
   * `keyvalue.default.url`), as `line:column`: the capabilities check those tables' settings
   * when the host starts, after the file is gone, and their errors name the place too.
   */
  capabilityPositions?: Readonly<Record<string, string>>;
}
