/**
 * What we learnt from earlier pushes: for an uncompressed layer (diff ID) gzipped with a given
 * recipe (level and block size), the registry digest and size it produced, and where that blob was pushed.
 *
 * With it a repeated push can `HEAD` the registry before reading a layer at all, and skip the
 * gzip work (the slowest part of a push) for every layer the registry already has; it also gives
 * mount candidates for blobs pushed to another repository of the same registry. An entry is only
 * a hint: nothing is skipped unless the registry confirms it holds the blob, and gzip output is
 * deterministic, so a stale entry costs one `HEAD`.
 *
 * The default cache lives in memory for the life of the process. Pass `new LayerCache({ path })`
 * to keep it in a file (written with mode 0600; keep it in a per-user folder, not a shared one).
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** One remembered compressed layer. */
export interface CachedLayer {
  digest: string;
  size: number;
  /** `host/repository` names the blob was pushed to or found in, most recent last. */
  locations: string[];
}

/** Options of {@link LayerCache}. */
export interface LayerCacheOptions {
  /** JSON file to load from and save to. @default none (memory only) */
  path?: string;
  /** Most entries kept; the oldest go first. @default 5000 */
  maxEntries?: number;
}

const key = (diffId: string, recipe: string) => `${diffId}|${recipe}`;

/** Remembers compressed digests of layers (see the module comment). */
export class LayerCache {
  private readonly entries = new Map<string, CachedLayer>();
  private loaded = false;
  private readonly maxEntries: number;
  constructor(private readonly options: LayerCacheOptions = {}) {
    this.maxEntries = options.maxEntries ?? 5000;
  }

  private async load(): Promise<void> {
    if (this.loaded) return;
    this.loaded = true;
    if (!this.options.path) return;
    try {
      const data = JSON.parse(await readFile(this.options.path, 'utf8')) as Record<string, CachedLayer>;
      for (const [k, v] of Object.entries(data)) {
        if (v && typeof v.digest === 'string' && typeof v.size === 'number' && /^sha256:[0-9a-f]{64}$/.test(v.digest)) {
          this.entries.set(k, { digest: v.digest, size: v.size, locations: Array.isArray(v.locations) ? v.locations.filter((l) => typeof l === 'string') : [] });
        }
      }
    } catch {
      // Missing or unreadable: start empty. It is only a cache.
    }
  }

  /** The compressed layer made from `diffId` with `recipe` (how it was compressed), if one is remembered. */
  async get(diffId: string, recipe: string): Promise<CachedLayer | undefined> {
    await this.load();
    return this.entries.get(key(diffId, recipe));
  }

  /** Remember a compressed layer and where it now is. */
  async remember(diffId: string, recipe: string, digest: string, size: number, location?: string): Promise<void> {
    await this.load();
    const k = key(diffId, recipe);
    const prev = this.entries.get(k);
    const locations = prev && prev.digest === digest ? prev.locations.filter((l) => l !== location) : [];
    if (location) locations.push(location);
    this.entries.delete(k); // re-insert: Map order is our recency order
    this.entries.set(k, { digest, size, locations: locations.slice(-10) });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /** Write the cache file (no-op for a memory-only cache). Failures are ignored. */
  async save(): Promise<void> {
    if (!this.options.path) return;
    try {
      await mkdir(dirname(this.options.path), { recursive: true, mode: 0o700 });
      const tmp = `${this.options.path}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(Object.fromEntries(this.entries)), { mode: 0o600 });
      await rename(tmp, this.options.path);
    } catch {
      // Best effort.
    }
  }
}

/** The process-wide default cache (memory only). */
export const defaultLayerCache = new LayerCache();
