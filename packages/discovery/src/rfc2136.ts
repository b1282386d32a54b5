import { randomInt } from 'node:crypto';
import { connect } from 'node:net';
import { type Logger, StratumError, silentLogger } from '@stratum/core';
import { isWithin, normaliseOwnerName } from './names.ts';
import { parseServerAddress } from './resolver.ts';
import { findTsig, signMessage, TSIG_ERRORS, type TsigKey, verifyMessage } from './tsig.ts';
import { encodeUpdateMessage, messageLayout, OPCODE_UPDATE, RCODE_NAMES, type UpdateOperation } from './wire.ts';
import { DEFAULT_TTL, type DnsChange, type DnsWriter, validateChanges } from './writer.ts';

export interface Rfc2136WriterOptions {
  /** The primary server, `host:port` (port 53 when left out), e.g. `127.0.0.1:53`. */
  server: string;
  /** The zone the updates go to; every name changed must lie in it. */
  zone: string;
  /** The TSIG key the server's update ACL names. Leave it out only for servers that take unsigned updates. */
  key?: TsigKey;
  timeoutMs?: number;
  logger?: Logger;
}

function toOperations(changes: readonly DnsChange[]): UpdateOperation[] {
  return changes.flatMap((change): UpdateOperation[] => {
    switch (change.op) {
      case 'replace':
        return [
          { op: 'delete-rrset', name: change.name, type: change.type },
          ...change.records.map((record): UpdateOperation => ({ op: 'add', name: change.name, ttl: change.ttl ?? DEFAULT_TTL, record })),
        ];
      case 'add':
        return [{ op: 'add', name: change.name, ttl: change.ttl ?? DEFAULT_TTL, record: change.record }];
      case 'remove':
        return [{ op: 'delete-record', name: change.name, record: change.record }];
      default:
        return [change.type ? { op: 'delete-rrset', name: change.name, type: change.type } : { op: 'delete-name', name: change.name }];
    }
  });
}

/**
 * Writes to an external authoritative server (Knot, BIND, PowerDNS...) with RFC 2136 dynamic
 * updates over TCP, signed with TSIG (RFC 8945, HMAC-SHA256). Each `apply` is one UPDATE
 * message, which the server applies atomically.
 */
export class Rfc2136Writer implements DnsWriter {
  readonly zone: string;
  readonly #options: Rfc2136WriterOptions;
  readonly #host: string;
  readonly #port: number;
  readonly #logger: Logger;

  constructor(options: Rfc2136WriterOptions) {
    this.#options = options;
    this.zone = normaliseOwnerName(options.zone, 'zone');
    const { host, port } = parseServerAddress(options.server);
    this.#host = host;
    this.#port = port;
    this.#logger = options.logger ?? silentLogger;
  }

  get description(): string {
    return `rfc2136 ${this.#options.server} zone ${this.zone}${this.#options.key ? ` key ${this.#options.key.name}` : ' unsigned'}`;
  }

  async apply(changes: readonly DnsChange[]): Promise<void> {
    validateChanges(changes);
    for (const change of changes) {
      const name = normaliseOwnerName(change.name, 'record name');
      if (!isWithin(name, this.zone)) {
        throw new StratumError('DNS_NOT_IN_ZONE', `${name} is outside the zone ${this.zone} these updates change`, {
          hint: `Send the update for ${name} to the zone that holds it.`,
        });
      }
    }
    const id = randomInt(0, 0x10000);
    const unsigned = encodeUpdateMessage(id, this.zone, toOperations(changes));
    const { key } = this.#options;
    const signed = key ? signMessage(unsigned, key) : { message: unsigned, mac: undefined };
    const reply = await this.#exchange(signed.message);
    this.#check(reply, id, signed.mac);
    this.#logger.debug({ server: this.#options.server, zone: this.zone, changes: changes.length }, 'RFC 2136 update applied');
  }

  #failure(message: string, details: string[], hint: string): StratumError {
    return new StratumError('DNS_UPDATE_REFUSED', `${this.#options.server} refused the update to ${this.zone}: ${message}`, {
      details,
      hint,
    });
  }

  #check(reply: Buffer, id: number, requestMac: Buffer | undefined): void {
    const layout = messageLayout(reply);
    if (layout.id !== id || (layout.flags & 0x8000) === 0 || layout.opcode !== OPCODE_UPDATE) {
      throw new StratumError('DNS_BAD_RESPONSE', `${this.#options.server} answered the update with an unrelated message`, { user: false });
    }
    const rcode = RCODE_NAMES[layout.rcode] ?? `rcode ${layout.rcode}`;
    const tsig = findTsig(reply);
    const tsigError = tsig && tsig.record.error !== 0 ? (TSIG_ERRORS[tsig.record.error] ?? `TSIG error ${tsig.record.error}`) : undefined;
    if (layout.rcode !== 0) {
      const details = [`response code ${rcode}${tsigError ? `, TSIG ${tsigError}` : ''}`];
      if (!this.#options.key) {
        throw this.#failure('the update was not signed', details, "Sign it with the TSIG key that the server's update ACL names.");
      }
      if (tsigError === 'BADSIG')
        throw this.#failure('the TSIG signature is wrong', details, `Check the secret of key ${this.#options.key.name}.`);
      if (tsigError === 'BADKEY')
        throw this.#failure(
          'the server does not know the TSIG key',
          details,
          `Check the key name ${this.#options.key.name} and its algorithm (hmac-sha256).`,
        );
      if (tsigError === 'BADTIME')
        throw this.#failure('the clocks differ by more than the TSIG fudge', details, "Synchronise this machine's clock.");
      throw this.#failure(
        rcode,
        details,
        `Check that ${this.zone} is served by this server and that its update ACL allows key ${this.#options.key.name}.`,
      );
    }
    if (this.#options.key && requestMac) {
      const verdict = verifyMessage(reply, this.#options.key, { requestMac });
      if (!verdict.ok) {
        throw new StratumError('DNS_BAD_RESPONSE', `the answer from ${this.#options.server} is not correctly signed (${verdict.reason})`, {
          hint: 'Something between this writer and the server changed the answer, or the server uses another key.',
          user: false,
        });
      }
    }
  }

  #exchange(message: Buffer): Promise<Buffer> {
    const timeoutMs = this.#options.timeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      const socket = connect({ host: this.#host, port: this.#port });
      let pending = Buffer.alloc(0);
      const fail = (error: StratumError) => {
        socket.destroy();
        reject(error);
      };
      socket.setTimeout(timeoutMs, () =>
        fail(
          new StratumError('DNS_UNREACHABLE', `${this.#options.server} did not answer the update within ${timeoutMs} ms`, { user: false }),
        ),
      );
      socket.on('error', (error) =>
        fail(
          new StratumError('DNS_UNREACHABLE', `cannot reach ${this.#options.server} for a DNS update`, {
            details: [error.message],
            hint: 'Check the server address and that it listens on TCP.',
          }),
        ),
      );
      socket.on('connect', () => {
        const frame = Buffer.alloc(2);
        frame.writeUInt16BE(message.length);
        socket.write(Buffer.concat([frame, message]));
      });
      socket.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        if (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
          const reply = Buffer.from(pending.subarray(2, 2 + pending.readUInt16BE(0)));
          socket.end();
          resolve(reply);
        }
      });
      socket.on('close', () =>
        fail(new StratumError('DNS_BAD_RESPONSE', `${this.#options.server} closed the connection without answering`, { user: false })),
      );
    });
  }
}
