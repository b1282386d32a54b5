import { insecure, insecureSeed, random } from '@bytecodealliance/preview2-shim/random';
import {
  type ByteSink,
  InputStream,
  ioError,
  ioPoll,
  ioStreams,
  monotonicNow,
  OutputStream,
  Pollable,
  setSuspendingReads,
} from '../../wasi/io.ts';
import { CABI_LOWER } from '../canonical-abi.ts';
import type { Capability, PrepareContext } from '../contract.ts';
import { redact, secretValuesOf } from '../logging/redact.ts';

/**
 * The WASI basics every capsule gets without a grant: clocks, random (preview2-shim's), stdio
 * as log lines, and wasi:io. No environment, no arguments, no filesystem preopens, and sockets
 * refused: a toolchain's runtime imports these interfaces whether or not the code uses them, so
 * they are served, but they give access to nothing on the host.
 */

const MAX_LINE = 16 * 1024;

/**
 * stdout and stderr: each line becomes one capsule log line, its secrets masked here, before it
 * is cut to `MAX_LINE`: cut first, a secret that straddled the cut reached the log in part. A
 * line longer than that is logged once, cut, and the rest of it up to its line feed dropped,
 * keeping past the cut as much as the longest secret so that one straddling it is still whole.
 * Each `get-stdout` gets a stream of its own over the one sink: a stream is a resource the guest
 * drops, and one object handed out twice would be two handles to one representation.
 *
 * What one write holds, up to a line feed that ends it, is one log line, line feeds and all, as a
 * console call is one in Workers and Node.js: an uncaught error, its frames and its causes were
 * otherwise a log line each, which filled a capsule's kept lines and came apart in a stream read
 * as JSON. A JS capsule's console writes its message so (a dev engine), or the message, then its
 * line feed alone (a component `stratum build` makes): a write that begins a line, holds line
 * feeds and ends without one is held until the next, and is one log line if that is a line feed
 * alone. Output a
 * C program writes in blocks is a line a line feed, but for a block that ends where a line does;
 * a block's lines wait for the next write, as its last part did. Nothing is held past `MAX_LINE`.
 */
export function logSink(context: PrepareContext<WasiSettings>, level: 'info' | 'error', source: 'stdout' | 'stderr'): ByteSink {
  const secrets = context.settings.secrets ?? [];
  const kept = MAX_LINE + (secrets[0]?.length ?? 0);
  let partial = '';
  /** `partial` holds whole lines too: one message, if the next write is a line feed alone. */
  let holding = false;
  let dropping = false;
  const decoder = new TextDecoder();
  const emit = (line: string) => {
    const masked = redact(line, secrets);
    context.log(level, masked.length > MAX_LINE ? `${masked.slice(0, MAX_LINE)}... (truncated)` : masked, source);
  };
  /** Logs each whole line of `partial`, a line each, and keeps what follows the last. */
  const lines = () => {
    let newline = partial.indexOf('\n');
    while (newline !== -1) {
      if (dropping) dropping = false;
      else emit(partial.slice(0, newline));
      partial = partial.slice(newline + 1);
      newline = partial.indexOf('\n');
    }
  };
  return {
    capacity: () => 1024 * 1024,
    write: (bytes) => {
      const text = decoder.decode(bytes, { stream: true });
      if (holding) {
        holding = false;
        if (text === '\n') {
          emit(partial);
          partial = '';
          return;
        }
        lines();
      }
      // A write that begins a line: what it holds may be one message.
      if (!dropping && partial === '' && text.length <= kept && text.includes('\n')) {
        if (text.endsWith('\n')) emit(text.slice(0, -1));
        else {
          partial = text;
          holding = true;
        }
        return;
      }
      partial += text;
      lines();
      if (dropping) partial = '';
      else if (partial.length > kept) {
        emit(partial);
        partial = '';
        dropping = true;
      }
    },
    flush: () => {},
    close: () => {
      holding = false;
      lines();
      if (partial && !dropping) emit(partial);
      partial = '';
      dropping = false;
    },
  };
}

class CapsuleExit extends Error {
  constructor(code: number) {
    super(`the capsule called wasi:cli/exit with status ${code}`);
    this.name = 'CapsuleExit';
  }
}

class TerminalInput {}
class TerminalOutput {}

/** Resources of interfaces that hand out nothing; they exist so the glue can link. */
// jco's hybrid import bindings look up every imported method on the class when the glue is
// instantiated, so each method the filesystem world declares must exist, if only to refuse.
class Descriptor {
  appendViaStream(): never {
    return denied();
  }
  getFlags(): never {
    return denied();
  }
  getType(): never {
    return denied();
  }
  stat(): never {
    return denied();
  }
  writeViaStream(): never {
    return denied();
  }
}
class DirectoryEntryStream {}
class Network {}
class TcpSocket {}
class UdpSocket {}
class IncomingDatagramStream {}
class OutgoingDatagramStream {}
class ResolveAddressStream {}

/**
 * `monotonic-clock#now` at the canonical ABI: the core import is `() -> i64`, so the function
 * itself is the lowering (jco's hybrid bindings, capabilities/canonical-abi.ts). StarlingMonkey
 * reads the clock about 29 times in an empty request, and jco's glue made each read a task.
 */
const now = Object.defineProperty(() => monotonicNow(), CABI_LOWER, { value: () => monotonicNow });

function denied(): never {
  throw 'access-denied';
}

const WASI_INTERFACES = [
  'wasi:io/error',
  'wasi:io/poll',
  'wasi:io/streams',
  'wasi:clocks/monotonic-clock',
  'wasi:clocks/wall-clock',
  'wasi:random/random',
  'wasi:random/insecure',
  'wasi:random/insecure-seed',
  'wasi:cli/environment',
  'wasi:cli/exit',
  'wasi:cli/stdin',
  'wasi:cli/stdout',
  'wasi:cli/stderr',
  'wasi:cli/terminal-input',
  'wasi:cli/terminal-output',
  'wasi:cli/terminal-stdin',
  'wasi:cli/terminal-stdout',
  'wasi:cli/terminal-stderr',
  'wasi:filesystem/types',
  'wasi:filesystem/preopens',
  'wasi:sockets/network',
  'wasi:sockets/instance-network',
  'wasi:sockets/tcp',
  'wasi:sockets/tcp-create-socket',
  'wasi:sockets/udp',
  'wasi:sockets/udp-create-socket',
  'wasi:sockets/ip-name-lookup',
] as const;

export interface WasiSettings {
  suspending?: true;
  /** The installation's secret config values, longest first (`secretValuesOf`), masked in stdout and stderr. */
  secrets?: string[];
}

const wasi: Capability<WasiSettings> = {
  name: 'wasi',
  interfaces: WASI_INTERFACES,
  // A capsule that may fetch waits for its responses, and for their bodies as they stream in, in
  // wasi:io (the outbound capability's futures and streams): poll, block and the blocking reads
  // become JSPI imports for it, so that the thread's event loop runs the requests while the
  // guest waits. Other capsules keep plain synchronous glue.
  configure(context) {
    const secrets = secretValuesOf(context.manifest.capabilities.config, context.config);
    const masked = secrets.length > 0 ? { secrets } : {};
    if (context.manifest.capabilities.outbound.length === 0) return { settings: masked };
    const waits = context.imports.flatMap((versioned) => {
      if (versioned.startsWith('wasi:io/poll@')) return [`${versioned}#poll`, `${versioned}#[method]pollable.block`];
      if (versioned.startsWith('wasi:io/streams@')) {
        return ['input-stream.blocking-read', 'input-stream.blocking-skip', 'output-stream.blocking-splice'].map(
          (method) => `${versioned}#[method]${method}`,
        );
      }
      return [];
    });
    return { settings: { ...masked, suspending: true }, asyncImports: waits };
  },
  prepare(context) {
    setSuspendingReads(context.settings.suspending === true);
    const stdout = logSink(context, 'info', 'stdout');
    const stderr = logSink(context, 'error', 'stderr');
    const imports: Record<(typeof WASI_INTERFACES)[number], Record<string, unknown>> = {
      'wasi:io/error': ioError,
      'wasi:io/poll': ioPoll,
      'wasi:io/streams': ioStreams,
      'wasi:clocks/monotonic-clock': {
        now,
        resolution: () => 1n,
        subscribeInstant: (when: bigint) => new Pollable(when),
        subscribeDuration: (duration: bigint) => new Pollable(monotonicNow() + duration),
      },
      'wasi:clocks/wall-clock': {
        now: () => {
          const ms = Date.now();
          return { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * 1_000_000 };
        },
        resolution: () => ({ seconds: 0n, nanoseconds: 1_000_000 }),
      },
      'wasi:random/random': random,
      'wasi:random/insecure': insecure,
      'wasi:random/insecure-seed': insecureSeed,
      'wasi:cli/environment': { getEnvironment: () => [], getArguments: () => [], initialCwd: () => undefined },
      'wasi:cli/exit': {
        exit: (status: { tag: 'ok' | 'err' }) => {
          throw new CapsuleExit(status.tag === 'ok' ? 0 : 1);
        },
        exitWithCode: (code: number) => {
          throw new CapsuleExit(code);
        },
      },
      'wasi:cli/stdin': { getStdin: () => new InputStream() },
      'wasi:cli/stdout': { getStdout: () => new OutputStream(stdout) },
      'wasi:cli/stderr': { getStderr: () => new OutputStream(stderr) },
      'wasi:cli/terminal-input': { TerminalInput },
      'wasi:cli/terminal-output': { TerminalOutput },
      'wasi:cli/terminal-stdin': { getTerminalStdin: () => undefined },
      'wasi:cli/terminal-stdout': { getTerminalStdout: () => undefined },
      'wasi:cli/terminal-stderr': { getTerminalStderr: () => undefined },
      'wasi:filesystem/types': { Descriptor, DirectoryEntryStream, filesystemErrorCode: () => undefined },
      'wasi:filesystem/preopens': { getDirectories: () => [] },
      'wasi:sockets/network': { Network },
      'wasi:sockets/instance-network': { instanceNetwork: () => new Network() },
      'wasi:sockets/tcp': { TcpSocket },
      'wasi:sockets/tcp-create-socket': { createTcpSocket: denied },
      'wasi:sockets/udp': { UdpSocket, IncomingDatagramStream, OutgoingDatagramStream },
      'wasi:sockets/udp-create-socket': { createUdpSocket: denied },
      'wasi:sockets/ip-name-lookup': { ResolveAddressStream, resolveAddresses: denied },
    };
    return {
      imports,
      close: () => {
        stdout.close?.();
        stderr.close?.();
      },
    };
  },
};

export default wasi;
