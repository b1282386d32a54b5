import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { StratumError } from '@stratum/core';

/** A user name and password (or access token used as the password) for one registry. */
export interface RegistryCredentials {
  username: string;
  password: string;
}

/** Finds the credentials for a registry host (`host[:port]`), or none. */
export type CredentialsProvider = (registry: string) => Promise<RegistryCredentials | undefined>;

export interface CredentialsLookup {
  /** The credentials file; default {@link defaultCredentialsFiles}. */
  file?: string;
  /** The environment to read; default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Where credentials are looked for, in order: `$STRATUM_REGISTRY_AUTH_FILE`, then
 * `$XDG_CONFIG_HOME/stratum/registry-auth.json` (default `~/.config/stratum/registry-auth.json`),
 * then docker's `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`), so that a
 * `docker login` done earlier is used too. All share docker's `{"auths": {...}}` format.
 */
export function defaultCredentialsFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.STRATUM_REGISTRY_AUTH_FILE) return [env.STRATUM_REGISTRY_AUTH_FILE];
  const home = env.HOME ?? homedir();
  const config = env.XDG_CONFIG_HOME || join(home, '.config');
  return [join(config, 'stratum', 'registry-auth.json'), join(env.DOCKER_CONFIG || join(home, '.docker'), 'config.json')];
}

/** `https://host:port/v1/` and `host:port` name the same registry in an auths file. */
function registryKey(key: string): string {
  return key
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
}

const MAX_CREDENTIALS_FILE_BYTES = 1024 * 1024;

/**
 * Reads the entry for `registry` from an auths file. An entry holds either `auth` (base64 of
 * `user:password`, as docker writes it) or `username` and `password`.
 */
export async function readCredentialsFile(file: string, registry: string): Promise<RegistryCredentials | undefined> {
  let text: string;
  try {
    const bytes = await readFile(file);
    if (bytes.length > MAX_CREDENTIALS_FILE_BYTES) throw new Error(`it is ${bytes.length} bytes, more than a credentials file can be`);
    text = bytes.toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StratumError('REGISTRY_CREDENTIALS_UNREADABLE', `cannot read the credentials file ${file}`, {
      details: [String(error)],
      cause: error,
    });
  }
  const bad = (problem: string) =>
    new StratumError('REGISTRY_CREDENTIALS_INVALID', `the credentials file ${file} is not valid: ${problem}`, {
      hint: 'It is JSON: {"auths": {"registry.example.com": {"auth": "<base64 of user:password>"}}}.',
    });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw bad(String((error as Error).message));
  }
  const auths = (parsed as { auths?: unknown } | null)?.auths;
  if (auths === undefined) return undefined;
  if (auths === null || typeof auths !== 'object' || Array.isArray(auths)) throw bad('"auths" must be an object');
  const wanted = registryKey(registry);
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    if (registryKey(key) !== wanted) continue;
    if (entry === null || typeof entry !== 'object') throw bad(`the entry for ${key} must be an object`);
    const { auth, username, password } = entry as Record<string, unknown>;
    if (typeof auth === 'string' && auth !== '') {
      const decoded = Buffer.from(auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) throw bad(`the "auth" of ${key} is not base64 of user:password`);
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    if (typeof username === 'string' && typeof password === 'string') return { username, password };
    // docker writes an empty entry when a credential helper holds the secret; we cannot use it.
    return undefined;
  }
  return undefined;
}

/**
 * Credentials from the environment (`STRATUM_REGISTRY_USERNAME` and `STRATUM_REGISTRY_PASSWORD`,
 * limited to one registry by `STRATUM_REGISTRY_HOST` when set), else from the credentials files.
 *
 * @example
 * const client = new RegistryClient({ credentials: credentialsFrom() });
 */
export function credentialsFrom(lookup: CredentialsLookup = {}): CredentialsProvider {
  const env = lookup.env ?? process.env;
  return async (registry) => {
    const { STRATUM_REGISTRY_USERNAME: username, STRATUM_REGISTRY_PASSWORD: password, STRATUM_REGISTRY_HOST: host } = env;
    if (username && password !== undefined && (!host || registryKey(host) === registryKey(registry))) return { username, password };
    for (const file of lookup.file !== undefined ? [lookup.file] : defaultCredentialsFiles(env)) {
      const found = await readCredentialsFile(file, registry);
      if (found) return found;
    }
    return undefined;
  };
}
