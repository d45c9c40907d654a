/**
 * Push method `auto`: per push, the Docker daemon's own push or the native push, whichever has
 * less to do, with the native push as the fallback of the daemon's.
 *
 * Why both: the native push reads a daemon image through the Engine API's export, and the daemon
 * (moby, every version without the containerd store) writes the WHOLE export to disk before its
 * first byte, on every push that needs a layer's bytes: ~1 s for a 149 MB image, 5-10 s for a 1-2
 * GB Astro Runtime image, even when one small layer changed. The daemon's push reads only the
 * layers it sends. But the daemon recognises a layer in the registry only under the digest of ITS
 * gzip (Go's compress/gzip, remembered per daemon); a layer the native push sent (our gzip, other
 * bytes, another digest) is gzipped and uploaded again by the daemon. So:
 *
 * - every layer and the config already in the registry (in either gzip) → native: the layer cache
 *   settles every layer by `HEAD` and only the manifest is sent, no export;
 * - layers the registry holds only in the native push's gzip (more than 1 MiB of them) → native:
 *   the daemon would send them again;
 * - otherwise (nothing there yet, or what is there was sent by the daemon) → the daemon push, and
 *   what it pushed is checked (the manifest's config digest must be the image ID) and remembered
 *   in the layer cache (recipe {@link DAEMON_RECIPE}), which is how later pushes know the daemon's
 *   digests. When the daemon push fails, or starts retrying (a bad link, where the native push's
 *   resumable chunked uploads complete and `docker push` fails), it is stopped and the native push
 *   takes over, skipping what the registry holds in either gzip.
 */
import { createHash } from 'node:crypto';
import { linkSignals } from '../core/abort.js';
import { emitterFor, fanOut } from '../core/emitter.js';
import { ErrorCodes, ImageError, isAstroError } from '../core/errors.js';
import { redact } from '../core/redact.js';
import { withRetries } from '../core/retry.js';
import { abortAware } from '../core/scope.js';
import { blobExists, registryRetryPolicy } from './blob-upload.js';
import { dockerClient, imageIdIsConfigDigest } from './docker.js';
import { inspectDaemonImage } from './inspect.js';
import { LayerCache, defaultLayerCache, rememberConfigDigest, rememberedConfigDigest, type CachedLayer } from './layer-cache.js';
import { ASTRO_PLATFORM } from './inspect.js';
import { isIndexType, manifestForPlatform, MediaTypes, type Descriptor } from './layout.js';
import { toPushError } from './push-context.js';
import { pushDaemon, type DaemonPushOptions } from './push-daemon.js';
import { assertTag, layerCacheRecipe, pushNative, registryClientFor, splitRepository, type NativePushOptions } from './push-native.js';
import { RegistryClient, responseHeader } from './registry-client.js';
import { classifySource } from './source.js';
import type { ImageEvent, ImageSource, PushResult, PushTarget } from './types.js';

/** Layer-cache recipe of the daemon's own gzip: diff ID → the digest and size the daemon pushed it as. */
export const DAEMON_RECIPE = 'docker-daemon';

/** Bytes the registry may hold in the native push's gzip only, for the daemon push still to be chosen. */
const NATIVE_ONLY_LIMIT = 1024 * 1024;

/** Options of {@link pushAuto}: the native push's, plus the daemon push's `keepTag`, plus `seedTag`. */
export type AutoPushOptions = NativePushOptions &
  Pick<DaemonPushOptions, 'keepTag'> & {
    /**
     * A tag in the target repository whose image's layers the registry holds (on Astro, what the
     * deployment runs). When the layer cache knows none of the image's layers (an ephemeral
     * runner), the layers that image shares with this one count as held, so the native push
     * skips them instead of the daemon sending them again. @default none
     */
    seedTag?: string;
  };

/** What `auto` decided, and why. */
export interface AutoDecision {
  method: 'native' | 'daemon';
  reason: string;
  /** For the native push: the entries the registry was found to hold, by diff ID (either gzip, or the seed image's). */
  held: Map<string, CachedLayer>;
  /** Digests of `held` that came from the seed image (in neither push's gzip: never remembered). */
  seeded?: ReadonlySet<string>;
}

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

/** Layer media types whose blobs any push of this SDK may name in its manifest (gzip). */
const GZIP_LAYERS = new Set<string>([MediaTypes.dockerLayerGzip, MediaTypes.ociLayerGzip]);

/**
 * The layers of the image under `tag` in `registry`'s repository (on Astro: the tag the deployment
 * runs), by diff ID: its manifest's gzip layers, matched to its config's diff IDs (the config's
 * digest checked). Best effort: no such tag, an index, a config that does not match, or any
 * failure but an abort gives an empty map.
 */
export async function layersOfTag(
  registry: RegistryClient,
  tag: string,
  options: { policy: ReturnType<typeof registryRetryPolicy>; signal?: AbortSignal | undefined },
): Promise<Map<string, CachedLayer>> {
  const out = new Map<string, CachedLayer>();
  const { signal } = options;
  const get = (url: string, expect: number[], accept?: string) =>
    withRetries(() => registry.send({ method: 'GET', url, ...(accept ? { headers: { accept } } : {}), ...(signal ? { signal } : {}) }, expect), {
      policy: options.policy,
      signal,
    });
  try {
    const m = await get(`/v2/${registry.repository}/manifests/${encodeURIComponent(tag)}`, [200, 404], `${MediaTypes.dockerManifest}, ${MediaTypes.ociManifest}`);
    if (m.status !== 200) return out;
    const manifest = JSON.parse(m.body.toString('utf8')) as { config?: { digest?: unknown }; layers?: Array<{ digest?: unknown; size?: unknown; mediaType?: unknown }> };
    const configDigest = manifest.config?.digest;
    const layers = manifest.layers;
    if (typeof configDigest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(configDigest) || !Array.isArray(layers)) return out;
    // A registry may answer a blob GET with a redirect to its storage (no credentials go there).
    let res = await get(`/v2/${registry.repository}/blobs/${configDigest}`, [200, 301, 302, 303, 307, 308]);
    if (res.status !== 200) {
      const location = responseHeader(res.headers, 'location');
      if (!location) return out;
      res = await get(new URL(location, res.url).toString(), [200]);
    }
    if (`sha256:${createHash('sha256').update(res.body).digest('hex')}` !== configDigest) return out;
    const diffIds = (JSON.parse(res.body.toString('utf8')) as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids;
    if (!Array.isArray(diffIds) || diffIds.length !== layers.length) return out;
    const location = `${registry.host}/${registry.repository}`;
    for (const [i, diffId] of diffIds.entries()) {
      const l = layers[i]!;
      if (typeof diffId === 'string' && typeof l.digest === 'string' && typeof l.size === 'number' && GZIP_LAYERS.has(String(l.mediaType))) {
        out.set(diffId, { digest: l.digest, size: l.size, locations: [location] });
      }
    }
  } catch (err) {
    if (signal?.aborted) throw err;
    out.clear();
  }
  return out;
}

/**
 * Decide between the daemon and the native push of `info` (see the module comment): `HEAD` the
 * digests the layer cache knows for each layer, in the native push's gzip and in the daemon's,
 * and the config.
 */
export async function decidePush(
  info: { diffIds: string[]; /** Undefined when not known without an export (see {@link imageIdIsConfigDigest}). */ configDigest: string | undefined },
  registry: RegistryClient,
  cache: LayerCache | undefined,
  recipe: string,
  options: { policy: ReturnType<typeof registryRetryPolicy>; signal?: AbortSignal | undefined; seed?: (() => Promise<Map<string, CachedLayer>>) | undefined },
): Promise<AutoDecision> {
  const held = new Map<string, CachedLayer>();
  const inRegistry = async (entry: CachedLayer | undefined): Promise<boolean> => {
    if (!entry) return false;
    const size = await blobExists(registry, entry.digest, options);
    return size !== undefined && (size === 0 || size === entry.size);
  };
  const diffIds = [...new Set(info.diffIds)];
  const [config, ...layers] = await Promise.all([
    info.configDigest ? blobExists(registry, info.configDigest, options) : undefined,
    ...diffIds.map(async (diffId) => {
      const daemon = await cache?.get(diffId, DAEMON_RECIPE);
      const native = await cache?.get(diffId, recipe);
      const [d, n] = await Promise.all([inRegistry(daemon), inRegistry(native)]);
      if (d) held.set(diffId, daemon!);
      else if (n) held.set(diffId, native!);
      return { daemon: d, native: n, nativeSize: native?.size ?? 0 };
    }),
  ]);
  // An empty layer cache (an ephemeral runner): what the registry holds as the seed image names it
  // counts as held in a gzip the daemon does not know, as the native push's own would.
  const fromSeed = new Set<string>();
  if (options.seed && held.size === 0 && diffIds.length > 0) {
    const seeded = await options.seed();
    await Promise.all(
      diffIds.map(async (diffId, i) => {
        const entry = seeded.get(diffId);
        if (!(await inRegistry(entry))) return;
        held.set(diffId, entry!);
        fromSeed.add(entry!.digest);
        layers[i] = { daemon: false, native: true, nativeSize: entry!.size };
      }),
    );
  }
  if (config !== undefined && held.size === diffIds.length) {
    return { method: 'native', reason: 'the registry holds every layer and the config: only the manifest is sent, without an export', held, seeded: fromSeed };
  }
  const nativeOnly = layers.filter((l) => l.native && !l.daemon).reduce((n, l) => n + l.nativeSize, 0);
  if (nativeOnly > NATIVE_ONLY_LIMIT) {
    const what = fromSeed.size ? `as the deployment's current image names them (${fromSeed.size} layers)` : "in the native push's gzip";
    return { method: 'native', reason: `the registry holds ${mib(nativeOnly)} of layers ${what}, which the daemon would send again`, held, seeded: fromSeed };
  }
  const fromDaemon = layers.filter((l) => l.daemon).length;
  return {
    method: 'daemon',
    reason: `${fromDaemon} of ${diffIds.length} layers are in the registry as the daemon pushed them; the daemon sends the others without an export of the image`,
    held,
  };
}

/**
 * The layer cache as the native push sees it after a decision: for the native recipe, the entry
 * the registry was found to hold (possibly the daemon's gzip of the layer: any gzip of it is a
 * valid layer blob), else the native entry, else the daemon's. What the native push learns about
 * a daemon-gzipped blob goes back under {@link DAEMON_RECIPE}, never under the native recipe.
 */
export class DaemonAwareLayerCache extends LayerCache {
  constructor(
    private readonly inner: LayerCache,
    private readonly recipe: string,
    private readonly held: Map<string, CachedLayer>,
    /** Digests in `held` from a seed image: in neither push's gzip, so never remembered. */
    private readonly seeded: ReadonlySet<string> = new Set(),
  ) {
    super();
  }

  override get path(): string | undefined {
    return this.inner.path;
  }

  private async daemonEntry(diffId: string, digest: string): Promise<boolean> {
    return (await this.inner.get(diffId, DAEMON_RECIPE))?.digest === digest;
  }

  override async get(diffId: string, recipe: string): Promise<CachedLayer | undefined> {
    if (recipe !== this.recipe) return this.inner.get(diffId, recipe);
    return this.held.get(diffId) ?? (await this.inner.get(diffId, recipe)) ?? (await this.inner.get(diffId, DAEMON_RECIPE));
  }

  override async remember(diffId: string, recipe: string, digest: string, size: number, location?: string): Promise<void> {
    if (recipe === this.recipe && this.seeded.has(digest)) return;
    const as = recipe === this.recipe && (await this.daemonEntry(diffId, digest)) ? DAEMON_RECIPE : recipe;
    await this.inner.remember(diffId, as, digest, size, location);
  }

  override async forget(diffId: string, recipe: string): Promise<void> {
    const served = await this.get(diffId, recipe);
    this.held.delete(diffId);
    if (recipe === this.recipe && served && (await this.daemonEntry(diffId, served.digest))) await this.inner.forget(diffId, DAEMON_RECIPE);
    else await this.inner.forget(diffId, recipe);
  }

  override save(): Promise<void> {
    return this.inner.save();
  }
}

/**
 * `options` with their layer cache (the default one unless `false`) seen through
 * {@link DaemonAwareLayerCache}: a native push then also skips layers the registry holds in the
 * daemon's gzip.
 */
export function withDaemonDigests<O extends Pick<NativePushOptions, 'layerCache' | 'gzipLevel' | 'gzipBlockBytes'>>(options: O): O {
  const cache = options.layerCache === false ? undefined : (options.layerCache ?? defaultLayerCache);
  return cache ? { ...options, layerCache: new DaemonAwareLayerCache(cache, layerCacheRecipe(options), new Map()) } : options;
}

/**
 * Check what a daemon push put in the registry, and remember it: the manifest under `digest` must
 * hash to it, be the image that was built and tested, and carry one layer per diff ID. Which image
 * it is shows two ways: under the classic image store its config digest is the image ID; under
 * the containerd store the daemon pushes the manifest or index it holds, whose digest is the image
 * ID (an index is followed to its linux/amd64 manifest). Each layer's digest and size go into the
 * cache under {@link DAEMON_RECIPE}, and the config digest under the image ID.
 * @returns the media type of what the daemon pushed
 * @throws ImageError `ASTRO_IMAGE_PUSH_FAILED` when the manifest is not the image's
 */
export async function verifyDaemonManifest(
  registry: RegistryClient,
  digest: string,
  info: { diffIds: string[]; imageId: string },
  reference: string,
  cache: LayerCache | undefined,
  location: string,
  options: { policy: ReturnType<typeof registryRetryPolicy>; signal?: AbortSignal | undefined },
): Promise<string> {
  const fetch = async (ref: string): Promise<{ hash: string; json: PushedManifest | undefined }> => {
    const res = await withRetries(
      () =>
        registry.send(
          {
            method: 'GET',
            url: `/v2/${registry.repository}/manifests/${ref}`,
            headers: { accept: [MediaTypes.dockerManifest, MediaTypes.ociManifest, MediaTypes.ociIndex, MediaTypes.dockerManifestList].join(', ') },
            ...(options.signal ? { signal: options.signal } : {}),
          },
          [200],
        ),
      { policy: options.policy, signal: options.signal },
    );
    let json: PushedManifest | undefined;
    try {
      json = JSON.parse(res.body.toString('utf8')) as PushedManifest;
    } catch {
      json = undefined;
    }
    return { hash: `sha256:${createHash('sha256').update(res.body).digest('hex')}`, json };
  };
  const pushed = await fetch(digest);
  let manifest = pushed.json;
  const pushedTheId = pushed.hash === digest && digest === info.imageId;
  if (pushedTheId && (isIndexType(manifest?.mediaType) || Array.isArray(manifest?.manifests))) {
    const child = manifestForPlatform(manifest?.manifests ?? [], ASTRO_PLATFORM);
    const fetched = child?.digest ? await fetch(child.digest) : undefined;
    manifest = fetched && fetched.hash === child?.digest ? fetched.json : undefined;
  }
  const layers = manifest?.layers ?? [];
  const config = manifest?.config;
  const isTheImage = pushedTheId || config?.digest === info.imageId;
  if (pushed.hash !== digest || !isTheImage || layers.length !== info.diffIds.length) {
    throw new ImageError(
      ErrorCodes.IMAGE_PUSH_FAILED,
      `The daemon pushed ${reference} as ${digest}, but that manifest is not image ${info.imageId} (config ${String(config?.digest)}, ${layers.length} layers for ${info.diffIds.length}): was the tag moved during the push?`,
      reference,
    );
  }
  const mediaType = pushed.json?.mediaType ?? MediaTypes.ociManifest;
  if (!cache) return mediaType;
  for (const [i, l] of layers.entries()) {
    if (typeof l.digest === 'string' && typeof l.size === 'number') await cache.remember(info.diffIds[i]!, DAEMON_RECIPE, l.digest, l.size, location);
  }
  if (typeof config?.digest === 'string' && typeof config.size === 'number') await rememberConfigDigest(cache, info.imageId, config.digest, config.size);
  await cache.save();
  return mediaType;
}

/** The parts of a pushed manifest (or index) the check reads. */
interface PushedManifest {
  mediaType?: string;
  config?: { digest?: string; size?: number };
  layers?: Array<{ digest?: string; size?: number }>;
  manifests?: Descriptor[];
}

/** Push a daemon image with method `auto` (an archive goes to the native push). See the module comment. */
export async function pushAuto(source: ImageSource, target: PushTarget, options: AutoPushOptions = {}): Promise<PushResult> {
  const where = await classifySource(source);
  if (where.kind !== 'daemon') return pushNative(source, target, withDaemonDigests(options));
  const { host, path } = splitRepository(target.repository);
  assertTag(target.tag);
  const reference = `${target.repository}:${target.tag}`;
  const emit = emitterFor<ImageEvent>(options.onEvent, options.logger);
  const policy = registryRetryPolicy(options.retry);
  const { signal } = options;
  const cache = options.layerCache === false ? undefined : (options.layerCache ?? defaultLayerCache);
  const recipe = layerCacheRecipe(options);
  const location = `${host}/${path}`;

  const docker = await dockerClient(options.docker, 'push the image');
  const info = await inspectDaemonImage(where.name, docker);
  const imageId = info.configDigest;
  const configDigest = (await imageIdIsConfigDigest(docker)) ? imageId : await rememberedConfigDigest(cache, imageId);
  const registry = registryClientFor(host, path, options);
  let decision: AutoDecision;
  try {
    await withRetries(() => registry.ping(signal), { policy, signal });
    const seedTag = options.seedTag;
    // The native push skips what it is told of through the layer cache: without one, no seed.
    const seed = cache && seedTag !== undefined && seedTag !== target.tag ? () => layersOfTag(registry, seedTag, { policy, signal }) : undefined;
    decision = await decidePush({ diffIds: info.diffIds, configDigest }, registry, cache, recipe, { policy, signal, seed });
  } catch (err) {
    throw toPushError(abortAware(err, signal), reference, 'pushing');
  }
  emit({ type: 'image:push-method', method: decision.method, reason: decision.reason });
  const native = (held: Map<string, CachedLayer>) =>
    pushNative({ imageName: imageId }, target, {
      ...options,
      docker,
      layerCache: cache ? new DaemonAwareLayerCache(cache, recipe, held, decision.seeded) : false,
    });
  if (decision.method === 'native') return native(decision.held);

  // The daemon push, stopped at its first retry: on a link that fails requests, the native push's
  // resumable uploads are the ones that complete.
  const stop = new AbortController();
  let retrying: string | undefined;
  const watch = (e: ImageEvent) => {
    if (e.type === 'image:daemon-progress' && /^Retrying in/i.test(e.status) && !retrying) {
      retrying = e.status;
      stop.abort(new Error(`the daemon push is retrying (${e.status})`));
    }
  };
  const linked = linkSignals(signal, stop.signal);
  try {
    const daemonOptions: DaemonPushOptions = { docker, signal: linked.signal, onEvent: fanOut(watch, options.onEvent ? emit : undefined) };
    if (options.auth) daemonOptions.auth = options.auth;
    if (options.keepTag !== undefined) daemonOptions.keepTag = options.keepTag;
    if (options.logger) daemonOptions.logger = options.logger;
    // The image by its ID: the daemon tags exactly the image that was inspected.
    const result = await pushDaemon({ imageName: imageId }, target, daemonOptions);
    const mediaType = await verifyDaemonManifest(registry, result.digest, { diffIds: info.diffIds, imageId }, reference, cache, location, { policy, signal: linked.signal });
    return { ...result, mediaType };
  } catch (err) {
    if (signal?.aborted) throw abortAware(err, signal);
    const code = retrying ? ErrorCodes.IMAGE_PUSH_FAILED : isAstroError(err) ? err.code : ErrorCodes.IMAGE_PUSH_FAILED;
    const why = redact(retrying ? `the daemon push started retrying (${retrying})` : ((err as Error)?.message ?? String(err)));
    emit({ type: 'image:push-method', method: 'native', reason: `the daemon push failed: ${why}`, fallbackFrom: 'daemon' });
    const result = await native(decision.held);
    return { ...result, fallback: { from: 'daemon', code, reason: why } };
  } finally {
    linked.dispose();
  }
}
