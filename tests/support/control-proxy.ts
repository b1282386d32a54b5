import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

/**
 * What happens to a request on its way to the host: it goes through, or the host freezes there
 * (kill -STOP: connections stay open and no byte comes back, for this request and every later
 * one), or dies there (the request is dropped and nothing listens any more).
 */
export type ProxyFate = 'forward' | 'freeze' | 'die';

/**
 * A control API address in front of `target` that passes requests on until `fate` says the host
 * freezes or dies at one, as a host that stops mid-move does. `onFrozen` is called once, at the
 * request the host froze at. Returns the proxy's control API URL.
 */
export async function controlProxy(
  t: TestContext,
  target: URL,
  fate: (incoming: IncomingMessage) => ProxyFate,
  onFrozen = () => {},
): Promise<string> {
  let frozen = false;
  const held: ServerResponse[] = [];
  const server = createServer((incoming, answer) => {
    const what = frozen ? 'freeze' : fate(incoming);
    if (what === 'die') {
      server.close();
      server.closeAllConnections();
      return;
    }
    if (what === 'freeze') {
      if (!frozen) onFrozen();
      frozen = true;
      held.push(answer);
      return;
    }
    const outgoing = request(
      new URL(incoming.url ?? '/', target),
      { method: incoming.method, headers: incoming.headers, agent: false },
      (reply) => {
        answer.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(answer);
      },
    );
    outgoing.on('error', () => answer.destroy());
    incoming.pipe(outgoing);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.close();
    server.closeAllConnections();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}
