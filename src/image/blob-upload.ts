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
 */
import { sleep, throwIfAborted } from '../core/abort.js';
import { ErrorCodes, ImageError, isAstroError } from '../core/errors.js';
import { retryDelayMs, type BackoffOptions } from '../core/retry.js';
import type { PreparedBlob } from './blob.js';
import { RegistryHttpError, RegistryTransportError, responseHeader, type RegistryClient, type RegistryResponse } from './registry-client.js';
import type { ImageEvent } from './types.js';

/** Knobs of {@link pushBlob}. */
export interface BlobUploadOptions {
  /** First chunk size, in bytes. @default 16 MiB */
  chunkSizeBytes?: number;
  /** Smallest chunk after repeated failures, in bytes. @default 256 KiB */
  minChunkSizeBytes?: number;
  /** Failures in a row (without any confirmed progress in between) before giving up on a blob. @default 6 */
  maxRetries?: number;
  /** A request body may make no progress for this long before the request is abandoned, in milliseconds. @default 30000 */
  stallTimeoutMs?: number;
  /** Wait for a chunk's response after its body is sent, in milliseconds. @default 60000 */
  responseTimeoutMs?: number;
  /** Wait for the commit (`PUT ?digest=`), in which the registry may hash a large blob, in milliseconds. @default 180000 */
  commitTimeoutMs?: number;
  /** Backoff between retries. */
  backoff?: BackoffOptions;
  /** Repositories of the same registry to try a mount from. */
  mountFrom?: string[];
  /** Chunk sizing shared with other blobs of the same push. @default one for this blob */
  chunkSizer?: ChunkSizer;
  signal?: AbortSignal;
  onEvent?: (e: ImageEvent) => void;
}

/** What happened to a blob. */
export interface BlobUploadOutcome {
  status: 'pushed' | 'skipped' | 'mounted';
  /** Body bytes sent for this blob, re-sends included. */
  bytesSent: number;
  /** Mount source, when mounted. */
  from?: string;
}

const DEFAULTS = {
  chunkSizeBytes: 16 * 1024 * 1024,
  minChunkSizeBytes: 256 * 1024,
  maxRetries: 6,
  stallTimeoutMs: 30_000,
  responseTimeoutMs: 60_000,
  commitTimeoutMs: 180_000,
};
/** A cap on all failures of one blob, whatever progress was made between them. */
const MAX_TOTAL_FAILURES = 40;

/** Parse `Range: 0-N` / `bytes=0-N` into the count of bytes held (N + 1). */
export function parseUploadRange(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const m = /^(?:bytes=)?\s*(\d+)-(\d+)\s*$/.exec(value);
  if (!m) return undefined;
  return Number(m[2]) + 1;
}

/** Failures worth another attempt: no answer, or an answer that says "later". */
function isTransient(err: unknown): boolean {
  if (err instanceof RegistryTransportError) return err.kind !== 'other';
  if (err instanceof RegistryHttpError) return err.status === 408 || err.status === 429 || err.status >= 500;
  return false;
}

/** Failures that mean "make the chunk smaller": the request took too long for someone. */
function isTimeoutLike(err: unknown): boolean {
  if (err instanceof RegistryTransportError) return err.kind === 'timeout' || err.kind === 'reset';
  if (err instanceof RegistryHttpError) return err.status === 408 || err.status === 504;
  return false;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function failure(client: RegistryClient, blob: PreparedBlob, err: unknown, attempts: number): ImageError {
  const transient = isTransient(err);
  const code = err instanceof RegistryTransportError && err.kind === 'refused' ? ErrorCodes.IMAGE_REGISTRY_UNAVAILABLE : ErrorCodes.IMAGE_PUSH_FAILED;
  return new ImageError(
    code,
    `Uploading blob ${blob.digest} (${blob.size} bytes) to ${client.host}/${client.repository} failed after ${attempts} attempt(s): ` +
      `${describe(err)}.` +
      (transient ? ' The link or the registry kept failing; try again later, or lower chunkSizeBytes on links whose proxies cut long requests.' : ''),
    `${client.host}/${client.repository}`,
    { cause: err, retryable: transient },
  );
}

/** `HEAD` a blob: its size when the registry has it, else undefined. Retries transient failures. */
export async function blobExists(
  client: RegistryClient,
  digest: string,
  options: { signal?: AbortSignal; backoff?: BackoffOptions; maxRetries?: number } = {},
): Promise<number | undefined> {
  return retryTransient(
    async () => {
      const res = await client.send(
        { method: 'HEAD', url: `/v2/${client.repository}/blobs/${digest}`, ...(options.signal ? { signal: options.signal } : {}) },
        [200, 404],
      );
      if (res.status === 404) return undefined;
      const len = Number(responseHeader(res.headers, 'content-length'));
      return Number.isFinite(len) ? len : 0;
    },
    options.signal,
    options.backoff,
    options.maxRetries ?? DEFAULTS.maxRetries,
  );
}

/** Backoff of registry calls unless the caller sets one. */
const REGISTRY_BACKOFF: BackoffOptions = { initialDelayMs: 250, maxDelayMs: 5_000 };

/** Delay before retry `attempt` of a registry call: the registry's Retry-After, else backoff. */
function retryDelay(err: unknown, attempt: number, backoff: BackoffOptions | undefined): number {
  return retryDelayMs(attempt, err instanceof RegistryHttpError ? err.retryAfterMs : undefined, { ...REGISTRY_BACKOFF, ...backoff });
}

/** Run an idempotent registry call, retrying transient failures (408, 429, 5xx, resets, timeouts) up to `max` times. */
export async function retryTransient<T>(fn: () => Promise<T>, signal: AbortSignal | undefined, backoff: BackoffOptions | undefined, max = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || attempt > max) throw err;
      await sleep(retryDelay(err, attempt, backoff), signal);
    }
  }
}

function locationOf(res: RegistryResponse): string {
  const loc = responseHeader(res.headers, 'location');
  if (!loc) throw new RegistryHttpError('POST', new URL(res.url).pathname, res.status, undefined, 'no Location header in the answer', undefined);
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
  const o = { ...DEFAULTS, ...options };
  const signal = options.signal;
  const sig = signal ? { signal } : {};
  const emit = (e: ImageEvent) => options.onEvent?.(e);
  const repo = client.repository;
  let bytesSent = 0;

  if ((await blobExists(client, blob.digest, { ...sig, ...(o.backoff ? { backoff: o.backoff } : {}) })) !== undefined) {
    emit({ type: 'image:layer-skipped', digest: blob.digest, size: blob.size });
    return { status: 'skipped', bytesSent };
  }

  let location: string | undefined;
  for (const from of o.mountFrom ?? []) {
    if (from === repo) continue;
    try {
      const res = await client.send(
        { method: 'POST', url: `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}`, headers: { 'content-length': '0' }, ...sig },
        [201, 202],
      );
      if (res.status === 201) {
        emit({ type: 'image:layer-mounted', digest: blob.digest, size: blob.size, from });
        return { status: 'mounted', bytesSent, from };
      }
      // 202: the mount was refused and an ordinary upload session opened instead; use it.
      location = locationOf(res);
      break;
    } catch (err) {
      if (isAstroError(err)) throw err;
      // A failed mount attempt is not fatal: the blob is simply uploaded.
    }
  }

  let offset = 0;
  const sizer = options.chunkSizer ?? new ChunkSizer(o.chunkSizeBytes, o.minChunkSizeBytes);
  let lastChunk = 0;
  let consecutive = 0;
  let total = 0;
  let digestRejections = 0;
  let needStatus = false;
  let needVerify = false;
  let phase: 'start' | 'status' | 'patch' | 'commit' | 'verify' = 'start';

  for (;;) {
    throwIfAborted(signal);
    try {
      if (needVerify) {
        phase = 'verify';
        needVerify = false;
        if ((await blobExists(client, blob.digest, sig)) !== undefined) break; // the lost commit landed
        needStatus = location !== undefined;
      }
      if (needStatus && location) {
        phase = 'status';
        const res = await client.send({ method: 'GET', url: location, ...sig }, [204]);
        needStatus = false;
        location = res.headers.location ? locationOf(res) : location;
        const held = parseUploadRange(responseHeader(res.headers, 'range'));
        // "0-0" is ambiguous (0 or 1 byte held); with nothing confirmed before, it means 0.
        offset = held === undefined ? 0 : held === 1 && offset === 0 ? 0 : Math.min(held, blob.size);
      }
      if (!location) {
        phase = 'start';
        const res = await client.send({ method: 'POST', url: `/v2/${repo}/blobs/uploads/`, headers: { 'content-length': '0' }, ...sig }, [202]);
        location = locationOf(res);
        offset = 0;
      }
      while (offset < blob.size) {
        phase = 'patch';
        const start = offset;
        const end = Math.min(blob.size, start + sizer.current);
        lastChunk = end - start;
        const res = await client.send(
          {
            method: 'PATCH',
            url: location,
            headers: {
              'content-type': 'application/octet-stream',
              'content-range': `${start}-${end - 1}`,
              'content-length': String(end - start),
            },
            body: () => blob.data.open(start, end),
            onBodyBytes: (n) => (bytesSent += n),
            stallTimeoutMs: o.stallTimeoutMs,
            responseTimeoutMs: o.responseTimeoutMs,
            ...sig,
          },
          [202, 204],
        );
        location = res.headers.location ? locationOf(res) : location;
        const held = parseUploadRange(responseHeader(res.headers, 'range')) ?? end;
        if (held > end) throw new RegistryHttpError('PATCH', new URL(location).pathname, 416, 'RANGE_INVALID', `registry holds ${held} bytes, more than sent`, undefined);
        offset = held;
        consecutive = 0;
        emit({ type: 'image:layer-progress', digest: blob.digest, bytesConfirmed: offset, size: blob.size });
        sizer.success();
      }
      phase = 'commit';
      const res = await client.send(
        {
          method: 'PUT',
          url: withDigest(location, blob.digest),
          headers: { 'content-length': '0' },
          responseTimeoutMs: o.commitTimeoutMs,
          ...sig,
        },
        [201, 204],
      );
      const stored = responseHeader(res.headers, 'docker-content-digest');
      if (stored && stored !== blob.digest) {
        throw new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `The registry stored blob ${blob.digest} as ${stored}; refusing to go on with a corrupt layer.`, `${client.host}/${repo}`);
      }
      break;
    } catch (err) {
      if (isAstroError(err)) throw err;
      throwIfAborted(signal);
      total += 1;
      consecutive += 1;
      const http = err instanceof RegistryHttpError ? err : undefined;
      const uploadCode = http?.registryCode === 'BLOB_UPLOAD_INVALID' || http?.registryCode === 'BLOB_UPLOAD_UNKNOWN';
      // The session is gone: 404 (or 400 naming the upload) while using it, or any refusal of a status call.
      const sessionGone =
        !!http &&
        !isTransient(http) &&
        ((phase === 'status' && http.status < 500) ||
          ((phase === 'patch' || phase === 'commit') && (http.status === 404 || (http.status === 400 && uploadCode))));
      const digestBad = !!http && phase === 'commit' && http.status === 400 && http.registryCode === 'DIGEST_INVALID';
      const rangeBad = http && http.status === 416;
      if (!isTransient(err) && !sessionGone && !digestBad && !rangeBad) throw failure(client, blob, err, total);
      if (digestBad && ++digestRejections > 1) throw failure(client, blob, err, total);
      if (consecutive > o.maxRetries || total > MAX_TOTAL_FAILURES) throw failure(client, blob, err, total);
      if (phase === 'patch' && isTimeoutLike(err)) sizer.cut(lastChunk);
      else sizer.failure();
      let action: 'resume' | 'restart' | 'verify';
      if ((phase === 'commit' || phase === 'verify') && isTransient(err)) {
        needVerify = true;
        action = 'verify';
      } else if (sessionGone || digestBad || phase === 'start' || !location) {
        // A rejected digest means the stored bytes are wrong (2.8 appends out-of-order chunks): redo the blob.
        location = undefined;
        action = 'restart';
      } else {
        needStatus = true;
        action = 'resume';
      }
      const delayMs = sessionGone || digestBad ? 0 : retryDelay(err, consecutive, o.backoff);
      emit({
        type: 'image:layer-retry',
        digest: blob.digest,
        attempt: total,
        reason: describe(err),
        action,
        resumeAt: action === 'restart' ? 0 : offset,
        delayMs,
        chunkSizeBytes: sizer.current,
      });
      if (delayMs > 0) await sleep(delayMs, signal);
    }
  }
  emit({ type: 'image:layer-pushed', digest: blob.digest, size: blob.size, bytesSent });
  return { status: 'pushed', bytesSent };
}
