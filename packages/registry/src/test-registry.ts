import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * Starts Debian's `docker-registry` (the CNCF distribution registry) for tests: filesystem
 * storage under a fresh temporary directory, a free loopback port, a config file written here.
 * Used by the registry tests and by any test that needs a real registry (the host's loader).
 */
export interface TestRegistry {
  /** `127.0.0.1:<port>`, the registry part of an `oci://` reference. */
  host: string;
  url: string;
  dir: string;
  stop(): Promise<void>;
}

export interface TestRegistryOptions {
  /** Basic auth from an htpasswd file with these users. */
  htpasswd?: Record<string, string>;
  /** Bearer-token auth: the registry trusts tokens signed by the key of `rootCertPem`. */
  token?: { realm: string; service: string; issuer: string; rootCertPem: string };
  /** The binary; default `docker-registry` on PATH (Debian's package), or $STRATUM_TEST_REGISTRY_BIN. */
  binary?: string;
}

const run = promisify(execFile);

/** Whether the registry binary is installed, so a test can skip (and say why) when it is not. */
export async function registryBinary(): Promise<string | undefined> {
  const candidate = process.env.STRATUM_TEST_REGISTRY_BIN ?? 'docker-registry';
  try {
    await run(candidate, ['--version']);
    return candidate;
  } catch {
    return undefined;
  }
}

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * A bcrypt hash for htpasswd, made by the system's crypt(3) through Perl (libxcrypt supports
 * `$2b$`), so tests need neither apache2-utils nor an npm bcrypt package. Cost 4 keeps it fast.
 */
export async function bcryptHash(password: string): Promise<string> {
  const alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let salt = '';
  for (const byte of crypto.getRandomValues(new Uint8Array(22))) salt += alphabet[byte % 64];
  // bcrypt ignores the low bits of the last salt character; a "." keeps the salt canonical.
  salt = `${salt.slice(0, 21)}.`;
  const { stdout } = await run('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, `$2b$04$${salt}`]);
  if (!stdout.startsWith('$2b$04$') || stdout.length !== 60)
    throw new Error(`crypt(3) here does not support bcrypt (got ${JSON.stringify(stdout)})`);
  return stdout;
}

export async function startTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const binary = options.binary ?? (await registryBinary());
  if (!binary) throw new Error('docker-registry is not installed (Debian package docker-registry)');
  const dir = await mkdtemp(join(tmpdir(), 'stratum-registry-'));
  const port = await freeLoopbackPort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(join(dir, 'data'))}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: stratum-test-secret',
  ];
  if (options.htpasswd) {
    const entries = await Promise.all(
      Object.entries(options.htpasswd).map(async ([user, password]) => `${user}:${await bcryptHash(password)}`),
    );
    await writeFile(join(dir, 'htpasswd'), `${entries.join('\n')}\n`);
    lines.push('auth:', '  htpasswd:', '    realm: stratum-test', `    path: ${JSON.stringify(join(dir, 'htpasswd'))}`);
  } else if (options.token) {
    await writeFile(join(dir, 'token-root.pem'), options.token.rootCertPem);
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${JSON.stringify(options.token.realm)}`,
      `    service: ${JSON.stringify(options.token.service)}`,
      `    issuer: ${JSON.stringify(options.token.issuer)}`,
      `    rootcertbundle: ${JSON.stringify(join(dir, 'token-root.pem'))}`,
    );
  }
  await writeFile(join(dir, 'config.yml'), `${lines.join('\n')}\n`);
  const child = spawn(binary, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`docker-registry exited: ${log}`);
    }
    const ready = await fetch(`${url}/v2/`).then(
      (response) => response.status === 200 || response.status === 401,
      () => false,
    );
    if (ready) break;
    if (attempt > 200) {
      await stop();
      throw new Error(`docker-registry did not start: ${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { host: `127.0.0.1:${port}`, url, dir, stop };
}
