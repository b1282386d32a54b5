import { StratumError } from '@stratum/core';
import { DIGEST_PATTERN } from './digest.ts';

/** A parsed OCI reference: where an artifact lives, and which version of it. */
export interface OciReference {
  /** The registry's host, with the port when one is written: `registry.example.com`, `127.0.0.1:5000`. */
  registry: string;
  /** The repository path inside the registry, lowercase: `acme/hello`. */
  repository: string;
  tag?: string;
  digest?: string;
}

// The grammar of the OCI distribution spec, section "Pulling manifests".
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
const MAX_REFERENCE_LENGTH = 2048;
const MAX_REPOSITORY_LENGTH = 255;

function invalid(text: string, problem: string): StratumError {
  return new StratumError(
    'REGISTRY_BAD_REFERENCE',
    `"${text.length > 120 ? `${text.slice(0, 117)}...` : text}" is not an OCI reference: ${problem}`,
    {
      hint: 'Write oci://<registry host>[:port]/<repository>[:tag][@sha256:<64 hex digits>], for example oci://ghcr.io/acme/hello:1.0.0.',
    },
  );
}

/**
 * Parses `oci://host[:port]/repository[:tag][@sha256:...]` (the `oci://` prefix is optional).
 * The host is always written: Stratum has no default registry, so a reference means the same
 * thing on every machine.
 *
 * @example
 * parseReference('oci://127.0.0.1:5000/acme/hello:1.0');
 * // { registry: '127.0.0.1:5000', repository: 'acme/hello', tag: '1.0' }
 */
export function parseReference(text: string): OciReference {
  if (text.length > MAX_REFERENCE_LENGTH) throw invalid(text, `it is longer than ${MAX_REFERENCE_LENGTH} characters`);
  let rest = text.startsWith('oci://') ? text.slice('oci://'.length) : text;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) throw invalid(text, 'only the oci:// scheme is understood');
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_PATTERN.test(digest)) throw invalid(text, `the digest "${digest}" is not sha256: and 64 lowercase hex digits`);
  }
  const slash = rest.indexOf('/');
  if (slash <= 0) throw invalid(text, 'it needs a registry host and a repository, separated by "/"');
  const registry = rest.slice(0, slash);
  let path = rest.slice(slash + 1);
  if (!HOST.test(registry)) throw invalid(text, `"${registry}" is not a host name with an optional port`);
  const port = /:([0-9]+)$/.exec(registry)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw invalid(text, `port ${port} is out of range`);
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon !== -1) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG.test(tag))
      throw invalid(text, `the tag "${tag}" may hold only letters, digits, "_", "." and "-" (at most 128, not starting with "." or "-")`);
  }
  if (path.length > MAX_REPOSITORY_LENGTH) throw invalid(text, `the repository is longer than ${MAX_REPOSITORY_LENGTH} characters`);
  if (!REPOSITORY.test(path)) {
    throw invalid(text, `the repository "${path}" must be lowercase letters and digits, separated by "/", ".", "_" or "-"`);
  }
  return { registry, repository: path, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The reference as text, `oci://host/repository[:tag][@digest]`. */
export function formatReference(reference: OciReference): string {
  return `oci://${reference.registry}/${reference.repository}${reference.tag !== undefined ? `:${reference.tag}` : ''}${reference.digest !== undefined ? `@${reference.digest}` : ''}`;
}

/** Loopback registries speak plain HTTP, as docker allows for localhost; every other one HTTPS. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.replace(/:[0-9]+$/, '').toLowerCase();
  return host === 'localhost' || host === '[::1]' || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(host);
}
