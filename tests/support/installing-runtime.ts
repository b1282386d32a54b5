import type { CapsuleStatus, HostRuntime, InstallRequest } from '../../packages/host/src/runtime-types.ts';

/**
 * A runtime that only installs, lists and uninstalls, for tests of control endpoints that need
 * a capsule installed and not running (state, data deletion). A call to anything else fails the
 * test with a TypeError naming it.
 */
export function installingRuntime(): HostRuntime {
  const capsules = new Map<string, CapsuleStatus>();
  const runtime: Partial<HostRuntime> = {
    async install(request: InstallRequest) {
      const name = request.name ?? request.manifest.capsule.name;
      const status: CapsuleStatus = {
        name,
        domains: request.domains,
        state: 'installed',
        version: request.manifest.capsule.version,
        digest: request.storedComponent?.digest ?? 'sha256:0',
        instances: 0,
        inFlight: 0,
        limitHits: {},
      };
      capsules.set(name, status);
      return { ...status };
    },
    status: () => [...capsules.values()].map((status) => ({ ...status })),
    handleRequest: (_request, response) => void response.writeHead(404).end(),
    onRequest: () => () => undefined,
    subscribeLogs: () => () => undefined,
    uninstall: async (name) => void capsules.delete(name),
    close: async () => undefined,
  };
  return runtime as HostRuntime;
}
