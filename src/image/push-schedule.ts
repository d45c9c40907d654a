/**
 * Phase 3 of a native push: plan the layers in manifest order and upload what the settle step
 * left, several layers at a time. Uncompressed layers are gzipped while hashing (to temp files),
 * and their upload follows the gzip as it writes (reading, gzip and upload overlap); a daemon export is consumed as a stream, and each layer starts uploading
 * as soon as it has arrived (already gzipped by the spool), or while it is gzipped when the spool
 * recognises it before its bytes; layers the registry holds are drained
 * from the export unread. A daemon image whose layers and config the registry all holds is not
 * even exported.
 *
 * Layers run in the push's scope: the first one that fails cancels the others (and the export),
 * and the push ends with that failure.
 */
import { throwIfAborted } from '../core/abort.js';
import { ErrorCodes, ImageError, isAstroError } from '../core/errors.js';
import { abortAware, type OperationScope } from '../core/scope.js';
import { fileData, growingBlob, gzipDataToFile, hashStream, type BlobData, type GzipSettings, type PreparedBlob, type TempSpace } from './blob.js';
import { blobExists, mountBlob, pushBlob, type BlobUploadOutcome } from './blob-upload.js';
import { dockerClient, engineCall } from './docker.js';
import { resolveImage, type LayerCompression } from './layout.js';
import type { IdentifiedImage } from './push-identify.js';
import type { LayerOutcome, PushContext } from './push-context.js';
import type { LayerSettler } from './push-settle.js';
import { SpooledArchive, type GrowingMember, type SpoolSkip, type SpooledMember } from './spool.js';
import type { DockerOptions } from './types.js';

/** A layer to push, in manifest order. */
export interface LayerPlan {
  diffId: string;
  compression: LayerCompression;
  /** Digest/size of the bytes as stored, when the source states them (compressed OCI blobs). */
  storedDigest?: string;
  storedSize?: number;
  /** Bytes of the layer as stored in the source. */
  data?: BlobData;
  /** The layer already gzipped (during a daemon export), or being gzipped when `gzipped` is set. */
  prepared?: PreparedBlob;
  /** For a `prepared` blob still growing on disk: settles when its gzip is done or failed. */
  gzipped?: Promise<void>;
}

/** The layers of an image in manifest order, and its config (`data` absent when the registry has it). */
export interface PushPlan {
  layers: LayerPlan[];
  config: { digest: string; size: number; data?: Buffer };
}

/** Options of a {@link LayerScheduler}. */
export interface ScheduleOptions extends DockerOptions {
  /** Layers prepared and uploaded at once. */
  concurrency: number;
  gzip: GzipSettings;
  /** Where gzipped layers and spooled export members go. */
  temp: TempSpace;
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

/** Schedules the layer uploads of one push (see the module comment). */
export class LayerScheduler {
  /** Registry work (settle, upload) of at most `concurrency` layers at once. */
  private readonly network: <T>(task: () => Promise<T>) => Promise<T>;
  /**
   * Reading and gzipping, limited apart from uploads: a layer waiting for an upload slot is gzipped
   * meanwhile, so the CPU work of the last layers overlaps the uploads of the first ones.
   */
  private readonly cpu: <T>(task: () => Promise<T>) => Promise<T>;
  private readonly byDiffId = new Map<string, Promise<LayerOutcome>>();
  private readonly tasks: Array<Promise<unknown>> = [];

  constructor(
    private readonly ctx: PushContext,
    private readonly settler: LayerSettler,
    private readonly scope: OperationScope,
    private readonly options: ScheduleOptions,
  ) {
    this.network = limiter(Math.max(1, options.concurrency));
    this.cpu = limiter(Math.max(1, options.concurrency));
  }

  /** Plan an image: every layer of an archive is scheduled at once; a daemon image is settled first, then exported if needed. */
  async plan(identified: IdentifiedImage): Promise<PushPlan> {
    if (identified.kind === 'archive') {
      const { archive, image } = identified;
      const layers = image.layers.map((l) => planFromMember(l, archive.data(l.member)));
      for (const plan of layers) void this.schedule(plan);
      return { layers, config: { digest: image.configDigest, size: image.config.length, data: image.config } };
    }
    return this.planDaemon(identified);
  }

  private async planDaemon(identified: Extract<IdentifiedImage, { kind: 'daemon' }>): Promise<PushPlan> {
    const { diffIds, imageId, name } = identified;
    const { registry, policy, signal, reference } = this.ctx;
    const configDigest = identified.configDigest ?? (await this.settler.configDigestOf(imageId));
    // First try to settle everything from the cache, without an export.
    const settled = await Promise.all(diffIds.map((d) => this.settler.settle(d)));
    settled.forEach((s, i) => {
      if (s) this.byDiffId.set(diffIds[i]!, Promise.resolve(s));
    });
    let configSize = configDigest && settled.every(Boolean) ? await blobExists(registry, configDigest, { policy, signal }) : undefined;
    // Every layer settled but the config is not here: mount it from where the layers came from
    // (an earlier push of this image to another repository), rather than export the whole image
    // for a few kilobytes of config.
    if (configDigest && configSize === undefined && settled.every(Boolean) && this.settler.mountFrom.length > 0) {
      const mount = await mountBlob(registry, configDigest, this.settler.mountFrom, { keepSession: false, signal });
      if (mount.from) configSize = await blobExists(registry, configDigest, { policy, signal });
    }
    if (configDigest && configSize !== undefined) {
      return { layers: diffIds.map((d) => ({ diffId: d, compression: 'none' as const })), config: { digest: configDigest, size: configSize } };
    }
    // Layers the settle found in the registry (HEAD confirmed the cached digest and size, or a
    // mount linked it) are drained from the export unread when recognised in time: gzipping a
    // base layer the registry holds only to throw the result away is most of a small change's push.
    const held = new Set(diffIds.filter((_, i) => settled[i]));
    const spooled = await this.spoolExport(
      name,
      new Set(diffIds),
      (m) => {
        // A layer has fully arrived (already gzipped): upload it while the export goes on.
        if (m.gzipped) void this.schedule({ diffId: m.digest, compression: 'none', prepared: m.gzipped });
      },
      { diffIds, configDigest, held },
      // A layer recognised before its bytes uploads while the spool gzips it, as an archive's does.
      (g) => void this.schedule({ diffId: g.diffId, compression: 'none', prepared: g.blob, gzipped: g.done }),
    );
    const image = await resolveImage(spooled, { archiveName: `export of ${name}` });
    if (!image.imageIds.includes(imageId)) {
      throw new ImageError(ErrorCodes.IMAGE_INVALID_ARCHIVE, 'The daemon exported a different image than it described (was the tag moved during the push?). Try again.', reference);
    }
    await this.settler.rememberConfigDigest(imageId, image.configDigest, image.config.length);
    const layers = image.layers.map((l): LayerPlan => {
      const drained = spooled.skipped(l.member);
      if (drained !== undefined) {
        // Recognised by name, by an early manifest.json or by a v1 ID hash: never a different
        // layer than the image's, but a mismatch must not push a manifest with wrong layers.
        if (drained !== l.diffId || !this.byDiffId.has(drained)) {
          throw new ImageError(ErrorCodes.IMAGE_INVALID_ARCHIVE, `The daemon's export does not match its description of ${name} (layer ${l.member}). Try again.`, reference);
        }
        return { diffId: drained, compression: 'none' };
      }
      const prepared = spooled.gzipped(l.member);
      if (prepared) return { diffId: l.diffId ?? '', compression: 'none', prepared };
      return planFromMember(l, spooled.data(l.member));
    });
    for (const plan of layers) void this.schedule(plan);
    return { layers, config: { digest: image.configDigest, size: image.config.length, data: image.config } };
  }

  /** Upload a layer (once per diff ID), within the concurrency limit; a failure cancels the push's other parts. */
  private schedule(plan: LayerPlan): Promise<LayerOutcome> {
    const existing = this.byDiffId.get(plan.diffId);
    if (existing) return existing;
    const p = this.pushLayer(plan);
    // The first failure is the push's; observing it here also avoids an unhandled rejection.
    p.catch((err: unknown) => this.scope.fail(err));
    this.byDiffId.set(plan.diffId, p);
    this.tasks.push(p);
    return p;
  }

  /** The outcomes of `plans`, in manifest order, once all are done. */
  async outcomes(plans: LayerPlan[]): Promise<LayerOutcome[]> {
    const out: LayerOutcome[] = [];
    for (const plan of plans) out.push(await this.byDiffId.get(plan.diffId)!);
    return out;
  }

  /** Wait until no layer task runs any more (cancel them first through the scope), so temp files can go. */
  async drain(): Promise<void> {
    await Promise.allSettled(this.tasks);
  }

  /** Settle (a cache hint), or read and gzip if needed, then upload one layer. */
  private async pushLayer(plan: LayerPlan): Promise<LayerOutcome> {
    const { registry, emit, signal } = this.ctx;
    throwIfAborted(signal);
    if (plan.compression === 'none' && !plan.prepared) {
      const cached = await this.network(() => this.settler.settle(plan.diffId));
      if (cached) return cached;
    }
    if (!plan.prepared && plan.compression === 'none') return this.streamLayer(plan);
    if (plan.prepared && plan.gzipped) return this.pushGrowing(plan.prepared, plan.diffId, plan.gzipped);
    const blob = plan.prepared ?? (await this.cpu(() => prepareLayer(plan, this.options.temp, this.options.gzip, signal)));
    emit({
      type: 'image:layer-prepared',
      digest: blob.digest,
      size: blob.size,
      ...(blob.diffId ? { diffId: blob.diffId } : {}),
      compressed: blob.compressed,
      fromCache: false,
    });
    const outcome = await this.network(() =>
      pushBlob(registry, blob, { ...this.ctx.upload, mountFrom: this.settler.mountFrom, knownAbsent: this.settler.knownAbsent(blob.digest) }),
    );
    if (blob.compressed && plan.diffId) await this.settler.remember(plan.diffId, blob.digest, blob.size);
    return { digest: blob.digest, size: blob.size, compression: blob.compressed ? 'gzip' : plan.compression, status: outcome.status, bytesSent: outcome.bytesSent };
  }

  /**
   * Gzip an uncompressed layer into a temp file and upload it while it is being written: the
   * upload follows the gzip chunk by chunk (see `pushBlob` on growing blobs), so reading, gzip and
   * upload overlap instead of running one after the other. The temp file stays the source of
   * every re-send. A layer whose bytes do not match its diff ID fails before anything is committed.
   */
  private async streamLayer(plan: LayerPlan): Promise<LayerOutcome> {
    const { registry, emit, signal } = this.ctx;
    const data = plan.data;
    if (!data) throw new Error(`layer ${plan.diffId} has no data`);
    const path = this.options.temp.file(`${plan.diffId}.gz`);
    const blob = growingBlob(path, plan.diffId);
    const growth = blob.growth!;
    let started!: () => void;
    const gzipStarted = new Promise<void>((resolve) => (started = resolve));
    const gzip = this.cpu(async () => {
      started();
      const out = await gzipDataToFile(data, path, this.options.gzip, signal, growth);
      assertDiffId(plan, out.diffId);
      blob.digest = out.digest;
      blob.size = out.size;
      growth.finish();
      emit({ type: 'image:layer-prepared', digest: out.digest, size: out.size, diffId: out.diffId, compressed: true, fromCache: false });
    }).catch((err: unknown) => {
      growth.fail(err);
      throw err;
    });
    gzip.catch(() => undefined); // awaited below; the upload may end first
    await gzipStarted;
    let outcome: BlobUploadOutcome;
    try {
      outcome = await this.network(() => pushBlob(registry, blob, { ...this.ctx.upload, mountFrom: this.settler.mountFrom }));
    } catch (err) {
      await gzip; // a gzip failure (corrupt layer, read error) is the cause: it wins
      throw err;
    }
    await gzip;
    await this.settler.remember(plan.diffId, blob.digest, blob.size);
    return { digest: blob.digest, size: blob.size, compression: 'gzip', status: outcome.status, bytesSent: outcome.bytesSent };
  }

  /**
   * Upload a daemon layer while the spool gzips it (`blob` grows on disk; `gzipped` settles when
   * the gzip is done, its diff ID checked by the spool). A gzip failure wins over the upload's.
   */
  private async pushGrowing(blob: PreparedBlob, diffId: string, gzipped: Promise<void>): Promise<LayerOutcome> {
    const { registry, emit } = this.ctx;
    const prepared = gzipped.then(() =>
      emit({ type: 'image:layer-prepared', digest: blob.digest, size: blob.size, diffId, compressed: true, fromCache: false }),
    );
    prepared.catch(() => undefined); // awaited below; the upload may end first
    let outcome: BlobUploadOutcome;
    try {
      outcome = await this.network(() => pushBlob(registry, blob, { ...this.ctx.upload, mountFrom: this.settler.mountFrom }));
    } catch (err) {
      await prepared;
      throw err;
    }
    await prepared;
    await this.settler.remember(diffId, blob.digest, blob.size);
    return { digest: blob.digest, size: blob.size, compression: 'gzip', status: outcome.status, bytesSent: outcome.bytesSent };
  }

  /** Stream the daemon's export into a {@link SpooledArchive}, reporting wanted layers as they complete. */
  private async spoolExport(
    name: string,
    wanted: Set<string>,
    onLayer: (m: SpooledMember) => void,
    skip: SpoolSkip,
    onLayerStart: (m: GrowingMember) => void,
  ): Promise<SpooledArchive> {
    const { signal } = this.ctx;
    const docker = await dockerClient(this.options.docker, 'export the image');
    const stream = await engineCall('export the image', name, () => docker.getImage(name).get());
    const spooled = new SpooledArchive();
    const abort = () => (stream as NodeJS.ReadableStream & { destroy?: (e?: Error) => void }).destroy?.(new Error('aborted'));
    signal.addEventListener('abort', abort, { once: true });
    try {
      await spooled.spool(
        stream as AsyncIterable<Buffer>,
        this.options.temp,
        this.options.gzip,
        (m) => {
          if (m.compression === 'none' && wanted.has(m.digest)) {
            wanted.delete(m.digest);
            onLayer(m);
          }
        },
        signal,
        skip,
        onLayerStart,
      );
    } catch (err) {
      if (signal.aborted) throw abortAware(err, signal);
      if (isAstroError(err)) throw err;
      throw new ImageError(ErrorCodes.IMAGE_DOCKER_UNAVAILABLE, `Reading the image export from the Docker daemon failed: ${(err as Error).message}`, name, {
        cause: err,
        retryable: true,
      });
    } finally {
      signal.removeEventListener('abort', abort);
    }
    return spooled;
  }
}

/** Make a layer ready to upload: gzip an uncompressed one, or hash a compressed one whose digest is unknown. */
async function prepareLayer(plan: LayerPlan, temp: TempSpace, gzip: GzipSettings, signal: AbortSignal): Promise<PreparedBlob> {
  const data = plan.data;
  if (!data) throw new Error(`layer ${plan.diffId} has no data`);
  if (plan.compression === 'none') {
    const out = await gzipDataToFile(data, temp.file(`${plan.diffId}.gz`), gzip, signal);
    assertDiffId(plan, out.diffId);
    return { digest: out.digest, size: out.size, data: fileData(out.path, 0, out.size), diffId: out.diffId, compressed: true };
  }
  if (plan.storedDigest) return { digest: plan.storedDigest, size: plan.storedSize ?? data.size, data, compressed: false };
  const h = await hashStream(data.open(0, data.size), signal);
  return { digest: h.digest, size: h.size, data, compressed: false };
}

/** Refuse a layer whose uncompressed bytes are not what its diff ID says. */
function assertDiffId(plan: LayerPlan, read: string): void {
  if (plan.diffId && read !== plan.diffId) {
    throw new ImageError(
      ErrorCodes.IMAGE_INVALID_ARCHIVE,
      `Layer content does not match its diff ID (expected ${plan.diffId}, read ${read}); the image source is corrupt.`,
    );
  }
}

/**
 * The upload plan of a layer read from an archive or export member. An already-compressed layer
 * keeps its stored digest and size, so it is pushed as it is instead of being re-gzipped.
 */
function planFromMember(layer: { diffId?: string; compression: LayerCompression; digest?: string; size?: number }, data: BlobData): LayerPlan {
  const plan: LayerPlan = { diffId: layer.diffId ?? '', compression: layer.compression, data };
  if (layer.digest && layer.compression !== 'none') {
    plan.storedDigest = layer.digest;
    plan.storedSize = layer.size ?? data.size;
  }
  return plan;
}
