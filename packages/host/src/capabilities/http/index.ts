import { httpTypes } from '../../wasi/http-types.ts';
import type { Capability } from '../contract.ts';

/**
 * Inbound HTTP: `wasi:http/types`, over which the runtime's ingress bridge hands each request to
 * the capsule's `wasi:http/incoming-handler` export. Every capsule is granted it (a capsule is an
 * HTTP handler); the routes it answers are the manifest's `[http] routes`, checked by the
 * ingress. Outbound requests (`wasi:http/outgoing-handler`) are the `outbound` capability's.
 */
const http: Capability<Record<string, never>> = {
  name: 'http',
  interfaces: ['wasi:http/types'],
  configure: () => ({ settings: {} }),
  prepare: () => ({ imports: { 'wasi:http/types': httpTypes } }),
};

export default http;
