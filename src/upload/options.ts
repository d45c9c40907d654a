/**
 * Option resolution of `uploadBlockBlob`: defaults, limits of the SAS's service version, the retry
 * policies of each kind of request, and the per-try timeout rule.
 */
import { AstroConfigError, ErrorCodes } from '../core/errors.js';
import { isTransientStatus } from '../core/failure.js';
import { retryPolicy, type RetryOptions, type RetryPolicy } from '../core/retry.js';
import { MAX_TIMER_MS, TIMER_MS_RULE, isTimerMs } from '../core/timer-ms.js';
import { defaultJournalDir } from './journal.js';
import { ASSUMED_RATE_BYTES_PER_SECOND } from './link-controller.js';
import type { BlobSas } from './sas.js';
import type { TryTimeoutContext, UploadBlockBlobOptions, UploadPhase } from './types.js';

const KIB = 1024;
const MIB = 1024 * KIB;
/** Put Block List has a 60 s server-side budget; give it room on top. */
const COMMIT_TIMEOUT_MS = 90_000;
const BLOCK_LIST_TIMEOUT_MS = 60_000;
const MIN_TRY_TIMEOUT_MS = 20_000;

/** The upload's retry defaults over the SDK's: a block gets more tries than an API call. */
export const UPLOAD_RETRY_DEFAULTS: Required<RetryOptions> = {
  maxRetries: 6,
  initialDelayMs: 500,
  maxDelayMs: 8000,
  maxRetryAfterMs: 60_000,
};

/** Statuses an upload request is tried again after: the transient ones, and 413 (re-cut smaller). */
export function uploadRetryStatus(status: number): boolean {
  return isTransientStatus(status) || status === 413;
}

/** Options with every default filled in. */
export interface ResolvedOptions {
  blockSizeBytes: number;
  minBlockSizeBytes: number;
  maxBlockSizeBytes: number;
  concurrency: number;
  maxBytesInFlight: number;
  singleShotMaxBytes: number;
  targetBlockDurationMs: number;
  maxRestages: number;
  /** Policy of blocks, the single Put Blob, the commit and the stale-block clearing. */
  retry: RetryPolicy;
  /**
   * Policy of a block the service refused because its MD5 did not match (the bytes were corrupted
   * on the way): the same budget and backoff as {@link ResolvedOptions.retry}, and that 400 retried.
   */
  digestMismatchRetry: RetryPolicy;
  /** Policy of Get Block List (at most 2 retries: the journal is the fallback). */
  blockListRetry: RetryPolicy;
  journalDir: string | false;
  resume: boolean;
  requireVersionId: boolean;
  contentType: string;
  clearStaleBlocks: boolean;
  contentMd5: boolean;
  tryTimeoutMs: UploadBlockBlobOptions['tryTimeoutMs'];
}

function invalid(name: string, value: unknown, what: string): AstroConfigError {
  return new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Option ${name} of uploadBlockBlob must be ${what} (got ${String(value)}).`);
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw invalid(name, value, 'a positive number');
  return value;
}

function count(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) throw invalid(name, value, 'a non-negative integer');
  return value;
}

/** A number that a timer keeps, or a rule (checked at each use by {@link tryTimeoutMs}). */
function tryTimeoutRule(value: UploadBlockBlobOptions['tryTimeoutMs']): UploadBlockBlobOptions['tryTimeoutMs'] {
  if (value === undefined || typeof value === 'function' || isTimerMs(value)) return value;
  throw invalid('tryTimeoutMs', value, `${TIMER_MS_RULE}, or a function returning one`);
}

/**
 * Cap of the adaptive block size, in bytes. Blocks only get near it once the link has carried
 * ~20 times as many clean bytes (the reset ceiling of link-controller.ts); fewer, larger requests
 * are what a fast link needs (each request costs the service a few milliseconds of CPU).
 */
export const DEFAULT_MAX_BLOCK_BYTES = 32 * MIB;
/** Payload bytes of the blocks in flight together, by default, in bytes. */
export const DEFAULT_MAX_BYTES_IN_FLIGHT = 64 * MIB;

/** Rounds of staging again after another upload's commit discarded our blocks (see `maxRestages`). */
export const DEFAULT_MAX_RESTAGES = 6;

function resolveRetry(options: RetryOptions | undefined): RetryPolicy {
  for (const [key, value] of Object.entries(options ?? {})) {
    if (value !== undefined && (typeof value !== 'number' || Number.isNaN(value) || value < 0)) throw invalid(`retry.${key}`, value, 'a non-negative number');
  }
  return retryPolicy(options, { defaults: UPLOAD_RETRY_DEFAULTS, retryStatus: uploadRetryStatus });
}

/** Fill in defaults and check `o`; throws `ASTRO_CONFIG_INVALID_OPTION` for nonsensical values. */
export function resolveOptions(o: UploadBlockBlobOptions, sas: Pick<BlobSas, 'maxBlockBytes' | 'maxPutBlobBytes'>): ResolvedOptions {
  const maxBlock = Math.min(sas.maxBlockBytes, positive('maxBlockSizeBytes', o.maxBlockSizeBytes, DEFAULT_MAX_BLOCK_BYTES));
  const minBlock = Math.min(maxBlock, positive('minBlockSizeBytes', o.minBlockSizeBytes, 256 * KIB));
  const retry = resolveRetry(o.retry);
  return {
    blockSizeBytes: Math.min(maxBlock, Math.max(minBlock, positive('blockSizeBytes', o.blockSizeBytes, 2 * MIB))),
    minBlockSizeBytes: minBlock,
    maxBlockSizeBytes: maxBlock,
    concurrency: Math.floor(positive('concurrency', o.concurrency, 8)),
    maxBytesInFlight: positive('maxBytesInFlight', o.maxBytesInFlight, DEFAULT_MAX_BYTES_IN_FLIGHT),
    singleShotMaxBytes: Math.min(sas.maxPutBlobBytes, o.singleShotMaxBytes ?? 4 * MIB),
    targetBlockDurationMs: positive('targetBlockDurationMs', o.targetBlockDurationMs, 8000),
    maxRestages: count('maxRestages', o.maxRestages, DEFAULT_MAX_RESTAGES),
    retry,
    blockListRetry: { ...retry, maxRetries: Math.min(2, retry.maxRetries) },
    // Only ever consulted for a digest mismatch, which is the one 400 worth sending again.
    digestMismatchRetry: { ...retry, retryStatus: (status) => status === 400 || retry.retryStatus(status) },
    journalDir: o.journalDir === undefined ? defaultJournalDir() : o.journalDir,
    resume: o.resume ?? true,
    requireVersionId: o.requireVersionId ?? true,
    contentType: o.contentType ?? 'application/octet-stream',
    clearStaleBlocks: o.clearStaleBlocks ?? true,
    contentMd5: o.contentMd5 ?? true,
    tryTimeoutMs: tryTimeoutRule(o.tryTimeoutMs),
  };
}

/**
 * Check `o` as {@link resolveOptions} does, before there is an upload URL: the deploy flows refuse
 * bad upload options before they create the deploy whose URL the upload goes to. The URL's limits
 * only cap sizes, never refuse them, so none are assumed here.
 */
export function validateUploadOptions(o: UploadBlockBlobOptions): void {
  resolveOptions(o, { maxBlockBytes: Number.POSITIVE_INFINITY, maxPutBlobBytes: Number.POSITIVE_INFINITY });
}

/**
 * Time one request may run: the caller's number or rule, else 90 s for the commit, 60 s for Get
 * Block List, and max(20 s, 3 × bytes / rate) for payload requests, at most what a timer keeps.
 * A rule's answer is checked like a number given: one a timer cannot keep fails the upload with
 * `ASTRO_CONFIG_INVALID_OPTION` rather than timing the request out at once.
 */
export function tryTimeoutMs(rule: ResolvedOptions['tryTimeoutMs'], context: TryTimeoutContext): number {
  if (typeof rule === 'number') return rule;
  if (typeof rule === 'function') {
    const ms = rule(context);
    if (!isTimerMs(ms)) {
      throw new AstroConfigError(
        ErrorCodes.CONFIG_INVALID_OPTION,
        `Option tryTimeoutMs of uploadBlockBlob must return ${TIMER_MS_RULE} (got ${String(ms)} for ${context.phase} of ${context.bytes} bytes).`,
      );
    }
    return ms;
  }
  const phase: UploadPhase = context.phase;
  if (phase === 'commit') return COMMIT_TIMEOUT_MS;
  if (phase === 'block-list') return BLOCK_LIST_TIMEOUT_MS;
  const rate = context.bytesPerSecond ?? ASSUMED_RATE_BYTES_PER_SECOND;
  return Math.min(MAX_TIMER_MS, Math.max(MIN_TRY_TIMEOUT_MS, Math.ceil((3 * context.bytes * 1000) / rate)));
}
