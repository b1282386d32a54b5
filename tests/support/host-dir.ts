import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateEd25519KeyPair, writeKeyFile } from '@stratum/core';

export interface TestHostOptions {
  /** The trusted registrar's public key (its JWK's `x`). */
  registrar: string;
  /** Its name under [registrars] (default "test"). */
  registrarName?: string;
  /** Its domain, as domain links name it ([registrars.<name>] domain). */
  registrarDomain?: string;
  /** Marks it the host operator's key, which drives every installation and reads the ledger. */
  operator?: boolean;
  /** The host's name (default host1.example.net). */
  name?: string;
  /** Lines added to [control], such as `max_body` or `tls_cert`. */
  control?: string;
  /** Lines added to [ingress], such as `trusted_proxies`. */
  ingress?: string;
  /** Tables added at the end, such as [metering] or [keyvalue.default]. */
  tables?: string;
}

/** A test host's host.toml: free loopback ports, its data in `data`, one trusted registrar. */
export function testHostToml(options: TestHostOptions): string {
  return `stratum = 1
[host]
name = "${options.name ?? 'host1.example.net'}"
key = "host.key"
data = "data"
[ingress]
listen = "127.0.0.1:0"
${options.ingress ? `${options.ingress}\n` : ''}[control]
listen = "127.0.0.1:0"
${options.control ? `${options.control}\n` : ''}[registrars.${options.registrarName ?? 'test'}]
key = "${options.registrar}"
${options.operator ? 'operator = true\n' : ''}${options.registrarDomain ? `domain = "${options.registrarDomain}"\n` : ''}${options.tables ?? ''}`;
}

/**
 * Writes a test host's identity key (host.key, a new one) and host.toml into `dir`; returns the
 * host.toml's path and text, for `stratum host start --config` or `parseHostConfig`.
 */
export async function writeTestHost(dir: string, options: TestHostOptions): Promise<{ path: string; text: string }> {
  await writeKeyFile(join(dir, 'host.key'), (await generateEd25519KeyPair()).privateJwk);
  const path = join(dir, 'host.toml');
  const text = testHostToml(options);
  await writeFile(path, text);
  return { path, text };
}
