import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';

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

/**
 * GETs pipelined on one connection to a loopback ingress, written at once, so that the ingress
 * takes them in one turn and an instance gets them in one message, to run one after another.
 * Resolves with everything received once `requests.length` 200 responses have come.
 */
export async function pipelinedGets(port: number, requests: readonly (readonly [host: string, path: string])[]): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.write(requests.map(([host, path]) => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`).join(''));
  let received = '';
  socket.setEncoding('latin1');
  for await (const chunk of socket) {
    received += chunk;
    if (received.split('HTTP/1.1 200').length - 1 === requests.length) break;
  }
  socket.destroy();
  return received;
}

/** The count the counter example serving `domain` answers through `host`'s ingress, which counts on. */
export async function counterCount(host: { ingressUrl: URL }, domain: string): Promise<number> {
  const answer = await ingressGet(new URL('/a', host.ingressUrl), domain);
  assert.equal(answer.status, 200, answer.body);
  return (JSON.parse(answer.body) as { count: number }).count;
}
