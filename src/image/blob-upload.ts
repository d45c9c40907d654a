/**
 * Uploading one blob to a registry, the careful way:
 * 1. `HEAD` it and stop if the registry has it;
 * 2. try a cross-repository mount from repositories that may hold it;
 * 3. upload in chunks (`PATCH` with `Content-Range`, always following the latest `Location`);
 * 4. commit with `PUT ?digest=`.
 * When a request fails (408, 429, 5xx, reset, stall) the uploader asks the registry how much it
 * holds (`GET` on the upload URL) and continues from there. Registries that cannot resume
 * (distribution 2.8 cancels the session after a broken PATCH: the status call answers 404) get a
 * fresh session from byte 0 for that blob only. A commit whose answer was lost is checked with a
 * `HEAD` before anything is re-sent. Chunks halve after a timeout-like failure and grow back after
 * a run of successes, so links whose proxies cut long requests still get through.
 *
 * Retries are the SDK's one loop and policy (`core/retry.ts`); this module only tells it what the
 * distribution protocol knows: which failures a session survives, and that a chunk the registry
 * confirmed is progress (the count of failures in a row starts again).
 */
import { emitterFor, type Emit } from '../core/emitter.js';
import { AstroConfigError, ErrorCodes, ImageError, isAstroError } from '../core/errors.js';
import { failureOf, type Failure } from '../core/failure.js';
import type { Logger } from '../core/logger.js';
import { isRetryable, retryPolicy, withRetries, type RetryOptions, type RetryPolicy } from '../core/retry.js';
import type { PreparedBlob } from './blob.js';
import { RegistryHttpError, responseHeader, type RegistryClient, type RegistryResponse } from './registry-client.js';
import type { ImageEvent } from './types.js';

/** Knobs of {@link pushBlob}. */
export interface BlobUploadOptions {
  /** How failed requests are retried (see {@link registryRetryPolicy} for the defaults). */
  retry?: RetryOptions;
  /** A request body may make no progress for this long before the request is abandoned, in milliseconds. @default 30000 */
  stallTimeoutMs?: number;
  /** Wait for a chunk's response after its body is sent, in milliseconds. @default 60000 */
  responseTimeoutMs?: number;
  /** Wait for the commit (`PUT ?digest=`), in which the registry may hash a large blob, in milliseconds. @default 180000 */
  commitTimeoutMs?: number;
  /** Repositories of the same registry to try a mount from. */
  mountFrom?: string[];
  /**
   * The caller has just found the registry without this blob and every mount of it refused (the
   * layer-cache settle step): `HEAD` and mounts are not tried again. @default false
   */
  knownAbsent?: boolean;
  /** Chunk sizing shared with other blobs of the same push. @default 16 MiB chunks, at least 256 KiB, for this blob */
  chunkSizer?: ChunkSizer;
  signal?: AbortSignal;
  onEvent?: (e: ImageEvent) => void;
  /** Where an ignored listener error is noted (debug). */
  logger?: Logger;
}

/** What happened to a blob. */
export interface BlobUploadOutcome {
  status: 'pushed' | 'skipped' | 'mounted';
  /** Body bytes sent for this blob, re-sends included. */
  bytesSent: number;
  /** Mount source, when mounted. */
  from?: string;
}

const TIMEOUTS = {
  stallTimeoutMs: 30_000,
  responseTimeoutMs: 60_000,
  commitTimeoutMs: 180_000,
};
/** First chunk size and the smallest one, unless a push shares its own sizer. */
export const DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MIN_CHUNK_BYTES = 256 * 1024;

/**
 * Registry defaults of the retry vocabulary: 6 failures in a row per request or blob, backoff from
 * 250 ms to 5 s, `Retry-After` honoured up to 60 s.
 */
export const REGISTRY_RETRY_DEFAULTS: Required<RetryOptions> = { maxRetries: 6, initialDelayMs: 250, maxDelayMs: 5_000, maxRetryAfterMs: 60_000 };
/** A cap on all failures of one blob, whatever progress was made between them. */
const MAX_TOTAL_FAILURES = 40;

/**
 * The retry policy of registry calls: the caller's {@link RetryOptions} over
 * {@link REGISTRY_RETRY_DEFAULTS}, at most 40 failures per blob in all. Every registry call is
 * idempotent or harmless to repeat (a repeated `POST` only opens a second upload session).
 * @throws AstroConfigError `ASTRO_CONFIG_INVALID_OPTION` for negative or non-numeric values
 */
export function registryRetryPolicy(retry?: RetryOptions): RetryPolicy {
  try {
    return retryPolicy(retry, { defaults: REGISTRY_RETRY_DEFAULTS, maxTotalRetries: MAX_TOTAL_FAILURES });
  } catch (err) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Option ${(err as Error).message} (push retry settings).`);
  }
}

/** Parse `Range: 0-N` / `bytes=0-N` into the count of bytes held (N + 1). */
export function parseUploadRange(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const m = /^(?:bytes=)?\s*(\d+)-(\d+)\s*$/.exec(value);
  if (!m) return undefined;
  return Number(m[2]) + 1;
}

/** Failures that mean "make the chunk smaller": the request took too long for someone. */
function isTimeoutLike(failure: Failure | undefined): boolean {
  if (!failure) return false;
  return failure.kind === 'timeout' || failure.kind === 'reset' || (failure.kind === 'status' && (failure.status === 408 || failure.status === 504));
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function uploadFailure(client: RegistryClient, blob: PreparedBlob, err: unknown, attempts: number, policy: RetryPolicy): ImageError {
  const failure = failureOf(err);
  const transient = isRetryable(failure, policy);
  return new ImageError(
    failure?.kind === 'connect' ? ErrorCodes.IMAGE_REGISTRY_UNAVAILABLE : ErrorCodes.IMAGE_PUSH_FAILED,
    `Uploading blob ${blob.digest} (${blob.size} bytes) to ${client.host}/${client.repository} failed after ${attempts} attempt(s): ` +
      `${describe(err)}.` +
      (transient ? ' The link or the registry kept failing; try again later, or lower chunkSizeBytes on links whose proxies cut long requests.' : ''),
    `${client.host}/${client.repository}`,
    { cause: err, retryable: transient },
  );
}

/** `HEAD` a blob: its size when the registry has it, else undefined. Retries transient failures. */
export async function blobExists(client: RegistryClient, digest: string, options: { policy: RetryPolicy; signal?: AbortSignal | undefined }): Promise<number | undefined> {
  return withRetries(
    async () => {
      const res = await client.send(
        { method: 'HEAD', url: `/v2/${client.repository}/blobs/${digest}`, ...(options.signal ? { signal: options.signal } : {}) },
        [200, 404],
      );
      if (res.status === 404) return undefined;
      const len = Number(responseHeader(res.headers, 'content-length'));
      return Number.isFinite(len) ? len : 0;
    },
    { policy: options.policy, signal: options.signal },
  );
}

/** What {@link mountBlob} achieved. */
export interface MountOutcome {
  /** The repository the blob was mounted from, when a mount happened. */
  from?: string;
  /** An upload session the registry opened instead of mounting (kept with `keepSession`). */
  location?: string;
}

/**
 * Try a cross-repository mount of `digest` from each of `sources` in turn (the target repository
 * itself is skipped). A registry that refuses a mount opens an ordinary upload session instead
 * (202): with `keepSession` the session is returned for the upload and no other source is tried;
 * without, it is cancelled and the next source tried. A failed attempt is not fatal (the blob is
 * then uploaded); typed errors (refused credentials) are.
 */
export async function mountBlob(
  client: RegistryClient,
  digest: string,
  sources: Iterable<string>,
  options: { keepSession: boolean; signal?: AbortSignal | undefined },
): Promise<MountOutcome> {
  const sig = options.signal ? { signal: options.signal } : {};
  for (const from of sources) {
    if (from === client.repository) continue;
    try {
      const res = await client.send(
        {
          method: 'POST',
          url: `/v2/${client.repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
          headers: { 'content-length': '0' },
          ...sig,
        },
        [201, 202],
      );
      if (res.status === 201) return { from };
      if (options.keepSession) return { location: locationOf(res) };
      const loc = responseHeader(res.headers, 'location');
      if (loc) await client.send({ method: 'DELETE', url: new URL(loc, res.url).toString(), ...sig }, [200, 202, 204, 404]).catch(() => undefined);
    } catch (err) {
      if (isAstroError(err)) throw err;
    }
  }
  return {};
}

function locationOf(res: RegistryResponse): string {
  const loc = responseHeader(res.headers, 'location');
  if (!loc) throw new RegistryHttpError('POST', new URL(res.url).pathname, res.status, undefined, 'no Location header in the answer');
  return new URL(loc, res.url).toString();
}

function withDigest(location: string, digest: string): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.toString();
}

/**
 * Chunk sizing shared by the blobs of one push: halve after a timeout-like failure (a proxy or the
 * link cut a request that ran too long), grow back slowly after a run of successes, but never to a
 * size that already failed: on registries that cannot resume, one more cut chunk costs the whole
 * blob again.
 *
 * Why not the upload module's `LinkController`: Azure blocks are independent (any block can be
 * re-sent alone, several go at once, and the controller sizes them from measured rates and tunes
 * their concurrency), while a registry session takes its chunks strictly in order, one at a time,
 * and a cut chunk may void the whole session (distribution 2.8 cannot resume). So here there is no
 * concurrency to tune and no rate to fit, only the ceiling a proxy's budget imposes; parallelism
 * comes from uploading several layers at once.
 */
export class ChunkSizer {
  private successes = 0;
  private ceiling: number;
  current: number;
  constructor(
    initialBytes: number,
    private readonly minBytes: number,
  ) {
    this.current = Math.max(minBytes, initialBytes);
    this.ceiling = this.current;
  }
  /** A chunk went through. */
  success(): void {
    if (++this.successes >= 8 && this.current < this.ceiling) {
      this.current = Math.min(this.ceiling, this.current * 2);
      this.successes = 0;
    }
  }
  /** A chunk of `size` bytes was cut (timeout, reset, 408). */
  cut(size: number): void {
    this.successes = 0;
    // A short tail chunk that fails says as much about the current size as a full one.
    const half = Math.floor(Math.max(size, this.current) / 2);
    this.ceiling = Math.max(this.minBytes, Math.min(this.ceiling, half));
    this.current = Math.max(this.minBytes, Math.min(this.current, half));
  }
  /** Any other failure. */
  failure(): void {
    this.successes = 0;
  }
}

/** Upload one blob (see the module comment for the whole procedure). */
export async function pushBlob(client: RegistryClient, blob: PreparedBlob, options: BlobUploadOptions = {}): Promise<BlobUploadOutcome> {
  const policy = registryRetryPolicy(options.retry);
  const signal = options.signal;
  const emit = emitterFor(options.onEvent, options.logger);
  let location: string | undefined;
  const growth = blob.growth;
  // A blob still being written: wait for its first chunk. One that completes by then (most small
  // layers) is pushed the ordinary way, HEAD first; a bigger one starts uploading now, before its
  // digest is known, and is looked for in the registry once it is complete (see ChunkedUpload).
  const sizer = options.chunkSizer ?? new ChunkSizer(DEFAULT_CHUNK_BYTES, DEFAULT_MIN_CHUNK_BYTES);
  options = { ...options, chunkSizer: sizer };
  if (growth) await growth.until(sizer.current);
  const streaming = growth !== undefined && !growth.done;
  if (!options.knownAbsent && !streaming) {
    if ((await blobExists(client, blob.digest, { policy, signal })) !== undefined) {
      emit({ type: 'image:layer-skipped', digest: blob.digest, size: blob.size });
      return { status: 'skipped', bytesSent: 0 };
    }
    const mount = await mountBlob(client, blob.digest, options.mountFrom ?? [], { keepSession: true, signal });
    if (mount.from) {
      emit({ type: 'image:layer-mounted', digest: blob.digest, size: blob.size, from: mount.from });
      return { status: 'mounted', bytesSent: 0, from: mount.from };
    }
    location = mount.location;
  }
  const upload = new ChunkedUpload(client, blob, policy, options, location, emit);
  await upload.run();
  if (upload.found) return { status: upload.found.status, bytesSent: upload.bytesSent, ...(upload.found.from ? { from: upload.found.from } : {}) };
  emit({ type: 'image:layer-pushed', digest: blob.digest, size: blob.size, bytesSent: upload.bytesSent });
  return { status: 'pushed', bytesSent: upload.bytesSent };
}

type Phase = 'start' | 'status' | 'patch' | 'commit' | 'verify';

/** How the next try continues after a failure the protocol survives. */
interface Recovery {
  /** `resume`: ask the registry what it holds; `restart`: a new session from byte 0; `verify`: HEAD whether a lost commit landed. */
  action: 'resume' | 'restart' | 'verify';
  /** The session is gone or its bytes are wrong: restart at once, without backoff. */
  atOnce: boolean;
}

/**
 * The chunked upload of one blob as a state machine: each try continues from the state the last
 * failure left (verify a commit, ask for the held range, open a session, PATCH, commit), and the
 * kernel's loop decides whether and when there is a next try.
 */
class ChunkedUpload {
  bytesSent = 0;
  private offset = 0;
  private lastChunk = 0;
  private digestRejections = 0;
  private needStatus = false;
  private needVerify = false;
  private phase: Phase = 'start';
  /** The recovery of the last failure, or undefined when it is final. */
  private recovery: Recovery | undefined;
  private readonly sizer: ChunkSizer;
  private readonly signal: AbortSignal | undefined;
  /** A growing blob was looked for in the registry once complete. */
  private looked = false;
  /** Set when a growing blob turned out to be in the registry already (the session was dropped). */
  found: { status: 'skipped' | 'mounted'; from?: string } | undefined;

  constructor(
    private readonly client: RegistryClient,
    private readonly blob: PreparedBlob,
    private readonly policy: RetryPolicy,
    private readonly options: BlobUploadOptions,
    private location: string | undefined,
    private readonly emit: Emit<ImageEvent>,
  ) {
    this.sizer = options.chunkSizer ?? new ChunkSizer(DEFAULT_CHUNK_BYTES, DEFAULT_MIN_CHUNK_BYTES);
    this.signal = options.signal;
  }

  async run(): Promise<void> {
    let attempts = 0;
    try {
      await withRetries(
        async ({ number, progress }) => {
          attempts = number;
          try {
            await this.attempt(progress);
          } catch (err) {
            this.recovery = this.recover(err);
            throw err;
          }
        },
        {
          // Which statuses are worth another try depends on the phase (a 404 means "restart"
          // during a PATCH, and is final elsewhere): `classify` lets through only what the
          // protocol survives; the policy times and counts the retries.
          policy: { ...this.policy, retryStatus: () => true },
          signal: this.signal,
          classify: (err) => this.classify(err),
          onRetry: (info) => this.emitRetry(info.attempt, info.delayMs, info.error),
          logger: this.options.logger,
        },
      );
    } catch (err) {
      if (isAstroError(err)) throw err;
      throw uploadFailure(this.client, this.blob, err, attempts, this.policy);
    }
  }

  /** One try, from wherever the last failure left the upload. */
  private async attempt(progress: () => void): Promise<void> {
    const { client, blob } = this;
    const sig = this.signal ? { signal: this.signal } : {};
    if (this.needVerify) {
      this.phase = 'verify';
      this.needVerify = false;
      if ((await blobExists(client, blob.digest, { policy: this.policy, signal: this.signal })) !== undefined) return; // the lost commit landed
      this.needStatus = this.location !== undefined;
    }
    if (this.needStatus && this.location) {
      this.phase = 'status';
      const res = await client.send({ method: 'GET', url: this.location, ...sig }, [204]);
      this.needStatus = false;
      this.location = res.headers.location ? locationOf(res) : this.location;
      const held = parseUploadRange(responseHeader(res.headers, 'range'));
      // "0-0" is ambiguous (0 or 1 byte held); with nothing confirmed before, it means 0.
      this.offset = held === undefined ? 0 : held === 1 && this.offset === 0 ? 0 : Math.min(held, this.readable());
    }
    if (!this.location) {
      this.phase = 'start';
      const res = await client.send({ method: 'POST', url: `/v2/${client.repository}/blobs/uploads/`, headers: { 'content-length': '0' }, ...sig }, [202]);
      this.location = locationOf(res);
      this.offset = 0;
    }
    for (;;) {
      const start = this.offset;
      const limit = await this.available(start + this.sizer.current);
      if (blob.growth?.done && !this.looked) {
        // Complete, digest known: the registry may hold it already (pushed from elsewhere, not in
        // the layer cache); then the rest need not be sent. What was sent is the price of having
        // started early, small on a slow link, where the gzip runs ahead of the upload.
        this.looked = true;
        if (start < limit && (await this.foundInRegistry())) return;
      }
      if (start >= limit) break;
      this.phase = 'patch';
      const end = Math.min(limit, start + this.sizer.current);
      this.lastChunk = end - start;
      const res = await client.send(
        {
          method: 'PATCH',
          url: this.location,
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${start}-${end - 1}`,
            'content-length': String(end - start),
          },
          body: () => blob.data.open(start, end),
          onBodyBytes: (n) => (this.bytesSent += n),
          stallTimeoutMs: this.options.stallTimeoutMs || TIMEOUTS.stallTimeoutMs,
          responseTimeoutMs: this.options.responseTimeoutMs || TIMEOUTS.responseTimeoutMs,
          ...sig,
        },
        [202, 204],
      );
      this.location = res.headers.location ? locationOf(res) : this.location;
      const held = parseUploadRange(responseHeader(res.headers, 'range')) ?? end;
      if (held > end) throw new RegistryHttpError('PATCH', new URL(this.location).pathname, 416, 'RANGE_INVALID', `registry holds ${held} bytes, more than sent`);
      this.offset = held;
      progress();
      // Progress names the blob by its digest: a blob still being gzipped reports once it has one.
      if (!blob.growth || blob.growth.done) this.emit({ type: 'image:layer-progress', digest: blob.digest, bytesConfirmed: this.offset, size: blob.size });
      this.sizer.success();
    }
    this.phase = 'commit';
    const res = await client.send(
      {
        method: 'PUT',
        url: withDigest(this.location, blob.digest),
        headers: { 'content-length': '0' },
        responseTimeoutMs: this.options.commitTimeoutMs || TIMEOUTS.commitTimeoutMs,
        ...sig,
      },
      [201, 204],
    );
    const stored = responseHeader(res.headers, 'docker-content-digest');
    if (stored && stored !== blob.digest) {
      throw new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `The registry stored blob ${blob.digest} as ${stored}; refusing to go on with a corrupt layer.`, `${client.host}/${client.repository}`);
    }
  }

  /** Bytes of the blob that can be read now: all of it, or what a growing blob has written. */
  private readable(): number {
    const g = this.blob.growth;
    return g && !g.done ? g.written : this.blob.size;
  }

  /**
   * Where the next chunk may end: once `want` bytes are written (or the blob is complete), the
   * readable end. Rejects with the writer's error when the gzip failed.
   */
  private async available(want: number): Promise<number> {
    await this.blob.growth?.until(want);
    return this.readable();
  }

  /**
   * A growing blob just completed: `HEAD` its digest and try the mounts; when either settles it,
   * cancel this upload session and record how.
   */
  private async foundInRegistry(): Promise<boolean> {
    const { client, blob } = this;
    const sig = this.signal ? { signal: this.signal } : {};
    let found: ChunkedUpload['found'];
    if ((await blobExists(client, blob.digest, { policy: this.policy, signal: this.signal })) !== undefined) found = { status: 'skipped' };
    else {
      const mount = await mountBlob(client, blob.digest, this.options.mountFrom ?? [], { keepSession: false, signal: this.signal });
      if (mount.from) found = { status: 'mounted', from: mount.from };
    }
    if (!found) return false;
    this.found = found;
    if (this.location) await client.send({ method: 'DELETE', url: this.location, ...sig }, [200, 202, 204, 404]).catch(() => undefined);
    if (found.status === 'skipped') this.emit({ type: 'image:layer-skipped', digest: blob.digest, size: blob.size });
    else this.emit({ type: 'image:layer-mounted', digest: blob.digest, size: blob.size, from: found.from! });
    return true;
  }

  /**
   * What the protocol makes of a failure, and the state the next try starts from; undefined when
   * the failure is final. Runs before the policy's decision (a final decision makes the state moot).
   */
  private recover(err: unknown): Recovery | undefined {
    if (this.signal?.aborted) return undefined;
    // The gzip feeding a growing blob failed: its error is the push's, nothing to retry here.
    if (this.blob.growth?.failed) return undefined;
    const failure = failureOf(err);
    const transient = isRetryable(failure, this.policy);
    const http = err instanceof RegistryHttpError ? err : undefined;
    const uploadCode = http?.registryCode === 'BLOB_UPLOAD_INVALID' || http?.registryCode === 'BLOB_UPLOAD_UNKNOWN';
    const phase = this.phase;
    // The session is gone: 404 (or 400 naming the upload) while using it, or any refusal of a status call.
    const sessionGone =
      !!http &&
      !transient &&
      ((phase === 'status' && http.status < 500) || ((phase === 'patch' || phase === 'commit') && (http.status === 404 || (http.status === 400 && uploadCode))));
    const digestBad = !!http && phase === 'commit' && http.status === 400 && http.registryCode === 'DIGEST_INVALID';
    const rangeBad = http?.status === 416;
    if (!transient && !sessionGone && !digestBad && !rangeBad) return undefined;
    if (digestBad && ++this.digestRejections > 1) return undefined;
    if (phase === 'patch' && isTimeoutLike(failure)) this.sizer.cut(this.lastChunk);
    else this.sizer.failure();
    const atOnce = sessionGone || digestBad;
    if ((phase === 'commit' || phase === 'verify') && transient) {
      this.needVerify = true;
      return { action: 'verify', atOnce };
    }
    if (atOnce || phase === 'start' || !this.location) {
      // A rejected digest means the stored bytes are wrong (2.8 appends out-of-order chunks): redo the blob.
      this.location = undefined;
      return { action: 'restart', atOnce };
    }
    this.needStatus = true;
    return { action: 'resume', atOnce };
  }

  /** The failure the policy decides on: none for a final one; no backoff when the session must be redone. */
  private classify(err: unknown): Failure | undefined {
    const failure = failureOf(err);
    if (!this.recovery || !failure) return undefined;
    return this.recovery.atOnce ? { ...failure, retryAfterMs: 0 } : failure;
  }

  private emitRetry(attempt: number, delayMs: number, error: unknown): void {
    const action = this.recovery?.action ?? 'resume';
    this.emit({
      type: 'image:layer-retry',
      digest: this.blob.digest || this.blob.diffId || '',
      attempt,
      reason: describe(error),
      action,
      resumeAt: action === 'restart' ? 0 : this.offset,
      delayMs,
      chunkSizeBytes: this.sizer.current,
    });
  }
}
