/**
 * Retry policy shared by the API client and the uploaders, on top of p-retry.
 *
 * p-retry runs the loop, counts attempts and stops on abort. The delay is ours: p-retry's own
 * delay is set to zero and {@link withRetries} sleeps inside `shouldRetry`, so that a
 * server-sent `Retry-After` can replace the exponential delay and an abort cuts the sleep short.
 */
import pRetry from 'p-retry';
import { sleep, throwIfAborted } from './abort.js';
import { isAstroError } from './errors.js';

/** Backoff knobs. All durations in milliseconds. */
export interface BackoffOptions {
  /** First retry delay before jitter. @default 500 */
  initialDelayMs?: number;
  /** Upper bound of the exponential delay. @default 8000 */
  maxDelayMs?: number;
  /** Longest `Retry-After` the SDK will honour; longer requests are capped. @default 60000 */
  maxRetryAfterMs?: number;
}

/** Resolved backoff defaults. */
export const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  initialDelayMs: 500,
  maxDelayMs: 8000,
  maxRetryAfterMs: 60_000,
};

/**
 * Delay before retry number `retry` (1-based): exponential, capped, with "equal jitter" (half
 * fixed, half random) so that many clients failing together do not retry in lock-step.
 */
export function backoffDelay(retry: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const { initialDelayMs, maxDelayMs } = { ...DEFAULT_BACKOFF, ...options };
  const exp = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.round(exp / 2 + (exp / 2) * random());
}

/**
 * Delay before retry number `retry` (1-based): the server's `Retry-After` when it sent one (capped
 * at `maxRetryAfterMs`, plus up to 100 ms so clients told the same time do not return together),
 * else {@link backoffDelay}. The one delay rule of every retry loop in the SDK.
 */
export function retryDelayMs(retry: number, retryAfterMs: number | undefined, options: BackoffOptions = {}): number {
  if (retryAfterMs === undefined) return backoffDelay(retry, options);
  const cap = options.maxRetryAfterMs ?? DEFAULT_BACKOFF.maxRetryAfterMs;
  return Math.min(retryAfterMs, cap) + Math.round(Math.random() * 100);
}

/**
 * Parse a `Retry-After` (seconds or HTTP date) or `retry-after-ms` header value into milliseconds.
 * Returns undefined for missing or unparseable values.
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw.trim() === '') return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds * 1000));
  const date = Date.parse(raw);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** What a retry looked like, for `retry` events. */
export interface RetryInfo {
  /** 1-based number of the retry about to happen. */
  attempt: number;
  /** How long the SDK waits before it, in milliseconds. */
  delayMs: number;
  /** The error that caused it (already redacted). */
  error: unknown;
}

/** Options of {@link withRetries}. */
export interface WithRetriesOptions extends BackoffOptions {
  /** Retries after the first attempt. @default 2 */
  maxRetries?: number;
  signal?: AbortSignal;
  /** Decide whether `error` may be retried. @default `error.retryable` for SDK errors, else false */
  isRetryable?: (error: unknown) => boolean;
  /** Called before each backoff sleep. */
  onRetry?: (info: RetryInfo) => void;
}

function defaultIsRetryable(error: unknown): boolean {
  return isAstroError(error) && error.retryable;
}

function retryAfterOf(error: unknown): number | undefined {
  const v = (error as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  return typeof v === 'number' && v >= 0 ? v : undefined;
}

/**
 * Run `fn` with retries. The error thrown at the end is the last attempt's error, unchanged.
 */
export async function withRetries<T>(fn: (attempt: number) => Promise<T>, options: WithRetriesOptions = {}): Promise<T> {
  const maxRetries = options.maxRetries ?? 2;
  const isRetryable = options.isRetryable ?? defaultIsRetryable;
  const backoff = { ...DEFAULT_BACKOFF, ...options };
  throwIfAborted(options.signal);
  return pRetry(
    async (attempt) => {
      throwIfAborted(options.signal);
      return fn(attempt);
    },
    {
      retries: maxRetries,
      minTimeout: 0,
      maxTimeout: 0,
      factor: 1,
      shouldRetry: async ({ error, attemptNumber }) => {
        if (options.signal?.aborted || !isRetryable(error)) return false;
        const delayMs = retryDelayMs(attemptNumber, retryAfterOf(error), backoff);
        options.onRetry?.({ attempt: attemptNumber, delayMs, error });
        await sleep(delayMs, options.signal);
        return true;
      },
    },
  );
}
