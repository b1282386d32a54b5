import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StratumError } from '@stratum/core';
import { hostName, toOriginForm } from '@stratum/host';

/** Something that serves the requests for a set of host names (a capsule under development). */
export interface IngressTarget {
  readonly domains: readonly string[];
  handleRequest(request: IncomingMessage, response: ServerResponse): void;
  /** Shown on the 404 page for an unknown host name. */
  readonly urls: readonly string[];
}

export interface DevIngress {
  port: number;
  close(): Promise<void>;
}

/**
 * The domain's part on a laptop: one listener on loopback (127.0.0.1, and ::1 where the machine
 * has it, on the same port) that routes each request by its Host header to the capsule serving
 * that name. Several capsules share the port, each on its own `*.localhost` name.
 */
export async function startIngress(port: number, targets: () => readonly IngressTarget[]): Promise<DevIngress> {
  const route = (request: IncomingMessage, response: ServerResponse) => {
    if (!toOriginForm(request, response)) return;
    const domain = hostName(request.headers.host ?? '');
    const target = targets().find((candidate) => candidate.domains.includes(domain));
    if (target) {
      target.handleRequest(request, response);
      return;
    }
    request.resume();
    const body = `No capsule answers to ${domain || 'a request without a Host header'} here. Try:\n${targets()
      .flatMap((candidate) => candidate.urls)
      .map((url) => `  ${url}`)
      .join('\n')}\n`;
    response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    response.end(body);
  };
  const servers: Server[] = [];
  // Not an ES module import of node:http, which loads Node.js's undici for its WebSocket exports (see control/host.ts).
  const { createServer } = process.getBuiltinModule('node:http');
  const first = createServer(route);
  await listen(first, port, '127.0.0.1').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE') {
      throw new StratumError('DEV_PORT_TAKEN', `port ${port} is already in use on 127.0.0.1`, {
        details: ['another program (perhaps another `stratum dev`) is listening on it'],
        hint: `Stop that program, or pick another port: --port ${port + 1} (or --port 0 for any free port).`,
      });
    }
    if (error.code === 'EACCES') {
      throw new StratumError('DEV_PORT_DENIED', `not allowed to listen on port ${port}`, {
        hint: 'Ports below 1024 need privileges; pick a port from 1024 up, such as --port 8800.',
      });
    }
    throw error;
  });
  servers.push(first);
  const bound = (first.address() as AddressInfo).port;
  // Browsers may resolve `*.localhost` to ::1 first; a machine without IPv6 simply has one listener.
  const second = createServer(route);
  if (
    await listen(second, bound, '::1').then(
      () => true,
      () => false,
    )
  )
    servers.push(second);
  return {
    port: bound,
    async close() {
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
