// The baseline: the least a Node.js HTTP server can do to answer "hello".
import { createServer } from 'node:http';

const body = Buffer.from('Hello from Stratum!\n');
const server = createServer((_request, response) => {
  response.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  response.end(body);
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (typeof address === 'object' && address) console.log(`listening on ${address.port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
