/**
 * Phase 2 of a native push: settle what the registry may already hold without reading a byte of
 * it. The layer cache knows, for a layer (diff ID) gzipped with this push's recipe, the digest an
 * earlier push produced and where it went: a `HEAD` finds it in the target repository (skipped),
 * or a cross-repository mount links it from another repository of the same registry (mounted).
 * What neither settles is read, gzipped and uploaded by the scheduler, which then skips the
 * `HEAD` and mounts already tried here.
 */
import { blobExists, mountBlob } from './blob-upload.js';
import { rememberConfigDigest, rememberedConfigDigest, type LayerCache } from './layer-cache.js';
import type { LayerOutcome, PushContext } from './push-context.js';

/** A compressed layer remembered by the layer cache. */
interface Hint {
  digest: string;
  size: number;
  locations: string[];
}

/** The cache's hints for `diffIds`, and the repositories to try mounts from. */
export interface CacheHints {
  hints: Map<string, Hint>;
  /** Repositories of the target registry (paths) to try mounts from: the caller's, then where the cache saw the layers. */
  mountFrom: Set<string>;
}

/**
 * Read the cache's hints before the registry client exists: the repositories they name must be in
 * the token scopes it asks for (`repository:<from>:pull`).
 */
export async function cacheHints(
  cache: LayerCache | undefined,
  recipe: string,
  diffIds: string[],
  target: { host: string; location: string },
  mountFrom: string[] = [],
): Promise<CacheHints> {
  const hints = new Map<string, Hint>();
  if (cache) {
    for (const d of diffIds) {
      const hit = d ? await cache.get(d, recipe) : undefined;
      if (hit) hints.set(d, hit);
    }
  }
  const sources = new Set(mountFrom);
  for (const h of hints.values()) {
    for (const loc of h.locations) if (loc.startsWith(`${target.host}/`) && loc !== target.location) sources.add(loc.slice(target.host.length + 1));
  }
  return { hints, mountFrom: sources };
}

/** Settles layers from the cache's hints, and records what the push learns in the cache. */
export class LayerSettler {
  /** Digests a settle found neither in the registry nor mountable: their upload skips `HEAD` and mounts. */
  private readonly absent = new Set<string>();

  constructor(
    private readonly ctx: PushContext,
    private readonly cache: LayerCache | undefined,
    /** How layers are gzipped (level and block size): cache entries are valid for one recipe only. */
    private readonly recipe: string,
    private readonly hints: CacheHints,
  ) {}

  /** Repositories to try mounts from. */
  get mountFrom(): string[] {
    return [...this.hints.mountFrom];
  }

  /** True when a settle already found `digest` absent and unmountable. */
  knownAbsent(digest: string): boolean {
    return this.absent.has(digest);
  }

  /** Settle the layer `diffId` from its hint: skipped, mounted, or undefined when it must be uploaded. */
  async settle(diffId: string): Promise<LayerOutcome | undefined> {
    const hint = this.hints.hints.get(diffId);
    if (!hint) return undefined;
    const { registry, emit, policy, signal } = this.ctx;
    const outcome = (status: LayerOutcome['status']): LayerOutcome => ({ digest: hint.digest, size: hint.size, compression: 'gzip', status, bytesSent: 0 });
    const held = await blobExists(registry, hint.digest, { policy, signal });
    // The registry knows the blob's size: another one than remembered means the entry is damaged.
    // Drop it; the layer is then read and gzipped as if nothing were remembered.
    if (held !== undefined && held > 0 && held !== hint.size) {
      this.hints.hints.delete(diffId);
      await this.cache?.forget(diffId, this.recipe);
      return undefined;
    }
    if (held !== undefined) {
      emit({ type: 'image:layer-prepared', digest: hint.digest, size: hint.size, diffId, compressed: true, fromCache: true });
      emit({ type: 'image:layer-skipped', digest: hint.digest, size: hint.size });
      await this.remember(diffId, hint.digest, hint.size);
      return outcome('skipped');
    }
    const mount = await mountBlob(registry, hint.digest, this.hints.mountFrom, { keepSession: false, signal });
    if (mount.from) {
      emit({ type: 'image:layer-mounted', digest: hint.digest, size: hint.size, from: mount.from });
      await this.remember(diffId, hint.digest, hint.size);
      return outcome('mounted');
    }
    this.absent.add(hint.digest);
    return undefined;
  }

  /** Remember that the layer `diffId` gzipped to `digest` is now in the target repository. */
  async remember(diffId: string, digest: string, size: number): Promise<void> {
    await this.cache?.remember(diffId, this.recipe, digest, size, this.ctx.location);
  }

  /** The config digest of the daemon image `imageId`, when the cache learnt it from an earlier export. */
  configDigestOf(imageId: string): Promise<string | undefined> {
    return rememberedConfigDigest(this.cache, imageId);
  }

  /** Remember the config digest an export of the daemon image `imageId` showed. */
  rememberConfigDigest(imageId: string, configDigest: string, size: number): Promise<void> {
    return rememberConfigDigest(this.cache, imageId, configDigest, size);
  }

  /** Write the cache (a file-backed one) to disk. */
  async save(): Promise<void> {
    await this.cache?.save();
  }
}
