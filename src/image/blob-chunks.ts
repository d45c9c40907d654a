/**
 * The chunk loop of one blob upload (see `blob-upload.ts` for the whole procedure): `PATCH` with
 * `Content-Range` following the latest `Location`, commit with `PUT ?digest=`, and after a failure
 * the protocol survives, the state the next try starts from (ask for the held range, restart the
 * session, or verify a commit whose answer was lost). Chunks are sized by a {@link ChunkSizer}
 * shared by the blobs of a push; a blob still being written is followed by a `GrowingFollower`.
 */
import type { Emit } from '../core/emitter.js';
import { ErrorCodes, ImageError, isAstroError } from '../core/errors.js';
import { failureOf, finalProxyRefusalHint, type Failure } from '../core/failure.js';
import { isRetryable, withRetries, type RetryPolicy } from '../core/retry.js';
import { ReadBuffers, type PreparedBlob } from './blob.js';
import { GrowingFollower, type FoundElsewhere } from './blob-follow.js';
import { blobExists, locationOf, parseUploadRange, withDigest } from './blob-probe.js';
import type { BlobUploadOptions } from './blob-upload.js';
import { RegistryHttpError, responseHeader, type RegistryClient, type RegistryResponse } from './registry-client.js';
import type { ImageEvent } from './types.js';

const TIMEOUTS = {
  stallTimeoutMs: 30_000,
  responseTimeoutMs: 60_000,
  commitTimeoutMs: 180_000,
};
/** First chunk size and the smallest one, unless a push shares its own sizer. */
export const DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MIN_CHUNK_BYTES = 256 * 1024;

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
  const proxyHint = finalProxyRefusalHint(failure);
  return new ImageError(
    failure?.kind === 'connect' ? ErrorCodes.IMAGE_REGISTRY_UNAVAILABLE : ErrorCodes.IMAGE_PUSH_FAILED,
    `Uploading blob ${blob.digest} (${blob.size} bytes) to ${client.host}/${client.repository} failed after ${attempts} attempt(s): ` +
      `${describe(err)}.` +
      (transient
        ? ' The link or the registry kept failing; try again later, or lower chunkSizeBytes on links whose proxies cut long requests.'
        : proxyHint
          ? ` ${proxyHint}`
          : ''),
    `${client.host}/${client.repository}`,
    { cause: err, retryable: transient },
  );
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
export class ChunkedUpload {
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
  /** Reads a growing blob no further than it is written, and looks it up once complete. */
  private readonly follower: GrowingFollower;
  /** Read buffers of the chunk bodies, reused from one chunk to the next. */
  private readonly reads = new ReadBuffers();

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
    this.follower = new GrowingFollower(client, blob, policy, options.mountFrom ?? [], this.signal, emit);
  }

  /** Set when a growing blob turned out to be in the registry already (the session was dropped). */
  get found(): FoundElsewhere | undefined {
    return this.follower.found;
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
      this.offset = held === undefined ? 0 : held === 1 && this.offset === 0 ? 0 : Math.min(held, this.follower.readable());
    }
    if (!this.location) {
      this.phase = 'start';
      const res = await client.send({ method: 'POST', url: `/v2/${client.repository}/blobs/uploads/`, headers: { 'content-length': '0' }, ...sig }, [202]);
      this.location = locationOf(res);
      this.offset = 0;
    }
    for (;;) {
      const start = this.offset;
      const limit = await this.follower.available(start + this.sizer.current);
      // Complete, digest known: the registry may hold it already (pushed from elsewhere, not in
      // the layer cache); then the rest need not be sent.
      if (await this.follower.foundOnceComplete(start < limit, this.location)) return;
      if (start >= limit) break;
      this.phase = 'patch';
      const end = Math.min(limit, start + this.sizer.current);
      this.lastChunk = end - start;
      const res = await this.patch(start, end);
      this.location = res.headers.location ? locationOf(res) : this.location;
      const held = parseUploadRange(responseHeader(res.headers, 'range')) ?? end;
      if (held > end) throw new RegistryHttpError('PATCH', new URL(this.location).pathname, 416, 'RANGE_INVALID', `registry holds ${held} bytes, more than sent`);
      this.offset = held;
      progress();
      // Progress names the blob by its digest: a blob still being gzipped reports once it has one.
      if (this.follower.complete) this.emit({ type: 'image:layer-progress', digest: blob.digest, bytesConfirmed: this.offset, size: blob.size });
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

  /**
   * Send bytes `[start, end)` in one `PATCH`. Its body is read into buffers reused from the last
   * chunk: once the registry answered the one body sent, every byte of it left the socket, so they
   * serve the next chunk (not after a failure, nor when the body was made twice).
   */
  private async patch(start: number, end: number): Promise<RegistryResponse> {
    let bodies = 0;
    try {
      const res = await this.client.send(
        {
          method: 'PATCH',
          url: this.location!,
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${start}-${end - 1}`,
            'content-length': String(end - start),
          },
          body: () => {
            bodies += 1;
            return this.blob.data.open(start, end, this.reads);
          },
          onBodyBytes: (n) => (this.bytesSent += n),
          stallTimeoutMs: this.options.stallTimeoutMs || TIMEOUTS.stallTimeoutMs,
          responseTimeoutMs: this.options.responseTimeoutMs || TIMEOUTS.responseTimeoutMs,
          ...(this.signal ? { signal: this.signal } : {}),
        },
        [202, 204],
      );
      this.reads.settle(bodies === 1);
      return res;
    } catch (err) {
      this.reads.settle(false);
      throw err;
    }
  }

  /**
   * What the protocol makes of a failure, and the state the next try starts from; undefined when
   * the failure is final. Runs before the policy's decision (a final decision makes the state moot).
   */
  private recover(err: unknown): Recovery | undefined {
    if (this.signal?.aborted) return undefined;
    // The gzip feeding a growing blob failed: its error is the push's, nothing to retry here.
    if (this.follower.writerFailed) return undefined;
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
