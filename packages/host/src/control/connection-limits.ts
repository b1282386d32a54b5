import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '@stratum/core';
import { addressRanges, embeddedIPv4, peerInRanges } from '../address-ranges.ts';

/**
 * File descriptors the ingress leaves to everything else (the control API and its clients, the
 * data directory's files, capsules' stores and outbound requests, workers' pipes) when its
 * connection limit comes from the process's own limit.
 */
const RESERVED_DESCRIPTORS = 256;

/** Connections one client address may hold at once by default (`[ingress] max_connections_per_client`). */
export const DEFAULT_CONNECTIONS_PER_CLIENT = 512;

/** The process's soft limit on open files, where the system says (Linux's /proc); undefined elsewhere. */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((text) => text.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    const limit = soft === undefined ? Number.NaN : Number(soft);
    return Number.isFinite(limit) ? limit : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The ingress's default connection limit: what the open-file limit leaves after the reserve. Past
 * the process's limit every `accept` fails, the control API's too, so an operator could not even
 * see what was going on; at this limit only new ingress connections are refused.
 */
export function defaultMaxConnections(fileLimit: number | undefined): number | undefined {
  return fileLimit === undefined ? undefined : Math.max(64, fileLimit - RESERVED_DESCRIPTORS);
}

export interface ConnectionLimits {
  /** Connections at once, all clients together; none when undefined. */
  max: number | undefined;
  /** Connections at once from one client address. */
  perClient: number;
  /** CIDR ranges whose connections count only towards `max`: TLS proxies carry many clients' requests. */
  exempt: readonly string[];
  logger: Logger;
}

/**
 * Closes a new connection at once when it would go past the limits: all clients together, and one
 * client address (an IPv4 client of a dual-stack listener counted as its IPv4 address). A client
 * holding hundreds of connections open (each a file descriptor, and a request each, that a
 * capsule would answer) must not take them from everyone else.
 */
export function limitConnections(server: Server, limits: ConnectionLimits): void {
  const exempt = limits.exempt.length > 0 ? addressRanges(limits.exempt) : undefined;
  const byClient = new Map<string, number>();
  let open = 0;
  // The first refusal is logged at once; the rest in one line at the end of its minute, with the
  // count and the clients refused most: a client refused in a loop would otherwise fill the log.
  let summary: NodeJS.Timeout | undefined;
  let refusedByClient = new Map<string, number>();
  let reasons = new Set<string>();
  const flush = () => {
    summary = undefined;
    const counts = refusedByClient;
    refusedByClient = new Map();
    const why = [...reasons];
    reasons = new Set();
    const refused = [...counts.values()].reduce((sum, count) => sum + count, 0);
    if (refused === 0) return;
    const clients = [...counts].sort(([, a], [, b]) => b - a).slice(0, 5);
    limits.logger.warn(
      { refused, clients: Object.fromEntries(clients) },
      `ingress: ${refused} more connections refused in the last minute: ${why.join('; ')}`,
    );
  };
  const refuse = (socket: Socket, why: string, client: string) => {
    socket.destroy();
    if (summary) {
      refusedByClient.set(client, (refusedByClient.get(client) ?? 0) + 1);
      reasons.add(why);
      return;
    }
    limits.logger.warn({ client }, `ingress connection refused: ${why}`);
    summary = setTimeout(flush, 60_000);
    summary.unref();
  };
  server.on('close', () => {
    clearTimeout(summary);
    flush();
  });
  server.on('connection', (socket: Socket) => {
    const client = embeddedIPv4(socket.remoteAddress ?? '') ?? socket.remoteAddress ?? 'unknown';
    if (limits.max !== undefined && open >= limits.max) {
      refuse(socket, `the ingress holds its limit of ${limits.max} connections ([ingress] max_connections)`, client);
      return;
    }
    const counted = exempt === undefined || !peerInRanges(socket.remoteAddress, exempt);
    const held = byClient.get(client) ?? 0;
    if (counted && held >= limits.perClient) {
      refuse(
        socket,
        `${client} holds its limit of ${limits.perClient} connections ([ingress] max_connections_per_client; a proxy in front of the ingress belongs in [ingress] trusted_proxies)`,
        client,
      );
      return;
    }
    open++;
    if (counted) byClient.set(client, held + 1);
    socket.once('close', () => {
      open--;
      if (!counted) return;
      const left = (byClient.get(client) ?? 1) - 1;
      if (left > 0) byClient.set(client, left);
      else byClient.delete(client);
    });
  });
}
