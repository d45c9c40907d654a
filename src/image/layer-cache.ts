/**
 * What we learnt from earlier pushes: for an uncompressed layer (diff ID) gzipped with a given
 * recipe (level and block size), the registry digest and size it produced, and where that blob was
 * pushed.
 *
 * With it a repeated push reads only the image's index and config, `HEAD`s the registry for each
 * layer and puts the manifest: no layer is read or gzipped (the slowest part of a push) when the
 * registry already has it. It also gives mount candidates for blobs pushed to another repository
 * of the same registry.
 *
 * Why the key is the diff ID and not the source file (path, size, mtime, inode): the diff ID is
 * the SHA-256 of the layer's uncompressed bytes, named by the image config, which is itself read
 * and hashed on every push. It changes whenever the layer changes, whatever holds it (an archive,
 * a re-saved archive, the daemon), and the digest stored for it was computed by gzipping bytes
 * whose SHA-256 was checked to be that diff ID. So an entry is right for every source holding that
 * layer; a file identity would only lose hits (every `docker save` writes a new file).
 *
 * An entry is never trusted alone: a layer is only skipped when the registry answers `HEAD` for
 * the remembered digest with the remembered size (a size mismatch drops the entry), and each entry
 * carries a check value, so a damaged file loses entries instead of giving wrong digests. A file
 * that is missing, unreadable or not this format is ignored (it is only a cache).
 *
 * The default cache ({@link defaultLayerCache}) is kept in a file under the user's cache folder
 * ({@link LayerCache.defaultPath}); `new LayerCache()` lives in memory only.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** One remembered compressed layer. */
export interface CachedLayer {
  digest: string;
  size: number;
  /** `host/repository` names the blob was pushed to or found in, most recent last. */
  locations: string[];
}

/** Options of {@link LayerCache}. */
export interface LayerCacheOptions {
  /**
   * JSON file to load from and save to (written with mode 0600, folder 0700; keep it in a
   * per-user folder, not a shared one). @default none (memory only)
   */
  path?: string;
  /** Most entries kept; the least recently used go first. @default 5000 */
  maxEntries?: number;
}

/** On-disk format version: files of another version are ignored. */
const FORMAT = 1;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

const key = (diffId: string, recipe: string) => `${diffId}|${recipe}`;

/** Check value of an entry: a damaged digest or size fails it and the entry is dropped. */
function checkOf(k: string, digest: string, size: number): string {
  return createHash('sha256').update(`${k}\n${digest}\n${size}`).digest('hex').slice(0, 16);
}

interface StoredEntry extends CachedLayer {
  check: string;
}

/** Parse a cache file's text; anything not in the format gives no entries. */
function parseEntries(text: string): Map<string, CachedLayer> {
  const out = new Map<string, CachedLayer>();
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return out;
  }
  const file = data as { version?: unknown; entries?: unknown };
  if (!file || typeof file !== 'object' || file.version !== FORMAT || !file.entries || typeof file.entries !== 'object') return out;
  for (const [k, raw] of Object.entries(file.entries as Record<string, unknown>)) {
    const v = raw as Partial<StoredEntry> | null;
    if (!v || typeof v.digest !== 'string' || !DIGEST.test(v.digest) || typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) continue;
    if (v.check !== checkOf(k, v.digest, v.size)) continue;
    const locations = Array.isArray(v.locations) ? v.locations.filter((l): l is string => typeof l === 'string').slice(-10) : [];
    out.set(k, { digest: v.digest, size: v.size, locations });
  }
  return out;
}

/** Remembers compressed digests of layers (see the module comment). */
export class LayerCache {
  private readonly entries = new Map<string, CachedLayer>();
  /** Keys changed by this process since the last save (what a save must not lose to the file's copy). */
  private readonly dirty = new Set<string>();
  private readonly dropped = new Set<string>();
  private loading: Promise<void> | undefined;
  /** Saves run one after another: two pushes of one process never write the file at once. */
  private saving: Promise<void> = Promise.resolve();
  private readonly maxEntries: number;

  constructor(private readonly options: LayerCacheOptions = {}) {
    this.maxEntries = options.maxEntries ?? 5000;
  }

  /**
   * The default cache file: `$XDG_CACHE_HOME/astro-deploy-sdk/layer-digests.json`, else under
   * `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows and `~/.cache` elsewhere.
   */
  static defaultPath(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
    const base =
      env.XDG_CACHE_HOME ||
      (platform === 'darwin' ? join(homedir(), 'Library', 'Caches') : platform === 'win32' ? env.LOCALAPPDATA || join(homedir(), 'AppData', 'Local') : join(homedir(), '.cache'));
    return join(base, 'astro-deploy-sdk', 'layer-digests.json');
  }

  /** The file this cache is kept in, if any. */
  get path(): string | undefined {
    return this.options.path;
  }

  private load(): Promise<void> {
    this.loading ??= (async () => {
      if (!this.options.path) return;
      const text = await readFile(this.options.path, 'utf8').catch(() => '');
      // Entries remembered before the load finished are newer than the file's.
      for (const [k, v] of parseEntries(text)) if (!this.entries.has(k)) this.entries.set(k, v);
      this.trim();
    })();
    return this.loading;
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
    this.dirty.add(k);
    this.dropped.delete(k);
    this.trim();
  }

  /** Drop an entry the registry contradicted (it holds that digest with another size). */
  async forget(diffId: string, recipe: string): Promise<void> {
    await this.load();
    const k = key(diffId, recipe);
    this.entries.delete(k);
    this.dirty.delete(k);
    this.dropped.add(k);
  }

  private trim(): void {
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /**
   * Write the cache file (no-op for a memory-only cache). What other processes saved since this
   * one loaded the file is kept: the file is read again and merged (this process's changes win)
   * and replaced in one rename, so a reader never sees half a file. Two processes saving at the
   * same moment may lose one's new entries (they cost a re-gzip later, never a wrong digest).
   * Failures are ignored.
   */
  save(): Promise<void> {
    this.saving = this.saving.then(() => this.write());
    return this.saving;
  }

  private async write(): Promise<void> {
    const path = this.options.path;
    if (!path || (this.dirty.size === 0 && this.dropped.size === 0)) return;
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await this.load();
      const onDisk = parseEntries(await readFile(path, 'utf8').catch(() => ''));
      const merged = new Map<string, CachedLayer>();
      for (const [k, v] of onDisk) if (!this.dirty.has(k) && !this.dropped.has(k)) merged.set(k, v);
      // Ours after the file's: most recently used last, which is what eviction keeps.
      for (const [k, v] of this.entries) if (!merged.has(k) || this.dirty.has(k)) merged.set(k, v);
      for (const k of this.dirty) {
        const v = merged.get(k);
        if (v) {
          merged.delete(k);
          merged.set(k, v);
        }
      }
      const all = [...merged];
      const kept = all.slice(Math.max(0, all.length - this.maxEntries));
      const entries: Record<string, StoredEntry> = {};
      for (const [k, v] of kept) entries[k] = { ...v, check: checkOf(k, v.digest, v.size) };
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFile(tmp, JSON.stringify({ version: FORMAT, entries }), { mode: 0o600 });
      await rename(tmp, path);
      this.dirty.clear();
      this.dropped.clear();
      // Take in what other processes added, so this process's next pushes can use it.
      for (const [k, v] of kept) if (!this.entries.has(k)) this.entries.set(k, v);
      this.trim();
    } catch {
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}

/**
 * The process-wide default cache, kept in {@link LayerCache.defaultPath} (read on first use,
 * written after each push). Pass `layerCache: false` to a push to use no cache, or your own
 * `new LayerCache({ path })`.
 */
export const defaultLayerCache = new LayerCache({ path: LayerCache.defaultPath() });

/**
 * Recipe of the entries that map a daemon's image ID to the image's config. Under the containerd
 * image store the ID is a manifest's or an index's digest: it names the config, but the config's
 * own digest (what a manifest must name, and what a registry `HEAD` checks) is only learnt from an
 * export. Both digests are content addresses, so an entry never goes stale.
 */
const IMAGE_CONFIG_RECIPE = 'image-config';

/** The config digest an export of the daemon image `imageId` was found to have, if remembered. */
export async function rememberedConfigDigest(cache: LayerCache | undefined, imageId: string): Promise<string | undefined> {
  return (await cache?.get(imageId, IMAGE_CONFIG_RECIPE))?.digest;
}

/** Remember that the daemon image `imageId` has the config `configDigest` of `size` bytes. */
export async function rememberConfigDigest(cache: LayerCache | undefined, imageId: string, configDigest: string, size: number): Promise<void> {
  if (imageId !== configDigest) await cache?.remember(imageId, IMAGE_CONFIG_RECIPE, configDigest, size);
}
