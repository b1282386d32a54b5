import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { digestHex, digestOf, newDigester } from './digest.ts';

/**
 * The default cache directory: `$STRATUM_CACHE_DIR/registry`, else the platform's user cache
 * directory (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS,
 * `%LOCALAPPDATA%` on Windows) followed by `stratum/registry`.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATUM_CACHE_DIR) return join(env.STRATUM_CACHE_DIR, 'registry');
  const home = env.HOME ?? homedir();
  if (process.platform === 'darwin') return join(home, 'Library', 'Caches', 'stratum', 'registry');
  if (process.platform === 'win32') return join(env.LOCALAPPDATA ?? join(home, 'AppData', 'Local'), 'stratum', 'registry');
  return join(env.XDG_CACHE_HOME || join(home, '.cache'), 'stratum', 'registry');
}

/**
 * A content-addressed store: each blob (manifest, config, layer) is a file named by its digest,
 * written only after its bytes were verified, by a rename, so a reader never sees half a file.
 * Layout: `blobs/sha256/<hex>`, `sources/sha256/<hex>.json` (the repositories a blob was seen
 * in, for cross-repository mounts), `artifacts/sha256/<component hex>.json` (the manifest a
 * component came in), `tmp/` (downloads in progress).
 */
export class BlobCache {
  readonly dir: string;

  constructor(dir: string = defaultCacheDir()) {
    this.dir = dir;
  }

  path(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', digestHex(digest));
  }

  /** A fresh file name under `tmp/` for a download, on the same file system as the blobs. */
  async tempPath(digest: string): Promise<string> {
    const dir = join(this.dir, 'tmp');
    await mkdir(dir, { recursive: true });
    return join(dir, `${digestHex(digest)}.${randomBytes(6).toString('hex')}.partial`);
  }

  /** Moves a verified download into place. */
  async commit(tempPath: string, digest: string): Promise<string> {
    const target = this.path(digest);
    await mkdir(dirname(target), { recursive: true });
    await rename(tempPath, target);
    return target;
  }

  async writeBytes(digest: string, bytes: Uint8Array): Promise<string> {
    const temp = await this.tempPath(digest);
    try {
      await writeFile(temp, bytes);
      return await this.commit(temp, digest);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  /**
   * The cached bytes of a small blob, re-hashed on the way out: a damaged entry is deleted and
   * reported as missing, so the caller fetches it again.
   */
  async readVerified(digest: string, maxBytes: number): Promise<Uint8Array | undefined> {
    const path = this.path(digest);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile() || info.size > maxBytes) return undefined;
    const bytes = await readFile(path);
    if (digestOf(bytes) === digest) return bytes;
    await rm(path, { force: true });
    return undefined;
  }

  /** The path of a cached blob whose size and hash are right (hashed while streaming), else undefined. */
  async verifiedPath(digest: string, size: number): Promise<string | undefined> {
    const path = this.path(digest);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    if (info.size === size) {
      const hash = newDigester();
      for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
      if (`sha256:${hash.digest('hex')}` === digest) return path;
    }
    await rm(path, { force: true });
    return undefined;
  }

  /** The cached file of a blob of unknown size, when its hash is right. */
  async verifiedAnySize(digest: string): Promise<{ path: string; size: number } | undefined> {
    const info = await stat(this.path(digest)).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    const path = await this.verifiedPath(digest, info.size);
    return path ? { path, size: info.size } : undefined;
  }

  /** Remembers which artifact manifest a component came in, so its stratum.toml is there offline. */
  async noteArtifact(componentDigest: string, manifestDigest: string): Promise<void> {
    const path = join(this.dir, 'artifacts', 'sha256', `${digestHex(componentDigest)}.json`);
    await mkdir(dirname(path), { recursive: true });
    const temp = `${path}.${randomBytes(6).toString('hex')}`;
    await writeFile(temp, JSON.stringify({ manifest: manifestDigest }));
    await rename(temp, path);
  }

  /** The manifest digest a component was last seen in, if any. */
  async artifactOf(componentDigest: string): Promise<string | undefined> {
    const path = join(this.dir, 'artifacts', 'sha256', `${digestHex(componentDigest)}.json`);
    try {
      const { manifest } = JSON.parse(await readFile(path, 'utf8')) as { manifest?: unknown };
      return typeof manifest === 'string' && /^sha256:[a-f0-9]{64}$/.test(manifest) ? manifest : undefined;
    } catch {
      return undefined;
    }
  }

  /** Records that a blob is in `registry/repository`, so a later push there can mount it. */
  async noteSource(digest: string, registry: string, repository: string): Promise<void> {
    const path = join(this.dir, 'sources', 'sha256', `${digestHex(digest)}.json`);
    const known = await this.sources(digest);
    const entry = `${registry}/${repository}`;
    if (known.includes(entry)) return;
    await mkdir(dirname(path), { recursive: true });
    // Newest first, and bounded: a mount needs one repository that still holds the blob.
    const temp = `${path}.${randomBytes(6).toString('hex')}`;
    await writeFile(temp, JSON.stringify([entry, ...known].slice(0, 16)));
    await rename(temp, path);
  }

  /** The `registry/repository` entries a blob was seen in, newest first. */
  async sources(digest: string): Promise<string[]> {
    const path = join(this.dir, 'sources', 'sha256', `${digestHex(digest)}.json`);
    try {
      const parsed = JSON.parse(await readFile(path, 'utf8')) as unknown;
      return Array.isArray(parsed) ? parsed.filter((item): item is string => typeof item === 'string') : [];
    } catch {
      return [];
    }
  }
}
