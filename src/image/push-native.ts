/**
 * The native push: image bytes go from the daemon's export or an archive straight to the
 * registry over the OCI distribution API, without `docker push`.
 *
 * Order of work, cheapest first:
 * 1. Read what the image is (daemon inspect, or the archive's index), before any upload.
 * 2. For layers gzipped by an earlier push (layer cache), `HEAD` the registry: what it has is
 *    skipped without reading the layer; what another repository of the registry has is mounted.
 *    When that settles every layer and the config, the daemon is not even asked for an export.
 * 3. Otherwise read the layers, gzip the uncompressed ones while hashing (to temp files), and
 *    upload each missing blob with the resumable uploader, several layers at a time; a daemon
 *    export is consumed as a stream and each layer starts uploading as soon as it has arrived.
 * 4. Upload the config, then `PUT` the manifest (Docker v2 schema 2 unless asked for OCI).
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dispatcher } from 'undici';
import { throwIfAborted, toAbortError } from '../core/abort.js';
import { ErrorCodes, ImageError, isAstroError } from '../core/errors.js';
import { redactDeep } from '../core/redact.js';
import type { BackoffOptions } from '../core/retry.js';
import { bufferData, DEFAULT_GZIP, digestOf, fileData, gzipToFile, hashStream, TempSpace, type BlobData, type GzipSettings, type PreparedBlob } from './blob.js';
import { blobExists, ChunkSizer, pushBlob, retryTransient, type BlobUploadOptions, type BlobUploadOutcome } from './blob-upload.js';
import { dockerClient, engineCall } from './docker.js';
import { inspectDaemonImage } from './inspect.js';
import { LayerCache, defaultLayerCache } from './layer-cache.js';
import { MediaTypes, resolveImage, type LayerCompression, type ResolvedImage } from './layout.js';
import { RegistryClient, RegistryHttpError, RegistryTransportError, responseHeader } from './registry-client.js';
import { classifySource, DiskArchive } from './source.js';
import { SpooledArchive, type SpooledMember } from './spool.js';
import type { DockerOptions, ImageEvent, ImageSource, PushedLayer, PushResult, PushTarget, RegistryAuth } from './types.js';

/** Options of the native push (see {@link pushImage} for the shared ones). */
export interface NativePushOptions extends DockerOptions {
  auth?: RegistryAuth;
  /** undici dispatcher for registry traffic. @default a private connection pool, closed afterwards */
  dispatcher?: Dispatcher;
  /** Use plain HTTP. @default true only for localhost and 127.0.0.0/8 registries */
  plainHttp?: boolean;
  /** First upload chunk size, in bytes; halves after a timeout-like failure. @default 16 MiB */
  chunkSizeBytes?: number;
  /** Smallest chunk size, in bytes. @default 256 KiB */
  minChunkSizeBytes?: number;
  /** Layers prepared and uploaded at once. @default 3 */
  concurrency?: number;
  /** gzip level (1 fastest, 9 smallest) for uncompressed layers. @default 6 */
  gzipLevel?: number;
  /**
   * Layers are gzipped in blocks of this many input bytes, each block on its own thread (a
   * multi-member gzip file), so a big layer uses every core; 0 gzips each layer as one stream on one
   * thread. Changing it changes the layers' digests. @default 2 MiB
   */
  gzipBlockBytes?: number;
  /** Manifest flavour. `docker` (v2 schema 2) is what `docker push` writes. @default 'docker' ('oci' when a layer is zstd) */
  manifestFormat?: 'docker' | 'oci';
  /** Repositories of the same registry to try cross-repository mounts from. @default [] plus what the layer cache knows */
  mountFrom?: string[];
  /** Layer cache; `false` disables it. @default the process-wide memory cache */
  layerCache?: LayerCache | false;
  /** Failures in a row per blob before giving up. @default 6 */
  maxRetries?: number;
  /** Upload body stall limit, in milliseconds. @default 30000 */
  stallTimeoutMs?: number;
  /** Commit (`PUT ?digest=`) answer limit, in milliseconds. @default 180000 */
  commitTimeoutMs?: number;
  /** Limit for other registry requests' answers, in milliseconds. @default 60000 */
  requestTimeoutMs?: number;
  /** Backoff between retries. */
  backoff?: BackoffOptions;
  /** Folder for temp files (gzipped layers, the gunzipped copy of a `.tar.gz` archive path). @default os.tmpdir() */
  tempDir?: string;
  /** Platform to push from a multi-platform archive. @default linux/amd64 */
  platform?: { os: string; architecture: string; variant?: string };
  signal?: AbortSignal;
  onEvent?: (e: ImageEvent) => void;
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

/** Run at most `n` tasks at once. */
function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const queue: Array<() => void> = [];
  const next = () => {
    if (running >= n) return;
    const start = queue.shift();
    if (start) {
      running += 1;
      start();
    }
  };
  return (task) =>
    new Promise((resolve, reject) => {
      queue.push(() => {
        task()
          .then(resolve, reject)
          .finally(() => {
            running -= 1;
            next();
          });
      });
      next();
    });
}

/** A layer to push, in manifest order. */
interface LayerPlan {
  diffId: string;
  compression: LayerCompression;
  /** Digest/size of the bytes as stored, when the source states them (compressed OCI blobs). */
  storedDigest?: string;
  storedSize?: number;
  /** Bytes of the layer as stored in the source. */
  data?: BlobData;
  /** The layer already gzipped (during a daemon export). */
  prepared?: PreparedBlob;
}

/** The outcome of one layer. */
interface LayerOutcome {
  digest: string;
  size: number;
  compression: LayerCompression;
  status: PushedLayer['status'];
  bytesSent: number;
}

function layerMediaType(format: 'docker' | 'oci', compression: LayerCompression): string {
  if (format === 'docker') return compression === 'none' ? MediaTypes.dockerLayer : MediaTypes.dockerLayerGzip;
  if (compression === 'zstd') return MediaTypes.ociLayerZstd;
  return compression === 'none' ? MediaTypes.ociLayer : MediaTypes.ociLayerGzip;
}

/** Push an image natively. See the module comment. */
export async function pushNative(source: ImageSource, target: PushTarget, options: NativePushOptions = {}): Promise<PushResult> {
  const started = Date.now();
  const { host, path } = splitRepository(target.repository);
  assertTag(target.tag);
  const reference = `${target.repository}:${target.tag}`;
  const userSignal = options.signal;
  // Our own signal: fired on the caller's abort, and by us on a failure, so layer uploads still in
  // flight stop before their temp files are removed.
  const internal = new AbortController();
  const onUserAbort = () => internal.abort(userSignal?.reason);
  if (userSignal?.aborted) onUserAbort();
  userSignal?.addEventListener('abort', onUserAbort, { once: true });
  const signal = internal.signal;
  const sig = { signal };
  const emit = (e: ImageEvent) => {
    if (options.onEvent) options.onEvent(redactDeep(e));
  };
  const gzip: GzipSettings = {
    ...DEFAULT_GZIP,
    ...(options.gzipLevel !== undefined ? { level: options.gzipLevel } : {}),
    ...(options.gzipBlockBytes !== undefined ? { blockBytes: options.gzipBlockBytes } : {}),
  };
  // Cache entries are only valid for the same gzip recipe: it decides the digest.
  const recipe = `gzip-${gzip.level}-b${gzip.blockBytes}`;
  const cache = options.layerCache === false ? undefined : (options.layerCache ?? defaultLayerCache);
  const location = `${host}/${path}`;
  emit({ type: 'image:push-start', reference, method: 'native' });

  let temp: TempSpace | undefined;
  let archive: DiskArchive | undefined;
  /** True when this push opened the archive (an `{ archive }` source stays open for its owner). */
  let ownsArchive = false;
  let client: RegistryClient | undefined;
  const tasks: Array<Promise<unknown>> = [];
  try {
    const where = await classifySource(source);
    temp = new TempSpace(await mkdtemp(join(options.tempDir ?? tmpdir(), 'astro-push-')));
    const scratch = temp;
    // 1. What is the image?
    let diffIds: string[];
    let resolved: ResolvedImage | undefined;
    let daemonConfigDigest: string | undefined;
    if (where.kind === 'archive') {
      if (where.archive) {
        archive = where.archive as DiskArchive;
      } else {
        archive = await DiskArchive.open(where.path, signal, options.tempDir);
        ownsArchive = true;
      }
      resolved = await resolveImage(archive, {
        archiveName: where.path,
        platform: options.platform ?? { os: 'linux', architecture: 'amd64' },
        ...(where.archiveImage ? { archiveImage: where.archiveImage } : {}),
      });
      diffIds = resolved.layers.map((l) => l.diffId ?? '');
    } else {
      const info = await inspectDaemonImage(where.name, dockerClient(options.docker));
      diffIds = info.diffIds;
      daemonConfigDigest = info.configDigest;
    }

    // 2. Cache hints: known compressed digests and where they were pushed.
    const hints = new Map<string, { digest: string; size: number; locations: string[] }>();
    if (cache) {
      for (const d of diffIds) {
        const hit = d ? await cache.get(d, recipe) : undefined;
        if (hit) hints.set(d, hit);
      }
    }
    const mountFrom = new Set(options.mountFrom ?? []);
    for (const h of hints.values()) {
      for (const loc of h.locations) if (loc.startsWith(`${host}/`) && loc !== location) mountFrom.add(loc.slice(host.length + 1));
    }

    client = new RegistryClient({
      host,
      repository: path,
      ...(options.plainHttp !== undefined ? { plainHttp: options.plainHttp } : {}),
      ...(options.auth ? { auth: options.auth } : {}),
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
      ...(options.requestTimeoutMs ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
      mountSources: [...mountFrom],
    });
    const registry = client;
    await retryTransient(() => registry.ping(signal), signal, options.backoff);

    const uploadOptions: BlobUploadOptions = {
      ...(options.chunkSizeBytes ? { chunkSizeBytes: options.chunkSizeBytes } : {}),
      ...(options.minChunkSizeBytes ? { minChunkSizeBytes: options.minChunkSizeBytes } : {}),
      ...(options.maxRetries !== undefined ? { maxRetries: options.maxRetries } : {}),
      ...(options.stallTimeoutMs ? { stallTimeoutMs: options.stallTimeoutMs } : {}),
      ...(options.commitTimeoutMs ? { commitTimeoutMs: options.commitTimeoutMs } : {}),
      ...(options.backoff ? { backoff: options.backoff } : {}),
      ...sig,
      onEvent: emit,
      // One sizing for all blobs: a link that cuts long requests cuts them for every layer.
      chunkSizer: new ChunkSizer(options.chunkSizeBytes ?? 16 * 1024 * 1024, options.minChunkSizeBytes ?? 256 * 1024),
    };
    const limit = limiter(Math.max(1, options.concurrency ?? 3));
    const byDiffId = new Map<string, Promise<LayerOutcome>>();

    /** Layers the registry is known to hold already, without reading them. */
    const settleFromCache = async (diffId: string): Promise<LayerOutcome | undefined> => {
      const hint = hints.get(diffId);
      if (!hint) return undefined;
      const size = await blobExists(registry, hint.digest, sig);
      if (size !== undefined) {
        emit({ type: 'image:layer-prepared', digest: hint.digest, size: hint.size, diffId, compressed: true, fromCache: true });
        emit({ type: 'image:layer-skipped', digest: hint.digest, size: hint.size });
        await cache?.remember(diffId, recipe, hint.digest, hint.size, location);
        return { digest: hint.digest, size: hint.size, compression: 'gzip', status: 'skipped', bytesSent: 0 };
      }
      for (const from of mountFrom) {
        const mounted = await tryMount(registry, hint.digest, from, signal);
        if (mounted) {
          emit({ type: 'image:layer-mounted', digest: hint.digest, size: hint.size, from });
          await cache?.remember(diffId, recipe, hint.digest, hint.size, location);
          return { digest: hint.digest, size: hint.size, compression: 'gzip', status: 'mounted', bytesSent: 0 };
        }
      }
      return undefined;
    };

    /** Read (and gzip if needed) a layer, then upload it. */
    const pushLayer = async (plan: LayerPlan): Promise<LayerOutcome> => {
      throwIfAborted(signal);
      if (plan.compression === 'none' && !plan.prepared) {
        const cached = await settleFromCache(plan.diffId);
        if (cached) return cached;
      }
      const blob = plan.prepared ?? (await prepareLayer(plan, scratch, gzip, signal));
      emit({
        type: 'image:layer-prepared',
        digest: blob.digest,
        size: blob.size,
        ...(blob.diffId ? { diffId: blob.diffId } : {}),
        compressed: blob.compressed,
        fromCache: false,
      });
      const outcome: BlobUploadOutcome = await pushBlob(registry, blob, { ...uploadOptions, mountFrom: [...mountFrom] });
      if (blob.compressed && plan.diffId) await cache?.remember(plan.diffId, recipe, blob.digest, blob.size, location);
      return { digest: blob.digest, size: blob.size, compression: blob.compressed ? 'gzip' : plan.compression, status: outcome.status, bytesSent: outcome.bytesSent };
    };

    const schedule = (plan: LayerPlan): Promise<LayerOutcome> => {
      const existing = byDiffId.get(plan.diffId);
      if (existing) return existing;
      const p = limit(() => pushLayer(plan));
      p.catch(() => undefined); // observed later; avoid an unhandled rejection meanwhile
      byDiffId.set(plan.diffId, p);
      tasks.push(p);
      return p;
    };

    let config: { digest: string; size: number; data?: Buffer };
    let plans: LayerPlan[];

    if (resolved && archive) {
      const a = archive;
      plans = resolved.layers.map((l) => planFromMember(l, a.data(l.member)));
      config = { digest: resolved.configDigest, size: resolved.config.length, data: resolved.config };
      for (const plan of plans) void schedule(plan);
    } else {
      // Daemon: first try to settle everything from the cache, without an export.
      const settled = await Promise.all(diffIds.map((d) => settleFromCache(d)));
      const configSize = settled.every(Boolean) ? await blobExists(registry, daemonConfigDigest!, sig) : undefined;
      if (configSize !== undefined) {
        plans = diffIds.map((d) => ({ diffId: d, compression: 'none' as const }));
        settled.forEach((s, i) => byDiffId.set(diffIds[i]!, Promise.resolve(s!)));
        config = { digest: daemonConfigDigest!, size: configSize };
      } else {
        settled.forEach((s, i) => {
          if (s) byDiffId.set(diffIds[i]!, Promise.resolve(s));
        });
        const spooled = await spoolDaemonExport(where.kind === 'daemon' ? where.name : '', options, scratch, gzip, diffIds, (m) => {
          // A layer has fully arrived (already gzipped): upload it while the export goes on.
          if (m.gzipped) void schedule({ diffId: m.digest, compression: 'none', prepared: m.gzipped });
        }, signal);
        const image = await resolveImage(spooled, { archiveName: `export of ${where.kind === 'daemon' ? where.name : ''}` });
        if (image.configDigest !== daemonConfigDigest) {
          throw new ImageError(ErrorCodes.IMAGE_INVALID_ARCHIVE, 'The daemon exported a different image than it described (was the tag moved during the push?). Try again.', reference);
        }
        plans = image.layers.map((l) => {
          const prepared = spooled.gzipped(l.member);
          if (prepared) return { diffId: l.diffId ?? '', compression: 'none' as const, prepared };
          return planFromMember(l, spooled.data(l.member));
        });
        for (const plan of plans) void schedule(plan);
        config = { digest: image.configDigest, size: image.config.length, data: image.config };
      }
    }

    const outcomes: LayerOutcome[] = [];
    let firstError: unknown;
    for (const plan of plans) {
      try {
        outcomes.push(await byDiffId.get(plan.diffId)!);
      } catch (err) {
        firstError ??= err;
      }
    }
    if (firstError) throw firstError;

    // 4. Config, then manifest.
    let configOutcome: BlobUploadOutcome = { status: 'skipped', bytesSent: 0 };
    if (config.data) {
      configOutcome = await pushBlob(registry, { digest: config.digest, size: config.size, data: bufferData(config.data), compressed: false }, uploadOptions);
    }
    const format = options.manifestFormat ?? (outcomes.some((o) => o.compression === 'zstd') ? 'oci' : 'docker');
    if (format === 'docker' && outcomes.some((o) => o.compression === 'zstd')) {
      throw new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, 'The image has zstd layers, which Docker manifests cannot describe; use manifestFormat "oci".', reference);
    }
    const mediaType = format === 'docker' ? MediaTypes.dockerManifest : MediaTypes.ociManifest;
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        config: { mediaType: format === 'docker' ? MediaTypes.dockerConfig : MediaTypes.ociConfig, digest: config.digest, size: config.size },
        layers: outcomes.map((o) => ({ mediaType: layerMediaType(format, o.compression), digest: o.digest, size: o.size })),
      }),
    );
    const digest = digestOf(manifest);
    await retryTransient(
      async () => {
        const res = await registry.send(
          {
            method: 'PUT',
            url: `/v2/${path}/manifests/${target.tag}`,
            headers: { 'content-type': mediaType, 'content-length': String(manifest.length) },
            body: () => manifest,
            ...sig,
          },
          [200, 201, 202],
        );
        const stored = responseHeader(res.headers, 'docker-content-digest');
        if (stored && stored !== digest) {
          throw new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `The registry stored the manifest as ${stored}, expected ${digest}.`, reference);
        }
      },
      signal,
      options.backoff,
    ).catch((err: unknown) => {
      throw toPushError(err, reference, 'pushing the manifest');
    });
    emit({ type: 'image:manifest-pushed', digest, reference, mediaType });
    await cache?.save();
    const bytesSent = outcomes.reduce((n, o) => n + o.bytesSent, 0) + configOutcome.bytesSent + manifest.length;
    emit({ type: 'image:push-complete', digest, reference, bytesSent, durationMs: Date.now() - started });
    return {
      digest,
      reference,
      canonicalReference: `${target.repository}@${digest}`,
      mediaType,
      layers: outcomes.map((o) => ({ digest: o.digest, size: o.size, status: o.status })),
      bytesSent,
      method: 'native',
    };
  } catch (err) {
    if (userSignal?.aborted) throw toAbortError(userSignal);
    throw toPushError(err, reference, 'pushing');
  } finally {
    userSignal?.removeEventListener('abort', onUserAbort);
    if (!internal.signal.aborted) internal.abort(new Error('push finished'));
    await Promise.allSettled(tasks);
    await client?.close();
    if (ownsArchive) await archive?.close();
    await temp?.dispose();
  }
}

/** Make a layer ready to upload: gzip an uncompressed one, or hash a compressed one whose digest is unknown. */
async function prepareLayer(plan: LayerPlan, temp: TempSpace, gzip: GzipSettings, signal: AbortSignal | undefined): Promise<PreparedBlob> {
  const data = plan.data;
  if (!data) throw new Error(`layer ${plan.diffId} has no data`);
  if (plan.compression === 'none') {
    const out = await gzipToFile(data.open(0, data.size), temp.file(`${plan.diffId}.gz`), gzip, signal);
    if (plan.diffId && out.diffId !== plan.diffId) {
      throw new ImageError(
        ErrorCodes.IMAGE_INVALID_ARCHIVE,
        `Layer content does not match its diff ID (expected ${plan.diffId}, read ${out.diffId}); the image source is corrupt.`,
      );
    }
    return { digest: out.digest, size: out.size, data: fileData(out.path, 0, out.size), diffId: out.diffId, compressed: true };
  }
  if (plan.storedDigest) return { digest: plan.storedDigest, size: plan.storedSize ?? data.size, data, compressed: false };
  const h = await hashStream(data.open(0, data.size), signal);
  return { digest: h.digest, size: h.size, data, compressed: false };
}

/** Stream the daemon's export into a {@link SpooledArchive}, reporting layers as they complete. */
async function spoolDaemonExport(
  name: string,
  options: NativePushOptions,
  temp: TempSpace,
  gzip: GzipSettings,
  diffIds: string[],
  onLayer: (m: SpooledMember) => void,
  signal: AbortSignal | undefined,
): Promise<SpooledArchive> {
  const docker = dockerClient(options.docker);
  const stream = await engineCall('export the image', name, () => docker.getImage(name).get());
  const spooled = new SpooledArchive();
  const wanted = new Set(diffIds);
  const abort = () => (stream as NodeJS.ReadableStream & { destroy?: (e?: Error) => void }).destroy?.(new Error('aborted'));
  signal?.addEventListener('abort', abort, { once: true });
  try {
    await spooled.spool(stream as AsyncIterable<Buffer>, temp, gzip, (m) => {
      if (m.compression === 'none' && wanted.has(m.digest)) {
        wanted.delete(m.digest);
        onLayer(m);
      }
    }, signal);
  } catch (err) {
    throwIfAborted(signal);
    if (isAstroError(err)) throw err;
    throw new ImageError(ErrorCodes.IMAGE_DOCKER_UNAVAILABLE, `Reading the image export from the Docker daemon failed: ${(err as Error).message}`, name, {
      cause: err,
      retryable: true,
    });
  } finally {
    signal?.removeEventListener('abort', abort);
  }
  return spooled;
}

/** Try a cross-repository mount; true when it happened. A refused mount's session is cancelled. */
async function tryMount(client: RegistryClient, digest: string, from: string, signal: AbortSignal | undefined): Promise<boolean> {
  try {
    const res = await client.send(
      {
        method: 'POST',
        url: `/v2/${client.repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
        headers: { 'content-length': '0' },
        ...(signal ? { signal } : {}),
      },
      [201, 202],
    );
    if (res.status === 201) return true;
    const loc = responseHeader(res.headers, 'location');
    if (loc) await client.send({ method: 'DELETE', url: new URL(loc, res.url).toString(), ...(signal ? { signal } : {}) }, [200, 202, 204, 404]).catch(() => undefined);
    return false;
  } catch (err) {
    if (isAstroError(err)) throw err;
    return false;
  }
}

/**
 * The upload plan of a layer read from an archive or export member. An already-compressed layer
 * keeps its stored digest and size, so it is pushed as it is instead of being re-gzipped.
 */
function planFromMember(
  layer: { diffId?: string; compression: LayerPlan['compression']; digest?: string; size?: number },
  data: NonNullable<LayerPlan['data']>,
): LayerPlan {
  const plan: LayerPlan = { diffId: layer.diffId ?? '', compression: layer.compression, data };
  if (layer.digest && layer.compression !== 'none') {
    plan.storedDigest = layer.digest;
    plan.storedSize = layer.size ?? data.size;
  }
  return plan;
}

/** Anything that escaped the steps above, as an ImageError. */
function toPushError(err: unknown, reference: string, what: string): unknown {
  if (isAstroError(err)) return err;
  if (err instanceof RegistryTransportError) {
    return new ImageError(
      err.kind === 'refused' ? ErrorCodes.IMAGE_REGISTRY_UNAVAILABLE : ErrorCodes.IMAGE_PUSH_FAILED,
      `${what} ${reference} failed: ${err.message}. Check that the registry is reachable and try again.`,
      reference,
      { cause: err, retryable: true },
    );
  }
  if (err instanceof RegistryHttpError) {
    return new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `${what} ${reference} failed: ${err.message}.`, reference, {
      cause: err,
      retryable: err.status === 408 || err.status === 429 || err.status >= 500,
    });
  }
  return new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `${what} ${reference} failed: ${(err as Error)?.message ?? String(err)}`, reference, { cause: err });
}
