import { request } from 'node:http';

/**
 * A GET through a host's ingress for the capsule serving `host`: fetch() will not send a Host
 * header of our choosing, node:http will. A connection of its own (no agent), so that no pooled
 * socket keeps a host from closing.
 */
export function ingressGet(
  base: URL,
  host: string,
  path = '/',
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(new URL(path, base), { headers: { ...headers, host }, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}
