/**
 * The native push: image bytes go from the daemon's export or an archive straight to the
 * registry over the OCI distribution API, without `docker push`. Its phases, cheapest first, each
 * in a module of its own:
 * 1. identify (`push-identify.ts`): what the image is (daemon inspect, or the archive's index),
 *    before any upload;
 * 2. settle (`push-settle.ts`): layers gzipped by an earlier push (layer cache) are `HEAD`ed or
 *    mounted without reading them; when that settles every layer and the config of a daemon
 *    image, the daemon is not even asked for an export;
 * 3. schedule (`push-schedule.ts`): the other layers are read, gzipped while hashing (to temp
 *    files) and uploaded with the resumable uploader (`blob-upload.ts`), several at a time; a
 *    daemon export is consumed as a stream and each layer starts uploading as soon as it arrived;
 * 4. manifest (`push-manifest.ts`): the config (uploaded beside the layers), then the manifest
 *    (Docker v2 schema 2 unless asked for OCI).
 * The push runs in one operation scope: the first failure cancels every other part, the caller's
 * abort ends it with `AstroAbortError`, and temp files go only once nothing reads them any more.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DispatcherLike } from '../core/dispatcher.js';
import { emitterFor } from '../core/emitter.js';
import { ErrorCodes, ImageError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { withRetries, type RetryOptions } from '../core/retry.js';
import { runInScope, type OperationScope } from '../core/scope.js';
import { bufferData, DEFAULT_GZIP, TempSpace, type GzipSettings } from './blob.js';
import { ChunkSizer, DEFAULT_CHUNK_BYTES, DEFAULT_MIN_CHUNK_BYTES, pushBlob, registryRetryPolicy, type BlobUploadOutcome } from './blob-upload.js';
import { LayerCache, defaultLayerCache } from './layer-cache.js';
import { toPushError, type PushContext } from './push-context.js';
import { identifyImage, type IdentifiedImage } from './push-identify.js';
import { pushManifest } from './push-manifest.js';
import { cacheHints, LayerSettler } from './push-settle.js';
import { LayerScheduler } from './push-schedule.js';
import { RegistryClient } from './registry-client.js';
import type { DockerOptions, ImageEvent, ImageSource, PushResult, PushTarget, RegistryAuth } from './types.js';
import { validatePushOptions } from './push-options.js';

/** Options of the native push (see {@link pushImage} for the shared ones). */
export interface NativePushOptions extends DockerOptions {
  auth?: RegistryAuth;
  /**
   * undici dispatcher of every registry request (registry, token service, upload locations), e.g.
   * with custom TLS. @default `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` when set, else undici's global
   * dispatcher (so `setGlobalDispatcher` applies)
   */
  dispatcher?: DispatcherLike;
  /** Use plain HTTP; only for a loopback registry (others throw `ASTRO_INSECURE_URL`). @default true only for loopback registries */
  plainHttp?: boolean;
  /** First upload chunk size, in bytes; halves after a timeout-like failure. @default 16 MiB */
  chunkSizeBytes?: number;
  /** Smallest chunk size, in bytes. @default 256 KiB */
  minChunkSizeBytes?: number;
  /** Layers prepared and uploaded at once. @default 3 */
  concurrency?: number;
  /**
   * gzip level (1 fastest, 9 smallest) for uncompressed layers; it decides the layers' digests.
   * @default 4: layers about as small as `skopeo copy` makes them, for ~40% less CPU than zlib's
   *   default 6 (figures at `DEFAULT_GZIP`); 6 gives ~3% smaller layers and the digests of pushes
   *   before this default
   */
  gzipLevel?: number;
  /**
   * Layers are gzipped in blocks of this many input bytes, each block on its own thread (a
   * multi-member gzip file), so a big layer uses every core; 0 gzips each layer as one stream on one
   * thread. Changing it changes the layers' digests. At least 64 KiB. @default 2 MiB
   */
  gzipBlockBytes?: number;
  /** Manifest flavour. `docker` (v2 schema 2) is what `docker push` writes. @default 'docker' ('oci' when a layer is zstd) */
  manifestFormat?: 'docker' | 'oci';
  /** Repositories of the same registry to try cross-repository mounts from. @default [] plus what the layer cache knows */
  mountFrom?: string[];
  /**
   * Layer-digest cache: what earlier pushes gzipped each layer (diff ID) to, so a layer the
   * registry already holds is neither read nor gzipped again; `false` disables it.
   * @default {@link defaultLayerCache}, kept in `$XDG_CACHE_HOME/astro-deploy-sdk/layer-digests.json`
   *   (else `~/.cache`, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows)
   */
  layerCache?: LayerCache | false;
  /** Upload body stall limit, in milliseconds. @default 30000 */
  stallTimeoutMs?: number;
  /** Commit (`PUT ?digest=`) answer limit, in milliseconds. @default 180000 */
  commitTimeoutMs?: number;
  /** Limit for other registry requests' answers, in milliseconds. @default 60000 */
  requestTimeoutMs?: number;
  /**
   * How failed registry requests are retried (408, 429, 5xx, resets, timeouts, stalls; a
   * `Retry-After` is honoured). `maxRetries` counts failures in a row of one request, or of one
   * blob's upload, where a chunk the registry confirms starts the count again (and a blob gets
   * 40 failures in all). @default { maxRetries: 6, initialDelayMs: 250, maxDelayMs: 5000, maxRetryAfterMs: 60000 }
   */
  retry?: RetryOptions;
  /** Folder for temp files (gzipped layers, the gunzipped copy of a `.tar.gz` archive path). @default os.tmpdir() */
  tempDir?: string;
  /** Platform to push from a multi-platform archive. @default linux/amd64 */
  platform?: { os: string; architecture: string; variant?: string };
  signal?: AbortSignal;
  /** Progress events. A listener that throws is ignored (noted on `logger` at debug level). */
  onEvent?: (e: ImageEvent) => void;
  /** Where the push notes what it ignores (a throwing listener), at debug level. @default silent */
  logger?: Logger;
}

const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const REPO_PATH = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

/** Split `host[:port]/path` into registry host and repository path. */
export function splitRepository(repository: string): { host: string; path: string } {
  const slash = repository.indexOf('/');
  const first = slash < 0 ? '' : repository.slice(0, slash);
  const looksLikeHost = first.includes('.') || first.includes(':') || first === 'localhost';
  if (!looksLikeHost) {
    throw new ImageError(
      ErrorCodes.IMAGE_PUSH_FAILED,
      `Repository "${repository}" does not name a registry host; expected host[:port]/path (on Astro: the deploy's imageRepository).`,
      repository,
    );
  }
  const path = repository.slice(slash + 1);
  if (!REPO_PATH.test(path)) {
    throw new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `Repository path "${path}" is not a valid repository name (lower-case, digits, . _ - and /).`, repository);
  }
  return { host: first, path };
}

/** Check a tag, throwing a clear error for an invalid one. */
export function assertTag(tag: string): void {
  if (!TAG.test(tag)) throw new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `"${tag}" is not a valid image tag (letters, digits, _ . -; at most 128).`, tag);
}

/** The gzip recipe of a push: the caller's level and block size over the defaults. */
function gzipSettings(options: Pick<NativePushOptions, 'gzipLevel' | 'gzipBlockBytes'>): GzipSettings {
  return {
    ...DEFAULT_GZIP,
    ...(options.gzipLevel !== undefined ? { level: options.gzipLevel } : {}),
    ...(options.gzipBlockBytes !== undefined ? { blockBytes: options.gzipBlockBytes } : {}),
  };
}

/**
 * The layer cache's recipe of a native push with these options: cache entries are only valid for
 * the same gzip level and block size, which decide the digest.
 */
export function layerCacheRecipe(options: Pick<NativePushOptions, 'gzipLevel' | 'gzipBlockBytes'>): string {
  const gzip = gzipSettings(options);
  return `gzip-${gzip.level}-b${gzip.blockBytes}`;
}

/** Push an image natively. See the module comment. */
export async function pushNative(source: ImageSource, target: PushTarget, options: NativePushOptions = {}): Promise<PushResult> {
  validatePushOptions(options);
  const { host, path } = splitRepository(target.repository);
  assertTag(target.tag);
  const reference = `${target.repository}:${target.tag}`;
  const policy = registryRetryPolicy(options.retry);
  const emit = emitterFor(options.onEvent, options.logger);
  try {
    return await runInScope(options.signal, (scope) => push(scope, source, target, options, { host, path, reference, policy, emit }));
  } catch (err) {
    throw toPushError(err, reference, 'pushing');
  }
}

async function push(
  scope: OperationScope,
  source: ImageSource,
  target: PushTarget,
  options: NativePushOptions,
  base: Pick<PushContext, 'reference' | 'policy' | 'emit'> & { host: string; path: string },
): Promise<PushResult> {
  const started = Date.now();
  const { host, path, reference, policy, emit } = base;
  const signal = scope.signal;
  const gzip = gzipSettings(options);
  const recipe = layerCacheRecipe(options);
  const cache = options.layerCache === false ? undefined : (options.layerCache ?? defaultLayerCache);
  const location = `${host}/${path}`;
  emit({ type: 'image:push-start', reference, method: 'native' });

  let identified: IdentifiedImage | undefined;
  let temp: TempSpace | undefined;
  let scheduler: LayerScheduler | undefined;
  try {
    // 1. What is the image?
    identified = await identifyImage(source, options, signal);
    temp = new TempSpace(await mkdtemp(join(options.tempDir ?? tmpdir(), 'astro-push-')));

    // 2. What may the registry hold already? The cache's mount sources go into the token scopes.
    const hints = await cacheHints(cache, recipe, identified.diffIds, { host, location }, options.mountFrom);
    const registry = registryClientFor(host, path, options, [...hints.mountFrom]);
    await withRetries(() => registry.ping(signal), { policy, signal });
    const ctx: PushContext = {
      registry,
      reference,
      location,
      signal,
      emit,
      policy,
      upload: {
        ...(options.retry ? { retry: options.retry } : {}),
        ...(options.stallTimeoutMs ? { stallTimeoutMs: options.stallTimeoutMs } : {}),
        ...(options.commitTimeoutMs ? { commitTimeoutMs: options.commitTimeoutMs } : {}),
        // One sizing for all blobs: a link that cuts long requests cuts them for every layer.
        chunkSizer: new ChunkSizer(options.chunkSizeBytes || DEFAULT_CHUNK_BYTES, options.minChunkSizeBytes || DEFAULT_MIN_CHUNK_BYTES),
        signal,
        ...(options.onEvent ? { onEvent: options.onEvent } : {}),
        ...(options.logger ? { logger: options.logger } : {}),
      },
    };
    const settler = new LayerSettler(ctx, cache, recipe, hints);

    // 3. Layers: settled, or read, gzipped and uploaded, several at a time.
    scheduler = new LayerScheduler(ctx, settler, scope, {
      concurrency: options.concurrency ?? 3,
      gzip,
      temp,
      ...(options.docker ? { docker: options.docker } : {}),
    });
    const plan = await scheduler.plan(identified);
    // 4. The config goes up beside the layers (its HEAD is one round trip less before the manifest).
    const { config } = plan;
    const configPush: Promise<BlobUploadOutcome> = config.data
      ? pushBlob(registry, { digest: config.digest, size: config.size, data: bufferData(config.data), compressed: false }, ctx.upload)
      : Promise.resolve({ status: 'skipped', bytesSent: 0 });
    // Its failure is the push's (observed here too, so it is never unhandled while layers run).
    configPush.catch((err: unknown) => scope.fail(err));
    const layers = await scheduler.outcomes(plan.layers);
    const configOutcome = await configPush;

    // 5. The manifest, once every blob is in.
    const manifest = await pushManifest(ctx, target.tag, config, layers, options.manifestFormat);
    await settler.save();
    const bytesSent = layers.reduce((n, o) => n + o.bytesSent, 0) + configOutcome.bytesSent + manifest.size;
    emit({ type: 'image:push-complete', digest: manifest.digest, reference, bytesSent, durationMs: Date.now() - started });
    return {
      digest: manifest.digest,
      reference,
      canonicalReference: `${target.repository}@${manifest.digest}`,
      mediaType: manifest.mediaType,
      layers: layers.map((o) => ({ digest: o.digest, size: o.size, status: o.status })),
      bytesSent,
      method: 'native',
    };
  } catch (err) {
    // Stop every layer still in flight before their temp files go; the scope keeps the first failure.
    scope.fail(err);
    throw err;
  } finally {
    await scheduler?.drain();
    if (identified?.kind === 'archive' && identified.owned) await identified.archive.close();
    await temp?.dispose();
  }
}

/** The registry client of a push to `host/path`, with the push's transport options (auth, dispatcher, plain HTTP, time limit). */
export function registryClientFor(host: string, path: string, options: NativePushOptions, mountSources: string[] = []): RegistryClient {
  return new RegistryClient({
    host,
    repository: path,
    ...(options.plainHttp !== undefined ? { plainHttp: options.plainHttp } : {}),
    ...(options.auth ? { auth: options.auth } : {}),
    ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    ...(options.requestTimeoutMs ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
    ...(mountSources.length ? { mountSources } : {}),
  });
}
