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
import { emitterFor } from '../core/emitter.js';
import { AstroConfigError, ErrorCodes } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { retryPolicy, type RetryOptions, type RetryPolicy } from '../core/retry.js';
import type { PreparedBlob } from './blob.js';
import { ChunkedUpload, ChunkSizer, DEFAULT_CHUNK_BYTES, DEFAULT_MIN_CHUNK_BYTES } from './blob-chunks.js';
import { blobExists, mountBlob } from './blob-probe.js';
import type { RegistryClient } from './registry-client.js';
import type { ImageEvent } from './types.js';

export { ChunkSizer, DEFAULT_CHUNK_BYTES, DEFAULT_MIN_CHUNK_BYTES } from './blob-chunks.js';
export { blobExists, mountBlob, parseUploadRange, type MountOutcome } from './blob-probe.js';

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
