// The baseline: the least a Node.js HTTP server can do to answer "hello".
// Usage: node bench/servers/plain-http.js [--delay-ms N]   (N: answer after a wait, as a slow backend would)
// Plain JavaScript, as `stratum`'s launcher is: a TypeScript entry would make Node.js load its type
// stripper first (over 100 ms of a process's start here), which the start-up suite's host does not.
import { parseArgs } from 'node:util';

// As the host does (packages/host/src/control/host.ts): an ES module import of node:http loads undici.
const { createServer } = process.getBuiltinModule('node:http');

const { values } = parseArgs({ options: { 'delay-ms': { type: 'string' } } });
const delayMs = Number(values['delay-ms'] ?? 0);
const body = Buffer.from('Hello from Stratum!\n');
const server = createServer((_request, response) => {
  const send = () => {
    response.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    response.end(body);
  };
  if (delayMs > 0) setTimeout(send, delayMs);
  else send();
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (typeof address === 'object' && address) console.log(`listening on ${address.port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
