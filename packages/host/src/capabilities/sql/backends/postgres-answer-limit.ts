import { connect, type Socket } from 'node:net';

/**
 * postgres.js gathers a statement's whole result before the host sees a row, so the row and byte
 * limits (`resultMeter`) looked at a result only once it was in memory: a capsule's
 * `SELECT repeat('x', 1000000) FROM generate_series(1, 1000)` took the host's process to 1.1 GB
 * (3.9 s) before it was refused, and a few such requests at once end a host on a small machine
 * (now: 166 MiB, 0.4 s). A capsule's connections therefore count what the
 * server sends in answer to each write the client makes (a statement, or a batch of its rows),
 * and end the connection once that passes a bound. The bound is above what the meter counts,
 * as the wire's text form of a result is larger (an integer is up to 20 digits against the
 * meter's 8 bytes, a blob's hex twice its bytes, each value has a 4-byte length): it admits
 * any result the meter does but the strangest (thousands of columns, mostly NULL), which it
 * refuses with its own message. The meter stays the exact limit; this one keeps the memory a
 * statement can take within a small multiple of it. What postgres.js gathered before the end,
 * up to the bound, is held by its connection until that connection serves again.
 */
export class AnswerTooLarge extends Error {
  readonly limit: number;

  constructor(limit: number) {
    super(`the query's result passed ${limit} bytes as it arrived from PostgreSQL`);
    this.name = 'AnswerTooLarge';
    this.limit = limit;
  }
}

/** The bound for one statement's answer, from the result limits. */
export function answerLimit(limits: { maxResultBytes: number; maxRows: number }): number {
  return 3 * limits.maxResultBytes + limits.maxRows * 256 + 1024 * 1024;
}

/** What postgres.js hands its `socket` option: its options, parsed from the URL. */
interface ConnectOptions {
  host: string[];
  port: number[];
  path?: string | false;
}

/**
 * Whether connections to `url` can be counted so. Over TLS, postgres.js lays its TLS socket over
 * the one given, and the bytes then pass below JavaScript: those stay uncounted, as before. A URL
 * of several hosts is left to postgres.js, which alone knows how to try each in turn.
 */
export function countable(url: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const query = url.includes('?') ? new URLSearchParams(url.slice(url.indexOf('?') + 1)) : new URLSearchParams();
  const mode = query.get('sslmode') ?? query.get('ssl') ?? env.PGSSL ?? env.PGSSLMODE;
  if (mode !== undefined && mode !== null && mode !== 'disable' && mode !== 'false') return false;
  if (query.get('sslrootcert') === 'system') return false;
  const authority = url.replace(/^[a-z]+:\/\//i, '').split(/[/?]/)[0] ?? '';
  return !authority.slice(authority.lastIndexOf('@') + 1).includes(',');
}

/**
 * postgres.js's `socket` option: a connected socket whose answers are counted. Each write the
 * client makes begins a new count; the connection is destroyed once the bytes received since
 * pass `limit`, which fails the statement that asked and frees its rows. postgres.js rejects
 * that statement with the connection's close (`CONNECTION_CLOSED`), not with the error given
 * to `destroy`, so `tripped` is told, for its caller to say why.
 */
export function answerLimitedSocket(limit: number, tripped: (error: AnswerTooLarge) => void): (options: ConnectOptions) => Socket {
  // Handed over while it connects, as postgres.js's own would be: its writes wait for the
  // connection, and a refusal or a timeout reaches postgres.js's own handlers, which connect
  // again. A socket made only once connected left postgres.js with none after a refusal, and a
  // statement queued for it waited for the request's timeout.
  return (options) => {
    const host = options.host[0] ?? 'localhost';
    const port = options.port[0] ?? 5432;
    const socket = options.path ? connect(options.path) : connect(port, host);
    // As postgres.js sets them on a socket of its own, for its error messages.
    Object.assign(socket, { host, port });
    let received = 0;
    const write = socket.write;
    socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
      received = 0;
      return write.apply(this, args);
    } as Socket['write'];
    // Added before postgres.js's own listener, which it adds as soon as it has the socket, before
    // it writes anything: the server sends nothing unasked.
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received <= limit || socket.destroyed) return;
      const error = new AnswerTooLarge(limit);
      tripped(error);
      socket.destroy(error);
    });
    return socket;
  };
}
